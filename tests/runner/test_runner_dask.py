"""The Dask backend on an in-process LocalCluster: same units, same results as the local backend."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import runner_toys  # noqa: F401  (registers toy-lsq)

from kinkgrad.cli import main

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> str:
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None, silence_logs=40
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_dask_sweep_matches_local_and_resumes(
    scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["run", "toy-lsq", "--set", "steps=3", "--seeds", "2"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    dask_argv = [*common, "--out", str(tmp_path / "dask"), "--backend", "dask", "--scheduler", scheduler]
    assert main(dask_argv) == 0
    out = capsys.readouterr().out
    assert f"running 4 on Dask scheduler {scheduler}" in out
    local = pd.read_csv(tmp_path / "local" / "results" / "records.csv")
    remote = pd.read_csv(tmp_path / "dask" / "results" / "records.csv")
    pd.testing.assert_frame_equal(local, remote)

    (tmp_path / "dask" / "units" / "s0001-seed1.json").unlink()  # as if the client died before this one
    assert main(dask_argv) == 0
    assert "3 finished earlier; running 1 on Dask" in capsys.readouterr().out
    assert main(dask_argv) == 0
    assert "Nothing to do" in capsys.readouterr().out


def test_dask_argument_errors(scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "run",
        "toy-lsq",
        "--quick",
        "--out",
        str(tmp_path),
        "--backend",
        "dask",
        "--scheduler",
        scheduler,
    ]
    assert main([*argv, "--workers", "2"]) == 2
    assert "--workers is for --backend local" in capsys.readouterr().err
