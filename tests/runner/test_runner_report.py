"""Report pieces: numeric summary, claims, formatting, doctests of the runner's modules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import runner_toys  # noqa: F401  (registers toy-lsq)

from kinkgrad.runner import Claim, default_summary, load_run, run_experiment
from kinkgrad.runner._report import Table, _md_table, format_value


def test_default_summary_is_final_value_mean_and_std_over_seeds(tmp_path: Path) -> None:
    run_experiment("toy-lsq", out=tmp_path / "r", seeds=3, overrides={"steps": 4})
    run = load_run(tmp_path / "r")
    summary = default_summary(run)["records"]
    assert list(summary.columns) == ["lr", "seeds", "step", "loss", "grad_norm"]
    records = pd.read_csv(tmp_path / "r" / "results" / "records.csv")
    final = records[records.step == 3]
    for lr, row in zip(summary.lr, summary.itertuples()):
        losses = final[final.lr == lr].loss
        assert row.seeds == 3
        assert row.loss == f"{format_value(losses.mean())} ± {format_value(losses.std())}"
    fit = default_summary(run)["final_fit"]
    assert list(fit.columns) == ["lr", "seeds", "weight_error", "converged"]


def test_claim_verdicts_are_checked() -> None:
    assert Claim("s", "1", "different").verdict == "different"
    with pytest.raises(ValueError, match="verdict must be one of"):
        Claim("s", "1", "maybe")  # type: ignore[arg-type]


def test_markdown_cells_escape_pipes() -> None:
    table = Table("t", ("a|b",), (("x|y",),))
    assert _md_table(table.columns, table.rows)[:3] == ["| a\\|b |", "|---|", "| x\\|y |"]
