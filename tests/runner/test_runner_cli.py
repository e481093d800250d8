"""`kinkgrad run`, `list` and `plot` end to end, in this process, into tmp_path."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import runner_toys  # noqa: F401  (registers toy-lsq)

from kinkgrad.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-setting, two-seed toy run."""
    folder = tmp_path_factory.mktemp("cli") / "run"
    assert main(["run", "toy-lsq", "--out", str(folder), "--set", "steps=5"]) == 0
    return folder


def test_run_writes_the_whole_folder(finished_run: Path) -> None:
    names = {p.relative_to(finished_run).as_posix() for p in finished_run.rglob("*") if p.is_file()}
    expected = {
        "config.json",
        "run.json",
        "env.json",
        "results/records.csv",
        "results/records.parquet",
        "results/final_fit.csv",
        "results/final_fit.parquet",
        "figures/loss.png",
        "report.md",
        "report.html",
    } | {f"units/s000{i}-seed{s}.json" for i in (0, 1) for s in (0, 1)}
    assert names == expected
    config = json.loads((finished_run / "config.json").read_text())
    assert config["experiment"] == "toy-lsq" and config["seeds"] == [0, 1]
    assert config["config"]["steps"] == 5 and config["sweep"] == {"lr": [0.1, 0.05]}
    env = json.loads((finished_run / "env.json").read_text())
    assert {"kinkgrad", "torch", "python"} <= set(env)

    records = pd.read_csv(finished_run / "results" / "records.csv")
    assert list(records.columns[:2]) == ["seed", "lr"]
    assert len(records) == 2 * 2 * 5
    assert set(records.groupby(["lr", "seed"]).size()) == {5}
    parquet = pd.read_parquet(finished_run / "results" / "records.parquet")
    pd.testing.assert_frame_equal(parquet.drop(columns="tag"), records.drop(columns="tag"), check_dtype=False)
    final = pd.read_csv(finished_run / "results" / "final_fit.csv")
    assert list(final.columns) == ["seed", "lr", "weight_error", "converged"] and len(final) == 4

    assert (finished_run / "figures" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_markdown_and_self_contained_html(finished_run: Path) -> None:
    md = (finished_run / "report.md").read_text()
    assert md.startswith("# toy-lsq: Fit a least-squares model by gradient descent")
    assert "## Claims" in md and "| gradient descent lowers the loss | lower |" in md and "reproduced" in md
    assert "## Numeric summary" in md and "### records" in md and "### final_fit" in md
    assert "![loss](figures/loss.png)" in md
    assert "| lr | 0.1, 0.05 (swept) |" in md and "| data.n | 32 |" in md
    html = (finished_run / "report.html").read_text()
    assert 'src="data:image/png;base64,' in html
    embedded = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(embedded) == (finished_run / "figures" / "loss.png").read_bytes()
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_run_prints_where_things_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "quick"
    code, out, _ = run_cli(capsys, "run", "toy-lsq", "--quick", "--out", str(folder))
    assert code == 0
    assert f"Run folder: {folder}" in out
    assert "1 units (1 setting x 1 seed); running 1 on this process." in out
    assert f"Results: {folder / 'results' / 'records.csv'}" in out
    assert f"Report:  {folder / 'report.html'}" in out
    assert "reproduced  gradient descent lowers the loss" in out

    code, out, _ = run_cli(capsys, "run", "toy-lsq", "--quick", "--out", str(folder))
    assert code == 0
    assert "no unit to run" in out and "Nothing to do" in out


def test_default_folder_is_named_after_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "run", "toy-lsq", "--quick")
    assert code == 0
    folders = list((tmp_path / "runs" / "toy-lsq").iterdir())
    assert len(folders) == 1 and f"Run folder: {Path('runs') / 'toy-lsq' / folders[0].name}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "toy-lsq", "--set", "stepz=3"], "unknown setting 'stepz' for experiment 'toy-lsq'"),
        (["run", "toy-lsq", "--set", "steps=three"], "bad value for 'steps' (int): 'three' is not an int"),
        (["run", "toy-lsq", "--set", "method=adam"], "'adam' is not one of: gd, momentum"),
        (
            ["run", "toy-lsq", "--sweep", "data=1,2"],
            "'data' is a group of settings for experiment 'toy-lsq'; set one of: data.n",
        ),
        (["run", "no-such"], "unknown experiment 'no-such'"),
        (["run", "toy-lsq", "--scheduler", "tcp://x:1"], "--scheduler needs --backend dask"),
        (["run", "toy-lsq", "--backend", "dask"], "--backend dask needs --scheduler ADDRESS"),
        (["list", "no-such"], "unknown experiment 'no-such'"),
        (["plot", "/nonexistent/run"], "is not a kinkgrad run folder"),
    ],
)
def test_bad_input_is_exit_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    if argv[0] == "run":
        argv = [*argv, "--out", str(tmp_path / "out")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith(f"kinkgrad {argv[0]}: error: ")
    assert message in err
    assert "Traceback" not in err


def test_unknown_key_error_lists_every_valid_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "run", "toy-lsq", "--set", "nope=1", "--out", str(tmp_path))
    assert code == 2
    assert "valid settings: steps, lr, method, dims, tag, verbose, data.n, data.noise" in err


def test_out_folder_holding_another_run_is_refused(
    finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "run", "toy-lsq", "--out", str(finished_run), "--set", "steps=6")
    assert code == 2
    assert "holds a different run (config.steps: 5 in the folder, 6 now)" in err


def test_list_shows_settings_types_defaults_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "list", "toy-lsq")
    assert code == 0
    assert out.startswith("toy-lsq: Fit a least-squares model by gradient descent")
    assert "seeds: 2   sweep: lr = 0.1, 0.05" in out
    assert "--quick: steps=3; sweep lr = 0.1; seeds=1" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[4:] if line.startswith("  ")}
    assert lines["method"][:3] == ["method", "{gd,", "momentum}"]
    assert lines["data.noise"][:3] == ["data.noise", "float", "0.1"]
    assert "feature dimensions" in out and "tuple[int, ...]" in out


def test_plot_redraws_from_the_files(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("figures/loss.png", "report.md", "report.html"):
        (finished_run / name).unlink()
    csv = finished_run / "results" / "records.csv"
    frame = pd.read_csv(csv)
    frame["loss"] = frame["loss"] * 0 + 123456.0  # plot must read the files, not anything in memory
    frame.to_csv(csv, index=False)
    (finished_run / "results" / "records.parquet").unlink()
    code, out, _ = run_cli(capsys, "plot", str(finished_run))
    assert code == 0
    assert (finished_run / "figures" / "loss.png").is_file()
    assert f"Report: {finished_run / 'report.html'}" in out
    assert "1.235e+05" in (finished_run / "report.md").read_text()


def test_broken_figure_is_reported_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KINKGRAD_TEST_BAD_FIGURE", "1")
    code, _, err = run_cli(capsys, "run", "toy-lsq", "--quick", "--out", str(tmp_path / "r"))
    assert code == 1 and "Problems drawing loss" in err
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Problems" in md and "figure broken on purpose" in md
    assert not (tmp_path / "r" / "figures" / "loss.png").exists()
    monkeypatch.delenv("KINKGRAD_TEST_BAD_FIGURE")
    code, out, _ = run_cli(capsys, "run", "toy-lsq", "--quick", "--out", str(tmp_path / "r"))
    assert code == 0 and "Nothing to do" not in out  # the fixed figure is drawn on the rerun
    assert (tmp_path / "r" / "figures" / "loss.png").is_file()


@pytest.mark.skipif(
    not (Path(__file__).parents[2] / "src" / "kinkgrad" / "cli" / "_demo.py").exists(),
    reason="the CLI needs every subcommand module",
)
def test_real_process_exit_code_2_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "KINKGRAD_EXPERIMENTS": "runner_toys", "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "kinkgrad", "run", "toy-lsq", "--set", "bogus=1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "kinkgrad run: error: unknown setting 'bogus'" in proc.stderr
    assert "Traceback" not in proc.stderr
