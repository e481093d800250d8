"""Step-time benchmarks of :mod:`kinkgrad.optim` against ``torch.optim.SGD``.

``run(quick)`` times ``optimizer.step()`` only (gradients are computed once and kept), for the kinkgrad
optimizer and the baseline side by side in one process: trials are interleaved and alternate which
optimizer goes first, and the ratio is that of the medians. Both optimizers use ``foreach=True``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from kinkgrad.optim import ProxSGD, Subgradient
from kinkgrad.prox import L1

__all__ = ["run"]


def _model(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(width, 4 * width),
        nn.ReLU(),
        nn.Linear(4 * width, width),
        nn.ReLU(),
        nn.Linear(width, (width * 25) // 16),
    )


def _with_grads(width: int) -> tuple[nn.Module, nn.Module, float]:
    """Two identical models with identical gradients from one forward/backward; return the loss too."""
    models = []
    loss_value = 0.0
    for _ in range(2):
        model = _model(width, seed=0)
        x = torch.randn(64, width, generator=torch.Generator().manual_seed(1))
        loss = model(x).square().mean()
        loss.backward()
        loss_value = float(loss.detach())
        models.append(model)
    return models[0], models[1], loss_value


def _time_pair(
    ours: Callable[[], object], base: Callable[[], object], trials: int, warmup: int
) -> tuple[float, float]:
    for _ in range(warmup):
        ours()
        base()
    t_ours: list[float] = []
    t_base: list[float] = []
    for trial in range(trials):
        order = ((ours, t_ours), (base, t_base)) if trial % 2 == 0 else ((base, t_base), (ours, t_ours))
        for fn, sink in order:
            start = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - start)
    return statistics.median(t_ours), statistics.median(t_base)


def _row(name: str, ours: float, base: float, target: float, size: int, what: str) -> dict[str, object]:
    return {
        "name": name,
        "ratio": ours / base,
        "target": target,
        "detail": f"{what}: median {ours * 1e3:.3f} ms vs torch.optim.SGD {base * 1e3:.3f} ms; "
        f"{size / 1e6:.2f}M float32 parameters, foreach=True, step() only",
    }


def run(quick: bool) -> list[dict[str, object]]:
    """Time the optimizer steps; return one record per comparison.

    Args:
        quick: A 1M-parameter model and few trials (a smoke run) instead of 10M parameters.

    Returns:
        Dicts with ``name``, ``ratio`` (median time kinkgrad / baseline), ``target`` and ``detail``.
    """
    width = 320 if quick else 1024
    trials, warmup = (15, 3) if quick else (60, 5)
    rows: list[dict[str, object]] = []

    a, b, loss_value = _with_grads(width)
    size = sum(p.numel() for p in a.parameters())
    prox_sgd = ProxSGD(a.parameters(), lr=1e-3, prox=L1(1e-4), foreach=True)
    sgd = torch.optim.SGD(b.parameters(), lr=1e-3, foreach=True)
    ours, base = _time_pair(prox_sgd.step, sgd.step, trials, warmup)
    rows.append(_row("optim.ProxSGD(L1) step / SGD step", ours, base, 1.15, size, "ProxSGD(prox=L1)"))

    a, b, loss_value = _with_grads(width)
    loss = torch.tensor(loss_value)

    def closure() -> float:
        return float(loss)

    polyak = Subgradient(a.parameters(), lr=1.0, schedule="polyak", f_min=0.0, foreach=True)
    sgd = torch.optim.SGD(b.parameters(), lr=1e-3, foreach=True)
    ours, base = _time_pair(lambda: polyak.step(closure), lambda: sgd.step(closure), trials, warmup)
    rows.append(
        _row(
            "optim.Subgradient(polyak) step / SGD step",
            ours,
            base,
            1.10,
            size,
            "Subgradient(schedule='polyak'), constant loss so the best-iterate copy runs once",
        )
    )
    return rows
