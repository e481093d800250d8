"""Step-time benchmarks of :mod:`kinkgrad.optim` against ``torch.optim.SGD`` (``step()`` only).

The gradients come from one forward/backward and are kept, so both arms do the same work on the same
sizes every call. Both optimizers use ``foreach=True`` on a 10M-parameter float32 MLP, timed side by
side with :func:`benchmarks._timing.interleaved` (alternating order, medians). The targets apply to
these ``step()`` times; nothing is moved out of ``step()`` into the backward pass.

What bounds the ratios on CPU: ``SGD`` makes one read-modify-write pass over the parameters, reading
the gradients, and on one core that pass is bound by main memory. ``ProxSGD(prox=L1)`` adds the
soft-thresholding kernel on every coordinate. It runs slice by slice (2 MiB views) right after the
gradient step of the slice, so its data come from cache and the memory traffic is SGD's, but the
kernel's own arithmetic is not free: the detail gives its cost on cache-resident data, the floor of
any eager (one kernel per operation) implementation, and the time against the whole-tensor path.
``Subgradient(schedule="polyak")`` needs :math:`\\|g\\|^2` before any parameter moves, so it reads the
gradients once more (``torch.dot``): the detail gives that pass alone, the floor of the Polyak step.
It also reports what computing :math:`\\|g_i\\|^2` in a post-accumulate-grad hook during
``backward()`` costs: if the gradient were still in cache there, that would be cheaper; measured, it
is not, so the optimizer does not do it.

Two more rows, for information (no target), time whole training iterations (zero the gradients,
forward at batch 64, backward, step) with each optimizer against the same iteration with SGD: what the
extra passes cost a training loop, where the forward and backward passes dominate.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from benchmarks._timing import interleaved
from kinkgrad.optim import ProxSGD, Subgradient, _rules
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


def _batch(width: int) -> torch.Tensor:
    return torch.randn(64, width, generator=torch.Generator().manual_seed(1))


def _twins(width: int) -> tuple[nn.Module, nn.Module, float]:
    """Two identical models holding identical gradients from one forward/backward, and the loss."""
    models = []
    loss_value = 0.0
    for _ in range(2):
        model = _model(width, seed=0)
        loss = model(_batch(width)).square().mean()
        loss.backward()
        loss_value = float(loss.detach())
        models.append(model)
    return models[0], models[1], loss_value


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _hot_prox_pass(params: Sequence[torch.Tensor], prox: L1, step: float, repeats: int) -> float:
    """Seconds the prox takes over ``params`` when every slice is already in cache (an estimate).

    One slice of :data:`kinkgrad.optim._rules.SLICE_BYTES` is proxed over and over (so it stays in
    cache); its median time is scaled to the number of coordinates.
    """
    total = sum(p.numel() for p in params)
    size = min(_rules.SLICE_BYTES // 4, total)
    piece = torch.randn(size, generator=torch.Generator().manual_seed(2))
    samples = []
    for i in range(repeats + 3):
        start = time.perf_counter_ns()
        prox.prox_(piece, step)
        if i >= 3:
            samples.append((time.perf_counter_ns() - start) * 1e-9)
        piece.add_(1e-3)  # keep the values off zero
    return statistics.median(samples) * total / size


def _unsliced_step(opt: ProxSGD) -> None:
    """``opt.step()`` with slicing switched off: every tensor stepped whole, then proxed whole."""
    saved = _rules.SLICE_BYTES
    _rules.SLICE_BYTES = 1 << 62
    try:
        opt.step()
    finally:
        _rules.SLICE_BYTES = saved


def _norm_in_hook_vs_after(width: int, rounds: int) -> tuple[float, float]:
    """Median seconds of the |g_i|^2 reads done in post-accumulate-grad hooks, and of the same reads
    done once ``backward()`` has returned (where ``step()`` does them), measured on the same iterations.
    """
    model = _model(width, seed=0)
    x = _batch(width)
    params = list(model.parameters())
    in_hook = [0.0]

    def hook(p: torch.Tensor) -> None:
        start = time.perf_counter_ns()
        _rules.sq_norm([p.grad])  # type: ignore[list-item]
        in_hook[0] += (time.perf_counter_ns() - start) * 1e-9

    handles = [p.register_post_accumulate_grad_hook(hook) for p in params]
    hooks, after = [], []
    try:
        for i in range(rounds + 2):
            model.zero_grad(set_to_none=True)
            in_hook[0] = 0.0
            model(x).square().mean().backward()
            start = time.perf_counter_ns()
            _rules.sq_norm([p.grad for p in params])  # type: ignore[misc]
            if i >= 2:
                after.append((time.perf_counter_ns() - start) * 1e-9)
                hooks.append(in_hook[0])
    finally:
        for h in handles:
            h.remove()
    return statistics.median(hooks), statistics.median(after)


def _prox_sgd_row(width: int, repeats: int) -> dict[str, object]:
    ours, base, _ = _twins(width)
    params = list(ours.parameters())
    l1 = L1(1e-4)
    prox_sgd = ProxSGD(params, lr=1e-3, prox=l1, foreach=True)
    sgd = torch.optim.SGD(base.parameters(), lr=1e-3, foreach=True)
    timing = interleaved(sgd.step, prox_sgd.step, repeats=repeats, warmup=3)
    hot = _hot_prox_pass(params, l1, 1e-3, repeats)
    del base, sgd
    whole, _, _ = _twins(width)
    unsliced = ProxSGD(whole.parameters(), lr=1e-3, prox=l1, foreach=True)
    slicing = interleaved(lambda: _unsliced_step(unsliced), prox_sgd.step, repeats=repeats, warmup=3)
    return {
        "name": "optim: ProxSGD(prox=L1) step vs torch.optim.SGD step",
        "ratio": timing.ratio,
        "target": 1.15,
        "detail": f"{timing.describe('SGD', 'ProxSGD')}; {_where(params)}; the soft-threshold kernel alone, "
        f"on slices already in cache, takes about {_ms(hot)} over all parameters "
        f"({hot / timing.baseline_s:.2f} SGD steps): the part of the ratio no eager implementation "
        "(one kernel per operation) removes; against the whole-tensor path (step every tensor, then "
        f"prox it) the sliced step takes {slicing.ratio:.2f} of its time "
        f"({_ms(slicing.baseline_s)} -> {_ms(slicing.candidate_s)}, a separate interleaved run)",
    }


def _polyak_row(width: int, repeats: int, hook_rounds: int) -> dict[str, object]:
    ours, base, loss_value = _twins(width)
    loss = torch.tensor(loss_value)

    def closure() -> float:
        return loss  # type: ignore[return-value]

    params = list(ours.parameters())
    polyak = Subgradient(params, lr=1.0, schedule="polyak", f_min=0.0, foreach=True)
    sgd = torch.optim.SGD(base.parameters(), lr=1e-3, foreach=True)
    timing = interleaved(lambda: sgd.step(closure), lambda: polyak.step(closure), repeats=repeats, warmup=3)
    grads = [p.grad for p in params if p.grad is not None]
    norm = interleaved(lambda: sgd.step(closure), lambda: _rules.sq_norm(grads), repeats=repeats, warmup=3)
    hook_s, after_s = _norm_in_hook_vs_after(width, hook_rounds)
    return {
        "name": "optim: Subgradient(schedule='polyak') step vs torch.optim.SGD step",
        "ratio": timing.ratio,
        "target": 1.10,
        "detail": f"{timing.describe('SGD', 'Polyak')}; {_where(params)}; both get the same closure (a "
        "fixed loss, so the best-iterate copy happens only on the first call); the |g|^2 pass alone, "
        f"which must end before any parameter moves, takes {_ms(norm.candidate_s)} against SGD steps of "
        f"{_ms(norm.baseline_s)} (ratio {norm.ratio:.2f}, a separate interleaved run); done in "
        f"post-accumulate-grad hooks during backward() it takes {_ms(hook_s)} against "
        f"{_ms(after_s)} right after backward() on the same iterations (the gradient is not in cache "
        "there either), so moving it there would hide its cost from step(), not remove it: not done",
    }


def _training_closure(
    model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor
) -> Callable[[], torch.Tensor]:
    """Least squares against fixed random targets: the weights stay of order one over the rounds (a
    loss that drives the outputs to 0 would shrink activations into subnormal floats, whose
    arithmetic is many times slower on x86, in whichever arm shrinks them faster)."""

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=False)  # gradient buffers kept: no fresh 40 MB per iteration
        loss = (model(x) - target).square().mean()
        loss.backward()
        return loss

    return closure


def _iteration_row(
    width: int, repeats: int, label: str, make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
) -> dict[str, object]:
    """A whole training iteration with an optimizer against the same iteration with SGD: the closure
    zeroes the gradients, runs the forward pass (batch 64) and ``backward()``, and each optimizer's
    ``step(closure)`` calls it, as ``torch.optim`` closures do. What an optimizer adds to a training loop,
    beside the ``step()``-only rows; information, no target (the issue's targets are read as
    ``step()`` alone). Both optimizers step the same model in turn: with one model per arm, where each
    arm's 80 MB of parameters and gradients happened to land in memory moved whole iterations by up to
    40 %, consistently within a run and differently from run to run."""
    x = _batch(width)
    model = _model(width, seed=0)  # one model, stepped by both optimizers in turn (see below)
    target = torch.randn(x.shape[0], (width * 25) // 16, generator=torch.Generator().manual_seed(3))
    optimizer = make(list(model.parameters()))
    sgd = torch.optim.SGD(model.parameters(), lr=1e-3, foreach=True)
    ours_closure = _training_closure(model, optimizer, x, target)
    base_closure = _training_closure(model, sgd, x, target)
    timing = interleaved(
        lambda: sgd.step(base_closure), lambda: optimizer.step(ours_closure), repeats=repeats, warmup=2
    )
    return {
        "name": f"optim: training iteration (zero_grad, forward, backward, step) with {label} vs SGD",
        "ratio": timing.ratio,
        "target": None,
        "detail": f"{timing.describe('SGD', label)}; "
        f"{_where(list(model.parameters()), 'whole iterations at batch 64')}: what the optimizer adds "
        "to a training loop; information, no target",
    }


def _where(params: Sequence[torch.Tensor], timed: str = "step() only") -> str:
    size = sum(p.numel() for p in params)
    return f"{size / 1e6:.2f}M float32 parameters in {len(params)} tensors, foreach=True, {timed}"


def run(quick: bool) -> list[dict[str, object]]:
    """Time the optimizer steps against ``torch.optim.SGD``; one record per comparison.

    Args:
        quick: A 1M-parameter model and fewer rounds (a smoke run) instead of 10M parameters.

    Returns:
        Dicts with ``name``, ``ratio`` (median step time kinkgrad / SGD), ``target`` and ``detail``.
    """
    width = 320 if quick else 1024
    repeats = 20 if quick else 60
    rows = [_prox_sgd_row(width, repeats)]
    gc.collect()  # the first row's models are gone before the second is timed
    rows.append(_polyak_row(width, repeats, 5 if quick else 15))
    rounds = 5 if quick else 15
    gc.collect()
    rows.append(
        _iteration_row(
            width, rounds, "ProxSGD(prox=L1)", lambda ps: ProxSGD(ps, lr=1e-3, prox=L1(1e-4), foreach=True)
        )
    )
    gc.collect()
    rows.append(
        _iteration_row(
            width,
            rounds,
            "Subgradient(schedule='polyak', track_best=False)",
            lambda ps: Subgradient(ps, lr=0.5, schedule="polyak", f_min=0.0, foreach=True, track_best=False),
        )
    )
    return rows
