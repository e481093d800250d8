"""Experiments used by the runner tests (imported by the tests and, by name, by worker processes).

Environment hooks, read inside the unit so spawned workers see them too:

* ``KINKGRAD_TEST_LOG``: a folder; every unit execution writes one file there (to count executions).
* ``KINKGRAD_TEST_CRASH_SEED``: units with this seed raise.
* ``KINKGRAD_TEST_BAD_FIGURE``: the ``loss`` figure raises.
* ``KINKGRAD_TEST_SLEEP``: seconds each unit sleeps (to kill a sweep midway).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from matplotlib.figure import Figure

from kinkgrad.runner import Claim, Preset, RunResults, experiment, setting


@dataclass(frozen=True)
class FitData:
    n: int = setting(32, help="number of samples")
    noise: float = setting(0.1, help="label noise scale")


@dataclass(frozen=True)
class LsqConfig:
    steps: int = setting(8, help="gradient steps")
    lr: float = setting(0.1, help="step size")
    method: Literal["gd", "momentum"] = setting("gd", help="update rule")
    dims: tuple[int, ...] = setting((3,), help="feature dimensions (only the first is used)")
    tag: str | None = setting(None, help="free text copied to every record")
    verbose: bool = setting(False, help="unused flag")
    data: FitData = FitData()

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class FinalFit:
    weight_error: float
    converged: bool


def draw_loss(run: RunResults) -> Figure:
    if os.environ.get("KINKGRAD_TEST_BAD_FIGURE"):
        raise RuntimeError("figure broken on purpose")
    frame = run.records
    figure = Figure(figsize=(4, 3))
    ax = figure.add_subplot()
    for lr, group in frame.groupby("lr"):
        curve = group.groupby("step")["loss"].mean()
        ax.semilogy(curve.index, curve.to_numpy(), label=f"lr={lr}")
    ax.set_xlabel("step")
    ax.legend()
    return figure


def loss_claims(run: RunResults) -> list[Claim]:
    frame = run.records
    first = frame[frame.step == frame.step.min()].loss.mean()
    last = frame[frame.step == frame.step.max()].loss.mean()
    verdict = "reproduced" if last < first else "not reproduced"
    return [Claim("gradient descent lowers the loss", f"{first / last:.3g}x lower", verdict, "lower")]


@experiment(
    "toy-lsq",
    config=LsqConfig,
    sweep={"lr": [0.1, 0.05]},
    seeds=2,
    quick=Preset(overrides={"steps": 3}, sweep={"lr": [0.1]}, seeds=1),
    figures={"loss": draw_loss},
    claims=loss_claims,
)
def lsq(config: LsqConfig, seed: int):
    """Fit a least-squares model by gradient descent (a test experiment)."""
    log = os.environ.get("KINKGRAD_TEST_LOG")
    if log:
        Path(log, f"{seed}-{config.lr}-{uuid.uuid4().hex}").write_text("ran")
    time.sleep(float(os.environ.get("KINKGRAD_TEST_SLEEP", "0")))
    if os.environ.get("KINKGRAD_TEST_CRASH_SEED") == str(seed):
        raise RuntimeError(f"crash on purpose for seed {seed}")
    generator = torch.Generator().manual_seed(seed)
    dim = config.dims[0]
    x = torch.randn(config.data.n, dim, generator=generator, dtype=torch.float64)
    w_true = torch.randn(dim, generator=generator, dtype=torch.float64)
    y = x @ w_true + config.data.noise * torch.randn(config.data.n, generator=generator, dtype=torch.float64)
    w = torch.zeros(dim, dtype=torch.float64)
    velocity = torch.zeros_like(w)
    for step in range(config.steps):
        residual = x @ w - y
        loss = 0.5 * (residual**2).mean()
        grad = x.T @ residual / config.data.n
        yield {"step": step, "loss": loss, "grad_norm": float(grad.norm()), "tag": config.tag}
        velocity = 0.9 * velocity + grad if config.method == "momentum" else grad
        w = w - config.lr * velocity
    error = float((w - w_true).norm())
    yield FinalFit(weight_error=error, converged=error < 0.5)
