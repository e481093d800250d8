"""``kinkgrad run relu-prime``: Bertoin et al. (NeurIPS 2021), "Numerical influence of ReLU'(0) on
backpropagation", reproduced at small scale with a correct ReLU'(0), and extended.

One unit trains an MLP (``[Linear, (BatchNorm), ReLU] × len(hidden), Linear``) with one ReLU'(0)
(``relu_prime``: 0, 0.5, 1, or a random ``λ ~ U[0, 1]`` per call), one optimizer (SGD or Adam), with
or without batch norm, in one precision (float16 and bfloat16 compute with float32 master weights and
optimizer state; float32 and float64 throughout), on one data set, and measures along the way:

1. **Bifurcation, every step and per layer**, with :class:`kinkgrad.KinkMonitor`: a step's backprop
   differs between ReLU'(0) = 0 and 1 exactly when some ReLU input is exactly 0 *and* receives a nonzero
   cotangent (a *bifurcating kink*: every layer has a bias, so the kink's input depends on the
   parameters; the probes below record both and the tests check that they agree).
2. **Gradient gaps, every ``probe_every`` steps and at every step that met an exact kink**, on the
   step's batch before the update: ``‖g₁ − g₀‖``
   between ReLU'(0) = 1 and 0 with the correct chain rule (:func:`kinkgrad.bifurcation`) and with the
   published code's rule (the kink's gradient set to ``α`` instead of ``α × upstream``), and plain
   PyTorch AD against the certified gradient (:func:`kinkgrad.check_ad_backward`).
3. **Training curves**: test loss and accuracy per epoch.

``--set variant=published`` trains with the published rule instead (it is implemented only in this
experiment, by ``_relu_prime_model.PublishedReLU``). The report puts each of the paper's claims beside
our numbers.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinkgrad._bifurcation import bifurcation
from kinkgrad._monitor import KinkMonitor
from kinkgrad.data import DataConfig, Dataset
from kinkgrad.experiments._relu_prime_model import (
    build_mlp,
    kink_relus,
    parse_relu_prime,
    rule,
)
from kinkgrad.experiments._relu_prime_report import FIGURES, claims, summary
from kinkgrad.runner import Preset, experiment, setting

__all__ = ["Config", "Epoch", "LayerEpoch", "Probe", "Step", "run"]

_SIXTEEN = ("float16", "bfloat16")
_GENERATED_SIZES = {"synthetic-mnist": (10_000, 2_000), "mnist1d": (4_000, 1_000), "digits": (1_437, 360)}


@dataclass(frozen=True)
class Config:
    """Settings of one unit (``kinkgrad list relu-prime`` shows them)."""

    variant: Literal["correct", "published"] = setting(
        "correct",
        help="chain rule at the kink: correct (α × upstream) or published (their code: α, a bug)",
    )
    dtype: Literal["float16", "bfloat16", "float32", "float64"] = setting(
        "float32", help="precision of the forward and backward passes"
    )
    relu_prime: str = setting("0", help="ReLU'(0) for training: a number in [0, 1] or 'random' (per call)")
    optimizer: Literal["sgd", "adam"] = setting("sgd", help="optimizer")
    batch_norm: bool = setting(False, help="batch norm between each linear layer and its ReLU")
    hidden: tuple[int, ...] = setting((256, 256), help="hidden layer widths")
    epochs: int = setting(5, help="passes over the training set")
    batch_size: int = setting(64, help="mini-batch size (the last partial batch is dropped)")
    lr_sgd: float = setting(0.2, help="SGD step size (plain SGD, no momentum)")
    lr_adam: float = setting(1e-3, help="Adam step size")
    max_train: int = setting(1024, help="use at most N training examples (unless data.train_size is set)")
    max_test: int = setting(512, help="use at most N test examples (unless data.test_size is set)")
    probe_every: int = setting(8, help="gradient gaps and the certified check every N steps (0: never)")
    probe_kinks: bool = setting(True, help="also probe every step whose forward pass met an exact kink")
    certified: bool = setting(True, help="compare plain AD with the certified gradient at probe steps")
    threads: int = setting(
        1, help="torch threads inside a unit (0: leave as set; these small models run fastest on one)"
    )
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        parse_relu_prime(self.relu_prime)
        for name in ("epochs", "batch_size", "max_train", "max_test"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")
        if self.probe_every < 0:
            raise ValueError(f"probe_every must be >= 0, got {self.probe_every}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must hold positive widths, got {self.hidden}")
        if self.lr_sgd <= 0 or self.lr_adam <= 0:
            raise ValueError("learning rates must be positive")


# ---- records (one table each) ------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One training step: its loss and the kinks its backprop met (all ReLU layers)."""

    epoch: int
    step: int
    loss: float
    relu_evaluations: int
    exact_kinks: int
    near_kinks: int
    bifurcating_kinks: int
    bifurcates: bool  #: backprop at ReLU'(0) = 0 and 1 differs on this mini-batch


@dataclass(frozen=True)
class LayerEpoch:
    """One ReLU layer over one epoch."""

    epoch: int
    layer: str
    batches: int
    bifurcating_batches: int
    relu_evaluations: int
    exact_kinks: int
    near_kinks: int
    bifurcating_kinks: int


@dataclass(frozen=True)
class Probe:
    """Gradient gaps on one mini-batch (after the step's backward, before its update)."""

    epoch: int
    step: int
    scheduled: bool  #: a regular probe (every ``probe_every`` steps), not one triggered by a kink
    bifurcating_kinks: int  #: from the monitor (correct rule)
    differs: bool  #: correct rule: g(ReLU'(0)=1) != g(ReLU'(0)=0)
    difference_norm: float
    gradient_norm: float
    published_differs: bool
    published_difference_norm: float
    certified_agree: float  #: 1.0 plain AD == certified, 0.0 not, NaN not measured
    certified_difference_norm: float


@dataclass(frozen=True)
class Epoch:
    """The end of one epoch: training loss and test metrics."""

    epoch: int
    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float


# ---- pieces of a unit --------------------------------------------------------------------------


def load_data(config: Config, dtype: torch.dtype) -> Dataset:
    """The configured data set, capped at ``max_train`` / ``max_test`` examples."""
    data = config.data
    sizes = _GENERATED_SIZES.get(data.name)
    train, test = data.train_size, data.test_size
    if sizes is not None:
        train = train or min(config.max_train, sizes[0])
        test = test or min(config.max_test, sizes[1])
    loaded = dataclasses.replace(data, train_size=train, test_size=test).load(dtype)
    if sizes is None and (data.train_size is None or data.test_size is None):
        n, m = len(loaded.y_train), len(loaded.y_test)
        loaded = Dataset(
            loaded.name,
            loaded.x_train[: min(n, config.max_train)],
            loaded.y_train[: min(n, config.max_train)],
            loaded.x_test[: min(m, config.max_test)],
            loaded.y_test[: min(m, config.max_test)],
            loaded.num_classes,
        )
    return loaded


class _Trainer:
    """Model, optimizer (on float32 master weights for 16-bit dtypes) and loss."""

    def __init__(self, config: Config, data: Dataset, dtype: torch.dtype, seed: int) -> None:
        alpha: float | str | None = parse_relu_prime(config.relu_prime)
        if alpha is None:
            alpha = "random"
        inputs = math.prod(data.input_shape)
        self.model = build_mlp(
            inputs, config.hidden, data.num_classes, config.batch_norm, alpha, config.variant, seed
        ).to(dtype)
        self.dtype = dtype
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.master = [p.detach().float().clone() for p in self.params] if dtype in _DTYPES16 else None
        target = self.master if self.master is not None else self.params
        if config.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(target, lr=config.lr_sgd)
        else:
            self.optimizer = torch.optim.Adam(target, lr=config.lr_adam)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        logits = self.model(x)
        return F.cross_entropy(logits.float() if self.master is not None else logits, y)

    def update(self) -> None:
        if self.master is not None:
            for m, p in zip(self.master, self.params):
                m.grad = None if p.grad is None else p.grad.float()
        self.optimizer.step()
        if self.master is not None:
            with torch.no_grad():
                for m, p in zip(self.master, self.params):
                    p.copy_(m)
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.params:
            p.grad = None

    def evaluate(self, x: Tensor, y: Tensor) -> tuple[float, float]:
        self.model.eval()
        try:
            with torch.no_grad():
                logits = torch.cat([self.model(chunk) for chunk in x.split(1024)]).double()
        finally:
            self.model.train()
        loss = float(F.cross_entropy(logits, y))
        return loss, float((logits.argmax(1) == y).double().mean())


_DTYPES16 = (torch.float16, torch.bfloat16)


def _buffers(model: nn.Module) -> list[Tensor]:
    return [b.detach().clone() for b in model.buffers()]


def _restore(model: nn.Module, saved: Sequence[Tensor]) -> None:
    with torch.no_grad():
        for b, s in zip(model.buffers(), saved):
            b.copy_(s)


def _published_gap(
    closure: Callable[[], Tensor], model: nn.Module, params: Sequence[Tensor]
) -> tuple[bool, float]:
    """``g₁ − g₀`` with the published rule (the kink's gradient set to ``α``)."""
    saved = _buffers(model)
    grads = []
    for alpha in (0.0, 1.0):
        with rule(model, alpha, "published"):
            loss = closure()
            grads.append(torch.autograd.grad(loss, params, allow_unused=True))
        _restore(model, saved)
    g0, g1 = ([torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)] for gs in grads)
    differs = any(not torch.equal(a, b) for a, b in zip(g0, g1))
    norm = math.sqrt(sum(float((b.double() - a.double()).square().sum()) for a, b in zip(g0, g1)))
    return differs, norm


def _certified_check() -> Callable[..., Any] | None:
    """``kinkgrad.check_ad_backward`` if this kinkgrad has it (else the column is NaN)."""
    import kinkgrad

    return getattr(kinkgrad, "check_ad_backward", None)


def _probe(
    trainer: _Trainer, x: Tensor, y: Tensor, config: Config, epoch: int, step: int, scheduled: bool
) -> Probe:
    model, params = trainer.model, trainer.params
    saved = _buffers(model)

    def closure() -> Tensor:
        return trainer.loss(x, y)

    with rule(model, None, "correct"):  # kink_policy(default=λ) inside bifurcation() decides
        gap = bifurcation(closure, params, 0.0, 1.0, model=model)
        _restore(model, saved)
        agree, cert_norm = math.nan, math.nan
        check = _certified_check() if config.certified else None
        if check is not None:
            record = check(closure, params)
            agree, cert_norm = float(bool(record.agree)), float(record.difference_norm)
            _restore(model, saved)
    published_differs, published_norm = _published_gap(closure, model, params)
    return Probe(
        epoch=epoch,
        step=step,
        scheduled=scheduled,
        bifurcating_kinks=gap.bifurcating_kinks,
        differs=gap.differs,
        difference_norm=gap.difference_norm,
        gradient_norm=gap.gradient_norm,
        published_differs=published_differs,
        published_difference_norm=published_norm,
        certified_agree=agree,
        certified_difference_norm=cert_norm,
    )


def _layer_names(model: nn.Module) -> dict[str, str]:
    return {path: f"relu{i + 1}" for i, path in enumerate(kink_relus(model))}


@experiment(
    "relu-prime",
    config=Config,
    sweep={
        "data.name": ["synthetic-mnist", "mnist1d", "digits"],
        "dtype": ["float16", "bfloat16", "float32", "float64"],
        "relu_prime": ["0", "0.5", "1", "random"],
        "optimizer": ["sgd", "adam"],
        "batch_norm": [False, True],
    },
    seeds=3,
    quick=Preset(
        overrides={"epochs": 3},
        sweep={
            "data.name": ["synthetic-mnist"],
            "dtype": ["float16", "bfloat16", "float32", "float64"],
            "relu_prime": ["0", "1"],
            "optimizer": ["sgd"],
            "batch_norm": [False, True],
        },
        seeds=2,
    ),
    figures=FIGURES,
    claims=claims,
    summary=summary,
)
def run(config: Config, seed: int) -> Iterator[Any]:
    """Bertoin et al. 2021, ReLU'(0) and backprop: bifurcations per dtype and layer, training curves."""
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        yield from _run(config, seed)
    finally:
        torch.set_num_threads(threads)


def _run(config: Config, seed: int) -> Iterator[Any]:
    dtype = getattr(torch, config.dtype)
    data = load_data(config, dtype)
    trainer = _Trainer(config, data, dtype, seed)
    model = trainer.model
    names = _layer_names(model)
    monitor = KinkMonitor(model)
    published = config.variant == "published"
    order = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    batches = max(n // config.batch_size, 1)
    size = min(config.batch_size, n)
    step = 0
    for epoch in range(config.epochs):
        start = time.perf_counter()
        layers = {name: [0] * 6 for name in names.values()}
        losses = []
        perm = torch.randperm(n, generator=order)
        for b in range(batches):
            index = perm[b * size : (b + 1) * size]
            x, y = data.x_train[index], data.y_train[index]
            with monitor:
                loss = trainer.loss(x, y)
            loss.backward()
            totals = [0, 0, 0, 0]
            hit: set[str] = set()
            for record in monitor.summary():
                # the published rule hands α down at every exact kink whatever the cotangent: all bifurcate
                bif = record.exact_kinks if published else record.bifurcating_kinks
                row = layers[names[record.site]]
                for i, v in enumerate((record.elements, record.exact_kinks, record.near_kinks, bif)):
                    row[2 + i] += v
                    totals[i] += v
                if bif > 0:
                    hit.add(names[record.site])
            for name, row in layers.items():
                row[0] += 1
                row[1] += name in hit
            monitor.reset()
            value = float(loss.detach())
            losses.append(value)
            yield Step(epoch, step, value, totals[0], totals[1], totals[2], totals[3], totals[3] > 0)
            scheduled = config.probe_every > 0 and step % config.probe_every == 0
            if scheduled or (config.probe_kinks and totals[1] > 0):
                yield _probe(trainer, x, y, config, epoch, step, scheduled)
            trainer.update()
            step += 1
        test_loss, test_accuracy = trainer.evaluate(data.x_test, data.y_test)
        for name, row in layers.items():
            yield LayerEpoch(epoch, name, *row)
        train_loss = sum(losses) / max(len(losses), 1)
        yield Epoch(epoch, train_loss, test_loss, test_accuracy, time.perf_counter() - start)
