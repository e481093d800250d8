r"""``kinkgrad run relu-stall``: gradient descent on a one-layer model with a ReLU output and non-positive
labels, against its softplus smoothing.

The model is :math:`\hat y = \mathrm{relu}(w^\top x)`, trained by full-batch GD on
:math:`L(w) = \frac{1}{2n}\sum_i (\mathrm{relu}(w^\top x_i) - y_i)^2` with labels :math:`y_i \le 0`. Since
:math:`\hat y \ge 0`, the optimal value is :math:`L^\star = \frac{1}{2n}\sum_i y_i^2`, reached exactly on the
cone :math:`\{w : Xw \le 0\}`, and near it the loss is :math:`L^\star + \frac1n \sum_i |y_i|\,
\mathrm{relu}(w^\top x_i) + O(\|w\|^2)`: a *sharp*, nonsmooth minimum.

* **Nonnegative features** (:math:`x \ge 0`, so the cone has interior): each step lowers every
  :math:`w^\top x_i` by at least a fixed amount while any example is active, so GD lands in the cone in
  finitely many steps, where the gradient is exactly 0: the output unit dies and GD stops, at the optimum.
* **Gaussian features** (:math:`n \gg d`, so the cone is :math:`\{0\}`): the minimum at :math:`w = 0` is
  sharp, the gradient does not vanish near it, and constant-step GD *stalls*, oscillating around 0 at a loss
  gap of order :math:`\eta`, with a gradient norm that never shrinks, like the subgradient method on
  :math:`|x|`.
* The **softplus smoothing** (:func:`kinkgrad.smooth` over the same, unmodified model code) is smooth:
  GD converges (the gradient goes to 0) to a point whose true loss gap is :math:`O(\mu)`.

One unit: one feature distribution and one step ``lr``; the ReLU model and its smoothing with each ``mus``
temperature train from the same start.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from kinkgrad._smooth import smooth
from kinkgrad.experiments._issue5_problems import one_thread
from kinkgrad.runner import Claim, Preset, RunResults, Verdict, experiment, setting

__all__ = ["Config", "Final", "Trace", "run"]


@dataclass(frozen=True)
class Config:
    """Settings of one unit (``kinkgrad list relu-stall``)."""

    features: Literal["nonnegative", "gaussian"] = setting("gaussian", help="feature distribution")
    lr: float = setting(0.05, help="GD step size")
    steps: int = setting(4000, help="full-batch GD steps")
    mus: tuple[float, ...] = setting((0.1, 0.01), help="softplus temperatures μ of the smoothed arms")
    smooth_step: Literal["safe", "same"] = setting(
        "safe", help="smoothed arms: step min(lr, 1/L_μ) (L_μ: the surrogate's smoothness) or lr itself"
    )
    samples: int = setting(200, help="examples n")
    dim: int = setting(20, help="feature dimension d")
    points: int = setting(80, help="log-spaced steps recorded in the trace table")

    def __post_init__(self) -> None:
        if self.lr <= 0 or any(mu <= 0 for mu in self.mus):
            raise ValueError("lr and every mu must be positive")
        for name in ("steps", "samples", "dim", "points"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Trace:
    """One arm at one recorded step."""

    arm: str  #: relu, or softplus-μ
    step: int
    gap: float  #: true (ReLU) loss - L*
    grad_norm: float  #: norm of the gradient the arm steps along
    active: int  #: examples with wᵀx > 0


@dataclass(frozen=True)
class Final:
    """One arm over the whole run."""

    arm: str
    mu: float  #: 0 for the ReLU model
    step_size: float  #: the step used (smaller than lr for a smoothed arm when the surrogate needs it)
    final_gap: float
    first_exact: int  #: first step with gap exactly 0 (-1: never)
    final_grad_norm: float
    first_grad_norm: float
    stall: float  #: mean gap over the last quarter / mean gap over the second quarter


def _data(config: Config, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    x = torch.randn(config.samples, config.dim, generator=g, dtype=d)
    w0 = torch.randn(config.dim, generator=g, dtype=d) / math.sqrt(config.dim)
    if config.features == "nonnegative":
        x, w0 = x.abs(), w0.abs()  # every example starts active
    y = -torch.randn(config.samples, generator=g, dtype=d).abs()
    return x, y, w0


def _loss(w: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Plain model code: a smoothing context replaces its relu."""
    return 0.5 * (torch.relu(x @ w) - y).square().mean()


def run_unit(config: Config, seed: int) -> Iterator[Trace | Final]:
    """Train the ReLU model and each smoothed arm from the same start."""
    x, y, w0 = _data(config, seed)
    optimum = float(0.5 * y.square().mean())
    record = {int(k) for k in np.unique(np.geomspace(1, config.steps, config.points).round())} | {0}
    top = float(torch.linalg.eigvalsh(x.T @ x / len(y))[-1])
    for mu in (0.0, *config.mus):
        arm = "relu" if mu == 0.0 else f"softplus-{mu:g}"
        # the smoothed loss has curvature at most λ_max(XᵀX/n)·(1 + max|y| / 4μ) near its minimiser
        lr = config.lr
        if mu > 0 and config.smooth_step == "safe":
            lr = min(lr, 1.0 / (top * (1.0 + float(y.abs().max()) / (4 * mu))))
        w = w0.clone().requires_grad_(True)
        gaps: list[float] = []
        first_exact = -1
        first_norm = math.nan
        norm = math.nan
        for step in range(config.steps + 1):
            with smooth(mu=mu) if mu > 0 else nullcontext():
                loss = _loss(w, x, y)
            (g,) = torch.autograd.grad(loss, w)
            with torch.no_grad():
                gap = float(_loss(w, x, y)) - optimum
                norm = float(g.norm())
                if step == 0:
                    first_norm = norm
                if gap == 0.0 and first_exact < 0:
                    first_exact = step
                gaps.append(gap)
                if step in record:
                    yield Trace(arm, step, gap, norm, int((x @ w > 0).sum()))
                if step < config.steps:
                    w -= lr * g
        q = max(1, config.steps // 4)
        second, last = float(np.mean(gaps[q : 2 * q])), float(np.mean(gaps[-q:]))
        yield Final(
            arm=arm,
            mu=mu,
            step_size=lr,
            final_gap=gaps[-1],
            first_exact=first_exact,
            final_grad_norm=norm,
            first_grad_norm=first_norm,
            stall=last / second if second > 0 else (0.0 if last == 0 else math.inf),
        )


# ---- figures and claims (from the result files only) ---------------------------------------------


def gap_figure(run: RunResults) -> Figure:
    """True loss gap against steps, per feature distribution, arm and step size."""
    frame = run.table("trace")
    kinds = list(dict.fromkeys(frame.features))
    figure = Figure(figsize=(5.2 * len(kinds), 3.8), layout="constrained")
    for i, kind in enumerate(kinds):
        ax = figure.add_subplot(1, len(kinds), i + 1)
        part = frame[frame.features == kind]
        lrs = sorted(part.lr.unique())
        for j, (arm, group) in enumerate(part.groupby("arm", sort=False)):
            for k, lr in enumerate(lrs):
                curve = group[group.lr == lr].groupby("step").gap.mean()
                steps = np.maximum(curve.index.to_numpy(), 1)
                style = ["-", "--", ":"][k % 3]
                ax.loglog(steps, curve.clip(lower=1e-18), color=f"C{j}", ls=style, label=f"{arm}, η={lr:g}")
        ax.set_title(f"{kind} features")
        ax.set_xlabel("step")
        ax.set_ylabel("L(w) − L*  (0 drawn at 1e-18)")
        ax.legend(fontsize=6)
    return figure


def gradient_figure(run: RunResults) -> Figure:
    """Norm of the gradient GD steps along: it never shrinks for the ReLU model on Gaussian features."""
    frame = run.table("trace")
    kinds = list(dict.fromkeys(frame.features))
    figure = Figure(figsize=(5.2 * len(kinds), 3.8), layout="constrained")
    for i, kind in enumerate(kinds):
        ax = figure.add_subplot(1, len(kinds), i + 1)
        part = frame[frame.features == kind]
        lr = sorted(part.lr.unique())[len(part.lr.unique()) // 2]
        for arm, group in part[part.lr == lr].groupby("arm", sort=False):
            curve = group.groupby("step").grad_norm.mean()
            ax.loglog(np.maximum(curve.index.to_numpy(), 1), curve.clip(lower=1e-18), label=str(arm))
        ax.set_title(f"{kind} features, η = {lr:g}")
        ax.set_xlabel("step")
        ax.set_ylabel("‖∇L‖  (0 drawn at 1e-18)")
        ax.legend(fontsize=7)
    return figure


def claims(run: RunResults) -> list[Claim]:
    final = run.table("final")
    out: list[Claim] = []
    nonneg = final[(final.features == "nonnegative") & (final.arm == "relu")]
    if not nonneg.empty:
        exact = bool((nonneg.first_exact >= 0).all()) and bool((nonneg.final_grad_norm == 0).all())
        smooth_arms = final[(final.features == "nonnegative") & (final.arm != "relu")]
        smooth_zero = int((smooth_arms.final_grad_norm == 0).sum())
        out.append(
            Claim(
                "Nonnegative features: GD on the ReLU model stops exactly (dead output, zero gradient) "
                "at the optimum in finitely many steps; its smoothing never does",
                f"ReLU: gap exactly 0 from step {int(nonneg.first_exact.max())} at the latest, final "
                f"gradient {float(nonneg.final_grad_norm.max()):.2g}; softplus arms with a zero gradient: "
                f"{smooth_zero}/{len(smooth_arms)}",
                "reproduced" if exact and smooth_zero == 0 else "not reproduced",
                expected="finite termination for ReLU; gradient → 0 only asymptotically for softplus",
            )
        )
    gauss = final[(final.features == "gaussian") & (final.arm == "relu")].sort_values("lr")
    if not gauss.empty:
        stalled = bool((gauss.stall > 0.5).all()) and bool(
            (gauss.final_grad_norm > 0.1 * gauss.first_grad_norm).all()
        )
        levels = ", ".join(f"η={lr:g}: {g:.2g}" for lr, g in zip(gauss.lr, gauss.final_gap))
        grows = len(gauss) < 2 or bool(np.all(np.diff(gauss.final_gap.to_numpy()) > 0))
        verdict: Verdict = (
            "reproduced" if stalled and grows else ("different" if stalled else "not reproduced")
        )
        out.append(
            Claim(
                "Gaussian features: constant-step GD on the ReLU model stalls at a gap of order η with a "
                "gradient that never shrinks",
                f"final gap {levels}; last-quarter/second-quarter gap {float(gauss.stall.min()):.2f}–"
                f"{float(gauss.stall.max()):.2f}; final/initial gradient norm "
                f"{float((gauss.final_grad_norm / gauss.first_grad_norm).min()):.2f}–"
                f"{float((gauss.final_grad_norm / gauss.first_grad_norm).max()):.2f}",
                verdict,
                expected="a plateau growing with η; gradient norm bounded away from 0",
            )
        )
    soft = final[(final.features == "gaussian") & (final.arm != "relu")]
    if not soft.empty:
        converged = bool((soft.final_grad_norm < 1e-3 * soft.first_grad_norm).all())
        per_mu = soft.groupby("mu").final_gap.max()
        detail = ", ".join(f"μ={mu:g}: gap {gap:.2g} ({gap / mu:.2g}·μ)" for mu, gap in per_mu.items())
        shrink = float((soft.final_grad_norm / soft.first_grad_norm).max())
        out.append(
            Claim(
                "Softplus smoothing (step ≤ 1/L_μ): GD converges (gradient → 0) to within O(μ) of the "
                "optimal loss",
                f"final gradient / initial ≤ {shrink:.2g}; " + detail,
                "reproduced" if converged and bool((per_mu / per_mu.index < 1.0).all()) else "not reproduced",
                expected="gradient ≈ 0; true gap ≤ μ",
            )
        )
    return out


@experiment(
    "relu-stall",
    config=Config,
    sweep={"features": ["nonnegative", "gaussian"], "lr": [0.02, 0.05, 0.1]},
    seeds=1,
    quick=Preset(
        overrides={"steps": 1500, "points": 40},
        sweep={"features": ["nonnegative", "gaussian"], "lr": [0.05, 0.1]},
    ),
    figures={"gap": gap_figure, "gradient": gradient_figure},
    claims=claims,
)
def run(config: Config, seed: int) -> Iterator[Trace | Final]:
    """ReLU output with non-positive labels: finite termination, a stall, and the softplus smoothing."""
    with one_thread():
        yield from run_unit(config, seed)
