"""Sweeps: parallel workers, atomic unit files, resume after a crash, no work when finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import runner_toys  # noqa: F401  (registers toy-lsq)

from kinkgrad.cli import main
from kinkgrad.runner import LocalBackend, resolve_run, run_experiment, run_sweep


@pytest.fixture
def execution_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder where every unit execution leaves one file (seen by worker processes too)."""
    log = tmp_path / "log"
    log.mkdir()
    monkeypatch.setenv("KINKGRAD_TEST_LOG", str(log))
    return log


def executions(log: Path) -> list[str]:
    return sorted(p.name.rsplit("-", 1)[0] for p in log.iterdir())


def test_two_workers_match_one_process(
    tmp_path: Path, execution_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "toy-lsq", "--set", "steps=4", "--seeds", "2", "--workers", "2"]
    assert main([*argv, "--out", str(tmp_path / "parallel")]) == 0
    assert "4 units (2 settings x 2 seeds); running 4 on 2 local processes." in capsys.readouterr().out
    spec = resolve_run("toy-lsq", overrides=["steps=4"], seeds=2)
    serial = run_sweep(spec, tmp_path / "serial", backend=LocalBackend(workers=1))
    assert serial.ran == 4
    assert len(executions(execution_log)) == 8
    a = pd.read_csv(tmp_path / "parallel" / "results" / "records.csv")
    b = pd.read_csv(tmp_path / "serial" / "results" / "records.csv")
    pd.testing.assert_frame_equal(a, b)  # same rows in the same order, whatever finished first


def test_crashed_sweep_resumes_without_redoing_finished_units(
    tmp_path: Path, execution_log: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    argv = ["run", "toy-lsq", "--seeds", "3", "--out", str(folder), "--set", "steps=3"]
    monkeypatch.setenv("KINKGRAD_TEST_CRASH_SEED", "1")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "2 of 6 units failed" in err and "crash on purpose for seed 1" in err
    assert f"--config {folder / 'config.json'} --out {folder}" in err
    units = folder / "units"
    assert sorted(p.name for p in units.glob("*.json")) == [
        f"s000{i}-seed{s}.json" for i in (0, 1) for s in (0, 2)
    ]
    assert sorted(p.name for p in units.glob("*.error.txt")) == [
        "s0000-seed1.error.txt",
        "s0001-seed1.error.txt",
    ]
    assert "RuntimeError: crash on purpose" in (units / "s0000-seed1.error.txt").read_text()
    assert not (folder / "results").exists()  # no partial tables
    finished = {p.name: p.stat().st_mtime_ns for p in units.glob("*.json")}
    (units / ".tmp-s0001-seed2.json.abc").write_text('{"truncated')  # a write cut short by a kill

    monkeypatch.delenv("KINKGRAD_TEST_CRASH_SEED")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "6 units (2 settings x 3 seeds), 4 finished earlier; running 2 on this process." in out
    assert executions(execution_log) == [
        "0-0.05",
        "0-0.1",
        "1-0.05",
        "1-0.05",
        "1-0.1",
        "1-0.1",
        "2-0.05",
        "2-0.1",
    ]
    assert {p.name: p.stat().st_mtime_ns for p in units.glob("*.json") if p.name in finished} == finished
    assert not list(units.glob("*.error.txt")) and not list(units.glob(".tmp-*"))
    records = pd.read_csv(folder / "results" / "records.csv")
    assert sorted(records.seed.unique()) == [0, 1, 2] and len(records) == 6 * 3

    assert main(argv) == 0  # finished: no unit runs, nothing is rewritten
    assert "Nothing to do" in capsys.readouterr().out
    assert len(executions(execution_log)) == 8


def test_rerun_of_a_finished_sweep_does_no_work(tmp_path: Path, execution_log: Path) -> None:
    first = run_experiment("toy-lsq", out=tmp_path / "r", quick=True)
    assert first.ran == 1 and first.rendered is not None
    report = tmp_path / "r" / "report.html"
    stamp = report.stat().st_mtime_ns
    again = run_experiment("toy-lsq", out=tmp_path / "r", quick=True)
    assert again.nothing_to_do and again.ran == 0 and again.finished_before == 1
    assert report.stat().st_mtime_ns == stamp
    assert len(executions(execution_log)) == 1


def test_more_seeds_reuse_finished_units(tmp_path: Path, execution_log: Path) -> None:
    run_experiment("toy-lsq", out=tmp_path / "r", quick=True)
    more = run_experiment("toy-lsq", out=tmp_path / "r", quick=True, seeds=3)
    assert (more.finished_before, more.ran) == (1, 2)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["seeds"] == [0, 1, 2]
    fewer = run_experiment("toy-lsq", out=tmp_path / "r", quick=True, seeds=2)
    assert fewer.ran == 0 and not fewer.nothing_to_do  # the tables are recombined for the seeds asked
    assert sorted(pd.read_csv(tmp_path / "r" / "results" / "records.csv").seed.unique()) == [0, 1]
    assert len(executions(execution_log)) == 3


def test_without_pyarrow_only_csv_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kinkgrad.runner._results as results

    monkeypatch.setattr(results, "parquet_available", lambda: False)
    run_experiment("toy-lsq", out=tmp_path / "r", quick=True)
    assert sorted(p.name for p in (tmp_path / "r" / "results").iterdir()) == ["final_fit.csv", "records.csv"]
    assert len(results.load_run(tmp_path / "r").records) == 3


def test_failures_are_returned_not_raised_and_can_be_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KINKGRAD_TEST_CRASH_SEED", "0")
    result = run_experiment("toy-lsq", out=tmp_path / "r", quick=True)
    assert not result.complete and result.failures[0].key == "s0000-seed0"
    with pytest.raises(RuntimeError, match="1 of 1 units failed"):
        result.raise_for_failures()


def test_bad_records_fail_the_unit_with_a_clear_error(tmp_path: Path) -> None:
    from dataclasses import dataclass

    from kinkgrad.runner import experiment, unregister_experiment

    @dataclass(frozen=True)
    class Config:
        kind: str = "list"

    @experiment("toy-bad-records", config=Config)
    def bad(config: Config, seed: int):
        yield {"seed": 5} if config.kind == "seed" else {"values": [1, 2]}

    try:
        result = run_experiment("toy-bad-records", out=tmp_path / "a")
        assert "record field 'values' must be a scalar" in result.failures[0].error
        result = run_experiment("toy-bad-records", out=tmp_path / "b", overrides={"kind": "seed"})
        assert "record column 'seed' = 5 contradicts the unit's seed = 0" in result.failures[0].error
    finally:
        unregister_experiment("toy-bad-records")


def test_killed_process_resumes_where_it_stopped(
    tmp_path: Path, execution_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    argv = ["run", "toy-lsq", "--seeds", "3", "--set", "steps=2", "--out", str(folder)]
    env = {
        **os.environ,
        "KINKGRAD_EXPERIMENTS": "runner_toys",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
        "KINKGRAD_TEST_SLEEP": "0.4",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "kinkgrad", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list((folder / "units").glob("s*.json"))) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    kept = {p.name: p.stat().st_mtime_ns for p in (folder / "units").glob("s*.json")}
    assert 2 <= len(kept) < 6
    assert all(json.loads((folder / "units" / name).read_text())["tables"] for name in kept)
    ran_before = len(executions(execution_log))

    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"6 units (2 settings x 3 seeds), {len(kept)} finished earlier; running {6 - len(kept)}" in out
    assert len(executions(execution_log)) == ran_before + 6 - len(kept)
    assert {name: (folder / "units" / name).stat().st_mtime_ns for name in kept} == kept
    assert len(pd.read_csv(folder / "results" / "records.csv")) == 6 * 2


def test_sweep_axis_order_is_part_of_a_run(tmp_path: Path) -> None:
    forward = resolve_run("toy-lsq", sweep={"method": ["gd", "momentum"]}, overrides={"steps": 1})
    backward = resolve_run("toy-lsq", sweep={"lr": [0.1, 0.05], "method": ["gd", "momentum"]})
    path = tmp_path / "reordered.json"
    path.write_text(
        json.dumps({"sweep": {"method": ["gd", "momentum"], "lr": [0.1, 0.05]}, "config": {"steps": 1}})
    )
    reordered = resolve_run("toy-lsq", config_file=path)
    assert forward.identity != reordered.identity and backward.identity != reordered.identity
    run_sweep(forward, tmp_path / "r")
    with pytest.raises(ValueError, match=r"holds a different run \(the sweep axes are in another order\)"):
        run_sweep(reordered, tmp_path / "r")
