"""Problems shared by the nonsmooth-optimization experiments (``l1-paradox``, ``adaptive``,
``edge-of-stability``): sparse regression normalised so that the lasso's ``λ_max`` is 1, a teacher-student
regression for small networks, and full-batch training helpers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "Regression",
    "count_zeros",
    "l1_norm",
    "lasso_reference",
    "mlp",
    "one_thread",
    "sparse_regression",
    "teacher_regression",
]


@contextmanager
def one_thread() -> Iterator[None]:
    """One PyTorch intra-op thread for the duration (restored after).

    These problems are tiny: a second thread buys nothing, and on a shared machine a parallel region
    whose second core is busy waits for it (we measured 40x slower units under oversubscription).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class Regression:
    """Full-batch regression data: inputs ``x`` (n, d), targets ``y`` (n,), the generating weights if any."""

    x: Tensor
    y: Tensor
    w_true: Tensor | None = None


def sparse_regression(
    n: int, d: int, nonzeros: int, noise: float, seed: int, dtype: torch.dtype = torch.float64
) -> Regression:
    r"""``y = X w* + noise`` with ``nonzeros`` nonzero entries in ``w*``, standardised columns, and ``y``
    rescaled so that :math:`\lambda_{max} = \|X^\top y\|_\infty / n = 1`.

    For :math:`\min_w \frac{1}{2n}\|Xw - y\|^2 + \lambda \|w\|_1` the solution is 0 exactly when
    :math:`\lambda \ge \lambda_{max}`, so ``λ`` values read as fractions of the all-zero threshold.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    x = (x - x.mean(0)) / x.std(0)
    w = torch.zeros(d, dtype=dtype)
    support = torch.randperm(d, generator=g)[:nonzeros]
    w[support] = torch.sign(torch.randn(nonzeros, generator=g, dtype=dtype)) * (
        1.0 + torch.rand(nonzeros, generator=g, dtype=dtype)
    )
    y = x @ w + noise * torch.randn(n, generator=g, dtype=dtype)
    scale = float((x.T @ y).abs().max()) / n
    return Regression(x, y / scale, w / scale)


def teacher_regression(
    n: int, d: int, hidden: int, noise: float, seed: int, dtype: torch.dtype = torch.float64
) -> Regression:
    """Targets from a random one-hidden-layer tanh teacher, standardised to unit variance, plus noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    w1 = torch.randn(d, hidden, generator=g, dtype=dtype) / math.sqrt(d)
    w2 = torch.randn(hidden, generator=g, dtype=dtype) / math.sqrt(hidden)
    y = torch.tanh(x @ w1) @ w2
    y = (y - y.mean()) / y.std()
    return Regression(x, y + noise * torch.randn(n, generator=g, dtype=dtype))


def mlp(
    inputs: int, hidden: tuple[int, ...], activation: Callable[[], nn.Module], seed: int, dtype: torch.dtype
) -> nn.Sequential:
    """``[Linear, activation] × len(hidden), Linear(→1)`` with PyTorch's default init from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, h), activation()]
            width = h
        layers.append(nn.Linear(width, 1))
        return nn.Sequential(*layers).to(dtype)


def lasso_reference(data: Regression, lam: float) -> Tensor:
    r"""The exact lasso solution of :math:`\frac{1}{2n}\|Xw - y\|^2 + \lambda\|w\|_1` by coordinate descent
    (scikit-learn's ``Lasso``, whose objective is this one), to tolerance 1e-12."""
    from sklearn.linear_model import Lasso

    x = data.x.double().numpy()
    y = data.y.double().numpy()
    model = Lasso(alpha=lam, fit_intercept=False, tol=1e-12, max_iter=1_000_000)
    model.fit(x, y)
    return torch.from_numpy(model.coef_.copy()).to(data.x.dtype)


def l1_norm(tensors: list[Tensor]) -> float:
    """Sum of absolute values over all tensors."""
    return float(sum(float(t.detach().abs().sum()) for t in tensors))


def count_zeros(tensors: list[Tensor]) -> int:
    """Number of entries exactly equal to 0."""
    return int(sum(int((t.detach() == 0).sum()) for t in tensors))
