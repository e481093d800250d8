"""Elementwise kink ops: PyTorch's forward values, the derivative at each kink chosen by ``λ``.

Every op takes ``at_kink``: ``None`` keeps PyTorch's (or the active policy's) derivative; a number
``λ`` (or a tensor of them, broadcastable to the input) gives ``(1 - λ)·left + λ·right`` at the kink,
where left/right are the one-sided derivatives. The mask of inputs at a kink is taken in the forward
pass from the input (not the output: ``relu``'s own backward cannot tell ``x = 0`` from ``x < 0``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kinkgrad import _native
from kinkgrad._autodiff import (
    Trace,
    any_true,
    needs_rule,
    signed_zero,
    straight_through,
    trace_mode,
    zero_weight,
)
from kinkgrad._observe import active_observer, silenced
from kinkgrad._policy import from_policy
from kinkgrad._rules import Chooser, check_lambda
from kinkgrad._scratch import keep, scratch

__all__ = [
    "abs",
    "celu",
    "clamp",
    "clamp_max",
    "clamp_min",
    "elu",
    "hardshrink",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "leaky_relu",
    "prelu",
    "relu",
    "relu6",
    "rrelu",
    "selu",
    "softshrink",
    "threshold",
]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@dataclass(frozen=True)
class Kink:
    """A kink of a scalar function at ``point`` with one-sided derivatives ``left`` and ``right``."""

    point: float
    left: float | Tensor
    right: float | Tensor


def _apply(
    name: str,
    x: Tensor,
    f: Callable[[Tensor], Tensor],
    kinks: Sequence[Kink],
    at_kink: Any,
    pure: bool = True,
    grad_from_output: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """PyTorch's ``f(x)``, with the derivative at each kink set by ``at_kink`` (``pure``: ``f`` has no
    differentiable input but ``x``; ``grad_from_output(grad, f(x))``: ``f``'s own backward computed
    from its output, 0 at the kinks, as ``relu``'s is).

    Under transforms the surrogate is ``f(where(m, x.detach(), x)) + signed_zero(s·d)`` with
    ``d = where(m, x - x.detach(), 0)`` (``x`` clamped to finite values first; exactly 0; derivative 1
    at the kinks, where the mask ``m`` is true, and 0 elsewhere) and ``s`` the chosen slope: the first
    term has ``f``'s value and derivative away from kinks and none at them, the second adds ``s`` at
    them and adds exactly ``-0.0`` to the value. Both select rather than multiply, so an infinite
    cotangent never meets a zero (``inf·0`` is NaN): not ``f``'s own derivative at a kink, nor a zero
    slope (whose term is left out), nor the zero slopes away from the kinks.
    When ``f``'s own derivative is 0 at its kinks (``grad_from_output`` given, as for ``relu``), the
    first term is ``f(x)`` itself.
    In plain eager autograd (no transform can be active there) a small ``autograd.Function`` does the
    same with fewer kernels and less saved memory: :class:`_EagerRule` (and, for ``relu`` of
    :data:`_FUSED_RELU_MIN` entries or more, :class:`_ReluRule`: one compiled pass each way).
    """
    at_kink = from_policy(name, at_kink)
    watch = active_observer()
    if (at_kink is None and watch is None) or not x.is_floating_point():
        return f(x)
    lam = None if at_kink is None else check_lambda(at_kink)
    mode = trace_mode(x)
    kinks = [k for k in kinks if -math.inf < k.point < math.inf]  # (NaN and ±inf bounds: no kink)
    if not kinks or (mode is Trace.NONE and watch is None):
        return f(x)
    if (
        watch is None
        and grad_from_output is _relu_grad
        and mode is Trace.EAGER
        and isinstance(lam, float)
        and x.numel() >= _FUSED_RELU_MIN
    ):
        fused = _relu_rule(x, float(_slope(kinks[0], lam, x)))
        if fused is not None:
            return fused
    exact: int | None = None
    span: _native.Span | None = None
    if watch is None:
        masks = _kink_masks(x, kinks, mode)
    else:
        masks, exact, span = _observed_masks(x, kinks, mode)
    if masks is None:
        return f(x)  # the common eager case: one cheap pass over x, PyTorch's own op and derivative
    mask = masks[0]
    for m in masks[1:]:
        mask = mask | m
    # without an observer the masks only come back when a kink is hit (or a transform is tracing);
    # without a choice (an observer alone) nothing depends on it
    hit = lam is not None and (watch is None or needs_rule(mode, mask))
    if isinstance(lam, Chooser) and hit:
        lam = lam.lambdas(name, x, mask)
    if lam is not None and hit and mode is Trace.EAGER and pure and isinstance(lam, float):
        slopes = [float(_slope(k, lam, x)) for k in kinks]
        out = _EagerRule.apply(x, masks, slopes, f, grad_from_output)
    elif lam is not None and hit:
        # f's own derivative is 0 at its kinks (grad_from_output) or is cut off there (where)
        out = f(x) if grad_from_output is not None else f(torch.where(mask, x.detach(), x))
        # a zero slope adds nothing: its kinks are left out, where no infinite cotangent can meet it
        chosen = [
            (s, m) for s, m in ((_slope(k, lam, x), m) for k, m in zip(kinks, masks)) if not zero_weight(s)
        ]
        if chosen:
            slope = sum((s * m.to(x.dtype) for s, m in chosen), torch.zeros((), dtype=x.dtype))
            sloped = (
                mask
                if len(chosen) == len(kinks)
                else functools.reduce(torch.logical_or, [m for _, m in chosen])
            )
            # x is clamped first: the same values, and measured far faster under torch.compile than
            # where(mask, x - x.detach(), 0) (compiled MLP step 1.07 against 1.54 times plain PyTorch's)
            finite = torch.finfo(x.dtype).max
            xc = x.clamp(-finite, finite)
            out = out + signed_zero(slope * torch.where(sloped, xc - xc.detach(), 0))
    else:
        out = f(x)
    if watch is not None:
        seen = x.detach()
        if len(kinks) == 1:
            offset = seen if kinks[0].point == 0 else seen - kinks[0].point
        else:  # the distance to the nearest kink (an offset of the same size)
            offset = torch.stack([(seen - k.point).abs() for k in kinks]).amin(0)
        watch.report(name, out, mask, offset, exact, span)
    return out


_BY_SUBTRACTION = 2.0**-4
"""Kink points at least this far from 0 are found by subtraction: for such a ``point``, ``x - point`` is
exactly 0 only where ``x == point`` (the nearest other value of any floating dtype is then a normal
number away, so not even flushed denormals make it 0)."""


def _differs(x: Tensor, point: float, reuse: bool = False) -> Tensor | None:
    """The boolean mask ``x != point`` (true at NaN) without a comparison kernel, several times slower
    on CPU than a subtraction and a float-to-bool cast; ``None`` for points too close to 0 but not 0
    (compare those). With ``reuse`` it is written into a reused buffer (consume it before the next).
    """
    seen = x.detach()
    if point != 0:
        if -_BY_SUBTRACTION < point < _BY_SUBTRACTION:  # (this module defines its own abs)
            return None
        seen = torch.sub(seen, point, out=scratch(seen)) if reuse else seen - point
    return scratch(x, torch.bool).copy_(seen) if reuse else seen.bool()


def _observed_masks(
    x: Tensor, kinks: Sequence[Kink], mode: Trace
) -> tuple[list[Tensor], int | None, _native.Span | None]:
    """For an observer: one mask per kink (``x == kink.point``), how many entries are at a kink (kinks
    are distinct points, so the masks are disjoint), and, for one kink at 0 (whose offset the op reports
    is ``x`` itself), the :class:`~kinkgrad._native.Span` of ``|x|``, each ``None`` where no compiled
    pass gave it. In eager mode each mask is one compiled pass (:func:`kinkgrad._native.equal`,
    or :func:`~kinkgrad._native.equal_span` at 0) where it applies, else the negated :func:`_differs`,
    or a comparison; under a transform, comparisons."""
    if mode is Trace.ALWAYS:
        return [x == k.point for k in kinks], None, None
    seen = x.detach()
    if len(kinks) == 1 and kinks[0].point == 0:
        spanned = _native.equal_span(seen, scratch(seen, torch.bool))
        if spanned is not None:
            mask, span = spanned
            return [keep(mask)], span.zeros, span  # (an observer may hold on to the mask)
    masks: list[Tensor] = []
    total: int | None = 0
    for k in kinks:
        fused = _native.equal(seen, k.point)
        if fused is not None:
            masks.append(fused[0])
            total = None if total is None else total + fused[1]
            continue
        differs = _differs(x, k.point)
        masks.append(x == k.point if differs is None else differs.logical_not_())
        total = None
    if len({k.point for k in kinks}) < len(kinks):
        total = None  # (a point met twice would be counted twice)
    return masks, total, None


def _kink_masks(x: Tensor, kinks: Sequence[Kink], mode: Trace) -> list[Tensor] | None:
    """One mask per kink (``x == kink.point``), or ``None`` when, in eager mode, no element of ``x`` is
    at any kink: one cheap pass over ``x`` and a byte reduction per kink decide whether a rule is needed
    at all. Under a transform (whose traces cannot branch on data) the masks always come back, as
    comparisons that a compiler fuses.
    """
    if mode is Trace.ALWAYS:
        return [x == k.point for k in kinks]
    masks = [_hit_mask(x, k.point) for k in kinks]
    if all(m is None for m in masks):
        return None
    return [torch.zeros_like(x, dtype=torch.bool) if m is None else m for m in masks]


def _hit_mask(x: Tensor, point: float) -> Tensor | None:
    """The mask ``x == point`` if some element is at ``point``, else ``None`` (eager only).

    Where the compiled passes apply, one pass that writes nothing first says whether any element is
    at ``point`` (:func:`kinkgrad._native.any_equal`; it stops at the first block that holds one): the
    usual answer, no kink, costs one read of ``x``. The mask is then written into a reused buffer by
    a second compiled pass that also counts it (:func:`kinkgrad._native.equal`), and the buffer handed
    to the caller (:func:`~kinkgrad._scratch.keep`). Elsewhere it is the mask of :func:`_differs`,
    copied out negated."""
    if x.numel() == 0:
        return None
    seen = x.detach()
    if _native.any_equal(seen, point) is False:
        return None
    fused = _native.equal(seen, point, scratch(seen, torch.bool))
    if fused is not None:
        mask, hits = fused
        return keep(mask) if hits else None
    differs = _differs(x, point, reuse=True)
    if differs is None:
        mask = x == point
        return mask if any_true(mask) else None
    return None if bool(differs.view(torch.uint8).amin()) else torch.logical_not(differs)


class _EagerRule(torch.autograd.Function):
    """Eager-only rule: forward is ``f``; backward is ``f``'s own except at the kinks, where it is the
    chosen slope times the incoming gradient.

    Saves the kink masks (one byte per element) and, for ``f``'s own backward, the output when
    ``grad_from_output`` computes it from there (``relu``: the tensor PyTorch saves too, so the rule
    keeps nothing alive that plain autograd would free), else the input (``f``'s backward is then
    recomputed).

    Never used under ``torch.compile``, ``torch.func`` or forward-mode AD (see :func:`trace_mode`),
    where a custom rule could be bypassed: there the arithmetic surrogate of :func:`_apply` runs.
    So ``forward`` takes ``ctx`` itself, without the ``setup_context`` that only ``torch.func`` needs:
    ``Function.apply`` then skips binding the arguments to ``forward``'s signature
    (``inspect.signature``) on every call, 90-145 us of a CNN training step's relu calls (measured
    in the step, where the interpreter's caches are cold).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        masks: list[Tensor],
        slopes: list[float],
        f: Callable[[Tensor], Tensor],
        grad_from_output: Callable[[Tensor, Tensor], Tensor] | None,
    ) -> Tensor:
        output = f(x)
        ctx.save_for_backward(x if grad_from_output is None else output, *masks)
        ctx.slopes, ctx.f, ctx.grad_from_output = slopes, f, grad_from_output
        return output

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        saved, *masks = ctx.saved_tensors
        create = torch.is_grad_enabled()  # double backward (create_graph=True): keep the graph
        if ctx.grad_from_output is _relu_grad and len(masks) == 1 and not create:
            # both steps in one pass, into a reused buffer: a fresh 6 MB gradient costs more in page faults
            # than the pass itself (its memory returns to the pool once autograd has consumed it)
            fused = _native.relu_backward(grad, saved, masks[0], ctx.slopes[0], scratch(grad))
            if fused is not None:
                return keep(fused), None, None, None, None
        if ctx.grad_from_output is not None:
            out = ctx.grad_from_output(grad, saved)  # 0 at the kinks: the slope's share goes there
        else:
            with torch.enable_grad():
                leaf = saved if create and saved.requires_grad else saved.detach().requires_grad_()
                (out,) = torch.autograd.grad(ctx.f(leaf), leaf, grad, create_graph=create)
        for m, s in zip(masks, ctx.slopes):
            out = _put_at_kinks(out, grad, m, s, create)
        return out, None, None, None, None


_FUSED_RELU_MIN = 2**18
"""Entries from which :class:`_ReluRule` serves ``relu`` (a pass over fewer costs less than the Python of
its autograd node: measured on an MLP's 256 x 512 activations, neither way is faster)."""


def _relu_rule(x: Tensor, slope: float) -> Tensor | None:
    """``relu(x)`` with ``slope`` at its kinks, eager, by :class:`_ReluRule`; ``None`` where its compiled
    pass does not apply (the caller then takes the general path)."""
    bits = scratch(x, torch.uint8, torch.Size((-(-x.numel() // 8),)))
    fused = _native.relu_bits(x, bits)
    if fused is None:
        return None
    out, hits = fused
    result: Tensor = _ReluRule.apply(x, out, keep(bits) if hits else None, slope)
    return result


class _ReluRule(torch.autograd.Function):
    """Eager ``relu`` with a chosen slope at 0, for float32 and float64: the output and the kinks come
    from one compiled pass over ``x`` (:func:`kinkgrad._native.relu_bits`), and the kinks are kept as
    bits, one per element, only when there is one; the backward is one pass too, into a reused buffer
    (as :class:`_EagerRule`'s). Against PyTorch's relu, a training step then reads ``x`` no more often,
    and keeps ``x.numel() / 8`` bytes more at most. As :class:`_EagerRule`, ``forward`` takes ``ctx``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, out: Tensor, bits: Tensor | None, slope: float) -> Tensor:
        ctx.save_for_backward(out, bits)
        ctx.slope = slope
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        output, bits = ctx.saved_tensors
        create = torch.is_grad_enabled()  # double backward (create_graph=True): keep the graph
        if not create:
            fused = _native.relu_backward(grad.contiguous(), output, bits, ctx.slope, scratch(grad))
            if fused is not None:
                return keep(fused), None, None, None
        out = _relu_grad(grad, output)
        if bits is not None:
            out = _put_at_kinks(out, grad, _native.unpack_bits(bits, output.shape), ctx.slope, create)
        return out, None, None, None


def _put_at_kinks(out: Tensor, grad: Tensor, mask: Tensor, slope: float, create: bool) -> Tensor:
    """``slope·grad`` where ``mask`` is true, ``out`` elsewhere: an infinite or NaN ``grad`` away from the
    kinks never reaches ``out`` (as it would through ``out + slope·grad·mask``, where ``inf·0`` is NaN).
    A zero slope puts 0, as PyTorch's own backward formulas select it (``0·inf`` would be NaN there).
    Without a graph to keep, in place on ``out`` in one compiled pass
    (:func:`kinkgrad._native.put`) where it applies."""
    if not create and _native.put(out, grad, mask, slope):
        return out
    return torch.where(mask, grad * slope if slope != 0 else 0.0, out)


def _relu_grad(grad: Tensor, output: Tensor) -> Tensor:
    """``relu``'s own backward, from its output (PyTorch's formula)."""
    return torch.ops.aten.threshold_backward(grad, output, 0)


def _slope(k: Kink, lam: float | Tensor, x: Tensor) -> float | Tensor:
    if isinstance(lam, float) and not isinstance(k.left, Tensor) and not isinstance(k.right, Tensor):
        return (1.0 - lam) * k.left + lam * k.right
    return (1.0 - lam) * _as_tensor(k.left, x) + lam * _as_tensor(k.right, x)


def _as_tensor(v: float | Tensor, x: Tensor) -> Tensor:
    if isinstance(v, Tensor):
        return v.detach().to(x.dtype)
    return torch.scalar_tensor(v, dtype=x.dtype, device=x.device)


def _elementwise(
    name: str,
    x: Tensor,
    inplace: bool,
    at_kink: Any,
    kinks: Sequence[Kink],
    native: Any,
    *args: Any,
    grad_from_output: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """Shared body: ``native(x, *args, inplace=False)`` is PyTorch's op."""
    at_kink = from_policy(name, at_kink)
    watch = active_observer()
    quiet = at_kink is None and watch is None

    def out_of_place(t: Tensor) -> Tensor:
        return native(t, *args, inplace=False)

    if inplace and not quiet and watch is None and x.is_floating_point():
        mode = trace_mode(x)
        if mode is Trace.NONE or (mode is Trace.EAGER and _kink_masks(x, kinks, mode) is None):
            quiet = True  # no rule can apply: PyTorch's own in-place op
    if inplace and (quiet or not x.is_floating_point() or trace_mode(x) is Trace.NONE):
        if not quiet:  # observe on a copy of the input, then let PyTorch work in place
            _apply(name, x, out_of_place, kinks, at_kink)
        return native(x, *args, inplace=True)
    if not inplace:
        return _apply(name, x, out_of_place, kinks, at_kink, grad_from_output=grad_from_output)
    source = x.clone()  # PyTorch's backward may need the input that the copy below overwrites
    return x.copy_(_apply(name, source, out_of_place, kinks, at_kink))


def _bounds(lo: float | None, hi: float | None) -> list[Kink]:
    """Kinks of ``clamp(x, lo, hi)`` with scalar bounds (``relu6`` and ``hardtanh`` too)."""
    if lo is not None and hi is not None:
        if lo > hi:  # PyTorch returns hi everywhere: constant, no kink
            return []
        if lo == hi:
            return [Kink(lo, 0.0, 0.0)]
    kinks = []
    if lo is not None:
        kinks.append(Kink(lo, 0.0, 1.0))
    if hi is not None:
        kinks.append(Kink(hi, 1.0, 0.0))
    return kinks


def relu(input: Tensor, inplace: bool = False, *, at_kink: Any = None) -> Tensor:
    """``max(x, 0)``.

    Clarke set at 0: ``[0, 1]``. PyTorch returns 0 there. ``at_kink=λ`` returns ``λ``.

    Example:
        >>> x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
        >>> relu(x, at_kink=1.0).backward(torch.tensor([3.0, 3.0, 3.0]))
        >>> x.grad
        tensor([0., 3., 3.])
    """
    return _elementwise(
        "relu", input, inplace, at_kink, (Kink(0.0, 0.0, 1.0),), F.relu, grad_from_output=_relu_grad
    )


def leaky_relu(
    input: Tensor, negative_slope: float = 0.01, inplace: bool = False, *, at_kink: Any = None
) -> Tensor:
    """``x if x > 0 else negative_slope·x``.

    Clarke set at 0: between ``negative_slope`` and 1. PyTorch returns ``negative_slope``.
    ``at_kink=λ`` returns ``(1 - λ)·negative_slope + λ``.
    """
    kink = Kink(0.0, negative_slope, 1.0)
    return _elementwise("leaky_relu", input, inplace, at_kink, (kink,), F.leaky_relu, negative_slope)


def prelu(input: Tensor, weight: Tensor, *, at_kink: Any = None) -> Tensor:
    """``x if x > 0 else weight·x`` with a learned slope per channel (dim 1).

    Clarke set at 0 (in ``x``): between ``weight`` and 1; the derivative in ``weight`` is 0 on both
    sides. PyTorch returns ``weight``. ``at_kink=λ`` returns ``(1 - λ)·weight + λ``.
    """
    if weight.numel() == 1 or input.dim() < 2:
        slope = weight.reshape(())
    else:
        slope = weight.reshape((1, -1) + (1,) * (input.dim() - 2))
    kink = Kink(0.0, slope, 1.0)
    return _apply("prelu", input, lambda t: F.prelu(t, weight), (kink,), at_kink, pure=False)


def rrelu(
    input: Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
    *,
    at_kink: Any = None,
) -> Tensor:
    """Randomized leaky relu; in eval mode ``leaky_relu`` with slope ``(lower + upper) / 2``.

    Clarke set at 0 (eval mode): between the slope and 1; PyTorch returns the slope. In training mode
    the slopes are random per element and drawn inside PyTorch's kernel, so no rule can be applied:
    choosing ``at_kink`` there raises.
    """
    if training and at_kink is not None and input.is_floating_point():
        raise NotImplementedError(
            "rrelu in training mode draws its slopes inside PyTorch's kernel, so kinkgrad cannot set its "
            "derivative at 0; use eval mode (training=False), or leave rrelu out of the policy"
        )
    if training:
        return F.rrelu(input, lower, upper, training, inplace)
    # eval mode is leaky_relu with the mean slope (which, unlike rrelu's kernel, also runs under vmap)
    return leaky_relu(input, (lower + upper) / 2, inplace, at_kink=at_kink)


def relu6(input: Tensor, inplace: bool = False, *, at_kink: Any = None) -> Tensor:
    """``min(max(x, 0), 6)``.

    Clarke sets: ``[0, 1]`` at 0 and at 6. PyTorch returns 0 at both. ``at_kink=λ`` returns ``λ`` at 0
    and ``1 - λ`` at 6 (``(1-λ)·left + λ·right`` at each), the same as ``clamp(x, 0, 6)``.
    """
    return _elementwise("relu6", input, inplace, at_kink, _bounds(0.0, 6.0), F.relu6)


def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False, *, at_kink: Any = None
) -> Tensor:
    """``clamp(x, min_val, max_val)``.

    Clarke sets: ``[0, 1]`` at each bound. PyTorch returns 0 at both. ``at_kink=λ`` returns ``λ`` at
    ``min_val`` and ``1 - λ`` at ``max_val``, exactly as :func:`clamp` does.
    """
    return _elementwise(
        "hardtanh", input, inplace, at_kink, _bounds(min_val, max_val), F.hardtanh, min_val, max_val
    )


def clamp(
    input: Tensor,
    min: float | Tensor | None = None,
    max: float | Tensor | None = None,
    *,
    at_kink: Any = None,
) -> Tensor:
    """``min(max(x, min), max)``; bounds are numbers or tensors.

    Clarke sets: ``[0, 1]`` at each bound. PyTorch returns 1 there (the input's derivative), for scalar
    and tensor bounds alike. ``at_kink=λ`` returns ``λ`` at ``min`` and ``1 - λ`` at ``max``; with a
    tensor bound the tie gives ``1 - λ`` (at ``min``) or ``λ`` (at ``max``) to the bound, as
    :func:`~kinkgrad.ops.maximum` and :func:`~kinkgrad.ops.minimum` do.
    """
    return _clamp("clamp", input, min, max, at_kink)


def _clamp(name: str, input: Tensor, min: Any, max: Any, at_kink: Any) -> Tensor:
    at_kink = from_policy(name, at_kink)
    if not isinstance(min, Tensor) and not isinstance(max, Tensor):
        return _apply(name, input, lambda t: torch.clamp(t, min, max), _bounds(min, max), at_kink)
    value = torch.clamp(input, min, max)
    watch = active_observer()
    if (at_kink is None and watch is None) or not input.is_floating_point():
        return value
    lam = None if at_kink is None else check_lambda(at_kink)
    mode = trace_mode(input, *[b for b in (min, max) if isinstance(b, Tensor)])
    if mode is Trace.NONE and watch is None:
        return value
    hit = torch.zeros((), dtype=torch.bool, device=input.device)
    for b in (min, max):
        if b is not None:
            hit = hit | ((input == b) & torch.isfinite(input))
    out = value
    if lam is not None and needs_rule(mode, hit):
        with silenced():
            out = straight_through(value, _clamp_surrogate(input, min, max, lam))
    if watch is not None:
        watch.report(name, out, hit, None)
    return out


def _clamp_surrogate(input: Tensor, min: Any, max: Any, lam: float | Tensor) -> Tensor:
    """``min(max(x, min), max)`` written with kinkgrad's binary ties at ``λ``."""
    from kinkgrad.ops._binary import maximum, minimum

    surrogate = input
    if min is not None:
        surrogate = maximum(
            surrogate, torch.as_tensor(min, dtype=input.dtype, device=input.device), at_kink=lam
        )
    if max is not None:
        surrogate = minimum(
            surrogate, torch.as_tensor(max, dtype=input.dtype, device=input.device), at_kink=lam
        )
    return surrogate


def clamp_min(input: Tensor, min: float | Tensor, *, at_kink: Any = None) -> Tensor:
    """``max(x, min)``: :func:`clamp` with only a lower bound (``clamp(x, min=0)`` is ``relu``)."""
    return _clamp("clamp_min", input, min, None, at_kink)


def clamp_max(input: Tensor, max: float | Tensor, *, at_kink: Any = None) -> Tensor:
    """``min(x, max)``: :func:`clamp` with only an upper bound."""
    return _clamp("clamp_max", input, None, max, at_kink)


def threshold(
    input: Tensor, threshold: float, value: float, inplace: bool = False, *, at_kink: Any = None
) -> Tensor:
    """``x if x > threshold else value``.

    Discontinuous at ``threshold`` unless ``value == threshold`` (then the Clarke set there is
    ``[0, 1]``). PyTorch returns 0 at ``x == threshold``. ``at_kink=λ`` returns ``λ`` (one-sided
    derivatives 0 and 1).
    """
    return _elementwise(
        "threshold", input, inplace, at_kink, (Kink(threshold, 0.0, 1.0),), F.threshold, threshold, value
    )


def abs(input: Tensor, *, at_kink: Any = None) -> Tensor:
    """``|x|``.

    Clarke set at 0: ``[-1, 1]``. PyTorch returns 0 there. ``at_kink=λ`` returns ``2λ - 1``.

    Example:
        >>> x = torch.zeros(2, requires_grad=True)
        >>> abs(x, at_kink=1.0).sum().backward()
        >>> x.grad
        tensor([1., 1.])
    """
    return _apply("abs", input, torch.abs, (Kink(0.0, -1.0, 1.0),), at_kink)


def hardsigmoid(input: Tensor, inplace: bool = False, *, at_kink: Any = None) -> Tensor:
    """``clamp(x/6 + 1/2, 0, 1)``.

    Clarke sets: ``[0, 1/6]`` at -3 and at 3. PyTorch returns 0 at both. ``at_kink=λ`` returns
    ``λ/6`` at -3 and ``(1 - λ)/6`` at 3.
    """
    kinks = (Kink(-3.0, 0.0, 1 / 6), Kink(3.0, 1 / 6, 0.0))
    return _elementwise("hardsigmoid", input, inplace, at_kink, kinks, F.hardsigmoid)


def hardswish(input: Tensor, inplace: bool = False, *, at_kink: Any = None) -> Tensor:
    """``x · hardsigmoid(x)``.

    Clarke sets: ``[-1/2, 0]`` at -3 and ``[1, 3/2]`` at 3. ``at_kink=λ`` returns ``-λ/2`` at -3
    and ``(1 - λ)·3/2 + λ`` at 3.
    """
    return _elementwise(
        "hardswish", input, inplace, at_kink, (Kink(-3.0, 0.0, -0.5), Kink(3.0, 1.5, 1.0)), F.hardswish
    )


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False, *, at_kink: Any = None) -> Tensor:
    """``x if x > 0 else alpha·(exp(x) - 1)``.

    Clarke set at 0: between ``alpha`` and 1 (a single point when ``alpha == 1``). PyTorch returns
    ``alpha`` (the left slope). ``at_kink=λ`` returns ``(1 - λ)·alpha + λ``.
    """
    return _elementwise("elu", input, inplace, at_kink, (Kink(0.0, alpha, 1.0),), F.elu, alpha)


def selu(input: Tensor, inplace: bool = False, *, at_kink: Any = None) -> Tensor:
    """``scale·elu(x, alpha)`` with SELU's constants.

    Clarke set at 0: between ``scale`` and ``scale·alpha`` (about 1.0507 and 1.7581).
    ``at_kink=λ`` returns ``(1 - λ)·scale·alpha + λ·scale``.
    """
    kink = Kink(0.0, _SELU_SCALE * _SELU_ALPHA, _SELU_SCALE)
    return _elementwise("selu", input, inplace, at_kink, (kink,), F.selu)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False, *, at_kink: Any = None) -> Tensor:
    """``max(0, x) + min(0, alpha·(exp(x/alpha) - 1))``.

    Continuously differentiable: both one-sided derivatives at 0 are 1, so every ``λ`` gives 1.
    Registered so that policies and the atlas cover it.
    """
    return _elementwise("celu", input, inplace, at_kink, (Kink(0.0, 1.0, 1.0),), F.celu, alpha)


def _shrink_kinks(lambd: float, inner: float) -> list[Kink]:
    if lambd == 0:  # the identity: no kink
        return []
    return [Kink(-lambd, 1.0, inner), Kink(lambd, inner, 1.0)]


def hardshrink(input: Tensor, lambd: float = 0.5, *, at_kink: Any = None) -> Tensor:
    """``x if |x| > lambd else 0``.

    Discontinuous at ``±lambd`` (one-sided derivatives 1 outside, 0 inside). PyTorch returns 0 there.
    ``at_kink=λ`` returns ``1 - λ`` at ``-lambd`` and ``λ`` at ``lambd``.
    """
    return _apply("hardshrink", input, lambda t: F.hardshrink(t, lambd), _shrink_kinks(lambd, 0.0), at_kink)


def softshrink(input: Tensor, lambd: float = 0.5, *, at_kink: Any = None) -> Tensor:
    """``x - lambd·sign(x) if |x| > lambd else 0``.

    Clarke sets: ``[0, 1]`` at ``±lambd``. PyTorch returns 0 there. ``at_kink=λ`` returns ``1 - λ``
    at ``-lambd`` and ``λ`` at ``lambd``.
    """
    return _apply("softshrink", input, lambda t: F.softshrink(t, lambd), _shrink_kinks(lambd, 0.0), at_kink)
