"""What ``KinkMonitor`` costs a training step (issue 4, section 1).

One training step (zero the gradients, forward, cross-entropy loss, backward, SGD step) in float32 on
the CPU, inside ``with monitor:`` (a :class:`kinkgrad.KinkMonitor` watching the model, so every ReLU
and max-pool call is counted per module, with a backward hook per call that met a kink), against the
same step in plain PyTorch; target: median ratio <= 1.10. ``monitor.step()`` is called after every
step, as in a training loop, so the monitor's record table grows by one step's sites each time.

Models and inputs are those of ``bench_policy``: an MLP 784-512-512-10 at batch 256 and a small CNN
(two bias-free 3x3 convolutions, ReLU, 2x2 max-pool, linear 6272-128-10) at batch 64, on MNIST-like
images (8-bit grey levels, about 80 % exact zeros), where the convolutions meet real kinks. A second
MLP row runs the monitored step under ``kink_policy(default=0.5)`` against the same policy without a
monitor: the monitor's own price when a policy already routes the ops. The last two rows split the
cost: the monitored step against the same step under a no-op observer, which pays the ops' own
observation (routing every entry point, building kink masks) but counts nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import kinkgrad
from benchmarks._timing import interleaved
from benchmarks.bench_policy import _cnn, _mlp, mnist_like  # the same models as the policy benchmark
from kinkgrad._monitor import KinkMonitor
from kinkgrad._observe import observing

__all__ = ["run"]

TARGET = 1.10
LEARNING_RATE = 1e-3

ModelKind = Literal["mlp", "cnn"]


_MODELS: Mapping[ModelKind, Callable[[], nn.Module]] = {"mlp": _mlp, "cnn": _cnn}
BATCH: Mapping[ModelKind, int] = {"mlp": 256, "cnn": 64}
REPEATS: Mapping[ModelKind, tuple[int, int]] = {"mlp": (200, 40), "cnn": (160, 15)}  # (full, quick)


@dataclass(frozen=True)
class Case:
    model: ModelKind
    policy: Mapping[str, Any] | None = None
    against_observer: bool = False  # baseline: a no-op observer (the ops' observation, no counting)

    @property
    def label(self) -> str:
        if self.against_observer:
            return f"{self.model} mnist-like, against a no-op observer (the monitor's own counting)"
        if self.policy is None:
            return f"{self.model} mnist-like"
        policy = ", ".join(f"{k}={v!r}" for k, v in self.policy.items())
        return f"{self.model} mnist-like, both arms under kink_policy({policy})"


CASES = (
    Case("mlp"),
    Case("cnn"),
    Case("mlp", {"default": 0.5}),
    Case("mlp", against_observer=True),
    Case("cnn", against_observer=True),
)


class _NoOpObserver:
    """Receives every report and does nothing: what the ops' observation costs without any counting."""

    def report(self, *report: object, **known: object) -> None:
        return None


class _Observing:
    def __enter__(self) -> None:
        self._context = observing(_NoOpObserver())
        self._context.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class Arm:
    """A model with its SGD optimizer; ``step`` is one training step, monitored or not."""

    model: nn.Module
    monitor: KinkMonitor | None
    policy: Mapping[str, Any] | None
    observe: bool = False

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE)

    def step(self, x: Tensor, y: Tensor) -> None:
        policy = kinkgrad.kink_policy(**self.policy) if self.policy is not None else _Null()
        watch: Any = self.monitor if self.monitor is not None else _Observing() if self.observe else _Null()
        self.optimizer.zero_grad(set_to_none=True)
        with watch, policy:
            loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        if self.monitor is not None:
            self.monitor.step()


def _measure(case: Case, quick: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    initial = _MODELS[case.model]()
    base = Arm(copy.deepcopy(initial), None, case.policy, observe=case.against_observer)
    model = copy.deepcopy(initial)
    watched = Arm(model, KinkMonitor(model), case.policy)
    g = torch.Generator().manual_seed(1)
    x = mnist_like(BATCH[case.model], g)
    y = torch.randint(0, 10, (BATCH[case.model],), generator=g)
    timing = interleaved(
        lambda: base.step(x, y),
        lambda: watched.step(x, y),
        repeats=REPEATS[case.model][1 if quick else 0],
        warmup=5,
    )
    assert watched.monitor is not None
    totals = watched.monitor.totals()
    seen = sum(r.elements for r in totals.values())
    exact = sum(r.exact_kinks for r in totals.values())
    bifurcating = sum(r.bifurcating_kinks for r in totals.values())
    counted = (
        f"counted {len(totals)} sites over {watched.monitor.current_step} steps: "
        f"{exact} exact kinks in {seen} outputs ({exact / max(seen, 1):.1%}), {bifurcating} bifurcating"
    )
    baseline = "no-op observer" if case.against_observer else "no monitor"
    detail = f"{timing.describe(baseline, 'KinkMonitor')}; {counted}"
    if case.model == "cnn" and not case.against_observer:
        detail += (
            "; the monitored max-pool is kinkgrad's one pass (the pool with its tie count, one byte per "
            "window) in place of PyTorch's pool with int64 indices, several times slower: this ratio "
            "includes that gain (the row against a no-op observer, which takes the same pass, does not)"
        )
    return {
        "name": f"{case.label} training step time",
        "ratio": timing.ratio,
        "target": TARGET,
        "detail": detail,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    """One row per case: median step time under the monitor over the same step without it."""
    return [_measure(case, quick) for case in CASES]
