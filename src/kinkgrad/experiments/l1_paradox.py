r"""``kinkgrad run l1-paradox``: a larger L1 penalty, a larger L1 norm (Kumar 2024, section on L1).

For :math:`\min_w f(w) + \lambda \|w\|_1`, a subgradient step with a constant step :math:`\eta` moves a
coordinate whose optimum is 0 by :math:`\eta(\lambda\,\mathrm{sign}(w_i) + \partial_i f)` with
:math:`|\partial_i f| < \lambda`: it overshoots 0 every time and oscillates in a band of width about
:math:`\eta\lambda`. With many such coordinates the final iterate's L1 norm is about
:math:`(\#\text{zeros}) \cdot \eta\lambda / 2`, which *grows* with :math:`\lambda`, and no coordinate is ever
exactly 0. Proximal gradient (soft thresholding, :class:`kinkgrad.optim.ProxSGD` with
:class:`kinkgrad.prox.L1`) and the exact lasso path (scikit-learn's coordinate descent) shrink monotonically
and give exact zeros.

One unit: one problem (``linear``: L1-regularised least squares, with :math:`\lambda_{max} = 1`;
``relu-net``: a one-hidden-layer ReLU network on a teacher's targets, L1 on its weights), one penalty
``lam`` and one step size ``lr``; every method in ``methods`` trains full batch from the same start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from kinkgrad.experiments._issue5_problems import (
    count_zeros,
    l1_norm,
    lasso_reference,
    mlp,
    one_thread,
    sparse_regression,
    teacher_regression,
)
from kinkgrad.optim import ProxSGD, Subgradient
from kinkgrad.prox import L1
from kinkgrad.runner import Claim, Preset, RunResults, experiment, setting

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Config", "Final", "run"]

METHODS = ("subgradient-constant", "subgradient-sqrt", "proxsgd", "lasso")


@dataclass(frozen=True)
class Config:
    """Settings of one unit (``kinkgrad list l1-paradox``)."""

    problem: Literal["linear", "relu-net"] = setting("linear", help="L1 least squares or a small ReLU net")
    lam: float = setting(0.1, help="L1 weight λ (linear: a fraction of λ_max = 1, where the lasso is 0)")
    lr: float = setting(0.1, help="step size η (constant; γ of η_k = γ/sqrt(k+1) for subgradient-sqrt)")
    steps: int = setting(3000, help="full-batch steps per method")
    methods: tuple[str, ...] = setting(
        METHODS, help=f"methods among {', '.join(METHODS)} (lasso: linear only)"
    )
    samples: int = setting(200, help="training examples")
    features: int = setting(50, help="input dimension")
    nonzeros: int = setting(5, help="linear: nonzero entries of the generating weights")
    hidden: int = setting(32, help="relu-net: hidden width")
    noise: float = setting(0.5, help="label noise")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ValueError(f"methods: unknown {unknown}; valid: {', '.join(METHODS)}")
        if self.lam < 0 or self.lr <= 0:
            raise ValueError(f"lam must be >= 0 and lr > 0, got lam={self.lam}, lr={self.lr}")
        for name in ("steps", "samples", "features", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Final:
    """One method's final iterate."""

    method: str
    l1_norm: float
    exact_zeros: int
    penalized: int  #: number of penalised entries
    objective: float  #: f + λ‖w‖₁ at the final iterate
    final_step: float  #: the last step size taken (η for a constant step)
    reference_zeros: int  #: entries that are 0 in the reference (lasso; proxsgd for the network)
    band_max: float  #: max |w_i| over the reference's zero set
    band_mean: float  #: mean |w_i| over the reference's zero set


class _Problem:
    """Parameters, the smooth loss, and which parameters carry the penalty."""

    def __init__(self, config: Config, seed: int) -> None:
        self.config = config
        if config.problem == "linear":
            self.data = sparse_regression(
                config.samples, config.features, config.nonzeros, config.noise, seed
            )
        else:
            self.data = teacher_regression(config.samples, config.features, 8, config.noise, seed)
        self.seed = seed

    def build(self) -> tuple[list[Tensor], list[Tensor], Callable[[], Tensor]]:
        """Fresh parameters (same start for every method): (penalised, others, smooth loss)."""
        x, y = self.data.x, self.data.y
        if self.config.problem == "linear":
            w = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
            return [w], [], lambda: 0.5 * (x @ w - y).square().mean()
        net = mlp(x.shape[1], (self.config.hidden,), nn.ReLU, self.seed, x.dtype)
        weights: list[Tensor] = [m.weight for m in net if isinstance(m, nn.Linear)]
        biases: list[Tensor] = [m.bias for m in net if isinstance(m, nn.Linear)]
        return weights, biases, lambda: 0.5 * F.mse_loss(net(x).squeeze(-1), y)


def _train(problem: _Problem, method: str, config: Config) -> tuple[list[Tensor], float, float]:
    """Train one method; return (penalised parameters, objective, last step size)."""
    penalized, others, smooth = problem.build()
    lam = config.lam
    if method == "lasso":
        w = lasso_reference(problem.data, lam)
        with torch.no_grad():
            penalized[0].copy_(w)
        last = math.nan
    elif method == "proxsgd":
        groups = [{"params": penalized, "prox": L1(lam)}]
        if others:
            groups.append({"params": others, "prox": None})
        opt: torch.optim.Optimizer = ProxSGD(groups, lr=config.lr)
        for _ in range(config.steps):
            opt.zero_grad()
            smooth().backward()
            opt.step()
        last = config.lr
    else:
        schedule = "constant" if method == "subgradient-constant" else "sqrt"
        opt = Subgradient([*penalized, *others], lr=config.lr, schedule=schedule, track_best=False)
        for _ in range(config.steps):
            opt.zero_grad()
            (smooth() + lam * sum(p.abs().sum() for p in penalized)).backward()
            opt.step()
        last = config.lr if schedule == "constant" else config.lr / math.sqrt(config.steps)
    with torch.no_grad():
        objective = float(smooth()) + lam * l1_norm(penalized)
    return [p.detach().clone() for p in penalized], objective, last


def run_unit(config: Config, seed: int) -> Iterator[Final]:
    """All methods of one unit (the reference first: its zero set defines the band)."""
    problem = _Problem(config, seed)
    methods = [m for m in config.methods if not (m == "lasso" and config.problem != "linear")]
    reference = "lasso" if config.problem == "linear" else "proxsgd"
    order = sorted(methods, key=lambda m: m != reference)
    zero_set: list[Tensor] | None = None
    for method in order:
        params, objective, last = _train(problem, method, config)
        if method == reference or zero_set is None:
            zero_set = [p == 0 for p in params]
        on_zero = torch.cat([p[z].abs().reshape(-1) for p, z in zip(params, zero_set)])
        yield Final(
            method=method,
            l1_norm=l1_norm(params),
            exact_zeros=count_zeros(params),
            penalized=sum(p.numel() for p in params),
            objective=objective,
            final_step=last,
            reference_zeros=int(on_zero.numel()),
            band_max=float(on_zero.max()) if on_zero.numel() else 0.0,
            band_mean=float(on_zero.mean()) if on_zero.numel() else 0.0,
        )


# ---- figures and claims (from the result files only) ---------------------------------------------

_STYLE = {
    "subgradient-constant": ("C3", "o"),
    "subgradient-sqrt": ("C1", "s"),
    "proxsgd": ("C0", "^"),
    "lasso": ("k", "x"),
}


def _lr_shown(frame: pd.DataFrame) -> float:
    lrs = sorted(frame["lr"].unique())
    return float(lrs[len(lrs) // 2])


def _per_lambda(run: RunResults, column: str, ylabel: str, logy: bool) -> Figure:
    frame = run.table("final")
    lr = _lr_shown(frame)
    problems = list(dict.fromkeys(frame["problem"]))
    figure = Figure(figsize=(5.0 * len(problems), 3.8), layout="constrained")
    for i, problem in enumerate(problems):
        ax = figure.add_subplot(1, len(problems), i + 1)
        part = frame[(frame.problem == problem) & (frame.lr == lr)]
        for method, group in part.groupby("method", sort=False):
            curve = group.groupby("lam")[column].mean()
            color, marker = _STYLE.get(str(method), ("C7", "."))
            ax.plot(curve.index, curve.to_numpy(), marker=marker, color=color, label=str(method))
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.set_ylim(bottom=0.0)
        ax.set_xlabel("λ")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{problem}, η = {lr:g}")
        ax.legend(fontsize=8)
    return figure


def l1_figure(run: RunResults) -> Figure:
    """Final-iterate L1 norm against λ, per method."""
    return _per_lambda(run, "l1_norm", "final ‖w‖₁", logy=True)


def zeros_figure(run: RunResults) -> Figure:
    """Exact zeros of the final iterate against λ, per method."""
    return _per_lambda(run, "exact_zeros", "exact zeros", logy=False)


def band_figure(run: RunResults) -> Figure:
    """Constant-step subgradient: the oscillation band on the optimum's zero set against η·λ."""
    frame = run.table("final")
    part = frame[(frame.method == "subgradient-constant") & (frame.lam > 0)]
    figure = Figure(figsize=(5.0, 4.0), layout="constrained")
    ax = figure.add_subplot()
    for (problem, lr), group in part.groupby(["problem", "lr"]):
        x = group.lr * group.lam
        ax.loglog(x, group.band_max, "o", label=f"{problem}, η={lr:g}: max |w_i|", alpha=0.8)
        ax.loglog(x, group.band_mean, ".", label=f"{problem}, η={lr:g}: mean |w_i|", alpha=0.6)
    grid = np.geomspace(max(float((part.lr * part.lam).min()), 1e-6), float((part.lr * part.lam).max()), 10)
    ax.loglog(grid, grid, "k--", label="η·λ")
    ax.set_xlabel("η·λ")
    ax.set_ylabel("|w_i| where the optimum is 0")
    ax.legend(fontsize=6)
    return figure


def _names(rows: pd.DataFrame) -> str:
    return ", ".join(f"{r.problem} {r.method} λ={r.lam:g} η={r.lr:g}" for r in rows.itertuples())


def claims(run: RunResults) -> list[Claim]:
    frame = (
        run.table("final").groupby(["problem", "lr", "lam", "method"], as_index=False).mean(numeric_only=True)
    )
    out: list[Claim] = []
    diverged = frame[~np.isfinite(frame.l1_norm)]
    note = f" ({len(diverged)} run(s) diverged: {_names(diverged)})" if len(diverged) else ""
    frame = frame[np.isfinite(frame.l1_norm)]
    constant = frame[frame.method == "subgradient-constant"]
    if not constant.empty:
        zeros = int(constant.exact_zeros.max())
        exact = frame[frame.method.isin(["proxsgd", "lasso"])]
        top = exact[exact.lam == exact.lam.max()] if not exact.empty else exact
        ref_zeros = (
            f"; proximal/lasso at λ = {float(top.lam.max()):g}: {int(top.exact_zeros.min())} zeros"
            if len(top)
            else ""
        )
        out.append(
            Claim(
                "With a constant step, subgradient descent produces no exact zeros",
                f"at most {zeros} exact zeros over {len(constant)} settings{ref_zeros}{note}",
                "reproduced" if zeros == 0 else "not reproduced",
                expected="0 exact zeros; proximal and exact paths give many",
            )
        )
        band = constant[(constant.reference_zeros > 0) & (constant.lam > 0)]
        parts, verdicts = [], []
        for problem, reference in (("linear", "lasso"), ("relu-net", "ProxSGD")):
            part = band[band.problem == problem]
            if part.empty:
                continue
            ratio = part.band_max / (part.lr * part.lam)
            lo, med, hi = (float(np.quantile(ratio, q)) for q in (0.0, 0.5, 1.0))
            parts.append(f"{problem} (zeros of {reference}): median {med:.2f}, range [{lo:.2f}, {hi:.2f}]")
            verdicts.append(0.2 <= med <= 2.5 and (problem != "linear" or hi <= 2.5))
        if parts:
            out.append(
                Claim(
                    "Coordinates whose optimum is 0 oscillate in a band of width about η·λ",
                    "max |w_i| on the zero set / (η·λ): " + "; ".join(parts),
                    "reproduced" if all(verdicts) else "not reproduced",
                    expected="≈ 1, at most 2 (|∂ᵢf| < λ there); the net's reference is a local solution",
                )
            )
        grows: list[tuple[str, float, float, bool]] = []
        for (problem, lr), group in constant.groupby(["problem", "lr"]):
            curve = group.sort_values("lam")
            if len(curve) >= 3:
                l1 = curve.l1_norm.to_numpy()
                grows.append((problem, lr, float(l1[-1] / l1.min()), int(np.argmin(l1)) < len(l1) - 1))
        if grows:
            up = [g for g in grows if g[3] and g[2] > 1.0]
            detail = ", ".join(f"{p} η={lr:g}: ×{r:.2g}" for p, lr, r, _ in grows) + note
            out.append(
                Claim(
                    "Subgradient's final L1 norm eventually grows with λ",
                    f"L1 at the largest λ over its minimum along λ: {detail}",
                    "reproduced" if len(up) == len(grows) else ("different" if up else "not reproduced"),
                    expected="a U-shaped curve: > 1 at large λ",
                )
            )
    monotone = []
    exact = frame[frame.method.isin(["proxsgd", "lasso"])]
    for (problem, _lr, method), group in exact.groupby(["problem", "lr", "method"]):
        l1 = group.sort_values("lam").l1_norm.to_numpy()
        monotone.append((problem, method, bool(np.all(np.diff(l1) <= 1e-9 * max(1.0, float(l1.max()))))))
    if monotone:
        ok = all(m[2] for m in monotone)
        above = exact[(exact.problem == "linear") & (exact.lam >= 1.0)]  # λ ≥ λ_max = 1: the lasso is 0
        zero = bool((above.l1_norm == 0.0).all())
        at_max = f"; linear with λ ≥ λ_max: L1 = {float(above.l1_norm.max()):.3g}" if len(above) else ""
        out.append(
            Claim(
                "Proximal and exact paths shrink monotonically to exactly 0",
                f"{sum(m[2] for m in monotone)}/{len(monotone)} paths (problem, η, method) monotone in λ"
                + at_max,
                "reproduced" if ok and zero else "not reproduced",
                expected="monotone, and exactly 0 from λ_max on",
            )
        )
    return out


@experiment(
    "l1-paradox",
    config=Config,
    sweep={
        "problem": ["linear", "relu-net"],
        "lam": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
        "lr": [0.05, 0.1, 0.2],
    },
    seeds=1,
    quick=Preset(
        overrides={"steps": 400},
        sweep={"problem": ["linear", "relu-net"], "lam": [0.03, 0.3, 3.0], "lr": [0.1]},
        seeds=1,
    ),
    figures={"l1_norm": l1_figure, "exact_zeros": zeros_figure, "band": band_figure},
    claims=claims,
)
def run(config: Config, seed: int) -> Iterator[Final]:
    """L1 paradox: subgradient steps give larger L1 norms for larger λ and no zeros; prox and lasso do not."""
    with one_thread():
        yield from run_unit(config, seed)
