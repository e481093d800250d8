"""Small step rules on lists of tensors, each with a plain loop and a ``torch._foreach_*`` twin.

The optimizers are short recipes over these pieces; nothing here knows about param groups. A prox has no
foreach twin: :func:`prox_` applies it per tensor (one in-place kernel each for the separable operators),
and :func:`step_prox_` fuses a gradient step with an elementwise prox slice by slice on CPU, so that the
prox reads what the step has just written from cache rather than from main memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence

import torch
from torch import Tensor

from ..prox import Prox

__all__ = [
    "adam_denominators",
    "adam_moments_",
    "add_scaled_",
    "addcdiv_",
    "addcmul_",
    "buckets",
    "copy_",
    "evaluate",
    "grads_of",
    "heavy_ball_",
    "lerp_",
    "nesterov",
    "prox_",
    "reciprocal_scaled",
    "sq_norm",
    "step_prox_",
]

# Slice size of step_prox_ (bytes of one parameter slice): the step writes the slice, the prox then
# finds it in L2/L3. Larger slices fall out of cache, smaller ones pay two kernel launches per slice.
SLICE_BYTES = 2 << 20


def evaluate(closure: Callable[[], float] | None) -> float | None:
    """Run the closure with gradients enabled (``step`` itself runs under ``no_grad``); ``None`` if none."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def grads_of(owner: str, params: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """The parameters that have a gradient, and those gradients (sparse gradients are refused)."""
    with_grad: list[Tensor] = []
    grads: list[Tensor] = []
    for p in params:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            raise ValueError(
                f"{owner}: sparse gradients are not supported (parameter of shape {tuple(p.shape)})"
            )
        with_grad.append(p)
        grads.append(g)
    return with_grad, grads


def buckets(keys: Sequence[Hashable], n: int) -> dict[Hashable, list[int]]:
    """Indices ``0..n-1`` grouped by key, in first-seen order (one bucket when all keys agree)."""
    out: dict[Hashable, list[int]] = defaultdict(list)
    for i in range(n):
        out[keys[i]].append(i)
    return out


def add_scaled_(ys: list[Tensor], xs: list[Tensor], alpha: float, foreach: bool) -> None:
    """``y += alpha * x`` for each pair (the gradient step)."""
    if foreach:
        torch._foreach_add_(ys, xs, alpha=alpha)
    else:
        for y, x in zip(ys, xs):
            y.add_(x, alpha=alpha)


def copy_(dsts: list[Tensor], srcs: list[Tensor], foreach: bool) -> None:
    """``dst <- src`` for each pair."""
    if foreach:
        torch._foreach_copy_(dsts, srcs)
    else:
        for d, s in zip(dsts, srcs):
            d.copy_(s)


def lerp_(ys: list[Tensor], xs: list[Tensor], weight: float, foreach: bool) -> None:
    """``y += weight * (x - y)`` for each pair (a running weighted average)."""
    if foreach:
        torch._foreach_lerp_(ys, xs, weight)
    else:
        for y, x in zip(ys, xs):
            y.lerp_(x, weight)


def sq_norm(xs: list[Tensor]) -> float:
    """:math:`\\sum_i \\|x_i\\|_2^2` as a Python float, reading each tensor once.

    On CPU, contiguous float32/float64 tensors use ``torch.dot`` (BLAS), faster and more accurate there
    than ``torch.linalg.vector_norm`` for large float32 tensors. On an accelerator one fused
    ``torch._foreach_norm`` per device and dtype, and one synchronisation each. The result does not depend on
    ``foreach``, so both paths of an optimizer take identical steps.
    """
    total = 0.0
    by_device: dict[tuple[torch.device, torch.dtype], list[Tensor]] = defaultdict(list)
    for x in xs:
        if x.device.type != "cpu":
            by_device[(x.device, x.dtype)].append(x)
        elif x.dtype in (torch.float32, torch.float64) and x.is_contiguous():
            flat = x.view(-1)
            total += float(torch.dot(flat, flat))
        else:
            total += (
                float(torch.linalg.vector_norm(x, dtype=torch.promote_types(x.dtype, torch.float32))) ** 2
            )
    for group in by_device.values():
        dtype = torch.promote_types(group[0].dtype, torch.float32)
        norms = torch.stack(torch._foreach_norm(group, 2, dtype=dtype)).double()
        total += float(norms.square().sum())
    return total


def heavy_ball_(
    bufs: list[Tensor | None], grads: list[Tensor], momentum: float, dampening: float, foreach: bool
) -> list[Tensor]:
    """``buf <- momentum * buf + (1 - dampening) * g`` (``buf <- g`` on the first step); return the buffers.

    ``None`` entries are created in place in ``bufs``, exactly like ``torch.optim.SGD``.
    """
    fresh = [i for i, b in enumerate(bufs) if b is None]
    old = [i for i, b in enumerate(bufs) if b is not None]
    for i in fresh:
        bufs[i] = torch.clone(grads[i]).detach()
    if old:
        old_bufs = [bufs[i] for i in old]
        old_grads = [grads[i] for i in old]
        if foreach:
            torch._foreach_mul_(old_bufs, momentum)  # type: ignore[arg-type]
            torch._foreach_add_(old_bufs, old_grads, alpha=1.0 - dampening)  # type: ignore[arg-type]
        else:
            for b, g in zip(old_bufs, old_grads):
                b.mul_(momentum).add_(g, alpha=1.0 - dampening)  # type: ignore[union-attr]
    return [b for b in bufs if b is not None]


def nesterov(grads: list[Tensor], bufs: list[Tensor], momentum: float, foreach: bool) -> list[Tensor]:
    """The Nesterov direction ``g + momentum * buf`` (new tensors)."""
    if foreach:
        return list(torch._foreach_add(grads, bufs, alpha=momentum))
    return [g.add(b, alpha=momentum) for g, b in zip(grads, bufs)]


def adam_moments_(
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    grads: list[Tensor],
    beta1: float,
    beta2: float,
    foreach: bool,
) -> None:
    """``m <- beta1 m + (1 - beta1) g`` and ``v <- beta2 v + (1 - beta2) g^2`` (Adam's own ops)."""
    if foreach:
        torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
    else:
        for m, v, g in zip(exp_avgs, exp_avg_sqs, grads):
            m.lerp_(g, 1.0 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)


def adam_denominators(
    exp_avg_sqs: list[Tensor], bias_correction2: float, eps: float, foreach: bool
) -> list[Tensor]:
    """``sqrt(v) / sqrt(bias_correction2) + eps``, as ``torch.optim.Adam`` computes it (new tensors)."""
    root = bias_correction2**0.5
    if foreach:
        denoms = list(torch._foreach_sqrt(exp_avg_sqs))
        torch._foreach_div_(denoms, root)
        torch._foreach_add_(denoms, eps)
        return denoms
    return [(v.sqrt() / root).add_(eps) for v in exp_avg_sqs]


def reciprocal_scaled(xs: list[Tensor], scale: float, foreach: bool) -> list[Tensor]:
    """``scale / x`` for each tensor (as ``reciprocal`` then ``mul``, in both paths)."""
    if foreach:
        out = list(torch._foreach_reciprocal(xs))
        torch._foreach_mul_(out, scale)
        return out
    return [x.reciprocal().mul_(scale) for x in xs]


def addcmul_(ys: list[Tensor], a: list[Tensor], b: list[Tensor], value: float, foreach: bool) -> None:
    """``y += value * a * b`` for each triple."""
    if foreach:
        torch._foreach_addcmul_(ys, a, b, value=value)
    else:
        for y, u, w in zip(ys, a, b):
            y.addcmul_(u, w, value=value)


def addcdiv_(ys: list[Tensor], a: list[Tensor], b: list[Tensor], value: float, foreach: bool) -> None:
    """``y += value * a / b`` for each triple."""
    if foreach:
        torch._foreach_addcdiv_(ys, a, b, value=value)
    else:
        for y, u, w in zip(ys, a, b):
            y.addcdiv_(u, w, value=value)


def prox_(params: list[Tensor], prox: Prox | None, steps: float | Sequence[Tensor]) -> None:
    """Apply ``prox.prox_`` to each parameter in place, with a shared scalar step or one tensor step each."""
    if prox is None:
        return
    if isinstance(steps, float):
        for p in params:
            prox.prox_(p, steps)
    else:
        for p, s in zip(params, steps):
            prox.prox_(p, s)


def step_prox_(
    params: list[Tensor],
    directions: list[Tensor],
    alpha: float,
    prox: Prox | None,
    step: float,
    foreach: bool,
) -> None:
    """``p <- prox(p + alpha * d, step)`` for each pair: a gradient step, then the prox with a scalar step.

    Without a prox this is :func:`add_scaled_`. With an :attr:`~kinkgrad.prox.Prox.elementwise` prox, a
    contiguous CPU parameter larger than :data:`SLICE_BYTES` is done slice by slice (views of the
    flattened tensor): each slice is stepped and then proxed while it is still in cache, so the parameter
    makes one round trip through main memory instead of two. Each coordinate goes through the same two
    kernels as in the whole-tensor path, so the result is the same. Everything else (other devices,
    strided tensors, small tensors, non-elementwise operators) takes :func:`add_scaled_` then
    :func:`prox_`.
    """
    if prox is None or not prox.elementwise:
        add_scaled_(params, directions, alpha, foreach)
        prox_(params, prox, step)
        return
    rest_params: list[Tensor] = []
    rest_directions: list[Tensor] = []
    for p, d in zip(params, directions):
        size = max(SLICE_BYTES // p.element_size(), 1)
        if p.device.type != "cpu" or p.numel() <= size or not (p.is_contiguous() and d.is_contiguous()):
            rest_params.append(p)
            rest_directions.append(d)
            continue
        for p_slice, d_slice in zip(p.view(-1).split(size), d.view(-1).split(size)):
            p_slice.add_(d_slice, alpha=alpha)
            prox.prox_(p_slice, step)
    if rest_params:
        add_scaled_(rest_params, rest_directions, alpha, foreach)
        prox_(rest_params, prox, step)
