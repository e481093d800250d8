"""The value-preserving surrogate that every kink op is built on.

A kink op returns PyTorch's own forward value, bit for bit, and changes only the derivative at the
kink. It does so without a custom ``autograd.Function``: at the kink it returns

    value.detach() + signed_zero(slope * (x - x.detach()))

whose value is ``value`` (the added term is exactly ``-0.0``, and ``v + (-0.0) == v`` for every ``v``,
``-0.0`` included) and whose derivative is ``slope``. Plain ``where`` / arithmetic survives every
transform: eager backward, forward-mode AD, ``torch.func``, ``vmap`` and ``torch.compile``.

The surrogate is only built where it can matter. :func:`trace_mode` tells whether a derivative is
being recorded at all and whether data-dependent shortcuts are allowed (they are not under
``torch.compile`` or ``torch.func`` transforms), so an eager step that meets no kink runs PyTorch's op
and nothing else but one comparison.
"""

from __future__ import annotations

import enum

import torch
import torch.autograd.forward_ad as _fwad
from torch import Tensor


class Trace(enum.Enum):
    """How a kink op must treat the current call."""

    NONE = 0  #: no derivative is recorded: run PyTorch's op
    EAGER = 1  #: eager autograd: build the surrogate only if a kink is hit (data-dependent check allowed)
    ALWAYS = 2  #: a transform or compiler is tracing: always build the surrogate, no data-dependent checks


def trace_mode(*tensors: Tensor | None) -> Trace:
    """Classify the current call; ``tensors`` are the op's differentiable tensor inputs."""
    if torch.compiler.is_compiling():
        return Trace.ALWAYS
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return Trace.ALWAYS
    if _fwad._current_level >= 0:
        return Trace.ALWAYS
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return Trace.EAGER
    return Trace.NONE


def needs_rule(mode: Trace, kinks: Tensor) -> bool:
    """Whether the surrogate must be built, given the boolean mask (or count) of kinks hit."""
    if mode is Trace.NONE:
        return False
    if mode is Trace.ALWAYS:
        return True
    return any_true(kinks)


def any_true(mask: Tensor) -> bool:
    """``bool(mask.any())``, fast: a boolean ``any`` is a slow kernel on CPU, a byte ``amax`` is not."""
    if mask.numel() == 0:
        return False
    if mask.dtype == torch.bool:
        return bool(mask.view(torch.uint8).amax())
    return bool(mask.any())


def signed_zero(z: Tensor) -> Tensor:
    """``-0.0`` wherever ``z`` is ``±0``, with derivative 1: ``-(0 - z)``.

    Adding it to a value never changes the value's bits, not even the sign of a zero.
    """
    return torch.neg(torch.sub(0.0, z))


def zero_tangent(x: Tensor) -> Tensor:
    """Exactly ``0`` with derivative 1 wherever ``x`` is finite, and derivative 0 elsewhere.

    Multiplying it by weights never produces NaN, even next to ``inf`` or NaN inputs.
    """
    safe = torch.where(torch.isfinite(x), x, torch.zeros((), dtype=x.dtype, device=x.device))
    return safe - safe.detach()


def zero_weight(weight: object) -> bool:
    """Is ``weight`` a plain number 0 (known without data)? Such a term is left out of a surrogate
    rather than multiplied in: an infinite cotangent times it would be NaN."""
    return isinstance(weight, float | int) and not isinstance(weight, bool) and weight == 0


def weighted(weights: Tensor, tangent: Tensor) -> Tensor:
    """``weights · tangent``, with no cotangent reaching ``tangent`` where a weight is 0: there an
    infinite cotangent times the zero weight would be NaN, where PyTorch's own derivative gives 0."""
    return torch.where(weights != 0, weights * tangent, 0)


def carry(value: Tensor, tangent: Tensor) -> Tensor:
    """``value``'s bits with ``tangent``'s derivative (``tangent`` must be exactly zero-valued)."""
    return value.detach() + signed_zero(tangent)


def at_kinks(value: Tensor, mask: Tensor, tangent: Tensor) -> Tensor:
    """``value`` where ``mask`` is false; at the kinks, ``value``'s bits with ``tangent``'s derivative."""
    return torch.where(mask, carry(value, tangent), value)


def straight_through(value: Tensor, surrogate: Tensor) -> Tensor:
    """``value``'s bits with the derivative of ``surrogate``, a function equal to ``value`` in exact math.

    Where ``value`` is not finite the derivative is PyTorch's own.
    """
    return torch.where(torch.isfinite(value), carry(value, zero_tangent(surrogate)), value)
