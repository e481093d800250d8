"""kinkgrad audit: building a model from an import path, the report, clear errors (exit code 2)."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from kinkgrad._audit import AuditError, audit, load_model
from kinkgrad.cli._main import main

MODELS = '''
import torch
from torch import nn


def quantized_mlp():
    """Weights on a 1/16 grid: with digits (levels k/16) some pre-activations are exactly 0."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((p * 16).round() / 16)
    return model


def with_batch_norm():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 10))


def needs_vectors():
    return nn.Linear(64, 10)


def broken():
    raise RuntimeError("no weights file")


def not_a_model():
    return 42


INSTANCE = nn.Sequential(nn.Flatten(), nn.Linear(40, 10), nn.ReLU())
'''


@pytest.fixture
def models(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "audit_models.py").write_text(textwrap.dedent(MODELS))
    (tmp_path / "audit_bad_import.py").write_text("import no_such_package_kinkgrad\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield "audit_models"
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("audit_models", "audit_bad_import"):
            sys.modules.pop(name, None)


def test_cli_report(models: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["audit", f"{models}:quantized_mlp", "--data", "digits", "--dtype", "float16"]
    assert main([*argv, "--batches", "6", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "Audit of audit_models:quantized_mlp: Sequential (1,210 parameters)" in out
    assert "data digits, 6 batches of 16, dtype float16, loss cross-entropy" in out
    assert "\n2     relu" in out.replace("  ", "  ")
    assert "Bifurcation zone:" in out and "Plain AD vs certified gradient: differs on" in out


def test_json_report_is_consistent(models: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["audit", f"{models}:quantized_mlp", "--data", "digits", "--dtype", "bfloat16", "--batches", "8"]
    assert main([*argv, "--batch-size", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (site,) = report["sites"]
    assert (site["site"], site["op"], site["calls"], site["elements"]) == ("2", "relu", 8, 8 * 8 * 16)
    assert site["exact_kinks"] > 0 and site["near_kinks"] >= site["exact_kinks"]
    # the monitor's bifurcating kinks predict the bifurcation batch by batch
    assert site["batches_bifurcating"] == report["bifurcating_batches"] > 0
    assert report["bifurcation_frequency"] == report["bifurcating_batches"] / 8
    assert report["certified_checked"] == 8 and report["notes"] == []


def test_module_instances_files_and_flatten(
    models: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", f"{models}:INSTANCE", "--data", "mnist1d", "--batches", "2", "--no-certified"]) == 0
    assert "Plain AD vs certified" not in capsys.readouterr().out
    path = tmp_path / "audit_models.py"
    assert main(["audit", f"{path}:needs_vectors", "--data", "digits", "--batches", "1", "--flatten"]) == 0
    assert "No kink op was called" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("audit_models", "expected MODULE:FACTORY"),
        ("no_such_module_kinkgrad:f", "cannot import module 'no_such_module_kinkgrad'"),
        ("audit_bad_import:f", "importing 'audit_bad_import' raised ModuleNotFoundError"),
        ("audit_models:nope", "has no attribute 'nope'; callables there: INSTANCE, broken, needs_vectors"),
        ("audit_models:broken", "the factory audit_models:broken raised RuntimeError: no weights file"),
        ("audit_models:not_a_model", "returned a int, expected a torch.nn.Module"),
        ("audit_models:needs_vectors", "failed on a batch of shape (64, 1, 8, 8)"),
        ("missing/file.py:f", "no such file"),
    ],
)
def test_bad_targets_exit_2(
    models: str, target: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", target, "--data", "digits", "--batches", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinkgrad audit: error: ") and message in err and "Traceback" not in err


def test_audit_leaves_the_model_as_it_was(models: str) -> None:
    model = load_model(f"{models}:with_batch_norm")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = audit(model, "digits", batches=2, batch_size=16)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert [s.site for s in report.sites] == ["3"] and report.loss == "cross-entropy"
    with pytest.raises(AuditError, match="no parameter"):
        audit(nn.Sequential(nn.Flatten(), nn.ReLU()), "digits", batches=1)
    with pytest.raises(ValueError, match="at least 1"):
        audit(model, "digits", batches=0)
