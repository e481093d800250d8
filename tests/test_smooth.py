"""Smoothing: every surrogate within its stated error bound (hypothesis), smooth at the former kinks
(gradcheck), exact as mu -> 0, and the context manager reaching unmodified code and leaving PyTorch
untouched outside."""

from __future__ import annotations

import importlib
import math
import pickle
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kinkgrad import kink_policy
from kinkgrad import smoothing as S
from kinkgrad._smooth import SmoothHandle, Smoothing, smooth
from kinkgrad.smoothing import Continuation, error_bound

D = torch.float64
UP = 2.5  # upstream gradient, never 1

# name -> (surrogate(x, mu), exact(x), error_bound keyword arguments, kinks)
Unary = Callable[[torch.Tensor, float], torch.Tensor]
UNARY: dict[
    str, tuple[Unary, Callable[[torch.Tensor], torch.Tensor], dict[str, object], tuple[float, ...]]
] = {
    "relu": (S.relu, torch.relu, {}, (0.0,)),
    "leaky_relu": (
        lambda x, mu: S.leaky_relu(x, 0.2, mu),
        lambda x: F.leaky_relu(x, 0.2),
        {"negative_slope": 0.2},
        (0.0,),
    ),
    "abs-sqrt": (S.abs, torch.abs, {"abs": "sqrt"}, (0.0,)),
    "abs-huber": (lambda x, mu: S.abs(x, mu, "huber"), torch.abs, {"abs": "huber"}, (0.0,)),
    "clamp": (
        lambda x, mu: S.clamp(x, -0.5, 2.0, mu=mu),
        lambda x: torch.clamp(x, -0.5, 2.0),
        {},
        (-0.5, 2.0),
    ),
    "clamp_min": (lambda x, mu: S.clamp(x, 0.3, None, mu=mu), lambda x: torch.clamp(x, min=0.3), {}, (0.3,)),
    "clamp_max": (lambda x, mu: S.clamp(x, None, 0.3, mu=mu), lambda x: torch.clamp(x, max=0.3), {}, (0.3,)),
    "hardtanh": (lambda x, mu: S.hardtanh(x, mu=mu), F.hardtanh, {}, (-1.0, 1.0)),
    "relu6": (lambda x, mu: S.relu6(x, mu=mu), F.relu6, {}, (0.0, 6.0)),
    "hardsigmoid": (lambda x, mu: S.hardsigmoid(x, mu=mu), F.hardsigmoid, {}, (-3.0, 3.0)),
    "softshrink": (
        lambda x, mu: S.softshrink(x, 0.5, mu=mu),
        lambda x: F.softshrink(x, 0.5),
        {},
        (-0.5, 0.5),
    ),
    "maximum": (
        lambda x, mu: S.maximum(x, 0.5 * x.flip(0), mu),
        lambda x: torch.maximum(x, 0.5 * x.flip(0)),
        {},
        (0.0,),
    ),
    "minimum": (
        lambda x, mu: S.minimum(x, 0.5 * x.flip(0), mu),
        lambda x: torch.minimum(x, 0.5 * x.flip(0)),
        {},
        (0.0,),
    ),
}


def _op(name: str) -> str:
    return name.split("-")[0]


finite = st.floats(-50.0, 50.0, allow_nan=False)
temperatures = st.floats(1e-3, 10.0)


@pytest.mark.parametrize("name", list(UNARY))
@settings(max_examples=60, deadline=None)
@given(xs=st.lists(finite, min_size=1, max_size=16), mu=temperatures)
def test_error_within_stated_bound(name: str, xs: list[float], mu: float) -> None:
    surrogate, exact, kw, kinks = UNARY[name]
    x = torch.tensor(xs + list(kinks), dtype=D)
    gap = surrogate(x, mu) - exact(x)
    lo, hi = error_bound(_op(name), mu, **kw)  # type: ignore[arg-type]
    slack = 1e-12 * (1.0 + x.abs())
    assert bool((gap >= lo - slack).all()), (gap.min().item(), lo)
    assert bool((gap <= hi + slack).all()), (gap.max().item(), hi)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 4),
    n=st.integers(1, 12),
    mu=temperatures,
    seed=st.integers(0, 2**16),
    ties=st.booleans(),
)
def test_logsumexp_max_and_min_within_mu_log_n(rows: int, n: int, mu: float, seed: int, ties: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, n, generator=g, dtype=D) * 10
    if ties:
        x[:, : (n + 1) // 2] = x[:, :1]
    for smooth_fn, exact, op in ((S.max, torch.amax, "max"), (S.min, torch.amin, "min")):
        gap = smooth_fn(x, 1, mu=mu) - exact(x, 1)
        lo, hi = error_bound(op, mu, n=n)
        assert bool((gap >= lo - 1e-12).all()) and bool((gap <= hi + 1e-12).all())
    full = S.max(x, mu=mu) - x.max()
    assert 0.0 - 1e-12 <= float(full) <= mu * math.log(x.numel()) + 1e-12


@settings(max_examples=40, deadline=None)
@given(xs=st.lists(finite, min_size=1, max_size=16), mu=temperatures)
def test_hardswish_error_is_relative(xs: list[float], mu: float) -> None:
    x = torch.tensor([*xs, -3.0, 3.0], dtype=D)
    gap = S.hardswish(x, mu=mu) - F.hardswish(x)
    lo, hi = error_bound("hardswish", mu)
    assert bool((gap.abs() <= hi * x.abs() + 1e-12 * (1 + x.abs())).all())
    assert lo == -hi


def test_bounds_are_attained_at_the_kinks() -> None:
    mu = 0.3
    zero = torch.zeros(1, dtype=D)
    assert float(S.relu(zero, mu)) == pytest.approx(mu * math.log(2), rel=1e-14)
    assert float(S.abs(zero, mu)) == pytest.approx(mu, rel=1e-14)
    assert float(S.abs(torch.tensor([mu], dtype=D), mu, "huber")) - mu == pytest.approx(-mu / 2, rel=1e-14)
    tied = torch.ones(5, dtype=D)
    assert float(S.max(tied, mu=mu)) - 1.0 == pytest.approx(mu * math.log(5), rel=1e-12)
    assert float(S.min(tied, mu=mu)) - 1.0 == pytest.approx(-mu * math.log(5), rel=1e-12)


@pytest.mark.parametrize("name", list(UNARY))
def test_differentiable_at_the_former_kinks(name: str) -> None:
    surrogate, _, _, kinks = UNARY[name]
    for mu in (0.05, 1.0):
        offsets = torch.tensor([0.0, 1e-9, -1e-9, 0.3 * mu, -0.3 * mu], dtype=D)
        x = torch.cat([k + offsets for k in kinks]).requires_grad_()
        assert torch.autograd.gradcheck(lambda t, mu=mu: surrogate(t, mu), (x,))
        if name != "abs-huber":  # Huber is C^1 only: its second derivative jumps at |x| = mu
            assert torch.autograd.gradgradcheck(lambda t, mu=mu: surrogate(t, mu), (x,))


def test_reductions_differentiable_at_ties() -> None:
    x = torch.tensor([[1.0, 1.0, 0.0], [2.0, 2.0, 2.0]], dtype=D, requires_grad=True)
    for fn in (S.max, S.min):
        assert torch.autograd.gradcheck(lambda t, fn=fn: fn(t, 1, mu=0.1), (x,))
        assert torch.autograd.gradgradcheck(lambda t, fn=fn: fn(t, mu=0.1), (x,))


def test_slopes_at_kinks_are_the_middle_of_the_clarke_set() -> None:
    x = torch.zeros(3, dtype=D, requires_grad=True)
    S.relu(x, 0.1).backward(torch.full((3,), UP, dtype=D))
    assert torch.allclose(x.grad, torch.full((3,), UP / 2, dtype=D))  # type: ignore[arg-type]
    x.grad = None
    S.max(torch.stack([x[0], x[1], x[2] - 1.0]), mu=1e-3).backward(torch.tensor(UP, dtype=D))
    assert torch.allclose(x.grad, torch.tensor([UP / 2, UP / 2, 0.0], dtype=D), atol=1e-12)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(UNARY))
def test_mu_to_zero_recovers_the_function(name: str) -> None:
    surrogate, exact, kw, kinks = UNARY[name]
    x = torch.cat([torch.linspace(-8, 8, 401, dtype=D), torch.tensor(kinks, dtype=D)])
    errors = []
    for mu in (1.0, 0.1, 0.01, 1e-4):
        errors.append(float((surrogate(x, mu) - exact(x)).abs().max()))
        lo, hi = error_bound(_op(name), mu, **kw)  # type: ignore[arg-type]
        assert errors[-1] <= max(-lo, hi) + 1e-12
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3
    assert torch.equal(surrogate(x, 0.0), exact(x))  # mu = 0 is the exact function
    # away from the kinks the derivative converges too
    away = (
        x[(x.unsqueeze(1) - torch.tensor(kinks, dtype=D)).abs().min(1).values > 0.5].clone().requires_grad_()
    )
    (g_smooth,) = torch.autograd.grad(surrogate(away, 1e-3).sum(), away)
    (g_exact,) = torch.autograd.grad(exact(away).sum(), away)
    assert torch.allclose(g_smooth, g_exact, atol=1e-6)


# ---- the context manager -----------------------------------------------------------------------


def _relu_spellings() -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    zero = lambda x: torch.zeros_like(x)  # noqa: E731
    return {
        "torch.relu": torch.relu,
        "F.relu": F.relu,
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
        "torch.maximum(x, 0)": lambda x: torch.maximum(x, zero(x)),
        "x.maximum(0)": lambda x: x.maximum(zero(x)),
        "torch.max(x, 0-tensor)": lambda x: torch.max(x, zero(x)),
        "torch.max(x, other=0)": lambda x: torch.max(x, other=zero(x)),
        "torch.fmax(x, 0)": lambda x: torch.fmax(x, zero(x)),
        "F.threshold(0, 0)": lambda x: F.threshold(x, 0.0, 0.0),
    }


@pytest.mark.parametrize("name", list(_relu_spellings()))
def test_every_spelling_of_relu_is_smoothed(name: str) -> None:
    fn = _relu_spellings()[name]
    mu = 0.25
    x = torch.zeros(2, dtype=D, requires_grad=True)
    with smooth(mu=mu):
        y = fn(x)
    assert torch.allclose(y, torch.full((2,), mu * math.log(2), dtype=D)), name
    y.backward(torch.full((2,), UP, dtype=D))
    assert torch.allclose(x.grad, torch.full((2,), UP / 2, dtype=D)), name  # type: ignore[arg-type]


def test_every_smoothed_op_matches_its_surrogate() -> None:
    mu = 0.2
    x = torch.linspace(-7, 7, 29, dtype=D)
    y = torch.linspace(3, -3, 29, dtype=D)
    cases = [
        (lambda: F.leaky_relu(x, 0.1), S.leaky_relu(x, 0.1, mu)),
        (lambda: nn.LeakyReLU(0.1)(x), S.leaky_relu(x, 0.1, mu)),
        (lambda: F.rrelu(x, 0.1, 0.3, training=False), S.leaky_relu(x, 0.2, mu)),
        (lambda: F.relu6(x), S.relu6(x, mu=mu)),
        (lambda: nn.ReLU6()(x), S.relu6(x, mu=mu)),
        (lambda: F.hardtanh(x, -2.0, 3.0), S.hardtanh(x, -2.0, 3.0, mu=mu)),
        (lambda: torch.clamp(x, -1, 2), S.clamp(x, -1.0, 2.0, mu=mu)),
        (lambda: x.clamp(min=y), S.clamp(x, y, None, mu=mu)),
        (lambda: torch.clamp_max(x, 1.5), S.clamp(x, None, 1.5, mu=mu)),
        (lambda: x.abs(), S.abs(x, mu)),
        (lambda: torch.absolute(x), S.abs(x, mu)),
        (lambda: F.hardsigmoid(x), S.hardsigmoid(x, mu=mu)),
        (lambda: F.hardswish(x), S.hardswish(x, mu=mu)),
        (lambda: F.softshrink(x, 0.5), S.softshrink(x, 0.5, mu=mu)),
        (lambda: torch.minimum(x, y), S.minimum(x, y, mu)),
        (lambda: torch.min(x, y), S.minimum(x, y, mu)),
        (lambda: torch.max(x), S.max(x, mu=mu)),
        (lambda: x.min(), S.min(x, mu=mu)),
        (lambda: torch.amax(x.view(29, 1), 0), S.max(x.view(29, 1), 0, mu=mu)),
        (lambda: torch.amin(x.view(1, 29), (0, 1), keepdim=True), S.min(x.view(1, 29), (0, 1), True, mu=mu)),
        (lambda: F.l1_loss(x, y), S.abs(x - y, mu).mean()),
        (lambda: F.l1_loss(x, y, reduction="sum"), S.abs(x - y, mu).sum()),
        (lambda: nn.L1Loss(reduction="none")(x, y), S.abs(x - y, mu)),
    ]
    with smooth(mu=mu):
        got = [call() for call, _ in cases]
    for i, ((_, want), value) in enumerate(zip(cases, got)):
        assert torch.allclose(value, want, rtol=1e-13, atol=1e-13), i


def test_reductions_along_a_dim_keep_pytorchs_indices() -> None:
    x = torch.tensor([[1.0, 3.0, 3.0], [0.0, -1.0, 2.0]], dtype=D)
    with smooth(mu=0.1):
        out = torch.max(x, 1)
        kept = x.min(dim=0, keepdim=True)
    assert isinstance(out, torch.return_types.max)
    assert torch.equal(out.indices, torch.max(x, 1).indices)
    assert torch.allclose(out.values, S.max(x, 1, mu=0.1))
    assert kept.values.shape == (1, 3) and torch.equal(kept.indices, x.min(dim=0, keepdim=True).indices)


def test_huber_option_and_abs_in_l1_loss() -> None:
    x = torch.tensor([0.0, 0.05, 1.0], dtype=D)
    with smooth(mu=0.1, abs="huber"):
        a = x.abs()
        loss = F.l1_loss(x, torch.zeros(3, dtype=D), reduction="none")
    want = S.abs(x, 0.1, "huber")
    assert torch.allclose(a, want) and torch.allclose(loss, want)


def test_ops_selects_what_is_smoothed_and_unsmoothed_is_counted() -> None:
    x = torch.zeros(1, 1, 4, dtype=D)
    with smooth(mu=0.1, ops=["abs"]) as smoothing:
        relu = torch.relu(x)
        absolute = x.abs()
        F.max_pool1d(x, 2)
        torch.sort(x)
    assert torch.equal(relu, torch.zeros_like(x))
    assert torch.allclose(absolute, torch.full_like(x, 0.1))
    assert smoothing.unsmoothed == {"relu": 1, "max_pool1d": 1, "sort": 1}


def test_what_cannot_be_smoothed_passes_through() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0])
    ints = torch.tensor([-2, 0, 3])
    jump = F.threshold(x, 0.0, 5.0)
    buffer = torch.empty(3)
    with smooth(mu=0.5) as smoothing:
        assert torch.equal(torch.relu(ints), torch.tensor([0, 0, 3]))  # integers: exact
        assert torch.equal(F.threshold(x, 0.0, 5.0), jump)  # a jump: exact
        train = F.rrelu(x, training=True)  # random slopes drawn in PyTorch's kernel: exact
        torch.abs(x, out=buffer)  # out= is left to PyTorch
    assert train[2] == 1.0 and train[1] == 0.0
    assert torch.equal(buffer, torch.tensor([1.0, 0.0, 1.0]))
    assert smoothing.unsmoothed == {"relu": 1, "threshold": 1, "rrelu": 1}


def test_mu_zero_is_pytorch_bit_for_bit() -> None:
    x = torch.randn(50, dtype=D)
    with smooth(mu=0.0):
        assert torch.equal(torch.relu(x), x.relu())
        assert torch.equal(torch.max(x), x.detach().max())


def test_pytorch_is_untouched_outside_and_after_errors() -> None:
    x = torch.zeros(3, requires_grad=True)
    depth = torch._C._len_torch_function_stack()
    with smooth(mu=0.1):
        assert torch._C._len_torch_function_stack() == depth + 1
    assert torch._C._len_torch_function_stack() == depth
    with pytest.raises(RuntimeError, match="boom"), smooth(mu=0.1):
        raise RuntimeError("boom")
    assert torch._C._len_torch_function_stack() == depth
    torch.relu(x).sum().backward()
    assert torch.equal(torch.relu(x), torch.zeros(3)) and torch.equal(x.grad, torch.zeros(3))  # type: ignore[arg-type]


def test_nesting_reentrance_and_decorator() -> None:
    x = torch.zeros(1, dtype=D)
    outer = smooth(mu=1.0)
    with outer, smooth(mu=0.01):
        inner_value = torch.relu(x)
        with outer:  # re-entering the same object works, the innermost handles the op
            again = torch.relu(x)
    assert float(inner_value) == pytest.approx(0.01 * math.log(2))
    assert float(again) == pytest.approx(math.log(2))

    @smooth(mu=0.5)
    def f(t: torch.Tensor) -> torch.Tensor:
        return t.abs()

    assert float(f(x)) == 0.5 and float(x.abs()) == 0.0
    wrapped = smooth(lambda t: torch.relu(t), mu=0.5)
    assert float(wrapped(x)) == pytest.approx(0.5 * math.log(2))


def test_unsmoothed_ops_still_reach_an_outer_kink_policy() -> None:
    x = torch.zeros(1, 1, 2, dtype=D, requires_grad=True)
    with kink_policy(ties="last"), smooth(mu=0.1):
        y = F.max_pool1d(x, 2).sum() + torch.relu(x).sum()
    y.backward()
    assert x.grad.flatten().tolist() == pytest.approx([0.5, 1.5])  # type: ignore[union-attr]


def test_module_handle_smooths_only_that_module() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    other = nn.ReLU()
    x = torch.randn(5, 3, dtype=torch.float32)
    plain = model(x)
    handle = smooth(model, mu=0.5)
    assert isinstance(handle, SmoothHandle)
    smoothed = model(x)
    hidden = model[0](x)
    assert torch.allclose(smoothed, model[2](S.relu(hidden, 0.5)))
    assert torch.equal(other(hidden), torch.relu(hidden))  # another module is not smoothed
    handle.mu = 1e-7
    assert torch.allclose(model(x), plain, atol=1e-6)
    handle.remove()
    handle.remove()
    assert torch.equal(model(x), plain)
    with smooth(model, mu=0.5):
        assert not torch.equal(model(x), plain)
    assert torch.equal(model(x), plain)


def test_module_handle_leaves_the_mode_when_forward_raises() -> None:
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            torch.relu(x)
            raise ValueError("boom")

    depth = torch._C._len_torch_function_stack()
    with smooth(Boom(), mu=0.1) as handle, pytest.raises(ValueError, match="boom"):
        handle.module(torch.zeros(1))
    assert torch._C._len_torch_function_stack() == depth


def test_training_with_continuation_reaches_the_nonsmooth_minimiser() -> None:
    """min_w |w - 1| + |w + 1| / 2 has its kink minimiser at w = 1; smoothing with continuation gets there
    when the step follows the surrogate's smoothness (L = 1.5 / mu), where a constant step would oscillate."""
    w = torch.tensor([3.0], dtype=D, requires_grad=True)
    schedule = Continuation(1.0, factor=0.5, every=20, mu_min=1e-6)
    opt = torch.optim.SGD([w], lr=0.05)
    with smooth(mu=schedule):
        for _ in range(600):
            opt.zero_grad()
            opt.param_groups[0]["lr"] = schedule.mu / 1.5
            loss = (w - 1).abs().sum() + (w + 1).abs().sum() / 2
            loss.backward()
            opt.step()
            schedule.step()
    assert schedule.mu == pytest.approx(1e-6)
    assert float(w.detach()) == pytest.approx(1.0, abs=1e-4)


def test_continuation_schedule_and_state_dict() -> None:
    schedule = Continuation(2.0, factor=0.5, every=3, mu_min=0.1)
    assert [schedule(k) for k in (0, 2, 3, 6, 100)] == [2.0, 2.0, 1.0, 0.5, 0.1]
    for _ in range(7):
        schedule.step()
    state = schedule.state_dict()
    copy = Continuation(1.0)
    copy.load_state_dict(pickle.loads(pickle.dumps(state)))
    assert copy.state_dict() == state and copy.mu == schedule.mu == float(schedule) == 0.5
    assert copy.step() == schedule.step()
    assert "steps=8" in repr(schedule)
    with smooth(mu=schedule) as smoothing:
        assert smoothing.current_mu() == schedule.mu
    with smooth(mu=lambda: 0.3) as smoothing:
        assert smoothing.current_mu() == 0.3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mu0": 0.0}, "mu0"),
        ({"mu0": -1.0}, "mu0"),
        ({"mu0": float("nan")}, "mu0"),
        ({"mu0": 1.0, "factor": 0.0}, "factor"),
        ({"mu0": 1.0, "factor": 1.5}, "factor"),
        ({"mu0": 1.0, "every": 0}, "every"),
        ({"mu0": 1.0, "every": 1.5}, "every"),
        ({"mu0": 1.0, "mu_min": 2.0}, "mu_min"),
        ({"mu0": 1.0, "mu_min": -0.1}, "mu_min"),
    ],
)
def test_continuation_bad_input(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Continuation(**kwargs)  # type: ignore[arg-type]


def test_bad_input_names_the_argument_and_the_valid_values() -> None:
    with pytest.raises(ValueError, match="mu must be a finite number >= 0"):
        smooth(mu=-0.1)
    with pytest.raises(ValueError, match="mu must be"):
        smooth(mu=float("inf"))
    with pytest.raises(ValueError, match="abs must be one of 'sqrt', 'huber'"):
        smooth(mu=0.1, abs="hubber")
    with pytest.raises(ValueError, match="ops: no smooth surrogate for 'max_pool2d'; valid names: relu"):
        smooth(mu=0.1, ops=["max_pool2d"])
    with pytest.raises(TypeError, match="mu="):
        smooth(0.1, mu=0.1)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="unknown smoothed op 'sort'"):
        error_bound("sort", 0.1)
    with pytest.raises(ValueError, match="mu must be"):
        S.relu(torch.zeros(1), -1.0)
    bad = smooth(mu=0.1)
    bad.mu = -1.0
    with pytest.raises(ValueError, match="mu must be"), bad:
        torch.relu(torch.zeros(1))


def test_smoothing_is_a_public_surface() -> None:
    assert set(S.__all__) >= {"Continuation", "error_bound", "relu", "abs", "max", "clamp"}
    assert isinstance(smooth(mu=0.1), Smoothing)
    assert set(S.SMOOTHED_OPS) <= set(importlib.import_module("kinkgrad._registry").OPS)
