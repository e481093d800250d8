"""What certified gradients cost (issue 3): ``clarke_backward(closure, model)`` against
``closure().backward()``, forward included in both, float32, CPU.

* MLP 784-512-512-10 at batch 256 and the small CNN of ``bench_policy`` at batch 64.
* **No tie**: standard normal inputs, default initialisation: certification is a kink check in the
  forward pass plus plain backprop (target ratio <= 1.05).
* **Ties**: MNIST-like sparse inputs (8-bit levels, ~80 % exact zeros) and weights and biases
  quantized to multiples of 1/64, so that many pre-activations and pooling windows tie exactly;
  direction left to kinkgrad (target <= 1.5) or an explicit dense Gaussian direction over all
  parameters (target <= 2.0). Peak tensor memory of the step: target <= 1.3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import kinkgrad
from benchmarks._timing import interleaved, peak_tensor_bytes
from benchmarks.bench_policy import _cnn, _mlp, mnist_like

__all__ = ["run"]

TARGETS = {"no tie": 1.05, "ties, auto direction": 1.5, "ties, dense direction": 2.0}
MEMORY_TARGET = 1.3


def _setup(model_kind: str, ties: bool) -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    model = _mlp() if model_kind == "mlp" else _cnn()
    n = 256 if model_kind == "mlp" else 64
    g = torch.Generator().manual_seed(1)
    if ties:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.round(p * 64) / 64)
        x = mnist_like(n, g)
    else:
        x = torch.randn(n, 1, 28, 28, generator=g)
    return model, x, torch.randint(0, 10, (n,), generator=g)


def _ties(model: nn.Module, x: Tensor, y: Tensor) -> int:
    record = kinkgrad.check_ad_backward(lambda: F.cross_entropy(model(x), y), model)
    return sum(site.ties for site in record.sites)


def _arms(
    model: nn.Module, x: Tensor, y: Tensor, direction: list[Tensor] | None
) -> tuple[Callable[[], None], Callable[[], None]]:
    def closure() -> Tensor:
        return F.cross_entropy(model(x), y)

    def plain() -> None:
        model.zero_grad(set_to_none=True)  # (a no-op when _peak has freed them already)
        closure().backward()

    def certified() -> None:
        model.zero_grad(set_to_none=True)
        kinkgrad.clarke_backward(closure, model, direction=direction)

    return plain, certified


def _peak(model: nn.Module, step: Callable[[], None]) -> int:
    """Peak tensor memory of ``step`` with the gradients freed before it, not inside it (the profiler
    does not know the size of blocks allocated before it started, so a free inside would make the
    result depend on what ran before)."""
    model.zero_grad(set_to_none=True)
    return peak_tensor_bytes(step)


def run(quick: bool) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    repeats = 8 if quick else 60
    rows: list[dict[str, Any]] = []
    for model_kind in ("mlp", "cnn"):
        for case in TARGETS:
            model, x, y = _setup(model_kind, ties=case != "no tie")
            direction = None
            if case == "ties, dense direction":
                g = torch.Generator().manual_seed(2)
                direction = [torch.randn(p.shape, generator=g) for p in model.parameters()]
            ties = _ties(model, x, y)
            plain, certified = _arms(model, x, y, direction)
            timing = interleaved(plain, certified, repeats=repeats)
            detail = f"{ties} ties hit per step; {timing.describe('backward()', 'clarke_backward')}"
            if case == "no tie" and ties:
                detail += (
                    "; standard normal data, yet not tie-free: with ReLU before the max-pool, windows of "
                    "four ReLU zeros tie, and the fast path must find them and prove them inert"
                )
            if model_kind == "cnn":
                detail += (
                    "; the fast path's max-pool is kinkgrad's one pass (the pool with its tie check, one "
                    "byte per window) in place of PyTorch's pool with int64 indices, several times slower: "
                    "this ratio includes that gain"
                )
            rows.append(
                {
                    "name": f"certified {model_kind}: {case}",
                    "ratio": timing.ratio,
                    "target": TARGETS[case],
                    "detail": detail,
                }
            )
            if case == "ties, auto direction":
                plain_peak, cert_peak = _peak(model, plain), _peak(model, certified)
                rows.append(
                    {
                        "name": f"certified {model_kind}: {case}, peak memory",
                        "ratio": cert_peak / plain_peak,
                        "target": MEMORY_TARGET,
                        "detail": f"peak tensor memory {plain_peak / 2**20:.1f} MiB -> "
                        f"{cert_peak / 2**20:.1f} MiB",
                    }
                )
    return rows
