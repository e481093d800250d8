"""Independent oracles for derivatives at kinks: PyTorch's own gradient at nearby points where the
function is differentiable (the directional limit ``lim ∇f(x + t·d)``, BACKGROUND §2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from kinkgrad._registry import Probe

EPS = 1e-7


def float_inputs(inputs: Sequence[Tensor]) -> list[int]:
    return [i for i, t in enumerate(inputs) if t.is_floating_point()]


def upstream_like(y: Tensor) -> Tensor:
    """A deterministic upstream gradient with no entry equal to 1."""
    return torch.linspace(1.5, 2.5, max(y.numel(), 1), dtype=y.dtype).reshape(y.shape)


def native_grad(probe: Probe, inputs: Sequence[Tensor]) -> list[Tensor]:
    """Plain PyTorch's gradient (no policy) of ``<upstream, call(inputs)>`` w.r.t. the float inputs."""
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    y = values_of(probe.call(*leaves))
    wrt = [leaves[i] for i in float_inputs(leaves)]
    grads = torch.autograd.grad(y, wrt, upstream_like(y), allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for w, g in zip(wrt, grads)]


def values_of(out: Any) -> Tensor:
    """The values of an op's output (``torch.max(x, dim)`` and friends return ``(values, indices)``)."""
    return out.values if hasattr(out, "values") and not isinstance(out, Tensor) else out


def _shifted(inputs: Sequence[Tensor], direction: Sequence[Any], scale: float) -> list[Tensor]:
    floats = float_inputs(inputs)
    out = list(inputs)
    for i, d in zip(floats, direction):
        out[i] = inputs[i] + scale * torch.tensor(d, dtype=inputs[i].dtype).reshape(inputs[i].shape)
    return out


def expected(probe: Probe, inputs: Sequence[Tensor], choice: Any) -> list[Tensor]:
    """The derivative a kinkgrad choice must give at the probe, from PyTorch at perturbed points."""
    if probe.oracle == "lambda":
        (v,) = probe.directions
        plus = native_grad(probe, _shifted(inputs, v, EPS))
        minus = native_grad(probe, _shifted(inputs, v, -EPS))
        return [choice * p + (1 - choice) * m for p, m in zip(plus, minus)]
    grads = [native_grad(probe, _shifted(inputs, d, EPS)) for d in probe.directions]
    rule = "split" if probe.oracle == "split" else choice
    if rule == "first":
        return grads[0]
    if rule == "last":
        return grads[-1]
    assert rule == "split", rule
    return [sum(g[k] for g in grads) / len(grads) for k in range(len(grads[0]))]


def candidates(probe: Probe, inputs: Sequence[Tensor]) -> list[list[Tensor]]:
    """Every Bouligand gradient among the probe's tie-breaking directions."""
    return [native_grad(probe, _shifted(inputs, d, EPS)) for d in probe.directions]
