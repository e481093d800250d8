"""Step-time benchmarks of :mod:`kinkgrad.optim` against ``torch.optim.SGD``.

Only ``optimizer.step()`` is timed: the gradients come from one forward/backward and are kept, so both
arms do the same work on the same sizes every call. Both optimizers use ``foreach=True`` on a 10M-parameter
float32 MLP, timed side by side with :func:`benchmarks._timing.interleaved` (alternating order, medians).

What bounds the ratios on CPU: ``SGD`` makes one read-modify-write pass over the parameters (reading the
gradients). ``ProxSGD(prox=L1)`` adds the soft-thresholding pass, done in place with one kernel
(``softshrink`` writing into its input); ``Subgradient(schedule="polyak")`` adds one read of the gradients
for ``|g|^2`` (``torch.dot``), which must finish before any parameter moves. Each is one extra pass over
memory that no eager PyTorch kernel fuses with the SGD update.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks._timing import interleaved
from kinkgrad.optim import ProxSGD, Subgradient
from kinkgrad.prox import L1

__all__ = ["run"]


def _model(width: int, seed: int) -> nn.Module:
    """An MLP with about ``9.6 width^2`` parameters (10.0M for width 1024)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(width, 4 * width),
        nn.ReLU(),
        nn.Linear(4 * width, width),
        nn.ReLU(),
        nn.Linear(width, (width * 25) // 16),
    )


def _twins(width: int) -> tuple[nn.Module, nn.Module, float]:
    """Two identical models holding identical gradients from one forward/backward, and the loss."""
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


def run(quick: bool) -> list[dict[str, object]]:
    """Time the optimizer steps against ``torch.optim.SGD``; one record per comparison.

    Args:
        quick: A 1M-parameter model and fewer rounds (a smoke run) instead of 10M parameters.

    Returns:
        Dicts with ``name``, ``ratio`` (median step time kinkgrad / SGD), ``target`` and ``detail``.
    """
    width = 320 if quick else 1024
    repeats = 20 if quick else 60
    rows: list[dict[str, object]] = []

    ours, base, _ = _twins(width)
    size = sum(p.numel() for p in ours.parameters())
    where = f"{size / 1e6:.2f}M float32 parameters in 6 tensors, foreach=True, step() only"
    prox_sgd = ProxSGD(ours.parameters(), lr=1e-3, prox=L1(1e-4), foreach=True)
    sgd = torch.optim.SGD(base.parameters(), lr=1e-3, foreach=True)
    timing = interleaved(sgd.step, prox_sgd.step, repeats=repeats, warmup=3)
    rows.append(
        {
            "name": "optim: ProxSGD(prox=L1) step vs torch.optim.SGD step",
            "ratio": timing.ratio,
            "target": 1.15,
            "detail": f"SGD vs ProxSGD: {timing.describe()}; {where}",
        }
    )

    ours, base, loss_value = _twins(width)
    loss = torch.tensor(loss_value)

    def closure() -> float:
        return loss  # type: ignore[return-value]

    polyak = Subgradient(ours.parameters(), lr=1.0, schedule="polyak", f_min=0.0, foreach=True)
    sgd = torch.optim.SGD(base.parameters(), lr=1e-3, foreach=True)
    timing = interleaved(lambda: sgd.step(closure), lambda: polyak.step(closure), repeats=repeats, warmup=3)
    rows.append(
        {
            "name": "optim: Subgradient(schedule='polyak') step vs torch.optim.SGD step",
            "ratio": timing.ratio,
            "target": 1.10,
            "detail": f"SGD vs Polyak: {timing.describe()}; {where}; both get the same closure "
            "(a fixed loss, so the best-iterate copy, one more pass, happens only on the first call)",
        }
    )
    return rows
