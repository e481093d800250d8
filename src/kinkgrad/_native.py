"""Fused CPU passes for kink masks and counts, compiled from ``_kernels.c`` when kinkgrad is installed.

PyTorch's eager CPU operators run one kernel per operation, so a count such as "exact kinks whose
cotangent is nonzero" costs three passes over memory (a cast, a logical and, a byte sum) and a max-pool
tie check twelve. Each function here does the same work in one pass (two for :func:`near`), on
contiguous float32 or float64 CPU tensors, with the result defined by the same IEEE comparisons as the
PyTorch expression it stands for (``tests/test_native.py`` checks every one against that expression).

Every function returns ``None`` when it does not apply (another dtype or device, a non-contiguous or
subclassed tensor, or no compiled extension: kinkgrad built without a C compiler); the caller then
runs its PyTorch operators, which give the same answer.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import torch
from torch import Tensor, nn

_VERSION = 12
"""The version of ``_kernels.c`` this module calls (its ``VERSION``)."""


def compiled(name: str, version: int, meanwhile: str) -> Any:
    """kinkgrad's compiled extension ``kinkgrad.<name>`` (from ``src/kinkgrad/<name>.c``), or ``None``:
    not built (no C compiler at install), or built from another version of its source than ``version``
    (an install not rebuilt since the source changed: a warning says so, and ``meanwhile`` what runs
    instead)."""
    try:
        module = importlib.import_module(f"kinkgrad.{name}")
    except ImportError:
        return None
    if getattr(module, "VERSION", None) != version:
        warnings.warn(
            f"kinkgrad's {name} was built from another version of src/kinkgrad/{name}.c; it is not used "
            f"({meanwhile}) until kinkgrad is reinstalled: `pip install -e .`, or `make` in a checkout",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return module


_kernels = compiled(
    "_kernels", _VERSION, "kinkgrad runs the same computations as PyTorch operators, more slowly"
)

__all__ = [
    "Span",
    "any_equal",
    "available",
    "count",
    "equal",
    "equal_span",
    "first_maxima",
    "hits",
    "near",
    "pool_scatter",
    "pool_ties",
    "pool_values",
    "put",
    "relu_backward",
    "relu_bits",
    "tied_windows",
    "unpack_bits",
]

_WIDE = {torch.float32: False, torch.float64: True}
_PLAIN = (Tensor, nn.Parameter)


def available() -> bool:
    """Whether the compiled passes were built (``False``: kinkgrad falls back to PyTorch operators)."""
    return _kernels is not None


def _flat(t: Tensor) -> bool:
    """A plain, contiguous CPU tensor whose memory holds its values as they are: not a subclass, nor a
    ``torch.func`` wrapper (which has no storage of its own), nor a lazily negated view."""
    return (
        type(t) in _PLAIN
        and t.is_cpu
        and t.is_contiguous()
        and not t.is_neg()
        and not torch._C._functorch.is_functorch_wrapped_tensor(t)
    )


def _wide(data: Tensor, *same: Tensor, masks: tuple[Tensor, ...] = ()) -> bool | None:
    """Whether ``data`` is float64 (else float32), when a pass can read it, the tensors ``same`` (of its
    dtype) and the bool ``masks`` directly (every one plain, contiguous and on the CPU); ``None`` when
    it cannot, or when the passes were not built. (Plain loops: this runs on every routed call.)"""
    wide = _WIDE.get(data.dtype)
    if _kernels is None or wide is None or not _flat(data):
        return None
    for t in same:
        if t.dtype != data.dtype or not _flat(t):
            return None
    for m in masks:
        if m.dtype != torch.bool or not _flat(m):
            return None
    return wide


def any_equal(x: Tensor, point: float) -> bool | None:
    """Whether some entry of ``x`` equals ``point`` (rounded to ``x``'s dtype), reading ``x`` only up to
    the first block that holds one and writing nothing; ``None`` where the pass does not apply."""
    wide = _wide(x)
    if wide is None:
        return None
    return bool(_kernels.any_equal(x.data_ptr(), x.numel(), float(point), wide))


def equal(x: Tensor, point: float, out: Tensor | None = None) -> tuple[Tensor, int] | None:
    """The bool mask ``x == point`` (``point`` rounded to ``x``'s dtype), written into ``out`` (shaped
    like ``x``; default: a new tensor), and how many of its entries are true; ``None``, writing nothing,
    where the pass does not apply."""
    wide = _wide(x) if out is None else _wide(x, masks=(out,))
    if wide is None or (out is not None and out.shape != x.shape):
        return None
    if out is None:
        out = torch.empty(x.shape, dtype=torch.bool)
    hits: int = _kernels.equal(x.data_ptr(), x.numel(), float(point), out.data_ptr(), wide)
    return out, hits


class Span:
    """What one pass of :func:`equal_span` learnt of ``|x|``: its zeros, its largest finite entry, and the
    smallest nonzero entry of each block of ``_kernels.BLOCK`` entries, so that :meth:`near` counts the
    entries near 0 reading only the few blocks that hold one."""

    __slots__ = ("_largest", "_minima", "_wide", "_x", "zeros")

    def __init__(self, x: Tensor, zeros: int, largest: int, minima: Tensor, wide: bool) -> None:
        self._x, self.zeros, self._largest, self._minima, self._wide = x, zeros, largest, minima, wide

    def near(self, rel: float) -> int:
        """Entries with ``|x| <= tol``, as :func:`near`: ``tol = rel * s`` rounded to ``x``'s dtype, ``s``
        the largest finite ``|x|`` (0 when there is none); NaN is never near."""
        inside: int = _kernels.near_blocks(
            self._x.data_ptr(),
            self._x.numel(),
            self._largest,
            float(rel),
            self._minima.data_ptr(),
            self._wide,
        )
        return self.zeros + inside


def equal_span(x: Tensor, out: Tensor | None = None) -> tuple[Tensor, Span] | None:
    """The bool mask ``x == 0``, written into ``out`` (shaped like ``x``; default: a new tensor), and the
    :class:`Span` of ``|x|`` from the same pass (its ``zeros``: the mask's true entries; ``x`` must not
    change while the span is used); ``None``, writing nothing, where the pass does not apply."""
    wide = _wide(x) if out is None else _wide(x, masks=(out,))
    if wide is None or (out is not None and out.shape != x.shape):
        return None
    if out is None:
        out = torch.empty(x.shape, dtype=torch.bool)
    blocks = -(-x.numel() // _kernels.BLOCK)
    minima = torch.empty(blocks, dtype=torch.int64 if wide else torch.int32)
    zeros, largest = _kernels.equal_span(x.data_ptr(), x.numel(), out.data_ptr(), minima.data_ptr(), wide)
    return out, Span(x, zeros, largest, minima, wide)


def count(mask: Tensor) -> int | None:
    """``True`` entries of a bool tensor; ``None`` where the pass does not apply."""
    if _kernels is None or mask.dtype != torch.bool or not _flat(mask):
        return None
    result: int = _kernels.count(mask.data_ptr(), mask.numel())
    return result


def near(offset: Tensor, rel: float) -> int | None:
    """Entries with ``|offset| <= tol``, where ``tol = rel * s`` rounded to ``offset``'s dtype and ``s`` is
    the largest finite ``|offset|`` (0 when there is none); NaN is never near. ``None`` where the pass
    does not apply."""
    wide = _wide(offset)
    if wide is None:
        return None
    result: int = _kernels.near(offset.data_ptr(), offset.numel(), float(rel), wide)
    return result


def hits(grad: Tensor, mask: Tensor) -> int | None:
    """Entries where the bool ``mask`` is true and ``grad`` is nonzero (NaN included), for ``mask`` of
    ``grad``'s shape; ``None`` where the pass does not apply."""
    wide = _wide(grad, masks=(mask,))
    if wide is None or mask.shape != grad.shape:
        return None
    result: int = _kernels.hits(grad.data_ptr(), mask.data_ptr(), grad.numel(), wide)
    return result


def put(out: Tensor, grad: Tensor, mask: Tensor, slope: float) -> bool:
    """In place, ``out = slope * grad`` where the bool ``mask`` is true (``slope`` rounded to ``out``'s
    dtype; a zero slope puts 0, never ``0 * inf``), every other entry untouched; all three of one
    shape, ``out`` not sharing ``grad``'s memory. ``False``, changing nothing, where the pass does not
    apply."""
    wide = _wide(out, grad, masks=(mask,))
    if (
        wide is None
        or not (out.shape == grad.shape == mask.shape)
        or (out.numel() > 0 and out.untyped_storage().data_ptr() == grad.untyped_storage().data_ptr())
    ):
        return False
    _kernels.put(out.data_ptr(), grad.data_ptr(), mask.data_ptr(), out.numel(), float(slope), wide)
    return True


def relu_bits(x: Tensor, bits: Tensor) -> tuple[Tensor, int] | None:
    """PyTorch's ``relu(x)`` (a new tensor) and, from the same pass, its kinks ``x == 0`` as bits: bit
    ``i % 8`` of ``bits[i // 8]`` (a uint8 tensor of ``ceil(x.numel() / 8)`` entries) for entry ``i``
    of ``x`` in memory order, with how many are set; ``None``, writing nothing, where the pass does
    not apply. :func:`unpack_bits` turns the bits into a bool mask."""
    wide = _wide(x)
    if wide is None or bits.dtype != torch.uint8 or not _flat(bits) or bits.numel() != -(-x.numel() // 8):
        return None
    out = torch.empty(x.shape, dtype=x.dtype)
    hits: int = _kernels.relu_bits(x.data_ptr(), out.data_ptr(), bits.data_ptr(), x.numel(), wide)
    return out, hits


def tied_windows(bits: Tensor, entries: int) -> Tensor:
    """The bool mask, shaped like ``bits``, of windows whose maximum is attained twice or more, from the
    bits of :func:`pool_values` for windows of ``entries`` entries (two or more of those bits clear)."""
    maxima = bits.bitwise_not().bitwise_and_((1 << entries) - 1)
    return maxima.bitwise_and(maxima - 1).bool()


def first_maxima(bits: Tensor, kernel: tuple[int, int], width: int) -> Tensor:
    """PyTorch's max-pool indices (flat within each plane of ``width`` columns) of non-overlapping
    ``kernel`` windows from the bits of :func:`pool_values`: each window's first maximum (its lowest
    clear bit), as PyTorch's pool keeps the first of equal maxima."""
    (kh, kw), (oh, ow) = kernel, bits.shape[-2:]
    first = _FIRST_CLEAR.to(bits.device)[bits.long()]
    rows = torch.arange(oh, device=bits.device).view(-1, 1) * kh + first // kw
    return rows * width + torch.arange(ow, device=bits.device) * kw + first % kw


_FIRST_CLEAR = torch.tensor([next(i for i in range(9) if not b >> i & 1) for b in range(256)])
"""Per byte value, its lowest clear bit."""


def unpack_bits(bits: Tensor, shape: torch.Size) -> Tensor:
    """The bool mask of ``shape`` whose entry ``i`` (in memory order) is bit ``i % 8`` of ``bits[i // 8]``,
    as :func:`relu_bits` writes them (PyTorch operators: for the rare paths that need a mask)."""
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
    return (
        bits.unsqueeze(-1)
        .bitwise_right_shift(shifts)
        .bitwise_and_(1)
        .bool()
        .flatten()[: shape.numel()]
        .view(shape)
    )


def relu_backward(
    grad: Tensor, output: Tensor, mask: Tensor | None, slope: float, out: Tensor | None = None
) -> Tensor | None:
    """relu's backward with ``slope`` at its kinks: ``slope * grad`` where ``mask`` is set (0 for a zero
    slope), else PyTorch's ``threshold_backward(grad, output, 0)`` (0 where ``output <= 0``, ``grad``
    elsewhere), written into ``out`` (of ``grad``'s shape and dtype, sharing no memory with the others;
    default: a new tensor); ``None``, writing nothing, where the pass does not apply. ``mask``: a bool
    tensor of ``grad``'s shape, the bits of :func:`relu_bits`, or ``None`` (no kink)."""
    wide = _wide(grad, output) if out is None else _wide(grad, output, out)
    if wide is None or grad.shape != output.shape or (out is not None and out.shape != grad.shape):
        return None
    n = grad.numel()
    if mask is None:
        address, bits = 0, True
    elif mask.dtype == torch.bool and mask.shape == grad.shape and _flat(mask):
        address, bits = mask.data_ptr(), False
    elif mask.dtype == torch.uint8 and mask.numel() == -(-n // 8) and _flat(mask):
        address, bits = mask.data_ptr(), True
    else:
        return None
    if out is None:
        out = torch.empty(grad.shape, dtype=grad.dtype)
    _kernels.relu_backward(
        out.data_ptr(), grad.data_ptr(), output.data_ptr(), address, n, float(slope), wide, bits
    )
    return out


def _pool_geometry(
    x: Tensor, value: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[int, ...] | None:
    """``(planes, H, W, OH, OW, kh, kw, sh, sw)`` of a 2-D max-pool of ``x`` (``[..., H, W]``) into
    ``value`` with no padding or dilation, or ``None`` where a pass cannot read it (windows that
    overhang the input included)."""
    if x.dim() < 2 or value.dim() != x.dim() or len(kernel) != 2 or len(stride) != 2:
        return None
    (kh, kw), (sh, sw) = kernel, stride
    (h, w), (oh, ow) = x.shape[-2:], value.shape[-2:]
    if (
        x.shape[:-2] != value.shape[:-2]
        or min(kh, kw, sh, sw) < 1
        or (oh and (oh - 1) * sh + kh > h)
        or (ow and (ow - 1) * sw + kw > w)
    ):
        return None
    planes = value.numel() // max(oh * ow, 1)
    return planes, h, w, oh, ow, kh, kw, sh, sw


def pool_ties(
    x: Tensor, value: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[Tensor, int] | None:
    """For ``value``, the max-pool of ``x`` (``[..., H, W]``) by ``kernel`` windows at ``stride`` with no
    padding or dilation: the bool mask, shaped like ``value``, of windows whose finite maximum is attained
    twice or more, and how many there are. ``None`` where the pass does not apply (windows that overhang
    the input included)."""
    wide = _wide(x, value)
    geometry = None if wide is None else _pool_geometry(x, value, kernel, stride)
    if geometry is None:
        return None
    out = torch.empty(value.shape, dtype=torch.bool)
    tied: int = _kernels.ties(x.data_ptr(), value.data_ptr(), *geometry, out.data_ptr(), wide)
    return out, tied


def pool_values(
    x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: Tensor, out: Tensor
) -> int | None:
    """The max-pool of ``x`` (``[..., H, W]``) by ``kernel`` windows of at most 8 entries at ``stride``,
    with no padding or dilation, and its tie positions, in one pass: writes into ``value`` (of ``x``'s
    dtype, shaped like the pool) the windows' maxima, equal to PyTorch's CPU max-pool bit for bit (of
    equal entries, ``+0`` and ``-0`` included, the first in window order), and into ``out`` (``uint8``,
    shaped like ``value``) one byte per window whose bit ``i`` is set where entry ``i`` (window order, row
    by row) is not its maximum; returns how many windows attain their maximum twice or more. ``None``
    where the pass does not apply (windows that overhang the input included), or where a window holds
    NaN or its maximum is not finite (``value`` and ``out`` are then undefined)."""
    wide = _wide(x, value)
    geometry = None if wide is None else _pool_geometry(x, value, kernel, stride)
    if (
        geometry is None
        or kernel[0] * kernel[1] > 8
        or out.dtype != torch.uint8
        or not _flat(out)
        or out.shape != value.shape
    ):
        return None
    tied: int = _kernels.values(x.data_ptr(), *geometry, value.data_ptr(), out.data_ptr(), wide)
    return None if tied < 0 else tied


def pool_scatter(
    grad: Tensor,
    bits: Tensor,
    shape: torch.Size,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    rule: str,
) -> Tensor | None:
    """The gradient, shaped ``shape``, of the input of a max-pool as in :func:`pool_values` (whose
    ``bits`` give each window's maxima) with non-overlapping windows: ``grad`` sent to each window's
    maxima, ``"split"`` evenly (``grad / count``), or to the ``"last"`` or the ``"first"`` (PyTorch's own
    choice), and 0 elsewhere, in a new tensor. ``None`` where the pass does not apply."""
    if rule not in _SCATTER_RULES or not (kernel[0] <= stride[0] and kernel[1] <= stride[1]):
        return None
    grad = grad.contiguous()
    wide = _wide(grad)
    if wide is None or bits.dtype != torch.uint8 or not _flat(bits) or bits.shape != grad.shape:
        return None
    grad_input = torch.empty(shape, dtype=grad.dtype)
    geometry = _pool_geometry(grad_input, grad, kernel, stride)
    if geometry is None:
        return None
    _, h, w, oh, ow, kh, kw, sh, sw = geometry
    if (kh, kw, oh * sh, ow * sw) != (sh, sw, h, w):  # (the pass writes the entries of windows only)
        grad_input.zero_()
    _kernels.scatter(
        grad.data_ptr(), bits.data_ptr(), *geometry, _SCATTER_RULES[rule], grad_input.data_ptr(), wide
    )
    return grad_input


_SCATTER_RULES = {"split": 0, "last": 1, "first": 2}
