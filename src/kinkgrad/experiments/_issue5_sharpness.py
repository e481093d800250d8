r"""Sharpness (the top eigenvalue of the Hessian of a training loss) from Hessian-vector products.

A model and a loss become a function :math:`L(\theta)` of one flat parameter vector
(:func:`flat_loss`). Hessian-vector products come from autodiff (forward-over-reverse,
``torch.func.jvp`` of ``torch.func.grad``: at a ReLU kink this differentiates PyTorch's chosen
derivative, so the kinks' contributions, Dirac masses, are absent) or from central finite differences of
gradients, :math:`(\nabla L(\theta + h v) - \nabla L(\theta - h v)) / 2h`, which do see activation
patterns change within :math:`h`. The top eigenvalue is estimated by Lanczos (full
reorthogonalisation) or by power iteration.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp

__all__ = ["Hvp", "autodiff_hvp", "finite_difference_hvp", "flat_loss", "lanczos_top", "power_top"]

Hvp = Callable[[Tensor], Tensor]


def flat_loss(
    model: nn.Module, loss: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """``(L, θ₀)``: the loss of ``model`` on ``(x, y)`` as a function of a flat parameter vector, and the
    model's current parameters flattened."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def fn(theta: Tensor) -> Tensor:
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(theta, sizes), shapes)}
        out = functional_call(model, params, (x,))
        return loss(out.squeeze(-1), y)

    return fn, theta0


def autodiff_hvp(fn: Callable[[Tensor], Tensor], theta: Tensor) -> Hvp:
    """``v ↦ ∇²L(θ) v`` by forward-over-reverse autodiff."""
    gradient = grad(fn)

    def hvp(v: Tensor) -> Tensor:
        return jvp(gradient, (theta,), (v.to(theta.dtype),))[1]

    return hvp


def finite_difference_hvp(fn: Callable[[Tensor], Tensor], theta: Tensor, h: float) -> Hvp:
    """``v ↦ (∇L(θ + h v̂) − ∇L(θ − h v̂)) ‖v‖ / 2h`` with ``v̂ = v/‖v‖`` (``h`` is a distance in θ)."""
    gradient = grad(fn)

    def hvp(v: Tensor) -> Tensor:
        norm = float(v.norm())
        u = (v / norm).to(theta.dtype)
        return (gradient(theta + h * u) - gradient(theta - h * u)) * (norm / (2 * h))

    return hvp


def lanczos_top(hvp: Hvp, n: int, iterations: int, generator: torch.Generator) -> float:
    """Largest Ritz value after ``iterations`` Lanczos steps from a random start (float64)."""
    v = torch.randn(n, generator=generator, dtype=torch.float64)
    v /= v.norm()
    basis = [v]
    alphas: list[float] = []
    betas: list[float] = []
    w = hvp(v).double()
    alphas.append(float(w @ v))
    w = w - alphas[-1] * v
    for _ in range(1, min(iterations, n)):
        for u in basis:  # full reorthogonalisation: a few dozen vectors at most
            w = w - (w @ u) * u
        beta = float(w.norm())
        if beta < 1e-12 * max(1.0, abs(alphas[0])):
            break
        v = w / beta
        basis.append(v)
        betas.append(beta)
        w = hvp(v).double() - beta * basis[-2]
        alphas.append(float(w @ v))
        w = w - alphas[-1] * v
    k = len(alphas)
    t = torch.zeros(k, k, dtype=torch.float64)
    t[range(k), range(k)] = torch.tensor(alphas, dtype=torch.float64)
    if k > 1:
        off = torch.tensor(betas, dtype=torch.float64)
        t[range(k - 1), range(1, k)] = off
        t[range(1, k), range(k - 1)] = off
    return float(torch.linalg.eigvalsh(t)[-1])


def power_top(hvp: Hvp, n: int, iterations: int, generator: torch.Generator) -> float:
    """The Rayleigh quotient after ``iterations`` power-iteration steps (dominant eigenvalue by magnitude)."""
    v = torch.randn(n, generator=generator, dtype=torch.float64)
    v /= v.norm()
    value = math.nan
    for _ in range(iterations):
        w = hvp(v).double()
        value = float(w @ v)
        norm = float(w.norm())
        if norm == 0.0:
            return 0.0
        v = w / norm
    return value
