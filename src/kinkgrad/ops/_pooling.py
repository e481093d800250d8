"""Max-pooling with ties: ``max_pool1d/2d/3d`` and ``adaptive_max_pool1d/2d/3d``.

A window whose maximum is attained by several entries is a tie; the Clarke set is the simplex over
those entries. PyTorch sends the whole gradient to the first one (in window order). ``at_kink`` is a
tie rule (``"first"``, ``"last"``, ``"split"``, ``"random"``). Forward values and indices are
PyTorch's own. A window position is a strided slice of the (padded) input for ``max_pool``, and a
gather through index tables for the uneven windows of adaptive pooling, so padding, dilation,
``ceil_mode`` and adaptive windows all follow PyTorch's own geometry. ``"first"`` is PyTorch's own
derivative; in plain eager autograd ``"last"`` and ``"split"`` run a small custom backward.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kinkgrad import _native
from kinkgrad._autodiff import Trace, needs_rule, trace_mode, weighted, zero_tangent
from kinkgrad._observe import active_observer
from kinkgrad._policy import from_policy
from kinkgrad._rules import Chooser, check_tie_rule, tie_weights
from kinkgrad._scratch import keep, scratch
from kinkgrad.ops._selection import _finite_where, _generator

__all__ = [
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
]


def _tuple(v: int | Sequence[int] | None, n: int) -> tuple[int, ...]:
    if v is None:
        return ()
    if isinstance(v, int):
        return (v,) * n
    t = tuple(v)
    return t * n if len(t) == 1 else t


def _window_table(
    starts: Tensor, ends: Tensor, size: int, length: int, dilation: int
) -> tuple[Tensor, Tensor]:
    """Index table ``[out, size]`` into a dim of ``length`` and the mask of real (in-window) entries."""
    pos = starts[:, None] + torch.arange(size, device=starts.device) * dilation
    valid = (pos >= 0) & (pos < length) & (pos < ends[:, None])
    return pos.clamp(0, length - 1), valid


def _windows(t: Tensor, tables: Sequence[Tensor]) -> Tensor:
    """Gather ``[..., L1..Ln]`` into ``[..., O1..On, K1*...*Kn]``."""
    n = len(tables)
    for i in reversed(range(n)):
        d = t.dim() - n + i - (n - 1 - i)  # position of L_i once later dims were split in two
        out, k = tables[i].shape
        t = t.index_select(d, tables[i].flatten()).unflatten(d, (out, k))
    batch = t.dim() - 2 * n
    order = list(range(batch)) + [batch + 2 * i for i in range(n)] + [batch + 2 * i + 1 for i in range(n)]
    return t.permute(order).flatten(batch + n)


def _outer(valids: Sequence[Tensor]) -> Tensor:
    """``[O1..On, K1*...*Kn]`` from per-dim ``[Oi, Ki]`` masks."""
    n = len(valids)
    mask = torch.ones((), dtype=torch.bool, device=valids[0].device)
    for i, v in enumerate(valids):
        shape = [1] * (2 * n)
        shape[i], shape[n + i] = v.shape
        mask = mask & v.reshape(shape)
    return mask.flatten(n)


Windows = Callable[[Tensor, float], list[Tensor]]
"""``windows(t, fill)``: ``t`` (shaped like the input) cut into its window positions: one tensor per
position in window order, each shaped like the output (strided slices of ``t`` where the geometry
allows), entries outside the input filled with ``fill``."""


def _resolve(
    name: str,
    input: Tensor,
    value: Tensor,
    windows: Windows,
    at_kink: Any,
    ties: Callable[[], tuple[Tensor, int] | None] | None = None,
    grid: Grid | None = None,
    indexed: bool = False,
) -> Tensor:
    """``value`` (the pool of ``input``) with its ties resolved by ``at_kink`` and reported to the
    observer. ``ties()``, where given, computes the tied-window mask and its count in one compiled pass
    (``None`` where that does not apply); it serves every eager case that needs no tie positions.
    ``grid``, where given, is the geometry of a pool that compiled passes can read (see :class:`Grid`);
    ``indexed``: PyTorch's pool ran for its indices, so the eager rules' positions pass
    (:func:`_native_rule`) has not been tried yet (:func:`_pooled` tries it otherwise)."""
    watch = active_observer()
    rule = None if at_kink is None else check_tie_rule(at_kink)
    mode = trace_mode(input)
    if (mode is Trace.NONE and watch is None) or input.numel() == 0:
        return value
    if indexed and grid is not None and watch is None and mode is Trace.EAGER and rule in ("last", "split"):
        ruled = _native_rule(input, value, rule, windows, grid)
        if ruled is not None:
            return ruled
    # "first" is PyTorch's own choice (the first maximum in window order; non-finite windows as
    # PyTorch has them): its own derivatives, under every transform, already take it
    applies = rule is not None and rule != "first"
    if mode is Trace.ALWAYS and watch is None:  # a transform builds the rule everywhere: no need to look
        if applies and rule == "split" and grid is not None and grid.tiles(input, value):
            return _split_tiles(input, value, grid)
        return _surrogate(name, input, value, windows(input, -math.inf), windows, rule) if applies else value
    views = windows(input, -math.inf) if applies else None  # (cut lazily: often only ties() needs looking)
    eager = views is not None and _eager_rule(rule, mode, input, value, views)
    fused = None if eager or ties is None or mode is Trace.ALWAYS else ties()
    hit, exact = (None, None) if fused is None else fused
    if hit is None:
        if views is None:
            views = windows(input, -math.inf)
        count, others = _not_max(views, value, positions=eager, reuse=mode is not Trace.ALWAYS)
        hit = _tied(count, len(views))
    out = value
    if applies and needs_rule(mode, hit):
        assert views is not None
        if eager:
            out = _EagerPoolRule.apply(input, value.detach(), others, count, rule, windows)
        else:
            out = _surrogate(name, input, value, views, windows, rule)
    if watch is not None:
        watch.report(name, out, hit, None, exact=exact)
    return out


def _surrogate(
    name: str, input: Tensor, value: Tensor, views: list[Tensor], windows: Windows, rule: Any
) -> Tensor:
    """``value`` with the derivative of the chosen tie weights (any transform, any rule).

    The tangent is summed position by position from strided slices of the input, whose backward (and
    its compiled form) is a cheap strided write, unlike the backward of a window view.
    """
    if rule == "split":
        return _split(input, value, views, windows)
    tied = torch.stack([(view - value).bool().logical_not_() for view in views], -1)
    if isinstance(rule, Chooser):
        w = rule.weights(name, tied, torch.stack(views, -1), None)
    else:
        w = tie_weights(tied, rule, input.dtype, _generator())
    if w is None:
        return value
    tangents = windows(zero_tangent(input), 0.0)
    picked = sum(
        (weighted(w[..., i], tangent) for i, tangent in enumerate(tangents[1:], start=1)),
        weighted(w[..., 0], tangents[0]),
    )
    return _finite_where(value, picked)


@dataclass(frozen=True)
class Grid:
    """A max-pool that the compiled passes read as 2-D (``kernel``, ``stride``; no padding, no dilation):
    a 1-D pool as windows one row high (``lift``: its tensors get that row)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    lift: bool

    def view(self, t: Tensor) -> Tensor:
        return t.unsqueeze(-2) if self.lift else t

    def shape(self, shape: torch.Size) -> torch.Size:
        return torch.Size((*shape[:-1], 1, shape[-1])) if self.lift else shape

    def tiles(self, input: Tensor, value: Tensor) -> bool:
        """Do the windows tile the input exactly (no overlap, no gap, nothing left over)?"""
        (h, w), (oh, ow) = self.shape(input.shape)[-2:], self.shape(value.shape)[-2:]
        return self.kernel == self.stride and (h, w) == (oh * self.kernel[0], ow * self.kernel[1])


def _native_rule(input: Tensor, value: Tensor, rule: str, windows: Windows, grid: Grid) -> Tensor | None:
    """Eager ``"last"`` or ``"split"`` where PyTorch's pool already ran (its indices were asked for): the
    tie positions, one byte per window and all the rule saves, from one compiled pass over the windows
    (:func:`kinkgrad._native.pool_values`, whose recomputed maxima are dropped); ``None`` where that pass
    does not apply. No window tied: ``value`` itself, PyTorch's own derivative."""
    pooled = grid.view(value.detach())
    bits = scratch(pooled, torch.uint8)
    tied = _native.pool_values(grid.view(input.detach()), grid.kernel, grid.stride, scratch(pooled), bits)
    if tied is None:
        return None
    if not tied:
        return value
    others = keep(bits).view(value.shape)
    out: Tensor = _EagerPoolRule.apply(input, value.detach(), others, None, rule, windows, grid)
    return out


def _split(input: Tensor, value: Tensor, views: list[Tensor], windows: Windows) -> Tensor:
    """:func:`_surrogate` for ``"split"``: each finite maximum of a window takes ``grad / count``, ``count``
    its number of maxima, as the eager rule computes it. Position by position, the tangent is kept only
    at a maximum (``where``), so no infinite or NaN entry, tangent or cotangent, meets a zero weight; the
    backward needs the masks and the count, no weights (``torch.compile``'s step saved a float weight
    per window position, and took 1.9 times PyTorch's time, with the stacked form of the other rules)."""
    pooled = value.detach()
    finite = torch.isfinite(pooled)
    at = [(view.detach() == pooled) & finite for view in views]
    count = sum((a.to(input.dtype) for a in at[1:]), at[0].to(input.dtype)).clamp_min(1)
    tangents = windows(input - input.detach(), 0.0)
    zero = torch.zeros((), dtype=input.dtype, device=input.device)
    picked = sum(
        (torch.where(a, t, zero) for a, t in zip(at[1:], tangents[1:])), torch.where(at[0], tangents[0], zero)
    )
    return _finite_where(value, picked / count)


def _split_tiles(input: Tensor, value: Tensor, grid: Grid) -> Tensor:
    """:func:`_split` for windows that tile the input exactly: the input seen as ``[..., OH, kh, OW, kw]``
    (a view), each window's maxima found, counted and weighted there at once, so the backward is one
    pass over the input's gradient as it lies in memory (``torch.compile`` generates a contiguous loop,
    where the per-position form of :func:`_split` makes strided slices and scatters: 1.43 against 1.9x
    PyTorch's CNN step time for that form, with the others' stacked weights)."""
    (kh, kw), x = grid.kernel, grid.view(input)
    oh, ow = grid.shape(value.shape)[-2:]
    tiles = (*x.shape[:-2], oh, kh, ow, kw)
    pooled = grid.view(value.detach()).unsqueeze(-1).unsqueeze(-3)
    at = (x.detach().reshape(tiles) == pooled) & torch.isfinite(pooled)
    count = at.sum((-3, -1), dtype=input.dtype).clamp_min(1)
    zero = torch.zeros((), dtype=input.dtype, device=input.device)
    picked = torch.where(at, (x - x.detach()).reshape(tiles), zero).sum((-3, -1)) / count
    return _finite_where(value, picked.view(value.shape))


def _pooled(n: int, name: str, input: Tensor, rule: str, grid: Grid, ceil_mode: bool) -> Tensor | None:
    """Eager ``"last"`` or ``"split"``, or what an observer counts (``"first"``: PyTorch's own choice),
    from one compiled pass that computes the pool itself (PyTorch's values, bit for bit) with its tie
    positions (:func:`kinkgrad._native.pool_values`): PyTorch's pool is not run, nor its int64 indices
    kept (one byte per window instead), and the backward is :class:`_EagerPoolRule`'s. ``None`` where
    the pass does not apply (then PyTorch's pool runs, and raises on input it rejects): another dtype or
    layout, windows of more than 8 entries or that overhang the input, NaN, a maximum that is not
    finite."""
    if (
        input.dim() not in (n + 1, n + 2)
        or input.numel() == 0  # (PyTorch's pool accepts some empty inputs and rejects others)
        or trace_mode(input) is not Trace.EAGER
    ):
        return None
    x = grid.view(input.detach())
    (h, w), (kh, kw), (sh, sw) = x.shape[-2:], grid.kernel, grid.stride
    if h < kh or w < kw or (ceil_mode and ((h - kh) % sh or (w - kw) % sw)):
        return None  # (no window, or ceil_mode's overhanging last ones)
    value = torch.empty((*x.shape[:-2], (h - kh) // sh + 1, (w - kw) // sw + 1), dtype=input.dtype)
    bits = scratch(value, torch.uint8)
    ties = _native.pool_values(x, grid.kernel, grid.stride, value, bits)
    if ties is None:
        return None
    shape = (*value.shape[:-2], value.shape[-1]) if grid.lift else value.shape
    windows = _strided(n, grid.kernel[-n:], grid.stride[-n:], (0,) * n, (1,) * n, shape[-n:])
    others = keep(bits).view(shape)
    out: Tensor = _EagerPoolRule.apply(input, value.view(shape), others, None, rule, windows, grid)
    watch = active_observer()
    if watch is not None:
        watch.report(name, out, _native.tied_windows(others, kh * kw), None, exact=ties)
    return out


def _eager_rule(rule: Any, mode: Trace, input: Tensor, value: Tensor, views: list[Tensor]) -> bool:
    """Whether :class:`_EagerPoolRule` can apply ``rule``: plain eager autograd, a deterministic rule,
    windows that are strided views of the input (no padding to fill) with at most 31 positions, and
    finite maxima only (elsewhere PyTorch's own choice stands, which the surrogate keeps)."""
    return (
        mode is Trace.EAGER
        and rule in ("first", "last", "split")
        and 1 < len(views) < 32
        and all(v.untyped_storage().data_ptr() == input.untyped_storage().data_ptr() for v in views)
        and math.isfinite(float(value.detach().sum(dtype=torch.float64)))
    )


class _EagerPoolRule(torch.autograd.Function):
    """Eager-only max-pool rule: forward is the pool's value (PyTorch's, or the same values from
    :func:`_pooled`'s pass); backward sends each window's gradient to its tied maxima by ``rule``
    (``"split"``: evenly; ``"last"``: the last in window order; ``"first"``: the first, PyTorch's choice,
    for an observer).

    Saves one bit per window position (which candidates are not the maximum, packed into one integer
    per window) and, unless the backward counts them itself (``count`` None), the count of such
    candidates: less than PyTorch's own int64 indices. With a ``grid`` whose windows do not overlap,
    the backward is one compiled pass (:func:`kinkgrad._native.pool_scatter`) where it applies.
    Eager only, so ``forward`` takes ``ctx`` (as :class:`~kinkgrad.ops._elementwise._EagerRule`'s does).
    """

    @staticmethod
    def forward(
        ctx: Any,
        input: Tensor,
        value: Tensor,
        others: Tensor,
        count: Tensor | None,
        rule: str,
        windows: Windows,
        grid: Grid | None = None,
    ) -> Tensor:
        ctx.save_for_backward(others, count)
        ctx.shape, ctx.rule, ctx.windows, ctx.grid = input.shape, rule, windows, grid
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        others, count = ctx.saved_tensors
        fresh = torch.is_grad_enabled()  # double backward: each write needs a view of the updated tensor
        grid: Grid | None = ctx.grid
        if grid is not None and not fresh:
            # (a new tensor, not a pooled one as the relu rule's: this one would sit idle in its pool
            # through the rest of the backward pass, where PyTorch frees it once the ReLU below used it)
            fused = _native.pool_scatter(
                grid.view(grad), grid.view(others), grid.shape(ctx.shape), grid.kernel, grid.stride, ctx.rule
            )
            if fused is not None:
                return fused.view(ctx.shape), None, None, None, None, None, None
        grad_input = grad.new_zeros(ctx.shape)
        views = ctx.windows(grad_input, 0.0)  # views of grad_input: no padding (see _eager_rule)
        size = len(views)
        if count is None:
            count = sum((others >> bit) & 1 for bit in range(size))

        def view(bit: int) -> Tensor:
            return ctx.windows(grad_input, 0.0)[bit] if fresh else views[bit]

        finite = bool(torch.isfinite(grad).all())

        def add(bit: int, values: Tensor, weight: Tensor) -> None:
            """``view(bit) += values·weight`` for 0/1 ``weight``; masked rather than multiplied where a
            value is not finite (``inf·0`` is NaN, and the other candidates must get 0)."""
            if finite:
                view(bit).addcmul_(values, weight)
            else:
                view(bit).add_(torch.where(weight.bool(), values, 0))

        if ctx.rule == "split":
            share = grad / (size - count).to(grad.dtype)
            for bit in range(size):
                add(bit, share, 1 - ((others >> bit) & 1))
        else:  # "last" ("first"): the last (first) tied candidate of each window takes the whole gradient
            taken = torch.zeros_like(others)
            for bit in reversed(range(size)) if ctx.rule == "last" else range(size):
                chosen = (1 - ((others >> bit) & 1)) * (1 - taken)
                add(bit, grad, chosen)
                taken |= chosen
        return grad_input, None, None, None, None, None, None


def _not_max(
    views: list[Tensor], value: Tensor, positions: bool = False, reuse: bool = False
) -> tuple[Tensor, Tensor]:
    """Per window, how many candidates are not its finite maximum (a window ties when at most
    ``size - 2`` are not), and with ``positions`` which ones, as bits of one integer per window (bit
    ``i`` for the ``i``-th position; an empty tensor otherwise).

    ``candidate - max`` is exactly 0 at a finite maximum and nonzero or NaN elsewhere (``inf - inf``
    and the ``-inf`` fill of padding included); its cast to bool is counted in bytes, one window
    position at a time: each step is one pass over a slice the size of the output, much cheaper than
    ``==`` (a slow kernel on CPU) and a reduction over small, strided window dims. With ``reuse`` (no
    transform is tracing) the per-position temporaries are written into reused buffers
    (:func:`~kinkgrad._scratch.scratch`): fresh pages cost more than the passes.
    """
    wide = len(views) >= 256  # a byte count would overflow
    bits = value.new_empty(0, dtype=torch.uint8)
    if positions:
        bits = torch.zeros(
            value.shape, dtype=torch.uint8 if len(views) <= 8 else torch.int32, device=value.device
        )
    count: Tensor | None = None
    seen = value.detach()
    for bit, view in enumerate(views):
        if reuse:
            diff = torch.sub(view.detach(), seen, out=scratch(seen))
            kept = torch.empty_like(seen, dtype=torch.bool) if count is None else scratch(seen, torch.bool)
            other = kept.copy_(diff).view(torch.uint8)
        else:
            other = (view - value).bool().view(torch.uint8)
        if positions:
            bits.add_(other, alpha=1 << bit)  # the bits are disjoint: adding is or-ing
        if wide:
            other = other.to(torch.int32)
        count = other if count is None else count.add_(other)
    assert count is not None
    return count, bits


def _tied(count: Tensor, size: int) -> Tensor:
    """``count < size - 1`` for the per-window counts of :func:`_not_max` (at most ``size``): windows whose
    maximum is attained twice or more. As ``(size - 1 - min(count, size - 1)).bool()``: three integer
    passes, many times cheaper on CPU than one comparison kernel."""
    top = size - 1
    return torch.rsub(count.clamp(max=top), top).bool()


def _window_ties(x: Tensor, value: Tensor, kernel: tuple[int, int]) -> Tensor:
    """Non-overlapping 2-D windows (stride = kernel, no padding) of ``x``, whose max-pool is ``value``:
    ``True`` where a window's finite maximum is attained twice or more (the per-position count of
    :func:`_not_max`: four strided passes for 2x2 windows, measured faster on CPU than de-interleaving
    the window rows or columns first), or one compiled pass (:func:`kinkgrad._native.pool_ties`)."""
    fused = _native.pool_ties(x, value, kernel, kernel)
    if fused is not None:
        return fused[0]
    views = _strided(2, kernel, kernel, (0, 0), (1, 1), value.shape[-2:])(x, -math.inf)
    count, _ = _not_max(views, value, reuse=True)
    return _tied(count, len(views))


def _gathered(tables: Sequence[tuple[Tensor, Tensor]]) -> Windows:
    """Windows from index tables (any geometry, e.g. the uneven windows of adaptive pooling)."""
    index = [t for t, _ in tables]
    valid = _outer([v for _, v in tables])

    def windows(t: Tensor, fill: float) -> list[Tensor]:
        full = torch.full((), fill, dtype=t.dtype, device=t.device)
        return list(torch.where(valid, _windows(t, index), full).unbind(-1))

    return windows


def _strided(
    n: int, k: tuple[int, ...], s: tuple[int, ...], p: tuple[int, ...], d: tuple[int, ...], out: Sequence[int]
) -> Windows:
    """Window positions of a max-pool as strided slices of the input (position ``j`` of window ``o``
    along a dim is entry ``o·stride + j·dilation`` of the padded input); padding and ``ceil_mode``
    overhang are filled."""

    def windows(t: Tensor, fill: float) -> list[Tensor]:
        pads: list[int] = []
        for i in reversed(range(n)):
            length = t.shape[t.dim() - n + i]
            span = (out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1
            pads += [p[i], max(0, span - p[i] - length)]
        if any(pads):
            t = F.pad(t, pads, value=fill)
        lead = (slice(None),) * (t.dim() - n)
        return [
            t[
                lead
                + tuple(slice(j * d[i], j * d[i] + (out[i] - 1) * s[i] + 1, s[i]) for i, j in enumerate(js))
            ]
            for js in itertools.product(*(range(k_i) for k_i in k))
        ]

    return windows


def _max_pool(
    n: int,
    native: Any,
    input: Tensor,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
    return_indices: bool,
    at_kink: Any,
) -> Any:
    at_kink = from_policy(native.__name__, at_kink)
    if (at_kink is None and active_observer() is None) or not input.is_floating_point():
        return native(
            input, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=return_indices
        )
    k = _tuple(kernel_size, n)
    s = _tuple(stride, n) or k
    p, d = _tuple(padding, n), _tuple(dilation, n)
    grid = None
    if n < 3 and not any(p) and all(di == 1 for di in d):
        # a 1-D pool is a 2-D pool of windows one row high
        grid = Grid((1, k[0]), (1, s[0]), True) if n == 1 else Grid((k[0], k[1]), (s[0], s[1]), False)
        # the pool and its tie check in one pass, where a rule or an observer (a monitor) needs the ties
        observed = at_kink in (None, "first") and active_observer() is not None
        if not return_indices and (observed or (isinstance(at_kink, str) and at_kink in ("last", "split"))):
            pooled = _pooled(n, native.__name__, input, at_kink or "first", grid, ceil_mode)
            if pooled is not None:
                return pooled
    value, indices = native(
        input, kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True
    )
    windows = _strided(n, k, s, p, d, value.shape[-n:])
    ties = None
    if grid is not None:
        ties = partial(
            _native.pool_ties, grid.view(input.detach()), grid.view(value.detach()), grid.kernel, grid.stride
        )
    out_value = _resolve(native.__name__, input, value, windows, at_kink, ties, grid, return_indices)
    return (out_value, indices) if return_indices else out_value


def max_pool1d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    at_kink: Any = None,
) -> Any:
    """``F.max_pool1d`` with ties in a window resolved by ``at_kink`` (PyTorch: first entry)."""
    args = (input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, at_kink)
    return _max_pool(1, F.max_pool1d, *args)


def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    at_kink: Any = None,
) -> Any:
    """``F.max_pool2d`` with ties in a window resolved by ``at_kink`` (PyTorch: first entry).

    Example:
        >>> x = torch.ones(1, 1, 2, 2, requires_grad=True)
        >>> max_pool2d(x, 2, at_kink="split").sum().backward()
        >>> x.grad.flatten()
        tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """
    args = (input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, at_kink)
    return _max_pool(2, F.max_pool2d, *args)


def max_pool3d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    at_kink: Any = None,
) -> Any:
    """``F.max_pool3d`` with ties in a window resolved by ``at_kink`` (PyTorch: first entry)."""
    args = (input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, at_kink)
    return _max_pool(3, F.max_pool3d, *args)


def _adaptive(
    n: int, native: Any, input: Tensor, output_size: Any, return_indices: bool, at_kink: Any
) -> Any:
    at_kink = from_policy(native.__name__, at_kink)
    if (at_kink is None and active_observer() is None) or not input.is_floating_point():
        return native(input, output_size, return_indices=return_indices)
    value, indices = native(input, output_size, return_indices=True)
    tables = []
    for i in range(n):
        length, out = input.shape[-n + i], value.shape[-n + i]
        j = torch.arange(out, device=input.device)
        starts = torch.div(j * length, out, rounding_mode="floor")
        ends = torch.div((j + 1) * length + out - 1, out, rounding_mode="floor")
        size = max(math.ceil((jj + 1) * length / out) - (jj * length) // out for jj in range(out))
        tables.append(_window_table(starts, ends, size, length, 1))
    out_value = _resolve(native.__name__, input, value, _gathered(tables), at_kink)
    return (out_value, indices) if return_indices else out_value


def adaptive_max_pool1d(
    input: Tensor, output_size: Any, return_indices: bool = False, *, at_kink: Any = None
) -> Any:
    """``F.adaptive_max_pool1d`` with window ties resolved by ``at_kink`` (PyTorch: first entry)."""
    return _adaptive(1, F.adaptive_max_pool1d, input, output_size, return_indices, at_kink)


def adaptive_max_pool2d(
    input: Tensor, output_size: Any, return_indices: bool = False, *, at_kink: Any = None
) -> Any:
    """``F.adaptive_max_pool2d`` with window ties resolved by ``at_kink`` (PyTorch: first entry)."""
    return _adaptive(2, F.adaptive_max_pool2d, input, output_size, return_indices, at_kink)


def adaptive_max_pool3d(
    input: Tensor, output_size: Any, return_indices: bool = False, *, at_kink: Any = None
) -> Any:
    """``F.adaptive_max_pool3d`` with window ties resolved by ``at_kink`` (PyTorch: first entry)."""
    return _adaptive(3, F.adaptive_max_pool3d, input, output_size, return_indices, at_kink)
