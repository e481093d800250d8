"""The compiled passes of ``kinkgrad._native`` against the PyTorch expressions they stand for.

Each pass is checked on data built to hit its edge cases: ±0, values one ulp from the point or the
tolerance, subnormals, ±inf, NaN, sizes around the kernels' 4096-entry blocks, and empty tensors; and
each must decline (return ``None``) where it does not apply, so that callers use PyTorch operators.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import kinkgrad
from kinkgrad import _native

FLOATS = [torch.float32, torch.float64]
_BITS = {torch.float32: torch.int32, torch.float64: torch.int64}  # (to compare floats bit for bit)
SIZES = [0, 1, 7, 4095, 4096, 4097, 3 * 4096 + 5]


def test_the_extension_is_built() -> None:
    """``make`` installs kinkgrad with its compiled passes (a C compiler is part of the set-up)."""
    assert _native.available()


def test_a_build_of_another_version_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """An install not rebuilt since ``_kernels.c`` changed: a warning, and PyTorch operators instead."""
    import importlib
    import sys
    import types

    stale = types.ModuleType("kinkgrad._kernels")
    stale.VERSION = _native._VERSION - 1  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kinkgrad._kernels", stale)
    monkeypatch.delattr(kinkgrad, "_kernels", raising=False)
    try:
        with pytest.warns(RuntimeWarning, match="reinstalled"):
            importlib.reload(_native)
        assert not _native.available()
        assert _native.equal(torch.zeros(3), 0.0) is None
    finally:
        monkeypatch.undo()
        importlib.reload(_native)
    assert _native.available()


def _specials(dtype: torch.dtype, point: float) -> Tensor:
    p = torch.tensor(point, dtype=dtype)
    inf = torch.tensor(torch.inf, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    values = [p, torch.nextafter(p, inf), torch.nextafter(p, -inf), -p, 2 * p]
    values += [torch.tensor(v, dtype=dtype) for v in (0.0, -0.0, tiny, tiny / 4, -tiny / 4)]
    values += [torch.tensor(v, dtype=dtype) for v in (torch.inf, -torch.inf, torch.nan, 1.0, -2.5)]
    return torch.stack(values)


def _data(size: int, dtype: torch.dtype, point: float, seed: int) -> Tensor:
    """``size`` entries: the special values, in random order, between random normals."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(size, generator=g, dtype=torch.float64).to(dtype)
    specials = _specials(dtype, point)
    where = torch.randint(0, max(size, 1), (min(size, 4 * len(specials)),), generator=g)
    x[where] = specials.repeat(4)[: len(where)]
    return x


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("point", [0.0, -0.0, 1.0, -3.0, 6.0, 0.5, 1e-3, 1e-30])
@pytest.mark.parametrize("size", SIZES)
def test_equal_is_the_comparison_and_counts_it(dtype: torch.dtype, point: float, size: int) -> None:
    x = _data(size, dtype, point, seed=size)
    fused = _native.equal(x, point)
    assert fused is not None
    mask, hits = fused
    expected = x == point
    assert torch.equal(mask, expected)
    assert hits == int(expected.sum())
    out = torch.ones(x.shape, dtype=torch.bool)
    again = _native.equal(x, point, out)
    assert again is not None and again[0] is out and torch.equal(out, expected) and again[1] == hits


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("point", [0.0, -0.0, 1.0, 1e-3, 1e-30])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("flush_denormal", [False, True])
def test_any_equal_is_whether_the_comparison_holds_anywhere(
    dtype: torch.dtype, point: float, size: int, flush_denormal: bool
) -> None:
    """``(x == point).any()``: on data with the special values, on data with no entry at the point, and
    with one entry at it (or, for 0, one subnormal: equal only when denormals are flushed) placed
    first, last, mid-way, and on each side of the 4096-entry block edges."""
    base = _data(size, dtype, point, seed=size + 3)
    away = base.clone()
    away[base == point] = 2.0
    cases = [base, away]
    for i in sorted({0, size - 1, size // 2, 4095, 4096, 2 * 4096, 2 * 4096 + 1} & set(range(size))):
        one = away.clone()
        one[i] = point
        cases.append(one)
        if point == 0:
            tiny = away.clone()
            tiny[i] = torch.finfo(dtype).tiny / 4
            cases.append(tiny)
    torch.set_flush_denormal(flush_denormal)
    try:
        for x in cases:
            expected = bool((x == point).any())
            assert _native.any_equal(x, point) is expected
    finally:
        torch.set_flush_denormal(False)
    assert not bool((away == point).any()) and (size == 0 or len(cases) > 2)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", SIZES)
def test_count_is_the_sum(dtype: torch.dtype, size: int) -> None:
    g = torch.Generator().manual_seed(size)
    for p in (0.0, 0.37, 1.0):
        mask = torch.rand(size, generator=g) < p
        assert _native.count(mask) == int(mask.sum())


def _near_oracle(x: Tensor, rel: float) -> int:
    """``|x| <= tol`` with ``tol = rel * (largest finite |x|)`` rounded to ``x``'s dtype."""
    a = x.abs()
    finite = a[torch.isfinite(a)]
    scale = float(finite.max()) if finite.numel() else 0.0
    tol = torch.tensor(scale * rel, dtype=x.dtype)
    return int((a <= tol).sum())


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("ulps", [0.0, 4.0, 1e6])
def test_near_counts_within_the_tolerance_of_the_scale(dtype: torch.dtype, size: int, ulps: float) -> None:
    rel = ulps * torch.finfo(dtype).eps
    x = _data(size, dtype, 0.0, seed=size + 1)
    assert _native.near(x, rel) == _near_oracle(x, rel)
    if size:  # entries exactly at the tolerance and one ulp beyond it: the boundary is included
        scale = float(x.abs()[torch.isfinite(x)].max())
        tol = torch.tensor(scale * rel, dtype=dtype)
        x[:2] = torch.stack([tol, torch.nextafter(tol, torch.tensor(torch.inf, dtype=dtype))])[: min(size, 2)]
        x[2:4] = -x[:2][: max(0, min(size, 4) - 2)]
        assert _native.near(x, rel) == _near_oracle(x, rel)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("flush_denormal", [False, True])
def test_equal_span_is_the_comparison_at_zero_and_its_span_counts_near_entries(
    dtype: torch.dtype, size: int, flush_denormal: bool
) -> None:
    """The mask and count of ``x == 0``, and from the span, for any tolerance, the count of :func:`near`:
    on random data with the special values, on data where only one block holds near entries (the other
    blocks are skipped), and on data with no finite, no nonzero or only NaN nonzero entries; also with
    denormals flushed, where PyTorch's ``==`` and ``<=`` read subnormals as 0."""
    eps = torch.finfo(dtype).eps
    cases = [_data(size, dtype, 0.0, seed=size + 9), _data(size, dtype, 1e-3, seed=size + 10)]
    sparse = torch.ones(size, dtype=dtype)
    sparse[size // 2 :: 5000] = 3 * eps  # near at 4 ulps, in one or two blocks
    sparse[::7000] = 0.0
    cases.append(sparse)
    for values in ([0.0, -0.0], [0.0, torch.nan, torch.nan], [torch.inf, -torch.inf, 0.0], [torch.nan]):
        cases.append(torch.tensor(values, dtype=dtype).repeat(max(size // len(values), 1)))
    torch.set_flush_denormal(flush_denormal)
    try:
        for x in cases:
            out = torch.ones(x.shape, dtype=torch.bool)
            for fused in (_native.equal_span(x), _native.equal_span(x, out)):
                assert fused is not None
                mask, span = fused
                expected = x == 0
                assert torch.equal(mask, expected) and span.zeros == int(expected.sum())
                for rel in (0.0, 4 * eps, 1e6 * eps, 1.0, 1e300):
                    assert span.near(rel) == _near_oracle(x, rel), rel
            assert mask is out  # (written into the given tensor)
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("dtype", FLOATS)
def test_near_without_finite_entries_or_without_nonzero_ones(dtype: torch.dtype) -> None:
    rel = 4 * torch.finfo(dtype).eps
    for values in ([torch.nan, torch.inf, -torch.inf], [0.0, -0.0, torch.nan], [0.0, 0.0], [torch.nan]):
        x = torch.tensor(values, dtype=dtype).repeat(5000)
        assert _native.near(x, rel) == _near_oracle(x, rel)
    subnormal = torch.full((9000,), torch.finfo(dtype).tiny / 8, dtype=dtype)
    subnormal[::3] = 0.0
    assert _native.near(subnormal, rel) == _near_oracle(subnormal, rel)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", SIZES)
def test_hits_count_nonzero_cotangents_at_the_mask(dtype: torch.dtype, size: int) -> None:
    g = _data(size, dtype, 0.0, seed=size + 2)
    mask = torch.rand(size, generator=torch.Generator().manual_seed(size)) < 0.5
    assert _native.hits(g, mask) == int(((g != 0) & mask).sum())


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("slope", [0.5, -0.0, 0.0, 1e-3])
def test_put_writes_slope_times_grad_at_the_mask_only(dtype: torch.dtype, size: int, slope: float) -> None:
    """A zero slope puts 0 (+0.0) itself, as PyTorch's backward formulas select it: never 0·inf = NaN."""
    g = _data(size, dtype, 0.0, seed=size + 3)
    out = _data(size, dtype, 1.0, seed=size + 4)
    mask = torch.rand(size, generator=torch.Generator().manual_seed(size)) < 0.5
    expected = torch.where(mask, g * slope if slope != 0 else torch.zeros((), dtype=dtype), out)
    assert _native.put(out, g, mask, slope)
    # bit for bit: NaN payloads, the sign of zeros and infinities included
    assert torch.equal(out.view(torch.uint8), expected.view(torch.uint8))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", SIZES + [8, 15, 16, 17, 31])
def test_relu_bits_is_pytorchs_relu_with_its_kinks_as_bits(dtype: torch.dtype, size: int) -> None:
    x = _data(size, dtype, 0.0, seed=size + 7)
    bits = torch.full((-(-size // 8),), 0xA5, dtype=torch.uint8)  # (garbage: every bit is written)
    result = _native.relu_bits(x, bits)
    assert result is not None
    out, hits = result
    assert torch.equal(out.view(_BITS[dtype]), torch.relu(x).view(_BITS[dtype]))  # -0.0 and NaN included
    assert hits == int((x == 0).sum())
    # bit i % 8 of byte i // 8 is entry i: unpacked independently of unpack_bits, and the padding is clear
    flags = [(int(bits[i // 8]) >> (i % 8)) & 1 for i in range(8 * bits.numel())]
    assert flags == [int(v == 0) for v in x.tolist()] + [0] * (8 * bits.numel() - size)
    assert torch.equal(_native.unpack_bits(bits, x.shape), x == 0)
    square = x[: size - size % 4].view(-1, 4) if size >= 4 else x.view(-1, size or 1)
    assert torch.equal(_native.unpack_bits(_packed(square == 0), square.shape), square == 0)


def _packed(mask: Tensor) -> Tensor:
    """``mask`` as :func:`kinkgrad._native.relu_bits` writes its kinks (an independent packing)."""
    flat = mask.flatten().to(torch.uint8)
    flat = torch.cat([flat, flat.new_zeros(-flat.numel() % 8)]).view(-1, 8)
    return (flat << torch.arange(8, dtype=torch.uint8)).sum(1).to(torch.uint8)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", SIZES + [8, 15, 16, 17, 31])
@pytest.mark.parametrize("slope", [0.25, 0.0])
@pytest.mark.parametrize("form", ["bool", "bits", "none"])
def test_relu_backward_is_thresholds_with_the_slope_at_the_mask(
    dtype: torch.dtype, size: int, slope: float, form: str
) -> None:
    x = _data(size, dtype, 0.0, seed=size + 5)
    y = torch.relu(x)
    g = _data(size, dtype, 1.0, seed=size + 6)
    mask = (x == 0) if form != "none" else torch.zeros(size, dtype=torch.bool)
    at_kinks = g * slope if slope != 0 else torch.zeros((), dtype=dtype)  # (0 selected, as PyTorch's own)
    expected = torch.where(mask, at_kinks, torch.ops.aten.threshold_backward(g, y, 0))
    given = {"bool": mask, "bits": _packed(mask), "none": None}[form]
    got = _native.relu_backward(g, y, given, slope)
    assert got is not None
    assert torch.equal(got.view(torch.uint8), expected.view(torch.uint8))  # bit for bit


def _ties_oracle(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> Tensor:
    value = F.max_pool2d(x, kernel, stride)
    windows = x.unfold(-2, kernel[0], stride[0]).unfold(-2, kernel[1], stride[1])
    return torch.isfinite(value) & ((windows == value[..., None, None]).sum((-1, -2)) >= 2)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("kernel", "stride"),
    [
        ((2, 2), (2, 2)),
        ((3, 3), (3, 3)),
        ((2, 3), (2, 3)),
        ((3, 3), (1, 1)),
        ((2, 2), (1, 2)),
        ((1, 2), (1, 2)),
    ],
)
# widths that leave the 2x2 SIMD loop 0 to 3 windows of a row: 2x2 windows on rows 10, 7, 3, 28, 12, 4 wide
@pytest.mark.parametrize(
    "shape", [(2, 3, 9, 10), (4, 8, 7), (1, 1, 3, 3), (2, 3, 6, 28), (1, 2, 4, 12), (1, 1, 3, 4)]
)
def test_pool_ties_are_the_windows_with_two_finite_maxima(
    dtype: torch.dtype, kernel: tuple[int, int], stride: tuple[int, int], shape: tuple[int, ...]
) -> None:
    g = torch.Generator().manual_seed(sum(shape) + sum(kernel))
    x = (torch.randint(-2, 3, shape, generator=g) / 2).to(dtype)  # many ties, +0 with -0 among them
    x[x == 0] *= torch.where(torch.rand(x.shape, generator=g) < 0.5, -1.0, 1.0).to(dtype)[x == 0]
    flat = x.view(-1)
    flat[::7] = torch.inf
    flat[3::11] = torch.nan
    flat[5::13] = -torch.inf
    value = F.max_pool2d(x, kernel, stride)
    fused = _native.pool_ties(x, value, kernel, stride)
    assert fused is not None
    tied, count = fused
    assert torch.equal(tied, _ties_oracle(x, kernel, stride))
    assert count == int(tied.sum())


def _tie_data(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    x = (torch.randint(-2, 3, shape, generator=g) / 2).to(dtype)  # many ties, +0 with -0 among them
    x[x == 0] *= torch.where(torch.rand(x.shape, generator=g) < 0.5, -1.0, 1.0).to(dtype)[x == 0]
    return x


_POSITION_GRIDS = [((2, 2), (2, 2)), ((2, 3), (2, 3)), ((1, 2), (1, 2)), ((2, 2), (1, 2)), ((2, 4), (3, 5))]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kernel", [(2, 2), (2, 3), (1, 2), (2, 4)])
def test_first_maxima_are_pytorchs_pool_indices(dtype: torch.dtype, kernel: tuple[int, int]) -> None:
    """The windows' first maxima, read from the bits, are the indices of PyTorch's pool (which keeps the
    first of equal maxima, +0 and -0 included)."""
    x = _tie_data((2, 3, 9, 13), sum(kernel), dtype)
    value, indices = F.max_pool2d(x, kernel, return_indices=True)
    bits = torch.empty(value.shape, dtype=torch.uint8)
    assert _native.pool_values(x, kernel, kernel, torch.empty_like(value), bits) is not None
    assert torch.equal(_native.first_maxima(bits, kernel, x.shape[-1]), indices)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("kernel", "stride"), _POSITION_GRIDS)
@pytest.mark.parametrize("shape", [(2, 3, 9, 10), (4, 8, 7), (1, 1, 4, 12), (2, 2, 6, 28)])
def test_pool_values_are_pytorchs_pool_bit_for_bit_with_its_tie_positions(
    dtype: torch.dtype, kernel: tuple[int, int], stride: tuple[int, int], shape: tuple[int, ...]
) -> None:
    """Of equal maxima (+0 and -0 among them) PyTorch keeps the first in window order: so does the pass.
    The positions: bit i where entry i of the window (row by row) is not its maximum."""
    x = _tie_data(shape, sum(shape) + 2 * sum(stride), dtype)
    x.view(-1)[::5] = -torch.inf  # never a maximum here: every window holds a finite entry
    first = x[..., : kernel[0], : kernel[1]].flatten(-2).clone()  # the first window: -0, then +0
    first[..., :] = -0.5
    first[..., 0], first[..., 1] = -0.0, 0.0
    x[..., : kernel[0], : kernel[1]] = first.unflatten(-1, (kernel[0], kernel[1]))
    want = F.max_pool2d(x, kernel, stride)
    windows = x.unfold(-2, kernel[0], stride[0]).unfold(-2, kernel[1], stride[1]).flatten(-2)
    others = windows != want[..., None]
    positions = (others.to(torch.int64) << torch.arange(others.shape[-1])).sum(-1)
    value, bits = torch.full_like(want, 7.0), torch.full(want.shape, 255, dtype=torch.uint8)
    tied = _native.pool_values(x, kernel, stride, value, bits)
    assert torch.equal(value.view(_BITS[dtype]), want.view(_BITS[dtype]))
    assert bool(torch.signbit(want[..., 0, 0]).all())  # PyTorch's: the first of -0 and +0
    assert torch.equal(bits.to(torch.int64), positions)
    assert tied == int(((~others).sum(-1) >= 2).sum()) and tied > 0


@pytest.mark.parametrize("dtype", FLOATS)
def test_pool_passes_decline_a_maximum_that_is_not_finite(dtype: torch.dtype) -> None:
    x = _tie_data((1, 2, 6, 6), 0, dtype)
    out = torch.empty(1, 2, 3, 3, dtype=torch.uint8)
    value = torch.empty(1, 2, 3, 3, dtype=dtype)
    for special in (torch.inf, torch.nan):
        y = x.clone()
        y[0, 1, 5, 5] = special
        assert _native.pool_values(y, (2, 2), (2, 2), value, out) is None
        y[0, 1, 5, 5] = -special  # -inf: not a maximum here; NaN: a maximum for PyTorch
        assert (_native.pool_values(y, (2, 2), (2, 2), value, out) is None) == (special != torch.inf)
    assert _native.pool_values(x, (2, 2), (2, 2), value, out) is not None


def _scatter_oracle(
    grad: Tensor, x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], rule: str
) -> Tensor:
    """The input gradient by PyTorch operators, one strided slice of the input per window position."""
    value = F.max_pool2d(x, kernel, stride)
    at = x.unfold(-2, kernel[0], stride[0]).unfold(-2, kernel[1], stride[1]).flatten(-2) == value[..., None]
    if rule == "last":  # keep the last maximum of each window only
        at = at & (at.flip(-1).cumsum(-1).flip(-1) == 1)
    share = grad / at.sum(-1).to(grad.dtype)
    out = torch.zeros_like(x)
    (oh, ow), (sh, sw) = value.shape[-2:], stride
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            rows, cols = slice(i, i + (oh - 1) * sh + 1, sh), slice(j, j + (ow - 1) * sw + 1, sw)
            out[..., rows, cols] += torch.where(at[..., i * kernel[1] + j], share, 0)
    return out


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("kernel", "stride"), [g for g in _POSITION_GRIDS if g[0][0] <= g[1][0] and g[0][1] <= g[1][1]]
)
@pytest.mark.parametrize("rule", ["split", "last", "first"])
def test_pool_scatter_sends_the_gradient_to_the_maxima(
    dtype: torch.dtype, kernel: tuple[int, int], stride: tuple[int, int], rule: str
) -> None:
    x = _tie_data((2, 3, 9, 13), sum(kernel) + sum(stride), dtype)
    value = F.max_pool2d(x, kernel, stride)
    g = torch.Generator().manual_seed(1)
    grad = torch.randn(value.shape, generator=g, dtype=dtype)
    grad.view(-1)[::5] = -0.0
    grad.view(-1)[1::9] = torch.inf
    grad.view(-1)[2::17] = torch.nan
    bits = torch.empty(value.shape, dtype=torch.uint8)
    assert _native.pool_values(x, kernel, stride, torch.empty_like(value), bits)
    got = _native.pool_scatter(grad, bits, x.shape, kernel, stride, rule)
    assert got is not None
    if rule == "first":  # PyTorch's own choice: its backward is the oracle
        leaf = x.clone().requires_grad_()
        (expected,) = torch.autograd.grad(F.max_pool2d(leaf, kernel, stride), leaf, grad)
    else:
        expected = _scatter_oracle(grad, x, kernel, stride, rule)
    assert torch.equal(got.view(torch.uint8), expected.view(torch.uint8))
    transposed = _native.pool_scatter(grad.mT.contiguous().mT, bits, x.shape, kernel, stride, rule)
    assert transposed is not None and torch.equal(transposed.view(torch.uint8), got.view(torch.uint8))


def test_passes_decline_where_they_do_not_apply() -> None:
    x = torch.randn(4, 6)
    mask = x > 0
    for other in (x.t(), x.half(), x.bfloat16(), x.to(torch.int32), x[:, ::2]):
        assert _native.equal(other, 0.0) is None
        assert _native.any_equal(other, 0.0) is None
        assert _native.equal_span(other) is None
        assert _native.near(other, 1e-6) is None
    assert _native.equal(x, 0.0, torch.empty(3, dtype=torch.bool)) is None  # out of another shape
    assert _native.equal(x, 0.0, torch.empty(4, 6)) is None  # not a bool out
    assert _native.equal_span(x, torch.empty(3, dtype=torch.bool)) is None
    assert _native.equal_span(x, torch.empty(4, 6)) is None
    assert _native.count(mask.t()) is None and _native.count(x) is None
    assert _native.hits(x, mask[:1]) is None and _native.hits(x.t(), mask.t()) is None
    assert _native.hits(x.half(), mask) is None
    assert not _native.put(x, x, mask, 0.5)  # out sharing grad's memory
    assert (
        _native.relu_backward(x, x.t(), mask, 0.5) is None
        and _native.relu_backward(x, x, mask.t(), 0.5) is None
    )
    assert not _native.put(x, x.clone()[:, :3], mask, 0.5) and not _native.put(x.half(), x.half(), mask, 0.5)
    bits = torch.zeros(3, dtype=torch.uint8)  # 24 entries of x
    assert _native.relu_backward(x, x, bits[:2], 0.5) is None  # bits for 16 entries
    assert _native.relu_backward(x, x, bits.to(torch.int8), 0.5) is None
    assert _native.relu_backward(x.half(), x.half(), None, 0.5) is None
    for other in (x.t(), x.half(), x.to(torch.int32), x[:, ::2]):
        assert _native.relu_bits(other, bits) is None
    assert _native.relu_bits(x, bits[:2]) is None and _native.relu_bits(x, bits.bool()) is None
    assert _native.relu_bits(x, torch.zeros(6, dtype=torch.uint8)[::2]) is None  # not contiguous

    class Sub(Tensor):
        pass

    assert _native.equal(x.as_subclass(Sub), 0.0) is None
    assert _native.near(torch._neg_view(x), 1e-6) is None  # its memory holds -x
    y = torch.randn(1, 1, 5, 5)
    overhang = F.max_pool2d(y, 2, ceil_mode=True)  # 3x3 windows of which the last row and column overhang
    assert _native.pool_ties(y, overhang, (2, 2), (2, 2)) is None
    assert _native.pool_ties(y.transpose(-1, -2), F.max_pool2d(y, 2), (2, 2), (2, 2)) is None
    assert _native.pool_ties(y[0, 0, 0], y[0, 0, 0], (2, 2), (2, 2)) is None  # one dimension
    value, bits = F.max_pool2d(y, 2), torch.empty(1, 1, 2, 2, dtype=torch.uint8)
    pooled = torch.empty_like(value)
    assert _native.pool_values(y, (2, 2), (2, 2), pooled, bits.bool()) is None  # not uint8
    assert _native.pool_values(y, (2, 2), (2, 2), pooled, bits[..., :1]) is None  # another shape
    assert _native.pool_values(y, (2, 2), (2, 2), pooled.double(), bits) is None  # another dtype
    assert _native.pool_values(y, (2, 2), (2, 2), pooled[..., :1], bits[..., :1]) is None  # too few windows
    wide = torch.empty(1, 1, 1, 1, dtype=torch.uint8)
    assert _native.pool_values(y, (3, 3), (3, 3), torch.empty(1, 1, 1, 1), wide) is None  # 9 > 8 bits
    assert _native.pool_values(y, (2, 2), (2, 2), pooled, bits) is not None
    assert _native.pool_scatter(value, bits, y.shape, (2, 2), (1, 1), "split") is None  # windows overlap
    assert _native.pool_scatter(value, bits, y.shape, (2, 2), (2, 2), "random") is None  # not a rule it has
    assert _native.pool_scatter(value.half(), bits, y.shape, (2, 2), (2, 2), "split") is None
    assert _native.pool_scatter(value, bits[..., :1], y.shape, (2, 2), (2, 2), "split") is None

    seen: list[bool] = []

    def inside(t: Tensor) -> Tensor:
        seen.append(_native.equal(t, 0.0) is None)
        return t.sum()

    torch.func.vmap(inside)(x)  # a torch.func wrapper has no storage of its own
    assert seen == [True]


def _network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
    )


@pytest.mark.parametrize("dtype", FLOATS)
def test_monitor_policy_and_certified_results_are_the_same_without_the_passes(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small CNN on sparse images (exact ReLU kinks, tied max-pool windows): the monitor's counts, the
    gradients under a policy and the certified gradients are identical with and without the passes."""
    model = _network().to(dtype)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(5, 1, 8, 8, generator=g) < 0.3).to(dtype) * torch.rand(5, 1, 8, 8, generator=g).to(dtype)
    y = torch.randint(0, 3, (5,), generator=g)

    def run() -> tuple[list[kinkgrad.KinkRecord], list[Tensor], list[Tensor]]:
        model.zero_grad()
        with kinkgrad.KinkMonitor(model) as monitor, kinkgrad.kink_policy(default=0.5, max_pool2d="split"):
            F.cross_entropy(model(x), y).backward()
        policy = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        model.zero_grad()
        kinkgrad.clarke_backward(lambda: F.cross_entropy(model(x), y), model)
        certified = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return monitor.summary(), policy, certified

    compiled = run()
    assert sum(r.exact_kinks for r in compiled[0]) > 0
    assert sum(r.exact_kinks for r in compiled[0] if r.op == "max_pool2d") > 0
    assert {r.op for r in compiled[0] if r.exact_kinks} == {"relu", "max_pool2d"}
    monkeypatch.setattr(_native, "_kernels", None)
    fallback = run()
    assert compiled[0] == fallback[0]
    for got, want in zip(compiled[1] + compiled[2], fallback[1] + fallback[2]):
        assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("rule", ["split", "last"])
def test_policy_pool_rules_are_the_same_without_the_passes(
    dtype: torch.dtype, rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tied max-pool windows (2-D, 1-D, and overlapping windows whose backward is PyTorch operators) under
    a policy alone, whose tie positions come from one compiled pass: the same gradients as without it,
    bit for bit, and first-order and double backward alike."""
    model = _network().to(dtype)
    g = torch.Generator().manual_seed(4)
    x = (torch.rand(5, 1, 8, 8, generator=g) < 0.3).to(dtype) * torch.rand(5, 1, 8, 8, generator=g).to(dtype)
    y = torch.randint(0, 3, (5,), generator=g)
    flat = (torch.randint(0, 3, (3, 2, 12), generator=g) / 2).to(dtype).requires_grad_()
    weights = torch.randn(3, 2, 11, generator=g, dtype=dtype)

    def run() -> list[Tensor]:
        model.zero_grad()
        with kinkgrad.kink_policy(max_pool1d=rule, max_pool2d=rule):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            pooled = F.max_pool1d(flat, 2)
            (first,) = torch.autograd.grad((pooled**2).sum(), flat)
            indexed, indices = F.max_pool1d(flat, 2, return_indices=True)  # (PyTorch's pool runs)
            (through,) = torch.autograd.grad((indexed * weights[..., :6]).sum(), flat)
            (overlapping,) = torch.autograd.grad((F.max_pool1d(flat, 2, 1) * weights).sum(), flat)
            (inner,) = torch.autograd.grad((F.max_pool1d(flat, 2) ** 3).sum(), flat, create_graph=True)
            (second,) = torch.autograd.grad(inner.sum(), flat)
        return (
            [loss.detach(), pooled.detach(), indexed.detach(), indices]
            + [p.grad.clone() for p in model.parameters()]
            + [first, through, overlapping, second]
        )

    compiled = run()
    monkeypatch.setattr(_native, "_kernels", None)
    fallback = run()
    for got, want in zip(compiled, fallback):
        assert torch.equal(got, want)
