r"""Gradient sampling (Burke, Lewis & Overton 2005; Kiwiel 2007) for small, full-batch nonsmooth problems."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ._validation import check_number

__all__ = ["GradientSamplingResult", "GradientSamplingStep", "gradient_sampling", "min_norm_element"]

_NAME = "gradient_sampling"


@dataclass(frozen=True)
class GradientSamplingStep:
    r"""One iteration of :func:`gradient_sampling`.

    Attributes:
        iteration: :math:`k`, from 0.
        f: :math:`f(x_k)`.
        stationarity: :math:`\|g_k\|`, the norm of the min-norm element of the convex hull of the sampled
            gradients: :math:`x_k` is :math:`(\epsilon_k, \|g_k\|)`-stationary (approximately).
        epsilon: :math:`\epsilon_k`, the sampling radius.
        step: :math:`t_k`, the accepted step along :math:`-g_k/\|g_k\|` (0 for a null step, which shrinks
            :math:`\epsilon`).
        evaluations: Function values computed so far.
        gradients: Gradients computed so far.
    """

    iteration: int
    f: float
    stationarity: float
    epsilon: float
    step: float
    evaluations: int
    gradients: int


@dataclass(frozen=True)
class GradientSamplingResult:
    r"""What :func:`gradient_sampling` found.

    Attributes:
        x: The last iterate (a detached tensor shaped like ``x0``).
        f: :math:`f(x)`.
        stationarity: The last :math:`\|g_k\|` (norm of the min-norm element of the sampled hull).
        epsilon: The last sampling radius.
        converged: ``True`` when :math:`\|g_k\| \le` ``tol`` with :math:`\epsilon_k \le` ``epsilon_min``.
        message: Why it stopped.
        history: One :class:`GradientSamplingStep` per iteration.
    """

    x: Tensor
    f: float
    stationarity: float
    epsilon: float
    converged: bool
    message: str
    history: tuple[GradientSamplingStep, ...]


def min_norm_element(points: Tensor, *, tol: float = 1e-12, max_iter: int = 1000) -> tuple[Tensor, Tensor]:
    r"""The point of smallest Euclidean norm in the convex hull of the rows of ``points``.

    .. math::

        \lambda^\star = \operatorname*{argmin}_{\lambda \ge 0,\ \mathbf 1^\top \lambda = 1}
        \Big\| \sum_i \lambda_i p_i \Big\|_2^2, \qquad g = \sum_i \lambda^\star_i p_i,

    solved exactly (up to rounding) by Wolfe's active-set algorithm: it keeps an affinely independent
    corral of points, adds the point most opposed to the current :math:`g`, and solves the small
    equality-constrained problem on the corral, dropping points whose weight would turn negative. It stops
    when :math:`\|g\|^2 - \min_i \langle g, p_i \rangle \le` ``tol`` :math:`\cdot \max_i \|p_i\|^2`
    (the optimality condition of the QP).

    Args:
        points: ``(m, n)``, one point per row (floating point; solved in float64).
        tol: Relative tolerance of the optimality test.
        max_iter: Cap on major iterations.

    Returns:
        ``(g, weights)``: the min-norm element (shape ``(n,)``) and the convex weights (shape ``(m,)``),
        in the dtype of ``points``.

    Example:
        >>> g, w = min_norm_element(torch.tensor([[1.0, 0.0], [-1.0, 2.0]]))
        >>> g, w
        (tensor([0.5000, 0.5000]), tensor([0.7500, 0.2500]))

    References:
        P. Wolfe, "Finding the nearest point in a polytope", Math. Program. 11, 1976.
    """
    if points.dim() != 2 or points.shape[0] == 0:
        raise ValueError(f"points must have shape (m, n) with m >= 1, got {tuple(points.shape)}")
    P = points.detach().to("cpu", torch.float64).numpy()
    weights = _wolfe(P, tol, max_iter)
    g = weights @ P
    return (
        torch.from_numpy(g).to(points.device, points.dtype),
        torch.from_numpy(weights).to(points.device, points.dtype),
    )


def _affine_minimizer(A: np.ndarray) -> np.ndarray:
    """Weights ``v`` (summing to 1) of the min-norm point of the affine hull of the rows of ``A``."""
    k = A.shape[0]
    kkt = np.zeros((k + 1, k + 1))
    kkt[:k, :k] = A @ A.T
    kkt[:k, k] = 1.0
    kkt[k, :k] = 1.0
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
    v: np.ndarray = solution[:k]
    return v / v.sum()


def _wolfe(P: np.ndarray, tol: float, max_iter: int) -> np.ndarray:
    m = P.shape[0]
    sq = np.einsum("ij,ij->i", P, P)
    scale = max(float(sq.max()), np.finfo(np.float64).tiny)
    corral = [int(np.argmin(sq))]
    w = np.ones(1)
    x = P[corral[0]].copy()
    for _ in range(max_iter):
        dots = P @ x
        j = int(np.argmin(dots))
        if float(x @ x) - float(dots[j]) <= tol * scale or j in corral:
            break
        corral.append(j)
        w = np.append(w, 0.0)
        for _ in range(m + 1):  # minor cycles: each drops at least one point
            v = _affine_minimizer(P[corral])
            if (v > tol).all():
                w = v
                break
            falling = (v <= tol) & (w - v > 0)
            theta = min(1.0, float(np.min(w[falling] / (w[falling] - v[falling])))) if falling.any() else 1.0
            w = w + theta * (v - w)
            keep = w > tol
            if not keep.any():
                keep[np.argmax(w)] = True
            corral = [c for c, k in zip(corral, keep) if k]
            w = w[keep] / w[keep].sum()
        x = w @ P[corral]
    weights = np.zeros(m)
    weights[corral] = w
    return weights


def _ball(n: int, count: int, radius: float, generator: torch.Generator) -> Tensor:
    """``count`` points uniform in the ``n``-ball of ``radius`` (float64)."""
    u = torch.randn(count, n, generator=generator, dtype=torch.float64)
    u /= torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min(1e-300)
    r = torch.rand(count, 1, generator=generator, dtype=torch.float64) ** (1.0 / n)
    return radius * r * u


def gradient_sampling(
    fn: Callable[[Tensor], Tensor],
    x0: Tensor,
    *,
    epsilon: float = 0.1,
    epsilon_min: float = 1e-6,
    epsilon_factor: float = 0.1,
    tol: float = 1e-6,
    samples: int | None = None,
    armijo: float = 1e-6,
    backtrack: float = 0.5,
    max_backtracks: int = 60,
    max_iter: int = 500,
    certified: bool = True,
    seed: int = 0,
) -> GradientSamplingResult:
    r"""Minimise a locally Lipschitz :math:`f` by gradient sampling, recording a stationarity measure.

    At :math:`x_k`, draw :math:`m` points :math:`x_{k,j}` uniformly in the ball of radius :math:`\epsilon_k`
    and take the min-norm element of the convex hull of their gradients and :math:`x_k`'s own
    (:func:`min_norm_element`),

    .. math::

        g_k = \operatorname*{argmin} \big\{ \|g\| : g \in
        \operatorname{conv}\{\nabla f(x_k), \nabla f(x_{k,1}), \dots, \nabla f(x_{k,m})\} \big\},

    an approximation of the min-norm element of the Goldstein :math:`\epsilon`-subdifferential
    :math:`\operatorname{conv} \partial f(B(x_k, \epsilon_k))`. If :math:`\|g_k\| \le` ``tol``,
    :math:`x_k` is :math:`(\epsilon_k, \text{tol})`-stationary: stop if :math:`\epsilon_k \le`
    ``epsilon_min``, else shrink :math:`\epsilon`. Otherwise, with :math:`d_k = -g_k/\|g_k\|`, backtrack
    :math:`t = 1, \gamma, \gamma^2, \dots` to the first Armijo point

    .. math::

        f(x_k + t d_k) < f(x_k) - \beta\, t\, \|g_k\|,

    and if none is found within ``max_backtracks`` take a null step and shrink :math:`\epsilon`. Every cluster
    point is Clarke stationary with probability one when :math:`m \ge n + 1` (Kiwiel 2007).

    Gradients are certified (:func:`kinkgrad.clarke_grad`, an element of the Bouligand subdifferential)
    by default: at :math:`x_k` itself, which may sit exactly on a kink, plain backprop can return a
    vector that is not a generalized gradient at all (``relu(x) - relu(-x)`` at 0 gives 0), which would
    fake stationarity. The sampled points are almost surely smooth points.

    Args:
        fn: :math:`f`, PyTorch code taking a tensor shaped like ``x0`` and returning a scalar tensor.
        x0: The starting point (any shape; floating point; computed in its dtype, float64 recommended).
        epsilon: The initial sampling radius :math:`\epsilon_0 > 0`.
        epsilon_min: Stop once stationary at a radius at most this.
        epsilon_factor: :math:`\theta \in (0, 1)`, the radius reduction.
        tol: The stationarity target for :math:`\|g_k\|` (:math:`\nu` in Burke-Lewis-Overton).
        samples: :math:`m`, points sampled per iteration; default :math:`2n`, at least :math:`n + 1`.
        armijo: :math:`\beta \in (0, 1)`, the sufficient-decrease constant.
        backtrack: :math:`\gamma \in (0, 1)`, the backtracking factor.
        max_backtracks: Backtracking steps before a null step.
        max_iter: Cap on iterations.
        certified: Use :func:`kinkgrad.clarke_grad`; ``False`` uses plain ``torch.autograd.grad``.
        seed: Seed of the sampling generator.

    Returns:
        A :class:`GradientSamplingResult`: the last iterate, :math:`f` there, the stationarity measure and
        one :class:`GradientSamplingStep` per iteration.

    Raises:
        ValueError: A parameter out of range (naming it), ``samples < n + 1``, or ``x0`` not floating point.

    Example:
        >>> import torch
        >>> f = lambda x: x[0].abs() + 2 * x[1].abs()
        >>> result = gradient_sampling(f, torch.tensor([1.0, -0.7], dtype=torch.float64), seed=0)
        >>> result.converged, result.x.abs().max().item() < 1e-5, result.stationarity <= 1e-6
        (True, True, True)

    References:
        J. V. Burke, A. S. Lewis and M. L. Overton, "A robust gradient sampling algorithm for nonsmooth,
        nonconvex optimization", SIAM J. Optim. 15(3), 2005.
        K. C. Kiwiel, "Convergence of the gradient sampling algorithm for nonsmooth nonconvex
        optimization", SIAM J. Optim. 18(2), 2007.
        J. V. Burke, F. E. Curtis, A. S. Lewis, M. L. Overton and L. E. A. Simões, "Gradient sampling
        methods for nonsmooth optimization", in Numerical Nonsmooth Optimization, Springer, 2020.
    """
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise ValueError(f"{_NAME}: x0 must be a floating-point tensor, got {type(x0).__name__}")
    eps = check_number(_NAME, "epsilon", epsilon, low=0.0, low_open=True)
    eps_min = check_number(_NAME, "epsilon_min", epsilon_min, low=0.0)
    theta = check_number(_NAME, "epsilon_factor", epsilon_factor, low=0.0, high=1.0, low_open=True)
    tol = check_number(_NAME, "tol", tol, low=0.0)
    beta = check_number(_NAME, "armijo", armijo, low=0.0, high=1.0, low_open=True)
    gamma = check_number(_NAME, "backtrack", backtrack, low=0.0, high=1.0, low_open=True)
    for name, count in (("max_backtracks", max_backtracks), ("max_iter", max_iter)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{_NAME}: {name} must be an int >= 1, got {name}={count!r}")
    shape, dtype, device = x0.shape, x0.dtype, x0.device
    n = x0.numel()
    m = 2 * n if samples is None else samples
    if isinstance(m, bool) or not isinstance(m, int) or m < n + 1:
        raise ValueError(f"{_NAME}: samples must be an int >= n + 1 = {n + 1}, got samples={samples!r}")
    generator = torch.Generator().manual_seed(seed)
    counts = {"f": 0, "grad": 0}

    def value(x: Tensor) -> float:
        counts["f"] += 1
        with torch.no_grad():
            return float(fn(x.reshape(shape)))

    def gradient(x: Tensor) -> Tensor:
        counts["grad"] += 1
        point = x.detach().reshape(shape).clone().requires_grad_(True)
        if certified:
            from kinkgrad._certified import clarke_grad

            (grad,) = clarke_grad(fn, point, seed=seed)
        else:
            (grad,) = torch.autograd.grad(fn(point), point)
        return grad.detach().reshape(-1).to(torch.float64)

    x = x0.detach().reshape(-1).clone()
    fx = value(x)
    history: list[GradientSamplingStep] = []
    message = f"reached max_iter={max_iter}"
    converged = False
    norm = math.inf
    for k in range(max_iter):
        if not math.isfinite(fx):
            message = f"f is not finite at iteration {k}"
            break
        offsets = _ball(n, m, eps, generator).to(device, dtype)
        grads = torch.stack([gradient(x)] + [gradient(x + offsets[j]) for j in range(m)])
        g, _ = min_norm_element(grads)
        norm = float(torch.linalg.vector_norm(g))
        step = 0.0
        if norm <= tol:
            if eps <= eps_min:
                history.append(GradientSamplingStep(k, fx, norm, eps, 0.0, counts["f"], counts["grad"]))
                converged, message = True, f"stationary: |g| = {norm:.3g} <= tol at epsilon = {eps:.3g}"
                break
        else:
            direction = (-g / norm).to(device, dtype)
            t = 1.0
            for _ in range(max_backtracks):
                trial = x + t * direction
                f_trial = value(trial)
                if f_trial < fx - beta * t * norm:
                    step = t
                    break
                t *= gamma
        history.append(GradientSamplingStep(k, fx, norm, eps, step, counts["f"], counts["grad"]))
        if step > 0.0:
            x, fx = trial, f_trial
        else:  # stationary at this radius, or no descent found: sample closer
            eps *= theta
            if eps < 1e-12 * max(1.0, float(torch.linalg.vector_norm(x))):
                message = f"sampling radius below rounding (|g| = {norm:.3g} > tol, no descent found)"
                break
    return GradientSamplingResult(
        x=x.reshape(shape).clone(),
        f=fx,
        stationarity=norm,
        epsilon=eps,
        converged=converged,
        message=message,
        history=tuple(history),
    )
