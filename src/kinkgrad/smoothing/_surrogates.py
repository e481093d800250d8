r"""Smooth surrogates of PyTorch's kink ops, each with a stated uniform error bound.

Every surrogate :math:`s_\mu` of a nonsmooth :math:`f` is :math:`C^\infty` for :math:`\mu > 0` and
satisfies :math:`\ell(\mu) \le s_\mu(x) - f(x) \le u(\mu)` for every :math:`x`, with the interval
returned by :func:`error_bound`. All are built from two primitives:

* the softplus of temperature :math:`\mu`, :math:`r_\mu(x) = \mu \log(1 + e^{x/\mu})`, the surrogate of
  ``relu``: :math:`0 \le r_\mu(x) - \max(x, 0) \le \mu \log 2`, the gap largest at :math:`x = 0`;
* log-sum-exp of temperature :math:`\mu`, :math:`\mu \log \sum_i e^{x_i/\mu}`, the surrogate of a max of
  :math:`n` entries: :math:`0 \le \text{lse}_\mu(x) - \max_i x_i \le \mu \log n`.

Everything else is an identity on the exact functions with ``relu`` or ``max`` replaced
(``clamp(x, a, b) = a + relu(x - a) - relu(x - b)``, ``leaky_relu(x) = αx + (1 - α) relu(x)``...), so
its bound follows from the primitives'. ``abs`` has two surrogates: :math:`\sqrt{x^2 + \mu^2}`
(error in :math:`[0, \mu]`) and the Huber function (error in :math:`[-\mu/2, 0]`).

At :math:`\mu = 0` every surrogate is the exact function (PyTorch's own op), so a continuation schedule
driving :math:`\mu \to 0` ends on the original problem.

References:
    Y. Nesterov, "Smooth minimization of non-smooth functions", Math. Program. 103, 2005.
    A. Beck and M. Teboulle, "Smoothing and first order methods: a unified framework", SIAM J. Optim.
    22(2), 2012.
    C. Chen and O. L. Mangasarian, "A class of smoothing functions for nonlinear and mixed complementarity
    problems", Comput. Optim. Appl. 5, 1996.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ABS_KINDS",
    "SMOOTHED_OPS",
    "abs",
    "clamp",
    "error_bound",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "leaky_relu",
    "max",
    "maximum",
    "min",
    "minimum",
    "relu",
    "relu6",
    "softshrink",
]

AbsKind = Literal["sqrt", "huber"]
ABS_KINDS: tuple[str, ...] = ("sqrt", "huber")
"""The surrogates of ``abs``: ``"sqrt"`` is :math:`\\sqrt{x^2+\\mu^2}`, ``"huber"`` the Huber function."""

_LOG2 = math.log(2.0)


def _check_mu(mu: float) -> float:
    if isinstance(mu, bool) or not isinstance(mu, int | float) or not math.isfinite(mu) or mu < 0:
        raise ValueError(f"mu must be a finite number >= 0, got {mu!r}")
    return float(mu)


def _threshold(dtype: torch.dtype) -> float:
    """Where ``F.softplus`` switches to the identity: past it :math:`e^{-t}` is below the dtype's rounding."""
    return 40.0 if dtype == torch.float64 else 20.0


def relu(input: Tensor, mu: float) -> Tensor:
    r"""Softplus of temperature :math:`\mu`, the smooth surrogate of ``relu``.

    .. math::

        r_\mu(x) = \mu \log\big(1 + e^{x/\mu}\big), \qquad 0 \le r_\mu(x) - \max(x, 0) \le \mu \log 2,

    with equality on the right only at :math:`x = 0`; :math:`r_\mu'(x) = \sigma(x/\mu)` (so
    :math:`r_\mu'(0) = 1/2`, the middle of the Clarke set :math:`[0, 1]`).

    Args:
        input: A floating-point tensor.
        mu: Temperature :math:`\mu \ge 0`; ``0`` gives ``torch.relu`` itself.

    Returns:
        :math:`r_\mu(x)`, elementwise.

    Example:
        >>> x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
        >>> y = relu(x, mu=0.1)
        >>> y.detach()  # doctest: +NORMALIZE_WHITESPACE
        tensor([4.5399e-06, 6.9315e-02, 1.0000e+00], dtype=torch.float64)
        >>> y.sum().backward(); x.grad[1].item()
        0.5

    References:
        C. Chen and O. L. Mangasarian, Comput. Optim. Appl. 5, 1996.
    """
    mu = _check_mu(mu)
    if mu == 0.0:
        return torch.relu(input)
    return F.softplus(input, beta=1.0 / mu, threshold=_threshold(input.dtype))


def leaky_relu(input: Tensor, negative_slope: float = 0.01, mu: float = 0.0) -> Tensor:
    r"""Smooth ``leaky_relu``: :math:`\alpha x + (1 - \alpha)\, r_\mu(x)` with :math:`\alpha` the slope.

    Error: :math:`0 \le s_\mu(x) - \operatorname{leaky\_relu}(x) \le (1 - \alpha)\,\mu \log 2`
    (for :math:`\alpha \le 1`).

    Args:
        input: A floating-point tensor.
        negative_slope: :math:`\alpha`.
        mu: Temperature :math:`\mu \ge 0`.

    Returns:
        The surrogate, elementwise.

    Example:
        >>> leaky_relu(torch.tensor([0.0]), 0.5, mu=1.0)
        tensor([0.3466])
    """
    mu = _check_mu(mu)
    if mu == 0.0:
        return F.leaky_relu(input, negative_slope)
    return negative_slope * input + (1.0 - negative_slope) * relu(input, mu)


def abs(input: Tensor, mu: float, kind: AbsKind = "sqrt") -> Tensor:
    r"""Smooth ``abs``: :math:`\sqrt{x^2 + \mu^2}` or the Huber function.

    .. math::

        \text{sqrt: } \sqrt{x^2 + \mu^2}, \quad 0 \le s_\mu(x) - |x| \le \mu; \qquad
        \text{huber: } \begin{cases} x^2 / (2\mu) & |x| \le \mu \\ |x| - \mu/2 & |x| > \mu \end{cases},
        \quad -\mu/2 \le s_\mu(x) - |x| \le 0 .

    ``"sqrt"`` is :math:`C^\infty` with :math:`s_\mu'' \le 1/\mu`; Huber is :math:`C^1` with a
    :math:`1/\mu`-Lipschitz derivative (the Moreau envelope of :math:`|x|`), exact in slope beyond
    :math:`\mu`. Both have derivative 0 at 0.

    Args:
        input: A floating-point tensor.
        mu: :math:`\mu \ge 0`; ``0`` gives ``torch.abs``.
        kind: ``"sqrt"`` or ``"huber"``.

    Returns:
        The surrogate, elementwise.

    Example:
        >>> abs(torch.tensor([0.0, 3.0]), mu=4.0)
        tensor([4., 5.])
        >>> abs(torch.tensor([0.0, 3.0]), mu=4.0, kind="huber")
        tensor([0.0000, 1.1250])
    """
    mu = _check_mu(mu)
    kind = _check_abs_kind(kind)
    if mu == 0.0:
        return torch.abs(input)
    if kind == "sqrt":
        return torch.hypot(input, torch.full_like(input, mu))
    magnitude = torch.abs(input)
    # where, not a product: the quadratic branch's derivative x/μ is exact at x = 0
    return torch.where(magnitude <= mu, input * input / (2.0 * mu), magnitude - mu / 2.0)


def _check_abs_kind(kind: str) -> AbsKind:
    if kind not in ABS_KINDS:
        raise ValueError(f"abs must be one of {', '.join(map(repr, ABS_KINDS))}, got {kind!r}")
    return kind  # type: ignore[return-value]


def maximum(input: Tensor, other: Tensor, mu: float) -> Tensor:
    r"""Smooth ``maximum`` of two tensors: :math:`\mu \log(e^{a/\mu} + e^{b/\mu})`.

    Error: :math:`0 \le s_\mu(a, b) - \max(a, b) \le \mu \log 2`; the gradient is the softmax weights
    :math:`(\sigma((a-b)/\mu), \sigma((b-a)/\mu))`, which split evenly at a tie.

    Args:
        input: A floating-point tensor :math:`a`.
        other: A tensor :math:`b`, broadcastable with ``input``.
        mu: Temperature :math:`\mu \ge 0`; ``0`` gives ``torch.maximum``.

    Returns:
        The surrogate, broadcast.

    Example:
        >>> maximum(torch.tensor([0.0]), torch.tensor([0.0]), mu=1.0)
        tensor([0.6931])
    """
    mu = _check_mu(mu)
    if mu == 0.0:
        return torch.maximum(input, other)
    return mu * torch.logaddexp(input / mu, other / mu)


def minimum(input: Tensor, other: Tensor, mu: float) -> Tensor:
    r"""Smooth ``minimum``: :math:`-\mu \log(e^{-a/\mu} + e^{-b/\mu})`; error in :math:`[-\mu\log 2, 0]`.

    Example:
        >>> minimum(torch.tensor([0.0]), torch.tensor([0.0]), mu=1.0)
        tensor([-0.6931])
    """
    mu = _check_mu(mu)
    if mu == 0.0:
        return torch.minimum(input, other)
    return -mu * torch.logaddexp(-input / mu, -other / mu)


def _dims(input: Tensor, dim: int | Sequence[int] | None) -> list[int]:
    if dim is None:
        return list(range(input.dim()))
    if isinstance(dim, int):
        return [dim]
    return list(dim) if len(dim) else list(range(input.dim()))


def max(input: Tensor, dim: int | Sequence[int] | None = None, keepdim: bool = False, *, mu: float) -> Tensor:
    r"""Log-sum-exp of temperature :math:`\mu`, the smooth surrogate of a max over ``dim``.

    .. math::

        \text{lse}_\mu(x) = \mu \log \sum_{i=1}^{n} e^{x_i/\mu}, \qquad
        0 \le \text{lse}_\mu(x) - \max_i x_i \le \mu \log n,

    with :math:`n` the number of entries reduced; the gradient is :math:`\operatorname{softmax}(x/\mu)`,
    which splits evenly among tied maxima.

    Args:
        input: A floating-point tensor.
        dim: Dimension(s) to reduce; ``None`` (or ``()``) reduces all.
        keepdim: Keep reduced dimensions with size 1.
        mu: Temperature :math:`\mu \ge 0`; ``0`` gives ``torch.amax``.

    Returns:
        The reduced surrogate (values only).

    Example:
        >>> max(torch.tensor([1.0, 1.0, 0.0]), mu=0.5)
        tensor(1.3793)
    """
    mu = _check_mu(mu)
    dims = _dims(input, dim)
    if input.dim() == 0:
        return input.clone()
    if mu == 0.0:
        return torch.amax(input, dims, keepdim)
    return mu * torch.logsumexp(input / mu, dims, keepdim)


def min(input: Tensor, dim: int | Sequence[int] | None = None, keepdim: bool = False, *, mu: float) -> Tensor:
    r"""Smooth min over ``dim``: :math:`-\text{lse}_\mu(-x)`; error in :math:`[-\mu \log n, 0]`.

    Example:
        >>> min(torch.tensor([1.0, 1.0, 0.0]), mu=0.5)
        tensor(-0.1198)
    """
    return -max(-input, dim, keepdim, mu=mu)


def clamp(
    input: Tensor, min: float | Tensor | None = None, max: float | Tensor | None = None, *, mu: float
) -> Tensor:
    r"""Smooth ``clamp`` built from the ``relu`` surrogate :math:`r_\mu`.

    .. math::

        s_\mu(x) = a + r_\mu(x - a) - r_\mu(x - b),

    from :math:`\operatorname{clamp}(x, a, b) = a + \max(x - a, 0) - \max(x - b, 0)` (for :math:`a \le b`).
    Error: :math:`|s_\mu(x) - \operatorname{clamp}(x, a, b)| \le \mu \log 2`, and :math:`s_\mu` stays
    strictly inside :math:`(a, b)`. With only ``min``: :math:`a + r_\mu(x - a)`, error in
    :math:`[0, \mu\log 2]`; with only ``max``: :math:`b - r_\mu(b - x)`, error in :math:`[-\mu\log 2, 0]`.

    Args:
        input: A floating-point tensor.
        min: Lower bound :math:`a` (number or tensor) or ``None``.
        max: Upper bound :math:`b` or ``None``.
        mu: Temperature :math:`\mu \ge 0`; ``0`` gives ``torch.clamp``.

    Returns:
        The surrogate, broadcast.

    Example:
        >>> clamp(torch.tensor([-1.0, 0.5, 2.0]), 0.0, 1.0, mu=0.01)
        tensor([0.0000, 0.5000, 1.0000])
    """
    mu = _check_mu(mu)
    if mu == 0.0 or (min is None and max is None):
        return torch.clamp(input, min, max)  # type: ignore[arg-type]
    if min is None:
        assert max is not None
        return max - relu(max - input, mu)
    out = min + relu(input - min, mu)
    if max is not None:
        out = out - relu(input - max, mu)
    return out


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, *, mu: float) -> Tensor:
    r"""Smooth ``hardtanh``: :func:`clamp` to :math:`[a, b]`; :math:`|s_\mu - f| \le \mu \log 2`.

    Example:
        >>> hardtanh(torch.tensor([5.0]), mu=0.01)
        tensor([1.])
    """
    if _check_mu(mu) == 0.0:
        return F.hardtanh(input, min_val, max_val)
    return clamp(input, min_val, max_val, mu=mu)


def relu6(input: Tensor, *, mu: float) -> Tensor:
    r"""Smooth ``relu6``: :func:`clamp` to :math:`[0, 6]`; :math:`|s_\mu - f| \le \mu \log 2`.

    Example:
        >>> relu6(torch.tensor([7.0]), mu=0.01)
        tensor([6.])
    """
    if _check_mu(mu) == 0.0:
        return F.relu6(input)
    return clamp(input, 0.0, 6.0, mu=mu)


def hardsigmoid(input: Tensor, *, mu: float) -> Tensor:
    r"""Smooth ``hardsigmoid`` :math:`= \operatorname{clamp}(x/6 + 1/2, 0, 1)`: the smooth clamp of
    :math:`x/6 + 1/2`; :math:`|s_\mu - f| \le \mu \log 2`.

    Example:
        >>> hardsigmoid(torch.tensor([0.0]), mu=0.01)
        tensor([0.5000])
    """
    if _check_mu(mu) == 0.0:
        return F.hardsigmoid(input)
    return clamp(input / 6.0 + 0.5, 0.0, 1.0, mu=mu)


def hardswish(input: Tensor, *, mu: float) -> Tensor:
    r"""Smooth ``hardswish`` :math:`= x \cdot \operatorname{hardsigmoid}(x)`;
    :math:`|s_\mu(x) - f(x)| \le |x|\,\mu \log 2`.

    Example:
        >>> hardswish(torch.tensor([6.0]), mu=0.01)
        tensor([6.])
    """
    if _check_mu(mu) == 0.0:
        return F.hardswish(input)
    return input * hardsigmoid(input, mu=mu)


def softshrink(input: Tensor, lambd: float = 0.5, *, mu: float) -> Tensor:
    r"""Smooth ``softshrink`` :math:`= \max(x - \lambda, 0) - \max(-x - \lambda, 0)`:
    :math:`r_\mu(x - \lambda) - r_\mu(-x - \lambda)`; :math:`|s_\mu - f| \le \mu \log 2`.

    Example:
        >>> softshrink(torch.tensor([0.0, 2.0]), 0.5, mu=0.01)
        tensor([0.0000, 1.5000])
    """
    if _check_mu(mu) == 0.0:
        return F.softshrink(input, lambd)
    return relu(input - lambd, mu) - relu(-input - lambd, mu)


SMOOTHED_OPS: tuple[str, ...] = (
    "relu",
    "leaky_relu",
    "rrelu",
    "relu6",
    "hardtanh",
    "clamp",
    "clamp_min",
    "clamp_max",
    "threshold",
    "abs",
    "hardsigmoid",
    "hardswish",
    "softshrink",
    "maximum",
    "minimum",
    "fmax",
    "fmin",
    "max",
    "min",
    "amax",
    "amin",
    "l1_loss",
)
"""Names (as in :data:`kinkgrad.registry`) of the kink ops :func:`kinkgrad.smooth` replaces.

``rrelu`` only in eval mode, ``threshold`` only when ``value == threshold`` (otherwise it jumps), ``fmax`` and
``fmin`` as ``maximum`` and ``minimum``.
"""


def error_bound(
    op: str, mu: float, *, n: int = 2, abs: str = "sqrt", negative_slope: float = 0.01
) -> tuple[float, float]:
    r"""The interval :math:`[\ell, u]` with :math:`\ell \le s_\mu(x) - f(x) \le u` for every :math:`x`.

    Args:
        op: A name from :data:`SMOOTHED_OPS`.
        mu: The temperature :math:`\mu \ge 0`.
        n: Number of entries reduced (``max``, ``min``, ``amax``, ``amin``); 2 for the binary ops.
        abs: The ``abs`` surrogate, ``"sqrt"`` or ``"huber"`` (also used by ``l1_loss``).
        negative_slope: The slope :math:`\alpha` of ``leaky_relu`` and ``rrelu``.

    Returns:
        ``(lower, upper)``. For ``hardswish`` the bound is relative: multiply by :math:`|x|`. For
        ``l1_loss`` it bounds each element (and so the mean; multiply by the count for ``"sum"``).

    Example:
        >>> error_bound("relu", 0.1)
        (0.0, 0.06931471805599453)
        >>> error_bound("max", 1.0, n=4)
        (0.0, 1.3862943611198906)
    """
    mu = _check_mu(mu)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n!r}")
    kind = _check_abs_kind(abs)
    half = mu * _LOG2
    if op in ("relu", "clamp_min", "threshold", "maximum", "fmax"):
        return (0.0, half)
    if op in ("minimum", "fmin", "clamp_max"):
        return (-half, 0.0)
    if op in ("leaky_relu", "rrelu"):
        span = (1.0 - negative_slope) * half
        return (builtins.min(0.0, span), builtins.max(0.0, span))
    if op in ("relu6", "hardtanh", "clamp", "hardsigmoid", "hardswish", "softshrink"):
        return (-half, half)
    if op in ("abs", "l1_loss"):
        return (0.0, mu) if kind == "sqrt" else (-mu / 2.0, 0.0)
    if op in ("max", "amax"):
        return (0.0, mu * math.log(n))
    if op in ("min", "amin"):
        return (-mu * math.log(n), 0.0)
    raise ValueError(f"unknown smoothed op {op!r}; valid names: {', '.join(SMOOTHED_OPS)}")
