"""The atlas and the command line: measured values, formats, errors, env."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kinkgrad
from kinkgrad import kink_policy
from kinkgrad._atlas import atlas, render
from kinkgrad.cli import main


def test_atlas_measures_pytorch_and_the_policy() -> None:
    rows = {(r.op, r.point): r for r in atlas(kink_policy(default=1.0, ties="last"), jax=False)}
    assert len(rows) == sum(len(spec.probes) for spec in kinkgrad.registry.values())
    relu = rows[("relu", "x = 0")]
    assert (relu.torch, relu.clarke, relu.kinkgrad) == ("0", "[0, 1]", "1")
    # the measurements are taken now, from this PyTorch: compare with a direct computation
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    torch.clamp(x, min=0.0).backward()
    assert rows[("clamp_min", "x = 0")].torch == f"{float(x.grad):.4g}"  # type: ignore[arg-type]
    assert rows[("max_pool2d", "all entries equal")].kinkgrad == "(0, 0, 0, 1)"
    assert rows[("abs", "x = 0")].kinkgrad == "1"


def test_atlas_uses_the_active_policy_and_pytorch_inside_it() -> None:
    with kink_policy(relu=0.25):
        rows = atlas(jax=False)
    relu = next(r for r in rows if r.op == "relu")
    assert (relu.torch, relu.kinkgrad) == ("0", "0.25")
    plain = next(r for r in atlas(jax=False) if r.op == "relu")
    assert plain.kinkgrad == plain.torch


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_render_formats(fmt: str) -> None:
    rows = atlas(kink_policy(default=0.5), jax=False)
    text = render(rows, fmt)
    if fmt == "json":
        data = json.loads(text)
        assert {"op", "point", "torch", "clarke", "kinkgrad"} <= set(data[0])
        assert len(data) == len(rows)
    elif fmt == "csv":
        parsed = list(csv.DictReader(io.StringIO(text)))
        assert parsed[0]["op"] == "relu" and len(parsed) == len(rows)
    elif fmt == "markdown":
        assert text.splitlines()[0].startswith("| op | point | torch | clarke | kinkgrad")
    else:
        assert text.splitlines()[0].split()[:5] == ["op", "point", "torch", "clarke", "kinkgrad"]
    with pytest.raises(ValueError, match="format must be one of"):
        render(rows, "yaml")


def test_jax_column_when_importable() -> None:
    pytest.importorskip("jax")
    rows = atlas(kink_policy(default=0.5), jax=True)
    assert next(r for r in rows if r.op == "abs").jax == "1"


def test_cli_atlas_json_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["atlas", "--format", "json", "--set", "relu=1", "--no-jax"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert next(d for d in data if d["op"] == "relu")["kinkgrad"] == "1"
    assert main(["atlas", "--set", "rellu=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown kink op 'rellu'" in err and "Traceback" not in err
    assert main(["atlas", "--set", "relu=split"]) == 2
    assert "relu must be a number" in capsys.readouterr().err
    assert main(["atlas", "--set", "relu"]) == 2
    assert "OP=CHOICE" in capsys.readouterr().err


def test_cli_env_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kinkgrad"] == kinkgrad.__version__ and info["torch"] == torch.__version__
    assert {"numpy", "python", "platform", "torch_threads", "default_dtype"} <= set(info)
    # (`make` builds both C extensions; a build without a C compiler says "no")
    assert info["kinkgrad_compiled_passes"] == info["kinkgrad_compiled_dispatch"] == "yes"
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"kinkgrad {kinkgrad.__version__}"


def test_cli_demo(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tiny = ["epochs=1", "max_train=64", "max_test=32", "hidden=8,8", "batch_size=32", "data.name=digits"]
    argv = ["demo", "--out", str(tmp_path / "study")] + [a for kv in tiny for a in ("--set", kv)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "plain PyTorch              f'(0) = 0   (outside the Clarke set)" in out
    assert "kink_policy(default=0.5)   f'(0) = 1   (correct)" in out
    assert "site 1 (relu): 6144 of 9216 outputs exactly at the kink, 6144 of them bifurcating" in out
    assert f"Report:  {tmp_path / 'study' / 'report.md'}" in out
    summary = out[out.index("Summary (digits; report:") :]
    assert "dtype     steps  bifurcating steps  without / with BN" in summary
    assert all(dtype in summary for dtype in ("float16", "bfloat16", "float32", "float64"))
    assert main(["demo", "--no-study"]) == 0
    assert "relu-prime" not in capsys.readouterr().out.split("KinkMonitor")[1]


def test_python_dash_m_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kinkgrad", "--help"], capture_output=True, text=True, check=True
    )
    assert "atlas" in done.stdout and "env" in done.stdout
