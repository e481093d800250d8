r"""``kinkgrad run edge-of-stability``: sharpness against :math:`2/\eta` under full-batch GD, for smooth and
ReLU networks and for smooth Lipschitz convex losses (Cohen et al. 2021; Kumar 2024).

Gradient descent with step :math:`\eta` on an :math:`L`-smooth function is stable only where the sharpness
:math:`S(\theta) = \lambda_{max}(\nabla^2 L(\theta)) < 2/\eta`. Cohen et al. observed that on neural networks
the sharpness rises ("progressive sharpening") until it reaches :math:`2/\eta` and then hovers there while
the loss keeps decreasing non-monotonically: the edge of stability (EoS). Kumar (2024) shows that the same
hovering happens for *convex, Lipschitz, smooth* losses such as the scaled log-cosh
:math:`\delta \log\cosh(r/\delta)` and the Huber loss (curvature up to :math:`1/\delta`): EoS is not
specific to networks, so reading it as a property of ReLU training needs care. For a ReLU network the
Hessian is itself ill-defined at kinks; autodiff Hessian-vector products see only the smooth pieces
(PyTorch's :math:`\mathrm{relu}'' = 0`), whereas finite differences of gradients over a distance :math:`h`
also see activation patterns that change within :math:`h`, so the estimate depends on how it is computed.

One unit: one model (``tanh-mlp``, ``relu-mlp``: MSE on a teacher's targets; ``linear-logcosh``,
``linear-huber``: a linear model with those losses, :math:`\delta` = ``delta``) and one step ``lr``;
full-batch GD for ``steps`` steps; every ``every`` steps the sharpness on a fixed subset (the first
``subset`` examples) by Lanczos on autodiff Hessian-vector products (``torch.func``); every
``compare_every`` steps, for the two networks, also by power iteration on autodiff and on
finite-difference products with each ``fd_steps``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.func import grad

from kinkgrad.experiments._issue5_problems import Regression, mlp, one_thread, teacher_regression
from kinkgrad.experiments._issue5_sharpness import (
    autodiff_hvp,
    finite_difference_hvp,
    flat_loss,
    lanczos_top,
    power_top,
)
from kinkgrad.runner import Claim, Preset, RunResults, Verdict, experiment, setting

__all__ = ["Config", "Estimate", "Trajectory", "run"]

MODELS = ("tanh-mlp", "relu-mlp", "linear-logcosh", "linear-huber")


@dataclass(frozen=True)
class Config:
    """Settings of one unit (``kinkgrad list edge-of-stability``)."""

    model: Literal["tanh-mlp", "relu-mlp", "linear-logcosh", "linear-huber"] = setting(
        "tanh-mlp", help="network (MSE) or linear model with a Lipschitz convex loss"
    )
    lr: float = setting(0.2, help="GD step size η")
    steps: int = setting(3000, help="full-batch GD steps")
    every: int = setting(50, help="sharpness every N steps")
    lanczos: int = setting(16, help="Lanczos iterations per sharpness estimate")
    compare_every: int = setting(1000, help="networks: compare estimators every N steps (0: never)")
    power: int = setting(25, help="power iterations per compared estimate")
    fd_steps: tuple[float, ...] = setting((1e-1, 1e-2, 1e-3, 1e-4), help="finite-difference distances h")
    samples: int = setting(128, help="training examples (full batch)")
    subset: int = setting(128, help="sharpness on the first N training examples (the fixed subset)")
    features: int = setting(8, help="input dimension")
    hidden: tuple[int, ...] = setting((32, 32), help="network widths")
    target_scale: float = setting(3.0, help="networks: the teacher's standardised targets times this")
    delta: float = setting(0.01, help="linear models: δ of δ·logcosh(r/δ) and of Huber (curvature 1/δ)")

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.delta <= 0:
            raise ValueError("lr and delta must be positive")
        for name in ("steps", "every", "lanczos", "power", "samples", "subset", "features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.compare_every < 0 or any(h <= 0 for h in self.fd_steps):
            raise ValueError("compare_every must be >= 0 and fd_steps positive")


@dataclass(frozen=True)
class Trajectory:
    """One sharpness checkpoint."""

    step: int
    loss: float
    sharpness: float  #: autodiff Lanczos, on the fixed subset
    two_over_lr: float
    ratio: float  #: sharpness · η / 2


@dataclass(frozen=True)
class Estimate:
    """One estimate of the sharpness at one checkpoint, by one method."""

    step: int
    estimator: str  #: autodiff-lanczos, autodiff-power or fd-power
    h: float  #: finite-difference distance (NaN for autodiff)
    value: float
    relative: float  #: value / autodiff-power - 1 (the same power iteration, from the same start)


def _logcosh(delta: float) -> Callable[[Tensor, Tensor], Tensor]:
    def loss(out: Tensor, y: Tensor) -> Tensor:
        a = ((out - y) / delta).abs()  # δ·log cosh(r/δ) = δ(|a| + log1p(e^{-2|a|}) - log 2), overflow-free
        return (delta * (a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0))).mean()

    return loss


def _huber(delta: float) -> Callable[[Tensor, Tensor], Tensor]:
    def loss(out: Tensor, y: Tensor) -> Tensor:
        r = out - y
        a = r.abs()
        return torch.where(a <= delta, 0.5 * r * r / delta, a - 0.5 * delta).mean()

    return loss


def _mse(out: Tensor, y: Tensor) -> Tensor:
    return 0.5 * (out - y).square().mean()


def _setup(config: Config, seed: int) -> tuple[nn.Module, Callable[[Tensor, Tensor], Tensor], Regression]:
    dtype = torch.float64
    if config.model.startswith("linear"):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(config.samples, config.features, generator=g, dtype=dtype)
        w = torch.randn(config.features, generator=g, dtype=dtype)
        y = x @ w + 0.5 * torch.randn(config.samples, generator=g, dtype=dtype)
        linear = nn.Linear(config.features, 1, bias=False).to(dtype)
        nn.init.zeros_(linear.weight)
        model: nn.Module = linear
        loss = _logcosh(config.delta) if config.model == "linear-logcosh" else _huber(config.delta)
        return model, loss, Regression(x, y)
    data = teacher_regression(config.samples, config.features, 16, 0.1, seed, dtype)
    data = Regression(data.x, config.target_scale * data.y)
    activation = nn.Tanh if config.model == "tanh-mlp" else nn.ReLU
    return mlp(config.features, config.hidden, activation, seed, dtype), _mse, data


def run_unit(config: Config, seed: int) -> Iterator[Trajectory | Estimate]:
    """Train with full-batch GD, measuring the sharpness along the way."""
    model, loss, data = _setup(config, seed)
    train, theta = flat_loss(model, loss, data.x, data.y)
    probe, _ = flat_loss(model, loss, data.x[: config.subset], data.y[: config.subset])
    gradient = grad(train)
    generator = torch.Generator().manual_seed(seed)
    n = theta.numel()
    compare = config.compare_every > 0 and config.model.endswith("mlp")
    for step in range(config.steps + 1):
        if step % config.every == 0 or step == config.steps:
            sharpness = lanczos_top(autodiff_hvp(probe, theta), n, config.lanczos, generator)
            value = float(train(theta))
            yield Trajectory(step, value, sharpness, 2 / config.lr, sharpness * config.lr / 2)
            if compare and (step % config.compare_every == 0 or step == config.steps):
                yield from _compare(config, probe, theta, n, step, sharpness, generator)
        if step < config.steps:
            theta = theta - config.lr * gradient(theta)


def _compare(
    config: Config,
    probe: Callable[[Tensor], Tensor],
    theta: Tensor,
    n: int,
    step: int,
    reference: float,
    generator: torch.Generator,
) -> Iterator[Estimate]:
    seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))

    def start() -> torch.Generator:  # every power iteration from the same vector: only the operator differs
        return torch.Generator().manual_seed(seed)

    yield Estimate(step, "autodiff-lanczos", math.nan, reference, math.nan)
    power = power_top(autodiff_hvp(probe, theta), n, config.power, start())
    yield Estimate(step, "autodiff-power", math.nan, power, 0.0)
    for h in config.fd_steps:
        value = power_top(finite_difference_hvp(probe, theta, h), n, config.power, start())
        yield Estimate(step, "fd-power", h, value, value / power - 1)


# ---- figures and claims (from the result files only) ---------------------------------------------


def sharpness_figure(run: RunResults) -> Figure:
    """Sharpness against steps, one panel per model, one colour per η, with 2/η dashed."""
    frame = run.table("trajectory")
    models = [m for m in MODELS if m in set(frame.model)]
    figure = Figure(figsize=(4.6 * len(models), 3.8), layout="constrained")
    for i, model in enumerate(models):
        ax = figure.add_subplot(1, len(models), i + 1)
        part = frame[frame.model == model]
        for j, (lr, group) in enumerate(part.groupby("lr")):
            curve = group.groupby("step").sharpness.mean()
            ax.plot(curve.index, curve.to_numpy(), color=f"C{j}", label=f"η = {lr:g}")
            ax.axhline(2 / lr, color=f"C{j}", ls="--", lw=1)
        ax.set_title(model)
        ax.set_xlabel("step")
        ax.set_ylabel("sharpness (dashed: 2/η)")
        ax.legend(fontsize=8)
    return figure


def loss_figure(run: RunResults) -> Figure:
    """Training loss against steps (non-monotone at the edge of stability)."""
    frame = run.table("trajectory")
    models = [m for m in MODELS if m in set(frame.model)]
    figure = Figure(figsize=(4.6 * len(models), 3.6), layout="constrained")
    for i, model in enumerate(models):
        ax = figure.add_subplot(1, len(models), i + 1)
        for lr, group in frame[frame.model == model].groupby("lr"):
            curve = group.groupby("step").loss.mean()
            ax.semilogy(curve.index, curve.to_numpy(), label=f"η = {lr:g}")
        ax.set_title(model)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8)
    return figure


def estimator_figure(run: RunResults) -> Figure:
    """Networks: finite-difference sharpness over autodiff's, against h, at every compared checkpoint."""
    frame = run.table("estimate")
    fd = frame[frame.estimator == "fd-power"]
    figure = Figure(figsize=(5.5, 4.0), layout="constrained")
    ax = figure.add_subplot()
    for (model, lr), group in fd.groupby(["model", "lr"]):
        spread = group.groupby("h").relative.agg(lambda r: float(np.max(np.abs(r))))
        style = "-o" if model == "relu-mlp" else "--s"
        ax.loglog(spread.index, spread.clip(lower=1e-16), style, label=f"{model}, η = {lr:g}")
    ax.set_xlabel("finite-difference distance h")
    ax.set_ylabel("max |S_fd / S_autodiff − 1| over checkpoints (power iteration)")
    ax.legend(fontsize=7)
    return figure


def claims(run: RunResults) -> list[Claim]:
    frame = run.table("trajectory")
    out: list[Claim] = []
    statements = {
        "tanh-mlp": "Smooth network (tanh MLP): sharpness rises to 2/η and hovers there",
        "relu-mlp": "ReLU network: the autodiff sharpness also hovers at 2/η",
        "linear-logcosh": "EoS also appears for a Lipschitz convex smooth loss: δ·log cosh(r/δ)",
        "linear-huber": "EoS also appears for a Lipschitz convex loss: Huber (C¹, curvature 1/δ)",
    }
    for model, statement in statements.items():
        part = frame[frame.model == model]
        if part.empty:
            continue
        rows = []
        for lr, group in part.groupby("lr"):
            late = group[group.step >= group.step.max() * 0.75]
            reached = float(group.ratio.max()) >= 0.9
            rows.append((float(lr), reached, float(np.median(late.ratio))))
        reached_rows = [r for r in rows if r[1]]
        hovering = [r for r in reached_rows if 0.85 <= r[2] <= 1.15]
        detail = ", ".join(
            f"η={lr:g}: {med:.2f}" + ("" if reached else " (2/η not reached)") for lr, reached, med in rows
        )
        verdict: Verdict
        if not reached_rows:
            verdict = "inconclusive"
        elif len(hovering) == len(reached_rows):
            verdict = "reproduced"
        else:
            verdict = "different" if hovering else "not reproduced"
        out.append(
            Claim(
                statement,
                f"median sharpness·η/2 over the last quarter of training: {detail}",
                verdict,
                expected="≈ 1 (sharpness at 2/η) once reached",
            )
        )
    if "estimate" in run.tables:
        fd = run.table("estimate")
        fd = fd[fd.estimator == "fd-power"]
        parts = []
        smallest: dict[str, float] = {}
        for model, group in fd.groupby("model"):
            by_h = group.groupby("h").relative.agg(lambda r: float(np.max(np.abs(r))))
            smallest[str(model)] = float(by_h.iloc[0])
            parts.append(f"{model}: " + ", ".join(f"h={h:g}: {v:.2g}" for h, v in by_h.items()))
        if smallest:
            relu, tanh = smallest.get("relu-mlp", math.nan), smallest.get("tanh-mlp", math.nan)
            verdict_fd: Verdict = "inconclusive" if math.isnan(relu) or math.isnan(tanh) else "not reproduced"
            if relu > max(0.1, 5 * tanh):
                verdict_fd = "reproduced"
            out.append(
                Claim(
                    "For ReLU networks the sharpness estimate depends on how it is computed",
                    "max over checkpoints of |S_fd(h)/S_autodiff − 1| (power iteration from one start): "
                    + "; ".join(parts),
                    verdict_fd,
                    expected="finite differences converge to autodiff as h → 0 for tanh, not for ReLU",
                )
            )
    return out


@experiment(
    "edge-of-stability",
    config=Config,
    sweep={"model": list(MODELS), "lr": [0.1, 0.2, 0.4]},
    seeds=1,
    quick=Preset(
        overrides={"steps": 800, "every": 50, "compare_every": 400},
        sweep={"model": list(MODELS), "lr": [0.2, 0.4]},
    ),
    figures={"sharpness": sharpness_figure, "loss": loss_figure, "estimators": estimator_figure},
    claims=claims,
)
def run(config: Config, seed: int) -> Iterator[Trajectory | Estimate]:
    """Edge of stability: sharpness against 2/η for tanh and ReLU MLPs and Lipschitz convex losses."""
    with one_thread():
        yield from run_unit(config, seed)
