r"""``kinkgrad run subgradient-rates``: step-size rules of the subgradient method on standard nonsmooth
test functions, against the classical bound.

For convex :math:`f`, :math:`x^\star` a minimiser and :math:`R = \|x_0 - x^\star\|`, every run of the
subgradient method :math:`x_{i+1} = x_i - \eta_i g_i` satisfies

.. math::

    f_{best,k} - f^\star \le B_k = \frac{R^2 + \sum_{i<k} \eta_i^2 \|g_i\|^2}{2 \sum_{i<k} \eta_i},

which is :math:`O(1/\sqrt k)` for :math:`\eta_i \propto 1/\sqrt{i+1}` (up to a log) and for Polyak's step
(:math:`RG/\sqrt{k}`), tends to :math:`G^2\eta/2` for a constant step (a plateau), and to 0 only like
:math:`1/\log k` for the square-summable :math:`\eta_i \propto 1/(i+1)`. We compute :math:`B_k` from the steps
actually taken (:math:`\eta_i\|g_i\| = \|x_{i+1} - x_i\|`), so it is checked, not assumed. The one-dimensional
pair :math:`|x|` against :math:`x^2/2` shows the contrast with smooth problems: the same constant step
converges linearly on :math:`x^2/2` and stalls in a band of width :math:`\eta` on :math:`|x|`.

Functions (all convex, with known :math:`x^\star`, :math:`f^\star`): ``abs-1d`` and ``quadratic-1d``
(:math:`x_0 = \pi/3`), ``l1-norm`` (:math:`\|x\|_1` in :math:`\mathbb R^{20}`), ``maxq``
(:math:`\max_i x_i^2`, Lukšan–Vlček), ``mxhilb`` (:math:`\max_i |\sum_j x_j/(i+j-1)|`, Lukšan–Vlček),
``l1-regression`` (:math:`\frac1m\|Ax - b\|_1`, :math:`f^\star` from a linear program). Step sizes, with
:math:`G_0 = \|g_0\|` and the horizon :math:`K`: constant :math:`s R/(G_0\sqrt K)`, ``sqrt``
:math:`s (R/G_0)/\sqrt{k+1}`, ``diminishing`` :math:`s (R/G_0)/(k+1)`, ``polyak`` with :math:`\gamma = 1`,
all through :class:`kinkgrad.optim.Subgradient`.

A kink semantics effect shows up on separable problems: PyTorch's :math:`|x|'(0) = 0` is a valid
subgradient and makes an exact zero absorbing, and with :math:`1/\sqrt{k}` steps the oscillating
coordinates of :math:`\|x\|_1` drift onto exact zeros one by one, so :math:`f^\star` is reached exactly
after a few thousand steps; slopes are then fitted on the decade before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from kinkgrad.experiments._issue5_problems import one_thread
from kinkgrad.optim import Subgradient
from kinkgrad.runner import Claim, Preset, RunResults, experiment, setting

__all__ = ["Config", "Curve", "Summary", "run"]

FUNCTIONS = ("abs-1d", "quadratic-1d", "l1-norm", "maxq", "mxhilb", "l1-regression")
SCHEDULES = ("constant", "sqrt", "diminishing", "polyak")


@dataclass(frozen=True)
class Config:
    """Settings of one unit (``kinkgrad list subgradient-rates``)."""

    function: Literal["abs-1d", "quadratic-1d", "l1-norm", "maxq", "mxhilb", "l1-regression"] = setting(
        "l1-norm", help="test function"
    )
    schedule: Literal["constant", "sqrt", "diminishing", "polyak"] = setting("sqrt", help="step-size rule")
    steps: int = setting(10_000, help="iterations K")
    scale: float = setting(0.5, help="s: multiplies the canonical step sizes (not Polyak's)")
    points: int = setting(120, help="log-spaced iterations recorded in the curve table")

    def __post_init__(self) -> None:
        if self.steps < 10 or self.points < 2 or self.scale <= 0:
            raise ValueError("steps must be >= 10, points >= 2 and scale > 0")


@dataclass(frozen=True)
class Curve:
    """The run at one recorded iteration ``k`` (after ``k`` steps)."""

    k: int
    gap: float  #: f(x_k) - f*
    best_gap: float  #: f_best,k - f*
    bound: float  #: B_k, from the steps taken
    step: float  #: η_k


@dataclass(frozen=True)
class Summary:
    """The whole run."""

    radius: float  #: R = ‖x₀ - x*‖
    first_gradient: float  #: G₀ = ‖g₀‖
    final_best_gap: float
    final_bound: float
    final_band: (
        float  #: max f(x_k) - f* over the last 10% of iterations (the oscillation of the last iterate)
    )
    violations: int  #: recorded k with f_best - f* > B_k
    increases: float  #: fraction of steps where f went up
    slope: float  #: d log(f_best - f*) / d log k over the last decade of k


class _Problem:
    def __init__(self, name: str, fn: Callable[[Tensor], Tensor], x0: Tensor, x_star: Tensor, f_star: float):
        self.name, self.fn, self.x0, self.x_star, self.f_star = name, fn, x0, x_star, f_star


def _l1_regression(seed: int) -> _Problem:
    from scipy.optimize import linprog

    g = torch.Generator().manual_seed(seed)
    m, n = 60, 20
    a = torch.randn(m, n, generator=g, dtype=torch.float64)
    b = a @ torch.randn(n, generator=g, dtype=torch.float64) + torch.randn(
        m, generator=g, dtype=torch.float64
    )
    # min (1/m) Σ t  s.t.  -t <= Ax - b <= t, over (x, t)
    an, bn = a.numpy(), b.numpy()
    eye = np.eye(m)
    lp = linprog(
        np.concatenate([np.zeros(n), np.full(m, 1.0 / m)]),
        A_ub=np.block([[an, -eye], [-an, -eye]]),
        b_ub=np.concatenate([bn, -bn]),
        bounds=[(None, None)] * n + [(0, None)] * m,
        method="highs",
    )
    x_star = torch.from_numpy(lp.x[:n].copy())

    def fn(x: Tensor) -> Tensor:
        return (a @ x - b).abs().mean()

    return _Problem("l1-regression", fn, torch.zeros(n, dtype=torch.float64), x_star, float(fn(x_star)))


def build_problem(name: str, seed: int) -> _Problem:
    """The test function ``name`` (random data drawn from ``seed``)."""
    d = torch.float64
    if name in ("abs-1d", "quadratic-1d"):
        fn1: Callable[[Tensor], Tensor] = (
            (lambda x: x.abs().sum()) if name == "abs-1d" else (lambda x: 0.5 * x.square().sum())
        )
        return _Problem(name, fn1, torch.tensor([math.pi / 3], dtype=d), torch.zeros(1, dtype=d), 0.0)
    if name == "l1-norm":
        g = torch.Generator().manual_seed(seed)
        x0 = torch.randn(20, generator=g, dtype=d)
        return _Problem(name, lambda x: x.abs().sum(), x0, torch.zeros(20, dtype=d), 0.0)
    if name == "maxq":
        x0 = torch.tensor([float(i) if i <= 10 else -float(i) for i in range(1, 21)], dtype=d)
        return _Problem(name, lambda x: x.square().max(), x0, torch.zeros(20, dtype=d), 0.0)
    if name == "mxhilb":
        n = 50
        i = torch.arange(1, n + 1, dtype=d)
        hilbert = 1.0 / (i[:, None] + i[None, :] - 1)
        return _Problem(
            name, lambda x: (hilbert @ x).abs().max(), torch.ones(n, dtype=d), torch.zeros(n, dtype=d), 0.0
        )
    if name == "l1-regression":
        return _l1_regression(seed)
    raise ValueError(f"unknown function {name!r}; valid: {', '.join(FUNCTIONS)}")


def _record_at(steps: int, points: int) -> set[int]:
    return {int(k) for k in np.unique(np.geomspace(1, steps, points).round())} | {steps}


def run_unit(config: Config, seed: int) -> Iterator[Curve | Summary]:
    """One function and one step-size rule for ``steps`` iterations."""
    problem = build_problem(config.function, seed)
    x = problem.x0.clone().requires_grad_(True)
    radius = float((problem.x0 - problem.x_star).norm())
    fx = problem.fn(x)
    (g0,) = torch.autograd.grad(fx, x)
    first = float(g0.norm())
    base = config.scale * radius / max(first, 1e-300)
    if config.schedule == "constant":
        opt = Subgradient([x], lr=base / math.sqrt(config.steps), schedule="constant", track_best=False)
    elif config.schedule == "polyak":
        opt = Subgradient([x], lr=1.0, schedule="polyak", f_min=problem.f_star, track_best=False)
    else:
        opt = Subgradient([x], lr=base, schedule=config.schedule, track_best=False)
    record = _record_at(config.steps, config.points)
    best = math.inf
    sum_eta, sum_sq = 0.0, 0.0
    increases, previous = 0, math.inf
    band = 0.0
    violations = 0
    curve: list[tuple[int, float]] = []
    last_eta = 0.0

    def closure() -> float:
        opt.zero_grad()
        loss = problem.fn(x)
        loss.backward()
        return float(loss.detach())

    for k in range(config.steps + 1):
        if k < config.steps:
            before = x.detach().clone()
            loss = float(opt.step(closure))
            grad_norm = float(x.grad.norm()) if x.grad is not None else 0.0
            moved = float((x.detach() - before).norm())
            eta = moved / grad_norm if grad_norm > 0 else 0.0
        else:
            with torch.no_grad():
                loss = float(problem.fn(x))
        gap = loss - problem.f_star
        increases += int(loss > previous)
        previous = loss
        best = min(best, gap)
        if k >= 0.9 * config.steps:
            band = max(band, gap)
        if k in record:
            bound = (radius**2 + sum_sq) / (2 * sum_eta) if sum_eta > 0 else math.inf
            violations += int(best > bound * (1 + 1e-9) + 1e-15)
            curve.append((k, best))
            yield Curve(k=k, gap=gap, best_gap=best, bound=bound, step=last_eta)
        if k < config.steps:
            sum_eta += eta
            sum_sq += moved**2
            last_eta = eta
    yield Summary(
        radius=radius,
        first_gradient=first,
        final_best_gap=best,
        final_bound=(radius**2 + sum_sq) / (2 * sum_eta) if sum_eta > 0 else math.inf,
        final_band=band,
        violations=violations,
        increases=increases / config.steps,
        slope=_slope(curve, config.steps),
    )


def _slope(curve: list[tuple[int, float]], steps: int) -> float:
    """Least-squares slope of log(best gap) against log k over the last decade of k before the gap
    reaches exactly 0 (if it does), else over [steps/10, steps]; NaN with fewer than 3 points."""
    positive = [(k, v) for k, v in curve if k > 0 and v > 0]
    if not positive:
        return math.nan
    end = positive[-1][0] if len(positive) < len([c for c in curve if c[0] > 0]) else steps
    tail = [(k, v) for k, v in positive if k >= end / 10]
    if len(tail) < 3:
        return math.nan
    logk = np.log([k for k, _ in tail])
    logv = np.log([v for _, v in tail])
    return float(np.polyfit(logk, logv, 1)[0])


# ---- figures and claims (from the result files only) ---------------------------------------------

_COLORS = {"constant": "C3", "sqrt": "C0", "diminishing": "C2", "polyak": "C1"}


def rates_figure(run: RunResults) -> Figure:
    """f_best − f* against k per schedule (solid) beside the bound B_k (dotted), one panel per function."""
    frame = run.table("curve")
    functions = [f for f in FUNCTIONS if f in set(frame.function)]
    cols = min(3, len(functions))
    rows = math.ceil(len(functions) / cols)
    figure = Figure(figsize=(4.6 * cols, 3.6 * rows), layout="constrained")
    for i, function in enumerate(functions):
        ax = figure.add_subplot(rows, cols, i + 1)
        part = frame[frame.function == function]
        for schedule, group in part.groupby("schedule", sort=False):
            color = _COLORS.get(str(schedule), "C7")
            curve = group.groupby("k")[["best_gap", "bound"]].mean()
            ax.loglog(curve.index, curve.best_gap.clip(lower=1e-300), color=color, label=str(schedule))
            ax.loglog(curve.index, curve.bound, color=color, ls=":", lw=1)
        k = np.array(sorted(part.k.unique()), dtype=float)
        k = k[k > 0]
        if len(k):
            start = float(part[part.k == k[0]].best_gap.max())
            ax.loglog(k, start / np.sqrt(k / k[0]), "k--", lw=1, label="∝ 1/√k")
        ax.set_title(function)
        ax.set_xlabel("k")
        ax.set_ylabel("f_best − f*  (dotted: bound)")
        positive = part.best_gap[part.best_gap > 0]
        ax.set_ylim(
            bottom=max(1e-16, float(positive.min()) / 10 if len(positive) else 1e-16),
            top=10 * float(part.best_gap.max()),
        )
        ax.legend(fontsize=7)
    return figure


def contrast_figure(run: RunResults) -> Figure:
    """|x| against x²/2 in one dimension: f(x_k) − f* of the last iterate, per schedule."""
    frame = run.table("curve")
    part = frame[frame.function.isin(["abs-1d", "quadratic-1d"])]
    figure = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = figure.add_subplot()
    for (function, schedule), group in part.groupby(["function", "schedule"], sort=False):
        curve = group.groupby("k").gap.mean()
        ls = "-" if function == "abs-1d" else "--"
        ax.loglog(curve.index, curve.clip(lower=1e-300), ls=ls, color=_COLORS.get(str(schedule), "C7"),
                  label=f"{function}, {schedule}")  # fmt: skip
    ax.set_xlabel("k")
    ax.set_ylabel("f(x_k) − f*")
    ax.set_ylim(bottom=1e-20)
    ax.legend(fontsize=7)
    return figure


def claims(run: RunResults) -> list[Claim]:
    summary = run.table("summary")
    out: list[Claim] = []
    convex = summary
    out.append(
        Claim(
            "f_best − f* ≤ (R² + Σ η_i²‖g_i‖²) / (2 Σ η_i) for every step-size rule (convex f)",
            f"{int(convex.violations.sum())} violations over {len(convex)} runs at every recorded k",
            "reproduced" if int(convex.violations.sum()) == 0 else "not reproduced",
            expected="0 violations",
        )
    )
    nonsmooth = summary[~summary.function.isin(["quadratic-1d"])]
    sqrt = nonsmooth[nonsmooth.schedule == "sqrt"]
    if not sqrt.empty:
        slopes = ", ".join(
            f"{f}: {s:.2f}" + (" (then f* exactly)" if g == 0 else "")
            for f, s, g in zip(sqrt.function, sqrt.slope, sqrt.final_best_gap)
        )
        ok = bool((sqrt.slope.dropna() <= -0.35).all())
        out.append(
            Claim(
                "Steps ∝ 1/√k give f_best − f* = O(1/√k) (up to a log)",
                f"slope of log(f_best − f*) vs log k over the last decade: {slopes}",
                "reproduced" if ok else "not reproduced",
                expected="≈ −0.5 or steeper",
            )
        )
    polyak = nonsmooth[nonsmooth.schedule == "polyak"]
    if not polyak.empty:
        detail = ", ".join(f"{f}: {g:.2g}" for f, g in zip(polyak.function, polyak.final_best_gap))
        out.append(
            Claim(
                "Polyak steps (known f*) meet the O(1/√k) bound RG/√k",
                f"final f_best − f*: {detail}; bound violations {int(polyak.violations.sum())}",
                "reproduced" if int(polyak.violations.sum()) == 0 else "not reproduced",
                expected="≤ RG/√k (faster on sharp minima)",
            )
        )
    constant = nonsmooth[nonsmooth.schedule == "constant"]
    if not constant.empty:
        detail = ", ".join(f"{f}: {g:.2g}" for f, g in zip(constant.function, constant.final_band))
        out.append(
            Claim(
                "A constant step stalls at an O(η) level instead of converging",
                f"largest f(x_k) − f* over the last 10% of K steps: {detail}",
                "reproduced" if bool((constant.final_band > 0).all()) else "not reproduced",
                expected="a plateau > 0",
            )
        )
    sqrt_all = summary[(summary.schedule == "sqrt") & ~summary.function.isin(["quadratic-1d"])]
    if not sqrt_all.empty:
        out.append(
            Claim(
                "The last iterate of a subgradient method is not a descent sequence",
                "fraction of steps where f went up (1/√k steps): "
                + ", ".join(f"{f}: {v:.0%}" for f, v in zip(sqrt_all.function, sqrt_all.increases)),
                "reproduced" if bool((sqrt_all.increases > 0).any()) else "not reproduced",
                expected="> 0",
            )
        )
    one = summary[(summary.schedule == "constant") & summary.function.isin(["abs-1d", "quadratic-1d"])]
    if set(one.function) == {"abs-1d", "quadratic-1d"}:
        smooth = float(one[one.function == "quadratic-1d"].final_band.iloc[0])
        kink = float(one[one.function == "abs-1d"].final_band.iloc[0])
        out.append(
            Claim(
                "Same constant step: x²/2 converges linearly, |x| stalls",
                f"largest f(x_k) − f* over the last 10% of K steps: x²/2 {smooth:.2g}, |x| {kink:.2g}",
                "reproduced" if smooth < 1e-12 < kink else "not reproduced",
                expected="x²/2 → 0 geometrically; |x| oscillates with amplitude ≥ η/2",
            )
        )
    return out


@experiment(
    "subgradient-rates",
    config=Config,
    sweep={"function": list(FUNCTIONS), "schedule": list(SCHEDULES)},
    seeds=1,
    quick=Preset(overrides={"steps": 2000, "points": 40}),
    figures={"rates": rates_figure, "abs_vs_quadratic": contrast_figure},
    claims=claims,
)
def run(config: Config, seed: int) -> Iterator[Curve | Summary]:
    """Subgradient step sizes on nonsmooth test functions: f_best − f* against k beside the O(1/√k) bound."""
    with one_thread():
        yield from run_unit(config, seed)
