"""Constraint sets, whose prox is a projection: :class:`NonNegative`, :class:`Box` and :class:`L2Ball`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import final

import torch
from torch import Tensor

from ._base import Projection, _check_nonneg
from ._groups import Dim, check_dim, group_norm, reduced_dims, solve_secular

__all__ = ["Box", "L2Ball", "NonNegative"]


@final
@dataclass(frozen=True)
class NonNegative(Projection):
    r"""The nonnegative orthant :math:`C = \{x : x_i \ge 0\}`; its projection is ``clamp(x, min=0)``.

    .. math::

        \operatorname{prox}(x, s)_i = \max(x_i, 0) \quad \text{for every step } s.

    Args:
        (none)

    Returns:
        An operator; ``prox(x, step)`` returns a tensor shaped like ``x``.

    Example:
        >>> import torch
        >>> from kinkgrad.prox import NonNegative
        >>> NonNegative().prox(torch.tensor([-1.0, 0.0, 2.0]), step=1.0)
        tensor([0., 0., 2.])

    References:
        H. H. Bauschke and P. L. Combettes, "Convex Analysis and Monotone Operator Theory in Hilbert
        Spaces", 2nd ed., Springer, 2017, example 29.18.
    """

    @property
    def elementwise(self) -> bool:
        return True

    def _contains(self, x: Tensor) -> bool:
        return bool((x >= 0).all())

    def _apply(self, x: Tensor, step: float | Tensor, inplace: bool) -> Tensor:
        return x.clamp_(min=0.0) if inplace else x.clamp(min=0.0)


def _check_bound(name: str, value: object) -> float | Tensor:
    if isinstance(value, Tensor):
        if not value.is_floating_point() or bool(value.isnan().any()):
            raise ValueError(f"Box: {name} must be a real floating-point tensor without NaN, got {value!r}")
        return value.detach()
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(float(value)):
        raise ValueError(
            f"Box: {name} must be a number (infinities allowed) or a tensor, got {name}={value!r}"
        )
    return float(value)


@final
@dataclass(frozen=True, eq=False)
class Box(Projection):
    r"""The box :math:`C = \{x : lo_i \le x_i \le hi_i\}`; its projection is ``clamp(x, lo, hi)``.

    .. math::

        \operatorname{prox}(x, s)_i = \min(\max(x_i, lo_i), hi_i) \quad \text{for every step } s.

    Args:
        lo: Lower bound: a number (``-inf`` allowed) or a tensor broadcastable to the inputs.
        hi: Upper bound: a number (``inf`` allowed) or a tensor broadcastable to the inputs; ``lo <= hi``.

    Returns:
        An operator; ``prox(x, step)`` returns a tensor shaped like ``x``.

    Example:
        >>> import torch
        >>> from kinkgrad.prox import Box
        >>> Box(lo=-1.0, hi=0.5).prox(torch.tensor([-3.0, 0.0, 3.0]), step=1.0)
        tensor([-1.0000,  0.0000,  0.5000])

    References:
        H. H. Bauschke and P. L. Combettes, "Convex Analysis and Monotone Operator Theory in Hilbert
        Spaces", 2nd ed., Springer, 2017, example 29.18.
    """

    lo: float | Tensor = -math.inf
    hi: float | Tensor = math.inf

    def __post_init__(self) -> None:
        lo, hi = _check_bound("lo", self.lo), _check_bound("hi", self.hi)
        try:
            ok = bool(torch.all(torch.as_tensor(lo) <= torch.as_tensor(hi)))
        except RuntimeError:
            raise ValueError(
                f"Box: lo and hi must broadcast together, got shapes {tuple(torch.as_tensor(lo).shape)} "
                f"and {tuple(torch.as_tensor(hi).shape)}"
            ) from None
        if not ok:
            raise ValueError(f"Box: lo must be <= hi everywhere, got lo={lo!r}, hi={hi!r}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Box):
            return NotImplemented
        return all(
            torch.equal(torch.as_tensor(a), torch.as_tensor(b))
            for a, b in ((self.lo, other.lo), (self.hi, other.hi))
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def elementwise(self) -> bool:
        # A tensor bound is tied to coordinates of the whole input; a 0-dim one is not.
        return all(not isinstance(b, Tensor) or b.dim() == 0 for b in (self.lo, self.hi))

    def _bounds(self, x: Tensor) -> tuple[float | Tensor, float | Tensor]:
        lo, hi = self.lo, self.hi
        if isinstance(lo, Tensor):
            lo = lo.to(dtype=x.dtype, device=x.device)
        if isinstance(hi, Tensor):
            hi = hi.to(dtype=x.dtype, device=x.device)
        if isinstance(lo, Tensor) != isinstance(hi, Tensor):  # clamp takes two numbers or two tensors
            lo, hi = (torch.as_tensor(b, dtype=x.dtype, device=x.device) for b in (lo, hi))
        return lo, hi

    def _contains(self, x: Tensor) -> bool:
        lo, hi = self._bounds(x)
        return bool(((x >= lo) & (x <= hi)).all())

    def _apply(self, x: Tensor, step: float | Tensor, inplace: bool) -> Tensor:
        lo, hi = self._bounds(x)
        return x.clamp_(lo, hi) if inplace else torch.clamp(x, lo, hi)  # type: ignore[arg-type]


@final
@dataclass(frozen=True)
class L2Ball(Projection):
    r"""The Euclidean ball :math:`C = \{x : \|x_g\|_2 \le r \text{ for every group } g\}`.

    Groups follow ``dim`` as in :class:`GroupL1`, but the default ``dim=None`` makes the whole tensor one
    ball; ``dim=0`` constrains each row of a ``Linear`` weight (each filter of a ``Conv2d`` weight)
    separately, the max-norm constraint. For a scalar step the projection is

    .. math::

        \operatorname{prox}(x, s)_g = \min\!\Big(1, \frac{r}{\|x_g\|_2}\Big)\, x_g .

    For a tensor step it is the projection in the metric :math:`\sum_i (z_i - x_i)^2 / s_i`:
    :math:`z_i = x_i / (1 + \mu s_i)` with :math:`\mu \ge 0` the root of :math:`\|z_g\|_2 = r` (a monotone
    Newton iteration), then rescaled onto the sphere to remove rounding. :meth:`value` accepts norms up to
    :math:`r (1 + 16\,\varepsilon)` with :math:`\varepsilon` the dtype's machine epsilon.

    Args:
        radius: The radius :math:`r`, a finite number ``>= 0``.
        dim: The dimension(s) indexing the groups, or ``None`` (default) for a single ball.

    Returns:
        An operator; ``prox(x, step)`` returns a tensor shaped like ``x``.

    Example:
        >>> import torch
        >>> from kinkgrad.prox import L2Ball
        >>> L2Ball(radius=1.0).prox(torch.tensor([3.0, 4.0]), step=1.0)
        tensor([0.6000, 0.8000])

    References:
        N. Srivastava et al., "Dropout: a simple way to prevent neural networks from overfitting", JMLR 15,
        2014 (max-norm constraints). J. J. Moré and D. C. Sorensen, "Computing a trust region step", SIAM
        J. Sci. Stat. Comput. 4(3), 1983 (the secular equation).
    """

    radius: float
    dim: Dim = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "radius", _check_nonneg("L2Ball", "radius", self.radius))
        object.__setattr__(self, "dim", check_dim("L2Ball", self.dim))

    def _contains(self, x: Tensor) -> bool:
        norms = group_norm(x, reduced_dims(repr(self), x, self.dim))
        return bool((norms <= self.radius * (1.0 + 16.0 * torch.finfo(x.dtype).eps)).all())

    def _apply(self, x: Tensor, step: float | Tensor, inplace: bool) -> Tensor:
        rdims = reduced_dims(repr(self), x, self.dim)
        r = self.radius
        if r == 0.0:
            return x.zero_() if inplace else torch.zeros_like(x)
        if isinstance(step, Tensor) and step.numel() > 1:
            factor = _weighted_ball_factor(x, step.expand_as(x), r, rdims)
        else:
            norms = group_norm(x, rdims)
            outside = norms > r
            factor = torch.where(outside, r / torch.where(outside, norms, 1.0), 1.0)
        return x.mul_(factor) if inplace else x * factor


def _weighted_ball_factor(x: Tensor, s: Tensor, r: float, rdims: tuple[int, ...]) -> Tensor:
    """Per-entry factor of the projection onto ``||z_g|| <= r`` in the metric ``sum (z - x)^2 / s``."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    xw, sw = x.to(dtype), s.to(dtype)
    b = 1.0 / sw
    mu = solve_secular((xw / (r * sw)).square(), b, rdims)
    factor = b / (b + mu)
    # Newton stops at or just below the root, so ||z|| may exceed r by rounding: pull back onto the sphere.
    norms = group_norm(xw * factor, rdims)
    outside = norms > r
    factor = factor * torch.where(outside, r / torch.where(outside, norms, 1.0), 1.0)
    return factor.to(x.dtype)
