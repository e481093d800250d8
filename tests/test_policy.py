"""kink_policy: reaches unmodified code through every entry point, nests, validates, and leaves
PyTorch untouched outside."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

import kinkgrad
from kinkgrad import kink_policy
from kinkgrad._registry import GROUPS, OPS, ROUTES

UP = 2.5  # upstream gradient, never 1


def grad_at(fn, x0: float = 0.0, dtype=torch.float64) -> float:  # type: ignore[no-untyped-def]
    x = torch.tensor([x0], dtype=dtype, requires_grad=True)
    fn(x).backward(torch.tensor([UP], dtype=dtype))
    assert x.grad is not None
    return float(x.grad) / UP


ENTRY_POINTS = {
    "torch.relu": lambda x: torch.relu(x),
    "F.relu": lambda x: F.relu(x),
    "nn.ReLU": lambda x: nn.ReLU()(x),
    "x.relu()": lambda x: x.relu(),
    "F.relu(inplace)": lambda x: F.relu(x * 1, inplace=True),
    "nn.ReLU(inplace)": lambda x: nn.ReLU(inplace=True)(x * 1),
    "torch.relu_": lambda x: torch.relu_(x * 1),
    "x.relu_()": lambda x: (x * 1).relu_(),
    "torch.clamp(min=0)": lambda x: torch.clamp(x, min=0),
    "x.clamp(min=0)": lambda x: x.clamp(min=0),
    "torch.clip(0)": lambda x: torch.clip(x, 0),
    "x.clamp_(min=0)": lambda x: (x * 1).clamp_(min=0),
    "torch.clamp_min": lambda x: torch.clamp_min(x, 0),
    "torch.maximum(x, 0)": lambda x: torch.maximum(x, torch.zeros_like(x)),
    "x.maximum(0)": lambda x: x.maximum(torch.zeros_like(x)),
    "torch.max(x, 0-tensor)": lambda x: torch.max(x, torch.zeros_like(x)),
    "torch.fmax(x, 0)": lambda x: torch.fmax(x, torch.zeros_like(x)),
    "F.threshold(0, 0)": lambda x: F.threshold(x, 0.0, 0.0),
    "F.hardtanh(0, 6)": lambda x: F.hardtanh(x, 0.0, 6.0),
    "nn.ReLU6": lambda x: nn.ReLU6()(x),
    "F.relu6": lambda x: F.relu6(x),
}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_default_makes_every_spelling_of_relu_agree(name: str, dispatch: str) -> None:
    fn = ENTRY_POINTS[name]
    for lam in (0.0, 0.3, 1.0):
        with kink_policy(default=lam):
            assert grad_at(fn) == pytest.approx(lam, abs=1e-12), name


def test_pytorch_disagrees_with_itself_outside_a_policy() -> None:
    """The reason kinkgrad exists; also proves that outside a policy nothing is changed."""
    measured = {
        name: grad_at(fn)
        for name, fn in ENTRY_POINTS.items()
        if name.startswith(("torch.relu", "torch.clamp("))
    }
    assert measured["torch.relu"] == 0.0
    assert measured["torch.clamp(min=0)"] == 1.0
    assert grad_at(ENTRY_POINTS["torch.maximum(x, 0)"]) == 0.5


def test_hardtanh_and_clamp_agree_at_both_bounds() -> None:
    for lam in (0.0, 0.25, 1.0):
        with kink_policy(default=lam):
            for bound in (-1.0, 1.0):
                a = grad_at(lambda x: F.hardtanh(x), bound)
                b = grad_at(lambda x: torch.clamp(x, -1.0, 1.0), bound)
                c = grad_at(lambda x: nn.Hardtanh()(x), bound)
                assert a == b == c == pytest.approx(lam if bound < 0 else 1 - lam)


def test_per_op_overrides_default_and_groups() -> None:
    with kink_policy(default=0.5, relu=1.0):
        assert grad_at(torch.relu) == 1.0
        assert grad_at(lambda x: torch.clamp(x, min=0)) == 0.5
    with kink_policy(default=0.5, relu=None):  # None: PyTorch's own choice for this op
        assert grad_at(torch.relu) == 0.0
        assert grad_at(lambda x: torch.clamp(x, min=0)) == 0.5
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    with kink_policy(max_pool="split", max_pool2d="last"):
        F.max_pool2d(x, 2).sum().backward()
    assert x.grad is not None and x.grad.flatten().tolist() == [0.0, 0.0, 0.0, 1.0]
    assert set(GROUPS["max_pool"]) >= {"max_pool2d", "adaptive_max_pool3d"}


def test_relu6_module_uses_relu6_choice_before_hardtanh() -> None:
    with kink_policy(hardtanh=0.0, relu6=1.0):
        assert grad_at(lambda x: nn.ReLU6()(x)) == 1.0
        assert grad_at(lambda x: F.hardtanh(x), -1.0) == 0.0
    with kink_policy(hardtanh=0.2):  # hardtanh(x, 0, 6) is still a hardtanh
        assert grad_at(lambda x: nn.ReLU6()(x)) == pytest.approx(0.2)


def test_policies_nest_innermost_wins_outer_restored(dispatch: str) -> None:
    with kink_policy(default=1.0):
        assert grad_at(torch.relu) == 1.0
        with kink_policy(relu=0.25):
            assert grad_at(torch.relu) == 0.25
            assert grad_at(lambda x: torch.clamp(x, min=0)) == 1.0  # the inner policy replaces: torch's own
        assert grad_at(torch.relu) == 1.0
    assert grad_at(torch.relu) == 0.0
    assert kinkgrad._policy.active_policy() is None


def test_decorator_and_reentry(dispatch: str) -> None:
    @kink_policy(relu=1.0)
    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    assert grad_at(f) == 1.0
    assert grad_at(lambda x: f(f(x))) == 1.0
    assert grad_at(torch.relu) == 0.0


def test_exception_inside_policy_restores_state(dispatch: str) -> None:
    with pytest.raises(ZeroDivisionError), kink_policy(relu=1.0):
        1 / 0  # noqa: B018
    assert grad_at(torch.relu) == 0.0


def test_policy_is_per_thread(dispatch: str) -> None:
    results: dict[str, float] = {}
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        results["other thread"] = grad_at(torch.relu)

    t = threading.Thread(target=worker)
    with kink_policy(relu=1.0):
        t.start()
        barrier.wait()
        t.join()
        assert grad_at(torch.relu) == 1.0
    assert results["other thread"] == 0.0


def test_unknown_names_and_bad_values_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown kink op 'rellu'.*valid names: .*relu"):
        kink_policy(rellu=1.0)
    with pytest.raises(
        ValueError, match=r"max_pool must be one of 'first', 'last', 'split', 'random'.*'splt'"
    ):
        kink_policy(max_pool="splt")
    with pytest.raises(ValueError, match=r"ties must be one of"):
        kink_policy(ties="even")
    with pytest.raises(TypeError, match=r"relu must be a number"):
        kink_policy(relu="split")
    with pytest.raises(ValueError, match=r"default must be finite"):
        kink_policy(default=float("nan"))
    with pytest.raises(TypeError, match=r"seed must be an int"):
        kink_policy(seed=1.5)  # type: ignore[arg-type]


def test_lambda_outside_unit_interval_warns_once_and_applies() -> None:
    kinkgrad._rules._WARNED.clear()  # warnings are once per process: start from none
    with pytest.warns(kinkgrad.KinkWarning, match="outside"):
        policy = kink_policy(relu=2.0)
    with policy:
        assert grad_at(torch.relu) == 2.0


def test_every_op_name_has_routes_and_every_route_names_an_op() -> None:
    routed = {r.name for r in ROUTES.values()}
    assert routed == set(OPS), set(OPS) ^ routed


def test_model_under_policy_matches_explicit_ops(dispatch: str) -> None:
    """A small CNN with exact ties: the policy over unmodified code equals hand-written kinkgrad ops."""
    torch.manual_seed(0)
    conv, lin = nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.Linear(2 * 4 * 4, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.round(conv.weight * 4) / 4)
    x = torch.round(torch.rand(2, 1, 8, 8) * 2) / 2  # coarse levels: many exact ties and zeros

    def model(ops_relu, ops_pool):  # type: ignore[no-untyped-def]
        return lin(ops_pool(ops_relu(conv(x))).flatten(1)).sum()

    grads = []
    for build in ("policy", "explicit"):
        conv.zero_grad()
        if build == "policy":
            with kink_policy(relu=0.7, max_pool2d="split"):
                model(torch.relu, lambda t: F.max_pool2d(t, 2)).backward()
        else:
            relu = lambda t: kinkgrad.ops.relu(t, at_kink=0.7)  # noqa: E731
            pool = lambda t: kinkgrad.ops.max_pool2d(t, 2, at_kink="split")  # noqa: E731
            model(relu, pool).backward()
        assert conv.weight.grad is not None
        grads.append(conv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    conv.zero_grad()
    model(torch.relu, lambda t: F.max_pool2d(t, 2)).backward()
    assert conv.weight.grad is not None
    assert not torch.equal(conv.weight.grad, grads[0]), "the test input hits no kink that matters"


def test_compiled_model_under_policy_with_inplace_and_hardswish(dispatch: str) -> None:
    m = nn.Sequential(nn.Linear(3, 3), nn.ReLU(inplace=True), nn.Hardswish())
    with torch.no_grad():
        m[0].weight.zero_()
        m[0].bias.copy_(torch.tensor([0.0, -3.0, 3.0]))
    x = torch.randn(4, 3)
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    grads = {}
    for lam in (0.0, 1.0):
        m.zero_grad()
        with kink_policy(default=lam):
            compiled(x).sum().backward()
        grads[lam] = m[0].bias.grad.clone()  # type: ignore[union-attr]
    # per row: bias 0 hits relu's kink (λ) then hardswish at 0 (slope 1/2); bias -3 is cut by relu;
    # bias 3 passes relu and hits hardswish's kink at 3 ((1-λ)·3/2 + λ·1); 4 rows
    torch.testing.assert_close(grads[0.0], torch.tensor([0.0, 0.0, 6.0]))
    torch.testing.assert_close(grads[1.0], torch.tensor([2.0, 0.0, 4.0]))


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_a_compiled_graph_applies_each_rule_once_whatever_its_backend(backend: str, dispatch: str) -> None:
    """The eager backend runs the graph's ``torch`` calls from Python with the policy's mode still active
    (pytorch/pytorch#196056): those calls, already routed when the graph was traced, must not be routed
    again. An FX graph traced by hand, outside ``torch.compile``, is unmodified code: routed."""
    torch._dynamo.reset()
    f = torch.compile(lambda x: (F.relu(x) - torch.relu(-x)).sum() * UP, backend=backend, fullgraph=True)
    for lam in (0.25, 1.0):
        x = torch.zeros(3, requires_grad=True)
        with kink_policy(default=lam):
            f(x).backward()
        assert x.grad is not None and x.grad.tolist() == [UP * 2 * lam] * 3
    traced = torch.fx.symbolic_trace(nn.Sequential(nn.ReLU()))
    x = torch.zeros(3, requires_grad=True)
    with kink_policy(default=0.25):
        traced(x).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [0.25] * 3


def test_double_backward_through_an_eager_kink_rule() -> None:
    """Second derivatives away from the kink survive the eager rule (create_graph=True)."""
    x = torch.tensor([0.0, 0.3, -0.7], dtype=torch.float64, requires_grad=True)
    up = torch.tensor([1.5, 2.0, 2.5], dtype=torch.float64)

    def hvp(policy: bool) -> torch.Tensor:
        if policy:
            with kink_policy(elu=0.3):
                y = (F.elu(x, 2.0) * up).sum()
        else:
            y = (F.elu(x, 2.0) * up).sum()
        (g,) = torch.autograd.grad(y, x, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), x)
        return h

    plain, ours = hvp(False), hvp(True)
    torch.testing.assert_close(ours[1:], plain[1:])  # away from the kink: PyTorch's second derivative
    assert float(ours[1:].abs().sum()) > 0


def test_double_backward_through_the_relu_rule_keeps_the_chosen_slope(relu_path: str) -> None:
    """relu's eager rule computes PyTorch's backward from the output and adds the slope at the kink;
    with create_graph=True that sum stays differentiable: d/dw of (relu'(x)·w·c) is relu'(x)·c."""
    x = torch.tensor([0.0, 0.3, -0.7, 0.0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1.5, 2.0, 2.5, -1.0], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([3.0, 5.0, 7.0, 11.0], dtype=torch.float64)
    with kink_policy(relu=0.25):
        (g,) = torch.autograd.grad((F.relu(x) * w).sum(), x, create_graph=True)
    (gw,) = torch.autograd.grad((g * c).sum(), w)
    torch.testing.assert_close(g.detach(), torch.tensor([0.375, 2.0, 0.0, -0.25], dtype=torch.float64))
    torch.testing.assert_close(gw, torch.tensor([0.75, 5.0, 0.0, 2.75], dtype=torch.float64))


@pytest.mark.parametrize(
    "shape", [(3, 70_001), (1, 100_000), (70_000,), (2, 5, 40_003)]
)  # flat slices with a tail; one row wider than a slice; 1-D; 3-D
@pytest.mark.parametrize("upstream_kind", ["dense", "transposed", "expanded"])
def test_eager_rule_on_tensors_larger_than_a_slice(
    shape: tuple[int, ...], upstream_kind: str, relu_path: str
) -> None:
    """Tensors larger than the rule's slices, with upstream gradients other than 1 that are contiguous,
    non-contiguous or broadcast: the gradient is PyTorch's away from the kinks and lambda times the
    upstream at them (an oracle built from comparisons, not from kinkgrad)."""
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g)
    x[torch.rand(shape, generator=g) < 0.4] = 0.0
    x.requires_grad_()
    if upstream_kind == "dense":
        upstream = torch.randn(shape, generator=g)
    elif upstream_kind == "transposed":
        upstream = torch.randn(tuple(reversed(shape)), generator=g).permute(*reversed(range(len(shape))))
    else:
        upstream = torch.full((), 2.5).expand(shape)
    with kink_policy(default=0.25):
        y = torch.relu(x)
    y.backward(upstream)
    seen = x.detach()
    expected = torch.where(seen > 0, upstream, torch.where(seen == 0, 0.25 * upstream, 0.0))
    assert x.grad is not None and torch.equal(x.grad, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("point", [0.0, 6.0, -1.0, 0.0625, -3.0, 0.01, 1e-30])
@pytest.mark.parametrize("flush_denormal", [False, True])
def test_kink_masks_without_comparisons_equal_the_comparison(
    dtype: torch.dtype, point: float, flush_denormal: bool, passes: str
) -> None:
    """The eager kink masks (a cast of ``x`` or of ``x - point``, a comparison near 0, or the compiled
    passes, which also count them) are exactly ``x == point``: at the point, at its neighbouring values,
    at ±0, subnormals, ±inf and NaN; also with denormals flushed, where PyTorch's own ``==`` reads
    subnormal inputs as 0."""
    from kinkgrad._autodiff import Trace
    from kinkgrad.ops._elementwise import Kink, _hit_mask, _observed_masks

    p = torch.tensor(point, dtype=dtype)
    inf = torch.tensor(torch.inf, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    values = [p, torch.nextafter(p, inf), torch.nextafter(p, -inf), -p, p * 2]
    special = (0.0, -0.0, tiny, tiny / 4, -tiny / 4, torch.inf, -torch.inf, torch.nan)
    values += [torch.tensor(v, dtype=dtype) for v in special]
    x = torch.stack(values).repeat(40_000)  # large enough for every path
    torch.set_flush_denormal(flush_denormal)
    try:
        expected = x == point
        (observed,), exact, _ = _observed_masks(x, [Kink(point, 0.0, 1.0)], Trace.EAGER)
        assert torch.equal(observed, expected)
        assert exact is None or exact == int(expected.sum())
        hit = _hit_mask(x, point)
        assert hit is not None and torch.equal(hit, expected)
        assert _hit_mask(x[~expected], point) is None
    finally:
        torch.set_flush_denormal(False)


_AWAY_CASES: dict[str, tuple[Callable[[Tensor], Tensor], list[float], list[float]]] = {
    # name: (plain PyTorch call, kink points, points away from every kink)
    "relu": (torch.relu, [0.0], [-1.0, 2.0]),
    "abs": (torch.abs, [0.0], [-1.0, 2.0]),
    "clamp": (lambda t: torch.clamp(t, 0.0, 1.5), [0.0, 1.5], [-1.0, 1.0, 2.0]),
    "hardtanh": (F.hardtanh, [-1.0, 1.0], [-2.0, 0.5, 2.0]),
    "leaky_relu": (F.leaky_relu, [0.0], [-1.0, 2.0]),
    "relu6": (F.relu6, [0.0, 6.0], [-1.0, 3.0, 7.0]),
    "hardsigmoid": (F.hardsigmoid, [-3.0, 3.0], [-4.0, 0.5, 4.0]),
    "elu": (F.elu, [0.0], [-1.0, 2.0]),
    "hardshrink": (F.hardshrink, [-0.5, 0.5], [-1.0, 0.25, 1.0]),
    "threshold": (lambda t: F.threshold(t, 1.0, -2.0), [1.0], [0.0, 2.0]),
}


@pytest.mark.parametrize("mode", ["eager", "func.grad"])
@pytest.mark.parametrize("name", list(_AWAY_CASES))
def test_infinite_and_nan_cotangents_away_from_kinks_are_pytorchs(
    name: str, mode: str, passes: str, relu_path: str
) -> None:
    """Under a policy, entries away from every kink get exactly PyTorch's gradient even when their
    cotangent is ±inf or NaN (a zero weight times inf is NaN: the rule must not multiply there), while
    the kinks, hit in the same tensor with a finite cotangent, get the chosen slope."""
    call, kinks, away = _AWAY_CASES[name]
    points = kinks + away
    x = torch.tensor(points * 5000, dtype=torch.float32)  # large enough for every eager path
    at_kink = torch.tensor([p in kinks for p in points] * 5000)
    wild = torch.tensor([torch.inf, -torch.inf, torch.nan, 2.5])
    up = torch.where(at_kink, 1.5, wild.repeat(x.numel() // 4 + 1)[: x.numel()])

    def loss(t: Tensor) -> Tensor:
        return (call(t) * up).sum()

    plain = torch.func.grad(loss)(x)
    with kink_policy(default=0.5):
        if mode == "eager":
            leaf = x.clone().requires_grad_()
            call(leaf).backward(up)
            assert leaf.grad is not None
            got = leaf.grad
        else:
            got = torch.func.grad(loss)(x)
    torch.testing.assert_close(got[~at_kink], plain[~at_kink], rtol=0, atol=0, equal_nan=True)
    left = torch.func.grad(loss)(x - 1e-4 * at_kink)[at_kink]
    right = torch.func.grad(loss)(x + 1e-4 * at_kink)[at_kink]
    torch.testing.assert_close(got[at_kink], 0.5 * left + 0.5 * right, rtol=0, atol=1e-3)


@pytest.mark.parametrize("mode", ["eager", "func.grad"])
@pytest.mark.parametrize("rule", ["last", "split"])
@pytest.mark.parametrize("op", ["max_pool2d", "max"])
def test_infinite_cotangents_of_untied_windows_are_pytorchs(
    op: str, rule: str, mode: str, passes: str
) -> None:
    """Windows (and reduced rows) without a tie, whose cotangent is inf or NaN, get PyTorch's own
    gradient, the whole cotangent at the maximum and 0 at every other entry, while a tied one in the same
    call follows the rule. (Not ``amax``: PyTorch's own derivative there multiplies the cotangent by a
    0/1 mask, so an infinite one gives NaN at the other entries.)"""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    x[0, 0, :2, :2] = 1.0  # one tied window (one tied row for the reductions)
    calls: dict[str, Callable[[Tensor], Tensor]] = {
        "max_pool2d": lambda t: F.max_pool2d(t, 2),
        "max": lambda t: t.flatten(2).max(-1).values,
    }
    call = calls[op]
    out = call(x)
    tied = torch.zeros(out.shape, dtype=torch.bool)
    tied.view(-1)[0] = True
    wild = torch.tensor([torch.inf, -torch.inf, torch.nan], dtype=torch.float64)
    up = torch.where(tied, 1.5, wild.repeat(out.numel())[: out.numel()].view(out.shape))

    def loss(t: Tensor) -> Tensor:
        return (call(t) * up).sum()

    with kink_policy(**{op: rule}):
        if mode == "eager":
            leaf = x.clone().requires_grad_()
            loss(leaf).backward()
            assert leaf.grad is not None
            got = leaf.grad
        else:
            got = torch.func.grad(loss)(x)
    untied = torch.ones(x.shape, dtype=torch.bool)
    untied[0, 0, : 2 if op == "max_pool2d" else 8, : 2 if op == "max_pool2d" else 8] = False
    taken = torch.zeros_like(x).flatten(2)  # what PyTorch routes: the whole cotangent to the maximum
    picked = F.max_pool2d(x, 2, return_indices=True)[1] if op == "max_pool2d" else None
    if picked is None:
        index = x.flatten(2).argmax(-1, keepdim=True)
        taken.scatter_(-1, index, up.unsqueeze(-1))
    else:
        taken.scatter_(-1, picked.flatten(2), up.flatten(2))
    torch.testing.assert_close(got[untied], taken.view(x.shape)[untied], rtol=0, atol=0, equal_nan=True)
    assert not torch.isnan(got[~untied]).any()


_ZERO_SLOPE = [  # (call, a point at a kink, λ whose slope there is 0)
    (torch.relu, 0.0, 0.0),
    (F.relu6, 0.0, 0.0),
    (F.relu6, 6.0, 1.0),
    (F.hardtanh, -1.0, 0.0),
    (F.hardtanh, 1.0, 1.0),
    (lambda t: torch.clamp(t, min=0.0), 0.0, 0.0),
    (lambda t: torch.clamp(t, -1.0, 1.0), 1.0, 1.0),
    (lambda t: F.threshold(t, 0.0, 0.0), 0.0, 0.0),
    (lambda t: torch.maximum(t, torch.zeros_like(t)), 0.0, 0.0),
    (lambda t: torch.minimum(t, torch.zeros_like(t)), 0.0, 1.0),
]


@pytest.mark.parametrize(("call", "point", "lam"), _ZERO_SLOPE)
def test_a_zero_slope_meets_an_infinite_cotangent_with_zero_not_nan(
    call: Any, point: float, lam: float, relu_path: str
) -> None:
    """At a kink whose chosen derivative is 0, an infinite upstream gradient gives 0, as PyTorch's own
    backward formulas select it (0·inf would be NaN); beside the kink, PyTorch's own gradient."""
    x = torch.tensor([point, 0.25, -0.25], requires_grad=True)
    up = torch.full((3,), torch.inf)
    with kink_policy(default=lam):
        call(x).backward(up)
    (want,) = torch.autograd.grad(call(x[1:]), x, up[1:])  # (PyTorch away from the kink)
    assert x.grad is not None and x.grad[0] == 0 and not bool(x.grad.isnan().any())
    assert torch.equal(x.grad[1:], want[1:])


@pytest.mark.parametrize(("call", "point", "lam"), _ZERO_SLOPE)
def test_a_zero_slope_meets_an_infinite_cotangent_with_zero_under_a_transform(
    call: Any, point: float, lam: float
) -> None:
    """As above, through the surrogate that transforms trace."""
    up = torch.full((3,), torch.inf)
    with kink_policy(default=lam):
        _, pullback = torch.func.vjp(call, torch.tensor([point, 0.25, -0.25]))
        (got,) = pullback(up)
    _, plain = torch.func.vjp(call, torch.tensor([point, 0.25, -0.25]))
    assert got[0] == 0 and not bool(got.isnan().any())
    assert torch.equal(got[1:], plain(up)[0][1:])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("lam", [0.0, 0.25, 1.0, 1.5])
@pytest.mark.parametrize("kinks", [True, False])
def test_the_fused_relu_rule_on_a_large_activation(dtype: torch.dtype, lam: float, kinks: bool) -> None:
    """An activation of a CNN's size (float32 and float64 take the one-pass rule, others the general
    one): PyTorch's values bit for bit, and the gradient PyTorch's away from the kinks and λ times an
    upstream gradient other than 1 at them, -0.0, ±inf and NaN inputs and infinite upstreams included
    (an oracle built from comparisons)."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(8, 16, 48, 48, generator=g).to(dtype)
    if kinks:
        x[torch.rand(x.shape, generator=g) < 0.3] = 0.0
        x.view(-1)[:4] = torch.tensor([-0.0, torch.inf, -torch.inf, torch.nan], dtype=dtype)
    up = torch.randn(x.shape, generator=g).to(dtype) * 3
    up.view(-1)[4:8] = torch.inf  # (at entries of the random data: away from the specials above)
    leaf = x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kinkgrad.KinkWarning)  # (λ = 1.5 leaves the Clarke set: allowed)
        with kink_policy(relu=lam):
            y = F.relu(leaf)
    fused = type(y.grad_fn).__name__ == "_ReluRuleBackward"
    assert fused == (dtype in (torch.float32, torch.float64))
    assert torch.equal(y.detach().view(torch.uint8), torch.relu(x).view(torch.uint8))
    y.backward(up)
    at = x == 0
    slope = up * lam if lam != 0 else torch.zeros((), dtype=dtype)
    expected = torch.where(at, slope, torch.where(torch.relu(x) > 0, up, torch.zeros((), dtype=dtype)))
    expected = torch.where(x.isnan(), up, expected)  # (PyTorch passes the gradient through NaN)
    assert leaf.grad is not None
    assert torch.equal(leaf.grad.view(torch.uint8), expected.view(torch.uint8))


def test_the_fused_relu_rule_runs_backward_twice_with_retain_graph(relu_path: str) -> None:
    """A retained graph's relu rule gives the same gradient on a second backward pass (its kink bits
    and its pooled gradient buffer are not reused while the first result is held)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 8, 96, 96, generator=g)
    x[torch.rand(x.shape, generator=g) < 0.2] = 0.0
    x.requires_grad_()
    up = torch.randn(x.shape, generator=g)
    with kink_policy(relu=0.25):
        y = torch.relu(x)
    (first,) = torch.autograd.grad(y, x, up, retain_graph=True)
    (second,) = torch.autograd.grad(y, x, 2 * up)
    expected = torch.where(x.detach() > 0, up, torch.where(x.detach() == 0, 0.25 * up, 0.0))
    assert torch.equal(first, expected) and torch.equal(second, 2 * expected)
