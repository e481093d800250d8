"""What ``kink_policy`` costs a training step (issue 2, section 6).

One training step (zero the gradients, forward, cross-entropy loss, backward, SGD step) in float32 on
the CPU, under ``kinkgrad.kink_policy(...)`` against the same step in plain PyTorch:

* an MLP 784-512-512-10 at batch 256;
* a small CNN at batch 64 on 1x28x28 inputs: conv 1->16 and conv 16->32 (3x3, padding 1, no bias, as
  convolutions before a normalisation layer usually are), ReLU after each, one 2x2 max-pool, then
  linear 6272->128, ReLU, linear 128->10.

Inputs are either standard normal or MNIST-like: 8-bit grey levels (``k / 255``), about 80 % of the
pixels exactly 0 (a blank border and blank background around smooth strokes). The MNIST-like inputs
are where real kinks are hit: a bias-free convolution over an all-zero patch is exactly 0, at ReLU's
kink, and a max-pool window of ReLU zeros is a tie. The detail column reports how many were hit.

Each case is measured eager and compiled (``torch.compile``, default inductor backend, on the model
plus loss; the policy is entered around the compiled call), for time (target ratio <= 1.05) and peak
tensor memory of the step (target ratio <= 1.10). The policy is entered afresh every step, as a
``with kink_policy(...)`` inside a training loop would be; both arms start from the same weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import kinkgrad
from benchmarks._timing import interleaved, peak_tensor_bytes

__all__ = ["run"]

TIME_TARGET = 1.05
MEMORY_TARGET = 1.10
LEARNING_RATE = 1e-3

ModelKind = Literal["mlp", "cnn"]
DataKind = Literal["normal", "mnist"]


@dataclass(frozen=True)
class Case:
    """One comparison: a model, its inputs and the policy of the kinkgrad arm."""

    model: ModelKind
    data: DataKind
    policy: Mapping[str, Any]
    compiled: bool = True  # also measure the compiled step

    @property
    def label(self) -> str:
        policy = ", ".join(f"{k}={v!r}" for k, v in self.policy.items())
        return f"{self.model} {self.data} [{policy}]"


_DEFAULT: Mapping[str, Any] = {"default": 0.5}
_SPLIT: Mapping[str, Any] = {"default": 0.5, "ties": "split"}

FULL_CASES = (
    Case("mlp", "normal", _DEFAULT),
    Case("mlp", "mnist", _DEFAULT),
    Case("cnn", "normal", _DEFAULT),
    Case("cnn", "mnist", _DEFAULT),
    Case("cnn", "normal", _SPLIT),
    Case("cnn", "mnist", _SPLIT),
)
QUICK_CASES = (
    Case("mlp", "mnist", _DEFAULT),
    Case("cnn", "mnist", _DEFAULT, compiled=False),
    Case("cnn", "mnist", _SPLIT, compiled=False),
)
BATCH: Mapping[ModelKind, int] = {"mlp": 256, "cnn": 64}
# timed rounds (one step of each arm per round): (full, quick)
REPEATS: Mapping[ModelKind, tuple[int, int]] = {"mlp": (300, 40), "cnn": (100, 15)}


# ---- models and data ---------------------------------------------------------------------------


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 14 * 14, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


_MODELS: Mapping[ModelKind, Callable[[], nn.Module]] = {"mlp": _mlp, "cnn": _cnn}


def mnist_like(n: int, generator: torch.Generator, ink: float = 0.2) -> Tensor:
    """``[n, 1, 28, 28]`` images of 8-bit levels in ``[0, 1]``, a fraction ``ink`` of pixels nonzero.

    Smooth random strokes in the central 20x20 square (a coarse random field, upsampled, thresholded per
    image at the level that inks ``ink * 784`` pixels), zero elsewhere, like MNIST's blank border.
    """
    field = F.interpolate(torch.rand(n, 1, 6, 6, generator=generator), size=(20, 20), mode="bicubic")
    flat = field.flatten(1)
    level = flat.quantile(1.0 - ink * 784 / 400, dim=1, keepdim=True)
    strength = ((flat - level) / (flat.amax(1, keepdim=True) - level)).clamp(0.0, 1.0)
    pixels = torch.round(strength * 255) / 255  # 8-bit grey levels; at or below the level: exactly 0
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 4:24, 4:24] = pixels.view(n, 1, 20, 20)
    return images


def _batch(data: DataKind, n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 28, 28, generator=g) if data == "normal" else mnist_like(n, g)
    return x, torch.randint(0, 10, (n,), generator=g)


@dataclass(frozen=True)
class KinkCount:
    """How many kinks one forward pass meets (measured outside any policy)."""

    zero_pixels: float  # fraction of input pixels exactly 0
    relu_at_kink: float  # fraction of ReLU inputs exactly 0
    pool_windows_tied: float | None  # fraction of max-pool windows whose maximum is attained twice

    def describe(self) -> str:
        text = f"pixels 0: {self.zero_pixels:.0%}, ReLU inputs at kink: {self.relu_at_kink:.1%}"
        if self.pool_windows_tied is not None:
            text += f", pool windows tied: {self.pool_windows_tied:.1%}"
        return text


def count_kinks(model: nn.Module, x: Tensor) -> KinkCount:
    """Fractions of ReLU inputs at 0 and of tied 2x2 max-pool windows in ``model(x)``."""
    relu_hits, relu_total, tied, windows = 0, 0, 0, 0

    def on_relu(_: nn.Module, inputs: tuple[Tensor, ...], __: Tensor) -> None:
        nonlocal relu_hits, relu_total
        relu_hits += int((inputs[0] == 0).sum())
        relu_total += inputs[0].numel()

    def on_pool(module: nn.Module, inputs: tuple[Tensor, ...], __: Tensor) -> None:
        nonlocal tied, windows
        assert isinstance(module, nn.MaxPool2d)
        t = inputs[0]
        cols = F.unfold(t, module.kernel_size, stride=module.stride)  # [N, C*k*k, L]
        cols = cols.view(t.shape[0], t.shape[1], -1, cols.shape[-1])
        attained = (cols == cols.amax(2, keepdim=True)).sum(2)
        tied += int((attained > 1).sum())
        windows += attained.numel()

    handles = []
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            handles.append(m.register_forward_hook(on_relu))
        elif isinstance(m, nn.MaxPool2d):
            handles.append(m.register_forward_hook(on_pool))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return KinkCount(
        zero_pixels=float((x == 0).float().mean()),
        relu_at_kink=relu_hits / max(relu_total, 1),
        pool_windows_tied=tied / windows if windows else None,
    )


# ---- one arm: a model, its optimizer, its (maybe compiled) loss --------------------------------


class _Loss(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self.model(x), y)


@dataclass
class Arm:
    """A model with its own SGD optimizer; ``step`` is one training step, ``policy`` or not."""

    model: nn.Module
    policy: Mapping[str, Any] | None
    optimizer: torch.optim.Optimizer = field(init=False)
    eager_loss: nn.Module = field(init=False)
    compiled_loss: Callable[..., Tensor] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE)
        self.eager_loss = _Loss(self.model)

    def loss_fn(self, compiled: bool) -> Callable[..., Tensor]:
        if not compiled:
            return self.eager_loss
        if self.compiled_loss is None:
            self.compiled_loss = torch.compile(self.eager_loss)
        return self.compiled_loss

    def step(self, loss_fn: Callable[..., Tensor], x: Tensor, y: Tensor, zero_grad: bool = True) -> None:
        if self.policy is None:
            self._step(loss_fn, x, y, zero_grad)
        else:
            with kinkgrad.kink_policy(**self.policy):
                self._step(loss_fn, x, y, zero_grad)

    def _step(self, loss_fn: Callable[..., Tensor], x: Tensor, y: Tensor, zero_grad: bool) -> None:
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss_fn(x, y))
        self.optimizer.step()

    def peak_bytes(self, compiled: bool, x: Tensor, y: Tensor) -> int:
        """Peak tensor memory of one step (gradients are freed before it, not inside it)."""
        loss_fn = self.loss_fn(compiled)
        self.optimizer.zero_grad(set_to_none=True)
        return peak_tensor_bytes(lambda: self.step(loss_fn, x, y, zero_grad=False))


def _graph_breaks() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values())


# ---- the comparisons ---------------------------------------------------------------------------


def _measure(case: Case, base: Arm, kink: Arm, compiled: bool, repeats: int) -> list[dict[str, Any]]:
    x, y = _batch(case.data, BATCH[case.model], seed=1)
    mode = "compiled" if compiled else "eager"
    base_fn, kink_fn = base.loss_fn(compiled), kink.loss_fn(compiled)
    breaks = _graph_breaks()
    for arm, fn in ((base, base_fn), (kink, kink_fn)):  # compiles on the first call
        arm.step(fn, x, y)
    note = ""
    if compiled:
        note = f"; graph breaks while compiling both arms: {_graph_breaks() - breaks}"

    timing = interleaved(
        lambda: base.step(base_fn, x, y), lambda: kink.step(kink_fn, x, y), repeats=repeats, warmup=5
    )
    kinks = count_kinks(kink.model, x).describe()
    base_mem, kink_mem = base.peak_bytes(compiled, x, y), kink.peak_bytes(compiled, x, y)
    name = f"{case.label} {mode}"
    return [
        {
            "name": f"{name} time",
            "ratio": timing.ratio,
            "target": TIME_TARGET,
            "detail": f"{timing.describe('PyTorch', 'kinkgrad')}; {kinks}{note}",
        },
        {
            "name": f"{name} peak memory",
            "ratio": kink_mem / base_mem,
            "target": MEMORY_TARGET,
            "detail": f"peak tensor memory of a step: PyTorch {_mib(base_mem)}, kinkgrad {_mib(kink_mem)}",
        },
    ]


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def run(quick: bool) -> list[dict[str, Any]]:
    """Every case eager (and compiled where the case says so); two rows each: time, peak memory."""
    cases = QUICK_CASES if quick else FULL_CASES
    # One baseline arm per model and one kinkgrad arm per (model, policy), all from the same
    # initial weights; arms are reused across input kinds, so each compiles once.
    initial: dict[ModelKind, nn.Module] = {}
    bases: dict[ModelKind, Arm] = {}
    kinks: dict[tuple[ModelKind, str], Arm] = {}
    rows: list[dict[str, Any]] = []
    for case in cases:
        if case.model not in initial:
            torch.manual_seed(0)
            initial[case.model] = _MODELS[case.model]()
            bases[case.model] = Arm(copy.deepcopy(initial[case.model]), None)
        key = (case.model, repr(sorted(case.policy.items())))
        if key not in kinks:
            kinks[key] = Arm(copy.deepcopy(initial[case.model]), case.policy)
        repeats = REPEATS[case.model][1 if quick else 0]
        for compiled in (False, True) if case.compiled else (False,):
            rows += _measure(case, bases[case.model], kinks[key], compiled, repeats)
    return rows
