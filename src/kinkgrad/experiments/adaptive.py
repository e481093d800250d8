r"""``kinkgrad run adaptive``: RMSProp and Adam on L1 against L2 penalties (Kumar 2024).

On :math:`\frac{1}{2n}\|Xw - y\|^2 + \lambda \|w\|_1`, a coordinate whose optimum is 0 sees the gradient
:math:`\lambda\,\mathrm{sign}(w_i) + \partial_i f` flip sign at every crossing. Plain gradient descent moves
it by :math:`\eta(\pm\lambda + \partial_i f)`, a band that scales with :math:`\lambda`. RMSProp and Adam
divide by the root mean square of the gradient, about :math:`\lambda`, so their step is about
:math:`\pm\eta` *whatever* :math:`\lambda` is: each such coordinate oscillates with amplitude about
:math:`\eta/2` and the final L1 norm flattens at about :math:`d\,\eta/2` as :math:`\lambda` grows, instead of
reaching 0. With the smooth penalty :math:`\frac{\lambda}{2}\|w\|^2` all three methods converge to the same
ridge solution.

One unit: one penalty (``l1`` or ``l2``) and one ``lam``; GD, RMSProp and Adam train full batch from 0 on
the same data (standardised features, targets scaled so that the lasso's :math:`\lambda_{max}` is 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from matplotlib.figure import Figure

from kinkgrad.experiments._issue5_problems import count_zeros, lasso_reference, one_thread, sparse_regression
from kinkgrad.runner import Claim, Preset, RunResults, Verdict, experiment, setting

__all__ = ["Config", "Final", "run"]

METHODS = ("gd", "rmsprop", "adam")


@dataclass(frozen=True)
class Config:
    """Settings of one unit (``kinkgrad list adaptive``)."""

    penalty: Literal["l1", "l2"] = setting("l1", help="λ‖w‖₁ or (λ/2)‖w‖²")
    lam: float = setting(1.0, help="penalty weight λ (l1: a fraction of λ_max = 1)")
    methods: tuple[str, ...] = setting(METHODS, help=f"methods among {', '.join(METHODS)}")
    lr_gd: float = setting(0.1, help="gradient descent step size")
    lr_adaptive: float = setting(0.01, help="RMSProp and Adam step size η")
    steps: int = setting(3000, help="full-batch steps")
    samples: int = setting(200, help="training examples")
    features: int = setting(100, help="dimension d (the flat level is about d·η/2)")
    nonzeros: int = setting(5, help="nonzero entries of the generating weights")
    noise: float = setting(0.5, help="label noise")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"methods: unknown {unknown}; valid: {', '.join(METHODS)}")
        if self.lam < 0 or self.lr_gd <= 0 or self.lr_adaptive <= 0:
            raise ValueError("lam must be >= 0 and the step sizes > 0")
        for name in ("steps", "samples", "features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Final:
    """One method's final iterate, beside the exact solution."""

    method: str
    lr: float
    l1_norm: float
    flat_level: float  #: d·η/2, the predicted L1 norm of an adaptive method on an all-zero optimum
    exact_zeros: int
    reference_l1: float  #: L1 norm of the exact solution (lasso or ridge)
    distance: float  #: ‖w - w*‖₂
    relative_distance: float  #: ‖w - w*‖₂ / ‖w*‖₂ (NaN when w* = 0)
    objective_gap: float  #: F(w) - F(w*)


def _reference(penalty: str, lam: float, x: torch.Tensor, y: torch.Tensor, data: object) -> torch.Tensor:
    if penalty == "l1":
        return lasso_reference(data, lam)  # type: ignore[arg-type]
    n, d = x.shape
    return torch.linalg.solve(x.T @ x / n + lam * torch.eye(d, dtype=x.dtype), x.T @ y / n)


def run_unit(config: Config, seed: int) -> Iterator[Final]:
    """Train each method on one (penalty, λ)."""
    data = sparse_regression(config.samples, config.features, config.nonzeros, config.noise, seed)
    x, y, lam = data.x, data.y, config.lam

    def objective(w: torch.Tensor) -> torch.Tensor:
        fit = 0.5 * (x @ w - y).square().mean()
        return fit + (lam * w.abs().sum() if config.penalty == "l1" else 0.5 * lam * w.square().sum())

    w_star = _reference(config.penalty, lam, x, y, data)
    f_star = float(objective(w_star))
    for method in config.methods:
        w = torch.zeros(config.features, dtype=x.dtype, requires_grad=True)
        lr = config.lr_gd if method == "gd" else config.lr_adaptive
        if method == "gd":
            opt: torch.optim.Optimizer = torch.optim.SGD([w], lr=lr)
        elif method == "rmsprop":
            opt = torch.optim.RMSprop([w], lr=lr)
        else:
            opt = torch.optim.Adam([w], lr=lr)
        for _ in range(config.steps):
            opt.zero_grad()
            objective(w).backward()
            opt.step()
        final = w.detach()
        yield Final(
            method=method,
            lr=lr,
            l1_norm=float(final.abs().sum()),
            flat_level=config.features * config.lr_adaptive / 2,
            exact_zeros=count_zeros([final]),
            reference_l1=float(w_star.abs().sum()),
            distance=float((final - w_star).norm()),
            relative_distance=float((final - w_star).norm() / w_star.norm())
            if bool(w_star.any())
            else math.nan,
            objective_gap=float(objective(final)) - f_star,
        )


# ---- figures and claims (from the result files only) ---------------------------------------------


def l1_figure(run: RunResults) -> Figure:
    """Final L1 norm against λ per method, for each penalty, with the exact solution and d·η/2."""
    frame = run.table("final")
    penalties = list(dict.fromkeys(frame["penalty"]))
    figure = Figure(figsize=(5.0 * len(penalties), 3.8), layout="constrained")
    for i, penalty in enumerate(penalties):
        ax = figure.add_subplot(1, len(penalties), i + 1)
        part = frame[frame.penalty == penalty]
        for j, (method, group) in enumerate(part.groupby("method", sort=False)):
            curve = group.groupby("lam")["l1_norm"].mean()
            ax.plot(curve.index, curve.to_numpy(), marker="os^"[j % 3], label=str(method))
        ref = part.groupby("lam")["reference_l1"].mean()
        ax.plot(ref.index, ref.to_numpy(), "k--", label="exact solution")
        flat = float(part.flat_level.iloc[0])
        ax.axhline(flat, color="gray", ls=":", label="d·η/2")
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel("λ")
        ax.set_ylabel("final ‖w‖₁")
        ax.set_title(f"{penalty} penalty")
        ax.legend(fontsize=8)
    return figure


def distance_figure(run: RunResults) -> Figure:
    """Relative distance of each method's final iterate to the exact solution."""
    frame = run.table("final")
    figure = Figure(figsize=(5.0, 3.8), layout="constrained")
    ax = figure.add_subplot()
    for (penalty, method), group in frame.groupby(["penalty", "method"], sort=False):
        curve = group.groupby("lam")["distance"].mean()
        ax.loglog(curve.index, curve.to_numpy().clip(1e-16), marker="o", label=f"{penalty}: {method}")
    ax.set_xlabel("λ")
    ax.set_ylabel("‖w − w*‖₂")
    ax.legend(fontsize=7)
    return figure


def claims(run: RunResults) -> list[Claim]:
    frame = run.table("final").groupby(["penalty", "lam", "method"], as_index=False).mean(numeric_only=True)
    out: list[Claim] = []
    l1 = frame[frame.penalty == "l1"]
    above = l1[l1.lam >= 1.0]  # λ ≥ λ_max = 1: the exact solution is 0
    lams = ", ".join(f"{v:g}" for v in sorted(above.lam.unique()))
    for method, note in (("rmsprop", ""), ("adam", "; β₁ momentum damps the two-cycle")):
        part = above[above.method == method]
        if part.empty:
            continue
        ratio = part.l1_norm / part.flat_level
        flat = float(part.l1_norm.max() / part.l1_norm.min())
        level = bool(((ratio > 0.5) & (ratio < 2.0)).all())
        out.append(
            Claim(
                f"With L1, {method}'s final L1 norm flattens at about d·η/2 whatever λ is",
                f"final L1 / (d·η/2) = {float(ratio.min()):.2f}–{float(ratio.max()):.2f} for λ ∈ {{{lams}}} "
                f"(exact solution 0); max/min over λ {flat:.2f}" + ("" if level else note),
                "reproduced" if level and flat < 2.0 else ("different" if flat < 2.0 else "not reproduced"),
                expected="≈ 1 for every λ ≥ λ_max",
            )
        )
    gd = above[above.method == "gd"].sort_values("lam")
    if len(gd) >= 2:
        growth = float(gd.l1_norm.iloc[-1] / gd.l1_norm.iloc[0])
        lam_ratio = float(gd.lam.iloc[-1] / gd.lam.iloc[0])
        out.append(
            Claim(
                "Plain GD's band scales with λ instead (not flat)",
                f"GD final L1 grows ×{growth:.2g} when λ grows ×{lam_ratio:g} (λ ≥ λ_max)",
                "reproduced" if growth > 1.5 else "not reproduced",
                expected="∝ λ",
            )
        )
    l2 = frame[frame.penalty == "l2"]
    if not l2.empty:
        worst = l2.groupby("method").relative_distance.max()
        detail = ", ".join(f"{m}: {float(v):.2g}" for m, v in worst.items())
        others = [float(v) for m, v in worst.items() if m != "rmsprop"]
        verdict: Verdict = "reproduced" if float(worst.max()) < 0.05 else "not reproduced"
        if verdict != "reproduced" and others and max(others) < 0.05:
            verdict = "different"
        out.append(
            Claim(
                "With L2 all methods agree (on the ridge solution)",
                f"largest ‖w − w*‖/‖w*‖ over λ: {detail}"
                + ("" if verdict == "reproduced" else " (RMSProp keeps an O(η) band near any optimum)"),
                verdict,
                expected="the same solution for GD, RMSProp and Adam",
            )
        )
    zeros = int(l1.exact_zeros.max()) if not l1.empty else 0
    if not l1.empty:
        out.append(
            Claim(
                "None of GD, RMSProp, Adam gives exact zeros on L1",
                f"at most {zeros} exact zeros in any final iterate",
                "reproduced" if zeros == 0 else "not reproduced",
                expected="0 (a prox is needed: see l1-paradox)",
            )
        )
    return out


@experiment(
    "adaptive",
    config=Config,
    sweep={"penalty": ["l1", "l2"], "lam": [0.01, 0.1, 1.0, 3.0, 10.0, 30.0]},
    seeds=1,
    quick=Preset(overrides={"steps": 1500}, sweep={"penalty": ["l1", "l2"], "lam": [0.1, 1.0, 10.0]}),
    figures={"l1_norm": l1_figure, "distance": distance_figure},
    claims=claims,
)
def run(config: Config, seed: int) -> Iterator[Final]:
    """Adaptive methods on L1: the final norm flattens at d·η/2 whatever λ; with L2 all methods agree."""
    with one_thread():
        yield from run_unit(config, seed)
