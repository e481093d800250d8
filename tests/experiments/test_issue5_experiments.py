"""The nonsmooth-optimization experiments end to end through the runner, in tiny presets: each writes its
tables with the expected columns, draws its figures, and shows the effect it claims."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from kinkgrad.experiments._issue5_sharpness import (
    autodiff_hvp,
    finite_difference_hvp,
    lanczos_top,
    power_top,
)
from kinkgrad.runner import get_experiment, load_run, run_experiment


def _run(
    name: str, tmp_path: Path, overrides: dict[str, Any], sweep: dict[str, Any]
) -> dict[str, pd.DataFrame]:
    result = run_experiment(name, out=tmp_path / name, quick=True, overrides=overrides, sweep=sweep)
    assert result.complete, result.failures
    assert result.rendered is not None and not result.rendered.problems, result.rendered
    report = result.report_md.read_text()
    assert "## Claims" in report and "Traceback" not in report
    run = load_run(result.folder)
    return dict(run.tables)


def _claims(name: str, tmp_path: Path) -> dict[str, str]:
    experiment = get_experiment(name)
    assert experiment.claims is not None
    return {c.statement: c.verdict for c in experiment.claims(load_run(tmp_path / name))}


def _columns(frame: pd.DataFrame, *names: str) -> None:
    missing = set(names) - set(frame.columns)
    assert not missing, f"missing columns {missing}; have {list(frame.columns)}"


def test_l1_paradox(tmp_path: Path) -> None:
    tables = _run(
        "l1-paradox",
        tmp_path,
        {"steps": 300, "samples": 60, "features": 12, "hidden": 6},
        {"problem": ["linear", "relu-net"], "lam": [0.05, 2.0], "lr": [0.1]},
    )
    final = tables["final"]
    _columns(final, "problem", "lam", "lr", "method", "l1_norm", "exact_zeros", "band_max", "seed")
    constant = final[final.method == "subgradient-constant"]
    assert (constant.exact_zeros == 0).all()  # never an exact zero with a constant step
    linear = final[(final.problem == "linear") & (final.lam == 2.0)].set_index("method")
    assert linear.loc["lasso", "l1_norm"] == 0.0 and linear.loc["proxsgd", "exact_zeros"] == 12
    assert linear.loc["subgradient-constant", "l1_norm"] > 0.1  # the band: about (#zeros)·η·λ/2
    band = constant[constant.problem == "linear"]
    assert ((band.band_max / (band.lr * band.lam)).between(0.2, 2.5)).all()
    net = final[(final.problem == "relu-net") & (final.lam == 2.0)].set_index("method")
    assert net.loc["proxsgd", "l1_norm"] == 0.0 and "lasso" not in net.index
    assert net.loc["subgradient-constant", "l1_norm"] > 1.0  # no zeros, a band on every weight
    verdicts = _claims("l1-paradox", tmp_path)
    assert verdicts["With a constant step, subgradient descent produces no exact zeros"] == "reproduced"
    assert verdicts["Proximal and exact paths shrink monotonically to exactly 0"] == "reproduced"


def test_adaptive(tmp_path: Path) -> None:
    tables = _run(
        "adaptive",
        tmp_path,
        {"steps": 800, "samples": 80, "features": 40},
        {"penalty": ["l1", "l2"], "lam": [2.0]},
    )
    final = tables["final"]
    _columns(final, "penalty", "lam", "method", "l1_norm", "flat_level", "distance", "objective_gap")
    l1 = final[final.penalty == "l1"].set_index("method")
    assert l1.loc["rmsprop", "reference_l1"] == 0.0  # λ ≥ λ_max: the lasso solution is 0
    assert 0.5 < l1.loc["rmsprop", "l1_norm"] / l1.loc["rmsprop", "flat_level"] < 2.0  # d·η/2
    assert (l1.exact_zeros == 0).all()
    l2 = final[final.penalty == "l2"].set_index("method")
    assert l2.loc["gd", "relative_distance"] < 1e-6 and l2.loc["adam", "relative_distance"] < 0.05


def test_edge_of_stability(tmp_path: Path) -> None:
    tables = _run(
        "edge-of-stability",
        tmp_path,
        {
            "steps": 400,
            "every": 50,
            "compare_every": 400,
            "lanczos": 10,
            "power": 10,
            "fd_steps": "0.01,0.0001",
            "hidden": "12,12",
            "samples": 64,
            "subset": 64,
        },
        {"model": ["relu-mlp", "tanh-mlp", "linear-logcosh"], "lr": [0.4]},
    )
    trajectory, estimate = tables["trajectory"], tables["estimate"]
    _columns(trajectory, "model", "lr", "step", "loss", "sharpness", "two_over_lr", "ratio")
    _columns(estimate, "model", "step", "estimator", "h", "value", "relative")
    assert (trajectory.two_over_lr == 5.0).all() and (trajectory.sharpness > 0).all()
    logcosh = trajectory[trajectory.model == "linear-logcosh"]
    assert logcosh.ratio.max() > 0.8  # the sharpness reaches 2/η (the minimiser's is far above)
    assert set(estimate.model) == {"relu-mlp", "tanh-mlp"}  # estimators are compared on the networks
    tanh = estimate[(estimate.model == "tanh-mlp") & (estimate.h == 1e-4)]
    assert (tanh.relative.abs() < 0.05).all()  # smooth: finite differences agree with autodiff


def test_subgradient_rates(tmp_path: Path) -> None:
    tables = _run(
        "subgradient-rates",
        tmp_path,
        {"steps": 400, "points": 20},
        {"function": ["abs-1d", "quadratic-1d", "l1-norm"], "schedule": ["constant", "sqrt", "polyak"]},
    )
    curve, summary = tables["curve"], tables["summary"]
    _columns(curve, "function", "schedule", "k", "gap", "best_gap", "bound", "step")
    _columns(summary, "function", "schedule", "violations", "increases", "slope", "final_best_gap")
    assert (summary.violations == 0).all()  # f_best − f* below the bound at every recorded k
    s = summary.set_index(["function", "schedule"])
    assert s.loc[("quadratic-1d", "constant"), "final_band"] < 1e-6
    step = float(curve[(curve.function == "abs-1d") & (curve.schedule == "constant")].step.max())
    assert s.loc[("abs-1d", "constant"), "final_band"] >= step / 2  # the same step stalls on |x|
    assert s.loc[("l1-norm", "polyak"), "final_best_gap"] < 1e-8
    assert s.loc[("l1-norm", "sqrt"), "increases"] > 0  # not a descent method


def test_relu_stall(tmp_path: Path) -> None:
    tables = _run(
        "relu-stall",
        tmp_path,
        {"steps": 600, "samples": 80, "dim": 6, "points": 20, "mus": "0.1"},
        {"features": ["nonnegative", "gaussian"], "lr": [0.1]},
    )
    trace, final = tables["trace"], tables["final"]
    _columns(trace, "features", "lr", "arm", "step", "gap", "grad_norm", "active")
    _columns(final, "arm", "mu", "step_size", "final_gap", "first_exact", "final_grad_norm", "stall")
    f = final.set_index(["features", "arm"])
    assert f.loc[("nonnegative", "relu"), "first_exact"] >= 0  # the exact optimum, in finitely many steps
    assert f.loc[("nonnegative", "relu"), "final_grad_norm"] == 0.0
    assert f.loc[("nonnegative", "softplus-0.1"), "final_grad_norm"] > 0.0
    stalled = f.loc[("gaussian", "relu")]
    assert stalled.final_gap > 0 and stalled.final_grad_norm > 0.1 * stalled.first_grad_norm
    smooth = f.loc[("gaussian", "softplus-0.1")]
    assert smooth.final_grad_norm < 1e-3 * smooth.first_grad_norm and smooth.final_gap < 0.1


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("l1-paradox", "methods", "lasso,sgd"),
        ("adaptive", "lr_gd", "0"),
        ("edge-of-stability", "fd_steps", "-1"),
        ("subgradient-rates", "steps", "3"),
        ("relu-stall", "mus", "0"),
    ],
)
def test_bad_settings_are_refused(name: str, key: str, value: str) -> None:
    from kinkgrad.runner import ConfigError, resolve_run

    with pytest.raises((ConfigError, ValueError)):
        resolve_run(name, overrides=[f"{key}={value}"])


def test_sharpness_estimators_against_an_exact_hessian() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(12, 12, generator=g, dtype=torch.float64)
    h = a @ a.T / 12 + torch.diag(torch.linspace(0, 3, 12, dtype=torch.float64))
    top = float(torch.linalg.eigvalsh(h)[-1])

    def fn(theta: torch.Tensor) -> torch.Tensor:
        return 0.5 * theta @ h @ theta + theta.sin().sum() * 0.0

    theta = torch.randn(12, generator=g, dtype=torch.float64)
    assert lanczos_top(autodiff_hvp(fn, theta), 12, 12, torch.Generator().manual_seed(1)) == pytest.approx(
        top
    )
    assert power_top(autodiff_hvp(fn, theta), 12, 300, torch.Generator().manual_seed(1)) == pytest.approx(
        top, rel=1e-6
    )
    fd = finite_difference_hvp(fn, theta, 1e-3)
    v = torch.randn(12, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fd(v), h @ v)
    assert not math.isnan(top)
