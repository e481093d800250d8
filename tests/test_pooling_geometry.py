"""Max-pool ties for every window geometry (stride, padding, dilation, ceil_mode, overlap, adaptive),
against a brute-force oracle that walks PyTorch's documented window definition."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F

from kinkgrad import kink_policy, ops
from kinkgrad.ops import _pooling

CONFIGS = [  # kernel, stride, padding, dilation, ceil_mode
    (2, 2, 0, 1, False),
    (3, 1, 1, 1, False),
    (3, 2, 1, 2, False),
    (2, 3, 0, 1, True),
    (3, 2, 1, 1, True),
    (3, 1, 0, 1, False),  # overlapping windows, no padding (the eager rule writes through views)
    (2, 1, 0, 2, False),
]
RULES = ["first", "last", "split"]


def _oracle(
    x: torch.Tensor, out_shape: tuple[int, ...], windows: list[list[list[int]]], rule: str, up: torch.Tensor
) -> torch.Tensor:
    """``windows[axis][o]`` lists the input positions of output ``o`` along that axis."""
    n = len(windows)
    grad = torch.zeros_like(x)
    for lead in itertools.product(*(range(s) for s in x.shape[:-n])):
        for o in itertools.product(*(range(s) for s in out_shape[-n:])):
            cells = list(itertools.product(*(windows[a][o[a]] for a in range(n))))
            values = [float(x[lead + c]) for c in cells]
            best = max(values)
            tied = [c for c, v in zip(cells, values) if v == best]
            g = float(up[lead + o])
            if rule == "first":
                grad[lead + tied[0]] += g
            elif rule == "last":
                grad[lead + tied[-1]] += g
            else:
                for c in tied:
                    grad[lead + c] += g / len(tied)
    return grad


def _pool_windows(length: int, out: int, k: int, s: int, p: int, d: int) -> list[list[int]]:
    return [[o * s - p + j * d for j in range(k) if 0 <= o * s - p + j * d < length] for o in range(out)]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_max_pool_geometry(n: int, config: tuple[int, int, int, int, bool], rule: str) -> None:
    k, s, p, d, ceil = config
    torch.manual_seed(k * 10 + s)
    shape = (2, 2) + (7 if n < 3 else 5,) * n
    x = (torch.randint(0, 3, shape) / 2).double().requires_grad_()  # levels 0, 1/2, 1: many ties
    native = getattr(F, f"max_pool{n}d")
    want = native(x, k, s, p, d, ceil_mode=ceil)
    out = getattr(ops, f"max_pool{n}d")(x, k, s, p, d, ceil, at_kink=rule)
    assert torch.equal(out, want)
    up = torch.linspace(1.5, 2.5, out.numel(), dtype=torch.float64).reshape(out.shape)
    (got,) = torch.autograd.grad(out, x, up)
    windows = [_pool_windows(shape[-1], out.shape[-n + a], k, s, p, d) for a in range(n)]
    want_grad = _oracle(x.detach(), tuple(out.shape), windows, rule, up)
    torch.testing.assert_close(got, want_grad)
    # under a transform the rule is built from the windows' slices
    pool = getattr(ops, f"max_pool{n}d")
    _, pullback = torch.func.vjp(lambda t: pool(t, k, s, p, d, ceil, at_kink=rule), x)
    torch.testing.assert_close(pullback(up)[0], want_grad)
    if rule == "first":  # PyTorch's own choice is the first entry of each window
        (torch_grad,) = torch.autograd.grad(want, x, up)
        torch.testing.assert_close(got, torch_grad)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("n", [1, 2])
def test_split_of_windows_that_tile_the_input_under_a_transform(
    n: int, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows that tile the input exactly (stride = kernel, sizes multiples of it) take the tiled form of
    ``"split"`` under a transform; an upstream gradient with inf: the oracle's values, no NaN."""
    shape = (2, 3) + (6,) * n
    torch.manual_seed(k + n)
    x = (torch.randint(0, 3, shape) / 2).double().requires_grad_()
    pool = getattr(ops, f"max_pool{n}d")
    tiled: list[int] = []
    real = _pooling._split_tiles
    monkeypatch.setattr(_pooling, "_split_tiles", lambda *a: tiled.append(1) or real(*a))
    out, pullback = torch.func.vjp(lambda t: pool(t, k, at_kink="split"), x)
    assert torch.equal(out, getattr(F, f"max_pool{n}d")(x, k)) and tiled
    up = torch.linspace(1.5, 2.5, out.numel(), dtype=torch.float64).reshape(out.shape)
    up.view(-1)[1] = torch.inf
    windows = [_pool_windows(6, out.shape[-n + a], k, k, 0, 1) for a in range(n)]
    want = _oracle(x.detach(), tuple(out.shape), windows, "split", up)
    torch.testing.assert_close(pullback(up)[0], want)
    assert not pullback(up)[0].isnan().any()


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("out_size", [1, 3, 4])
def test_adaptive_max_pool_geometry(out_size: int, rule: str) -> None:
    torch.manual_seed(out_size)
    x = (torch.randint(0, 3, (2, 2, 7, 7)) / 2).double().requires_grad_()
    out = ops.adaptive_max_pool2d(x, out_size, at_kink=rule)
    assert torch.equal(out, F.adaptive_max_pool2d(x, out_size))
    up = torch.linspace(1.5, 2.5, out.numel(), dtype=torch.float64).reshape(out.shape)
    (got,) = torch.autograd.grad(out, x, up)
    axis = [list(range(o * 7 // out_size, math.ceil((o + 1) * 7 / out_size))) for o in range(out_size)]
    torch.testing.assert_close(got, _oracle(x.detach(), tuple(out.shape), [axis, axis], rule, up))


@pytest.mark.parametrize("rule", ["last", "split"])
def test_eager_pool_rule_backward_is_differentiable(rule: str) -> None:
    """Plain eager autograd runs max-pool ties through a custom backward (checked below); with
    create_graph=True its result is differentiable in the upstream gradient: d<grad, c>/d up sums c
    over each window's tied maxima with the rule's weights."""
    torch.manual_seed(3)
    x = (torch.randint(0, 3, (2, 3, 6, 6)) / 2).double().requires_grad_()
    out = ops.max_pool2d(x, 2, at_kink=rule)
    assert type(out.grad_fn).__name__ == "_EagerPoolRuleBackward"
    up = torch.linspace(1.5, 2.5, out.numel(), dtype=torch.float64).reshape(out.shape).requires_grad_()
    c = torch.linspace(-1.0, 3.0, x.numel(), dtype=torch.float64).reshape(x.shape)
    (g,) = torch.autograd.grad(out, x, up, create_graph=True)
    (got,) = torch.autograd.grad((g * c).sum(), up)
    want = torch.zeros_like(up)
    for lead in itertools.product(range(2), range(3)):
        for o in itertools.product(range(3), range(3)):
            cells = [(2 * o[0] + i, 2 * o[1] + j) for i in range(2) for j in range(2)]
            values = [float(x[lead + cell]) for cell in cells]
            tied = [cell for cell, v in zip(cells, values) if v == max(values)]
            chosen = tied if rule == "split" else tied[-1:]
            want[lead + o] = sum(float(c[lead + cell]) for cell in chosen) / len(chosen)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    ("dtype", "size"),  # (byte counts serve windows of fewer than 256 positions; _not_max widens beyond)
    [(torch.uint8, s) for s in (1, 2, 4, 9, 27, 255)] + [(torch.int32, s) for s in (1, 4, 255, 300)],
)
def test_tied_counts_match_the_comparison(dtype: torch.dtype, size: int) -> None:
    """``_tied`` (integer arithmetic) is ``count < size - 1`` for every possible count."""
    from kinkgrad.ops._pooling import _tied

    count = torch.arange(size + 1).to(dtype).repeat(3)
    assert torch.equal(_tied(count, size), count < size - 1)


@pytest.mark.parametrize("contiguous", [False, True])
@pytest.mark.parametrize("kernel", [(3, 3), (2, 3), (1, 2), (2, 2)])
def test_window_ties_finds_exactly_the_tied_windows(
    kernel: tuple[int, int], contiguous: bool, passes: str
) -> None:
    """Any non-overlapping kernel, sizes that leave rows and columns out, a non-contiguous or contiguous
    input, inf, NaN and a tie of +0 with -0: ``True`` exactly where two entries equal the window's finite
    maximum."""
    g = torch.Generator().manual_seed(sum(kernel))
    x = torch.relu(torch.round(torch.randn(3, 7, 8, 4, generator=g) * 2) / 2).transpose(1, 3)  # [3, 4, 8, 7]
    if contiguous:
        x = x.contiguous()
    x[0, 0, 0, :2] = torch.inf
    x[1, 1, 2, 0] = torch.nan
    x[2, 0, :3, :3] = torch.tensor([[-0.0, 0.0, -1.0], [-1.0, -0.0, -2.0], [-3.0, -4.0, -5.0]])
    x[2, 1, :3, :3] = -torch.arange(9.0).view(3, 3)  # -0 alone at the top of every window there
    value = F.max_pool2d(x, kernel)
    kh, kw = kernel
    windows = x[..., : value.shape[-2] * kh, : value.shape[-1] * kw].unfold(2, kh, kh).unfold(3, kw, kw)
    expected = ((windows == value[..., None, None]) & torch.isfinite(windows)).sum((-1, -2)) > 1
    assert torch.equal(_pooling._window_ties(x, value, kernel), expected)
    assert 0 < int(expected.sum()) < expected.numel()


@pytest.mark.parametrize("rule", ["split", "last"])
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 1, 4), (3, 4, 4)])
def test_pool_rules_accept_and_reject_what_pytorch_does(shape: tuple[int, ...], rule: str) -> None:
    """Empty batches pass, empty channels and windows larger than the input raise, as in PyTorch."""
    x = torch.zeros(shape, requires_grad=True)
    try:
        want = F.max_pool2d(x, 2)
    except RuntimeError as error:
        with kink_policy(max_pool2d=rule), pytest.raises(RuntimeError, match=re.escape(str(error)[:40])):
            F.max_pool2d(x, 2)
        return
    with kink_policy(max_pool2d=rule):
        got = F.max_pool2d(x, 2)
    assert torch.equal(got, want)


def test_split_of_windows_that_tile_the_input_under_torch_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiled form of ``"split"`` traced by ``torch.compile`` (a whole graph, AOT autograd): the
    oracle's gradient, with an upstream gradient other than 1."""
    torch.manual_seed(5)
    x = (torch.randint(0, 3, (2, 3, 6, 6)) / 2).double().requires_grad_()
    up = torch.linspace(1.5, 2.5, 2 * 3 * 3 * 3, dtype=torch.float64).reshape(2, 3, 3, 3)
    tiled: list[int] = []
    real = _pooling._split_tiles
    monkeypatch.setattr(_pooling, "_split_tiles", lambda *a: tiled.append(1) or real(*a))
    torch._dynamo.reset()
    with kink_policy(max_pool2d="split"):
        out = torch.compile(lambda t: F.max_pool2d(t, 2) * up, backend="aot_eager", fullgraph=True)(x)
        (got,) = torch.autograd.grad(out.sum(), x)
    assert tiled
    windows = [_pool_windows(6, 3, 2, 2, 0, 1) for _ in range(2)]
    torch.testing.assert_close(got, _oracle(x.detach(), (2, 3, 3, 3), windows, "split", up))
