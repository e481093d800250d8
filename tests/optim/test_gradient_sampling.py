"""Gradient sampling: the min-norm QP against SLSQP and closed forms, standard nonsmooth test functions
against their known minimisers, the stationarity record, certified gradients, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from kinkgrad.optim import GradientSamplingResult, GradientSamplingStep, gradient_sampling, min_norm_element

D = torch.float64


# ---- the min-norm element ----------------------------------------------------------------------


def _slsqp(points: np.ndarray) -> np.ndarray:
    m = points.shape[0]
    result = minimize(
        lambda w: float(np.sum((w @ points) ** 2)),
        np.full(m, 1.0 / m),
        jac=lambda w: 2.0 * points @ (w @ points),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
        options={"ftol": 1e-15, "maxiter": 500},
    )
    value: np.ndarray = result.x @ points
    return value


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 12), n=st.integers(1, 6), seed=st.integers(0, 2**16), shift=st.floats(-3.0, 3.0))
def test_min_norm_element_matches_slsqp_and_is_optimal(m: int, n: int, seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(m, n)) + shift
    g, w = min_norm_element(torch.from_numpy(points))
    g_np, w_np = g.numpy(), w.numpy()
    assert (w_np >= 0).all() and w_np.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(w_np @ points, g_np, atol=1e-12)
    # optimality (KKT): no point lies strictly on the near side of the hyperplane through g normal to g
    assert (points @ g_np >= g_np @ g_np - 1e-9 * max(1.0, float((points**2).sum(1).max()))).all()
    reference = _slsqp(points)
    assert np.linalg.norm(g_np) <= np.linalg.norm(reference) + 1e-8


def test_min_norm_element_closed_forms() -> None:
    g, w = min_norm_element(torch.tensor([[1.0, 0.0], [-1.0, 2.0]], dtype=D))
    torch.testing.assert_close(g, torch.tensor([0.5, 0.5], dtype=D))  # projection of 0 onto the segment
    torch.testing.assert_close(w, torch.tensor([0.75, 0.25], dtype=D))
    square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=D)
    g, _ = min_norm_element(square)  # 0 is inside the hull
    assert float(g.norm()) < 1e-12
    g, w = min_norm_element(torch.tensor([[2.0, 1.0], [3.0, 1.0], [2.0, 5.0]], dtype=D))
    torch.testing.assert_close(g, torch.tensor([2.0, 1.0], dtype=D))  # a vertex
    g, _ = min_norm_element(torch.ones(5, 3, dtype=D))  # repeated points
    torch.testing.assert_close(g, torch.ones(3, dtype=D))


# ---- standard nonsmooth test functions ---------------------------------------------------------


def weighted_l1(x: torch.Tensor) -> torch.Tensor:
    return x[0].abs() + 2 * x[1].abs()


def max_of_quadratics(x: torch.Tensor) -> torch.Tensor:
    """max(|x - a|^2, |x - b|^2): minimiser (a + b)/2, value |a - b|^2 / 4."""
    a = torch.tensor([1.0, 2.0], dtype=x.dtype)
    b = torch.tensor([-3.0, 0.0], dtype=x.dtype)
    return torch.maximum(((x - a) ** 2).sum(), ((x - b) ** 2).sum())


def chebyshev_rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """Nesterov's nonsmooth Chebyshev-Rosenbrock function: minimiser (1, ..., 1), value 0."""
    return 0.25 * (x[0] - 1) ** 2 + (x[1:] - 2 * x[:-1] ** 2 + 1).abs().sum()


def nonsmooth_rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """8|x1^2 - x2| + (1 - x1)^2: minimiser (1, 1), value 0 (Lewis & Overton)."""
    return 8 * (x[0] ** 2 - x[1]).abs() + (1 - x[0]) ** 2


def max_of_linear(x: torch.Tensor) -> torch.Tensor:
    """max_i x_i + |x|^2 / 2 over R^4: minimiser -1/4 in every coordinate, value -1/8."""
    return x.max() + 0.5 * (x**2).sum()


CASES = {
    "weighted-l1": (weighted_l1, [1.0, -0.7], [0.0, 0.0], 0.0),
    "max-of-quadratics": (max_of_quadratics, [5.0, 5.0], [-1.0, 1.0], 5.0),
    "chebyshev-rosenbrock-2": (chebyshev_rosenbrock, [-1.0, 1.0], [1.0, 1.0], 0.0),
    "nonsmooth-rosenbrock": (nonsmooth_rosenbrock, [-0.5, 2.0], [1.0, 1.0], 0.0),
    "max-of-linear": (max_of_linear, [1.0, 0.5, -0.5, 2.0], [-0.25] * 4, -0.125),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reaches_the_known_minimiser(name: str) -> None:
    fn, x0, x_star, f_star = CASES[name]
    result = gradient_sampling(fn, torch.tensor(x0, dtype=D), seed=1)
    assert isinstance(result, GradientSamplingResult)
    assert result.converged, result.message
    assert result.stationarity <= 1e-6 and result.epsilon <= 1e-6
    torch.testing.assert_close(result.x, torch.tensor(x_star, dtype=D), atol=1e-4, rtol=0)
    assert result.f == pytest.approx(f_star, abs=1e-6)


def test_history_records_the_stationarity_measure_and_descent() -> None:
    result = gradient_sampling(max_of_quadratics, torch.tensor([5.0, 5.0], dtype=D), seed=0)
    history = result.history
    assert all(isinstance(h, GradientSamplingStep) for h in history)
    assert [h.iteration for h in history] == list(range(len(history)))
    f = [h.f for h in history]
    assert all(b <= a for a, b in itertools.pairwise(f))  # a descent method: f never increases
    assert history[0].stationarity > 1.0 and history[-1].stationarity <= 1e-6
    radii = [h.epsilon for h in history]
    assert all(b <= a for a, b in itertools.pairwise(radii))
    for before, after in itertools.pairwise(history):  # the radius shrinks exactly at null steps
        assert (after.epsilon < before.epsilon) == (before.step == 0.0)
    assert history[-1].gradients == len(history) * (2 * 2 + 1)
    assert history[-1].evaluations >= len(history)


def test_same_seed_same_path_and_x0_untouched() -> None:
    x0 = torch.tensor([1.0, -0.7], dtype=D)
    a = gradient_sampling(weighted_l1, x0, seed=3, max_iter=10)
    b = gradient_sampling(weighted_l1, x0, seed=3, max_iter=10)
    assert a.history == b.history and torch.equal(a.x, b.x)
    assert x0.tolist() == [1.0, -0.7]


def test_certified_gradients_do_not_fake_stationarity_at_a_kink() -> None:
    """f(x) = relu(x) - relu(-x) + 2 relu(-x - 5) is x for x > -5: minimiser -5. At x0 = 0 exactly, plain
    backprop returns 0, the min-norm element is 0 and the method stops there as if stationary."""

    def f(x: torch.Tensor) -> torch.Tensor:
        return (torch.relu(x) - torch.relu(-x) + 2 * torch.relu(-x - 5)).sum()

    x0 = torch.zeros(1, dtype=D)
    plain = gradient_sampling(f, x0, certified=False, seed=0)
    assert plain.converged and float(plain.x) == 0.0 and plain.history[0].stationarity == 0.0
    certified = gradient_sampling(f, x0, seed=0)
    assert certified.converged and float(certified.x) == pytest.approx(-5.0, abs=1e-5)
    assert certified.history[0].stationarity == pytest.approx(1.0)


def test_a_matrix_shaped_start_and_float32() -> None:
    def f(w: torch.Tensor) -> torch.Tensor:
        return (w - torch.eye(2, dtype=w.dtype)).abs().sum()

    result = gradient_sampling(f, torch.zeros(2, 2), epsilon_min=1e-4, tol=1e-4, seed=0)
    assert result.x.shape == (2, 2) and result.x.dtype == torch.float32
    torch.testing.assert_close(result.x, torch.eye(2), atol=1e-3, rtol=0)


def test_stops_on_max_iter_and_on_non_finite_values() -> None:
    result = gradient_sampling(chebyshev_rosenbrock, torch.tensor([-1.0, 1.0, 1.0], dtype=D), max_iter=3)
    assert not result.converged and result.message == "reached max_iter=3" and len(result.history) == 3

    def blows_up(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x.sum() < 0, torch.tensor(math.nan, dtype=x.dtype), x.sum())

    result = gradient_sampling(blows_up, torch.tensor([math.nan], dtype=D))
    assert not result.converged and "not finite" in result.message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": 0.0}, "epsilon must be"),
        ({"epsilon_min": -1.0}, "epsilon_min must be"),
        ({"epsilon_factor": 1.5}, "epsilon_factor must be"),
        ({"tol": -1e-3}, "tol must be"),
        ({"armijo": 1.0}, "armijo must be"),
        ({"backtrack": 0.0}, "backtrack must be"),
        ({"max_iter": 0}, "max_iter must be an int >= 1"),
        ({"max_backtracks": 2.5}, "max_backtracks must be"),
        ({"samples": 2}, r"samples must be an int >= n \+ 1 = 3, got samples=2"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gradient_sampling(weighted_l1, torch.ones(2, dtype=D), **kwargs)  # type: ignore[arg-type]


def test_bad_points_and_start() -> None:
    with pytest.raises(ValueError, match="x0 must be a floating-point tensor"):
        gradient_sampling(weighted_l1, torch.ones(2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"points must have shape \(m, n\)"):
        min_norm_element(torch.ones(3))
