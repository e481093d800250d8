"""Sparsity penalties: :class:`L1`, :class:`ElasticNet`, :class:`L0` and :class:`GroupL1`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import final

import torch
from torch import Tensor

from ._base import Prox, _check_nonneg, _check_x
from ._groups import Dim, check_dim, group_norm, reduced_dims, solve_secular

__all__ = ["L0", "L1", "ElasticNet", "GroupL1"]


def _softshrink_(x: Tensor, threshold: float) -> Tensor:
    """In-place soft thresholding: one pass over ``x`` (``softshrink`` writing into its own input)."""
    return torch._C._nn.softshrink(x, threshold, out=x)  # type: ignore[call-arg]


def soft_threshold(x: Tensor, t: float | Tensor, inplace: bool) -> Tensor:
    """``sign(x) * max(|x| - t, 0)`` elementwise, for a scalar or a broadcastable tensor threshold."""
    if isinstance(t, float):
        return _softshrink_(x, t) if inplace else torch.nn.functional.softshrink(x, t)
    shrink = torch.clamp(x, min=-t, max=t)
    return x.sub_(shrink) if inplace else x - shrink


@final
@dataclass(frozen=True)
class L1(Prox):
    r"""The lasso penalty :math:`h(x) = \lambda \|x\|_1`, whose prox is soft thresholding.

    .. math::

        \operatorname{prox}(x, s)_i = \operatorname{sign}(x_i)\,\max(|x_i| - \lambda s_i,\ 0).

    Entries with :math:`|x_i| \le \lambda s_i` (the kink included: :math:`|x_i| = \lambda s_i`) become
    exactly zero (possibly ``-0.0``, which compares equal to ``0``).

    Args:
        lam: The weight :math:`\lambda`, a finite number ``>= 0``.

    Returns:
        An operator; ``prox(x, step)`` returns a tensor shaped like ``x``.

    Example:
        >>> import torch
        >>> from kinkgrad.prox import L1
        >>> h = L1(lam=0.5)
        >>> h.prox(torch.tensor([-2.0, 0.5, 0.25, 1.0]), step=1.0)
        tensor([-1.5000,  0.0000,  0.0000,  0.5000])
        >>> h.value(torch.tensor([-2.0, 1.0]))
        tensor(1.5000)

    References:
        R. Tibshirani, "Regression shrinkage and selection via the lasso", JRSS B 58(1), 1996.
        D. L. Donoho, "De-noising by soft-thresholding", IEEE Trans. Inf. Theory 41(3), 1995.
    """

    lam: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", _check_nonneg("L1", "lam", self.lam))

    @property
    def elementwise(self) -> bool:
        return True

    def value(self, x: Tensor) -> Tensor:
        _check_x(self, x)
        return self.lam * x.abs().sum()

    def _apply(self, x: Tensor, step: float | Tensor, inplace: bool) -> Tensor:
        return soft_threshold(x, self.lam * step, inplace)


@final
@dataclass(frozen=True)
class ElasticNet(Prox):
    r"""The elastic-net penalty :math:`h(x) = \lambda_1 \|x\|_1 + \tfrac{\lambda_2}{2} \|x\|_2^2`.

    .. math::

        \operatorname{prox}(x, s)_i = \frac{\operatorname{sign}(x_i)\,\max(|x_i| - \lambda_1 s_i,\ 0)}
        {1 + \lambda_2 s_i}.

    Note the factor :math:`\tfrac12` on the quadratic term (scikit-learn's ``ElasticNet`` scales both terms
    differently).

    Args:
        l1: The weight :math:`\lambda_1 \ge 0` of the L1 term.
        l2: The weight :math:`\lambda_2 \ge 0` of the squared L2 term.

    Returns:
        An operator; ``prox(x, step)`` returns a tensor shaped like ``x``.

    Example:
        >>> import torch
        >>> from kinkgrad.prox import ElasticNet
        >>> ElasticNet(l1=1.0, l2=1.0).prox(torch.tensor([-3.0, 0.5, 5.0]), step=1.0)
        tensor([-1.,  0.,  2.])

    References:
        H. Zou and T. Hastie, "Regularization and variable selection via the elastic net", JRSS B 67(2),
        2005.
    """

    l1: float
    l2: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "l1", _check_nonneg("ElasticNet", "l1", self.l1))
        object.__setattr__(self, "l2", _check_nonneg("ElasticNet", "l2", self.l2))

    @property
    def elementwise(self) -> bool:
        return True

    def value(self, x: Tensor) -> Tensor:
        _check_x(self, x)
        return self.l1 * x.abs().sum() + 0.5 * self.l2 * x.square().sum()

    def _apply(self, x: Tensor, step: float | Tensor, inplace: bool) -> Tensor:
        z = soft_threshold(x, self.l1 * step, inplace)
        if isinstance(step, float) and self.l2 * step == 0.0:
            return z
        return z.div_(1.0 + self.l2 * step) if inplace else z / (1.0 + self.l2 * step)


@final
@dataclass(frozen=True)
class L0(Prox):
    r"""The (nonconvex) counting penalty :math:`h(x) = \lambda \|x\|_0 = \lambda\,\#\{i : x_i \ne 0\}`.

    Its prox is hard thresholding:

    .. math::

        \operatorname{prox}(x, s)_i = x_i \text{ if } |x_i| > \sqrt{2 \lambda s_i}, \quad 0 \text{ otherwise}.

    At the tie :math:`|x_i| = \sqrt{2\lambda s_i}` both ``0`` and ``x_i`` minimise; the sparser ``0`` is
    returned.

    Args:
        lam: The weight :math:`\lambda`, a finite number ``>= 0``.

    Returns:
        An operator; ``prox(x, step)`` returns a tensor shaped like ``x``.

    Example:
        >>> import torch
        >>> from kinkgrad.prox import L0
        >>> L0(lam=0.5).prox(torch.tensor([-3.0, 0.5, 1.0, 1.5]), step=1.0)
        tensor([-3.0000,  0.0000,  0.0000,  1.5000])

    References:
        T. Blumensath and M. E. Davies, "Iterative thresholding for sparse approximations", J. Fourier
        Anal. Appl. 14, 2008.
    """

    lam: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", _check_nonneg("L0", "lam", self.lam))

    @property
    def elementwise(self) -> bool:
        return True

    def value(self, x: Tensor) -> Tensor:
        _check_x(self, x)
        return (self.lam * torch.count_nonzero(x)).to(x.dtype)

    def _apply(self, x: Tensor, step: float | Tensor, inplace: bool) -> Tensor:
        if isinstance(step, float):
            threshold = math.sqrt(2.0 * self.lam * step)
            return torch.hardshrink(x, threshold, out=x) if inplace else torch.hardshrink(x, threshold)
        drop = x.abs() <= (2.0 * self.lam * step).sqrt()
        return x.masked_fill_(drop, 0.0) if inplace else x.masked_fill(drop, 0.0)


@final
@dataclass(frozen=True)
class GroupL1(Prox):
    r"""The group lasso penalty :math:`h(x) = \lambda \sum_g \|x_g\|_2` (an L1 norm of group L2 norms).

    The groups are the slices of ``x`` indexed by ``dim``; each norm runs over all the other dimensions.
    With the default ``dim=0`` a ``Linear`` weight ``(out, in)`` has one group per row (the incoming
    weights of one output unit) and a ``Conv2d`` weight ``(out, in, kh, kw)`` one group per filter;
    ``dim=1`` selects columns (input features); ``dim=None`` makes the whole tensor one group. A 1-D
    tensor with ``dim=0`` has one group per entry (plain L1), a 0-dim tensor is a single group.

    For a scalar step the prox is block soft thresholding,

    .. math::

        \operatorname{prox}(x, s)_g = \max\!\Big(1 - \frac{\lambda s}{\|x_g\|_2},\ 0\Big)\, x_g ,

    so a group with :math:`\|x_g\|_2 \le \lambda s` (the kink included) becomes exactly zero. For a
    tensor step that varies inside a group, the exact minimiser is
    :math:`z_i = x_i\, r / (r + \lambda s_i)` with :math:`r = \|z_g\|_2 > 0` the root of
    :math:`\sum_{i \in g} x_i^2 / (r + \lambda s_i)^2 = 1`, found by a monotone Newton iteration; the
    group is zero iff :math:`\|x_g / s_g\|_2 \le \lambda`. Tensor steps must be ``> 0``.

    Args:
        lam: The weight :math:`\lambda`, a finite number ``>= 0``.
        dim: The dimension(s) indexing the groups (default ``0``), or ``None`` for one group.

    Returns:
        An operator; ``prox(x, step)`` returns a tensor shaped like ``x``.

    Example:
        >>> import torch
        >>> from kinkgrad.prox import GroupL1
        >>> w = torch.tensor([[3.0, 4.0], [0.3, 0.4]])  # row norms 5 and 0.5
        >>> GroupL1(lam=1.0, dim=0).prox(w, step=1.0)
        tensor([[2.4000, 3.2000],
                [0.0000, 0.0000]])

    References:
        M. Yuan and Y. Lin, "Model selection and estimation in regression with grouped variables",
        JRSS B 68(1), 2006.
    """

    lam: float
    dim: Dim = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", _check_nonneg("GroupL1", "lam", self.lam))
        object.__setattr__(self, "dim", check_dim("GroupL1", self.dim))

    def value(self, x: Tensor) -> Tensor:
        _check_x(self, x)
        return self.lam * group_norm(x, reduced_dims(repr(self), x, self.dim)).sum()

    def _apply(self, x: Tensor, step: float | Tensor, inplace: bool) -> Tensor:
        rdims = reduced_dims(repr(self), x, self.dim)
        if self.lam == 0.0:
            return x if inplace else x.clone()
        if isinstance(step, Tensor) and step.numel() > 1:
            factor = _weighted_group_factor(x, self.lam * step.expand_as(x), rdims)
        else:
            t = self.lam * step
            norms = group_norm(x, rdims)
            keep = norms > t
            factor = torch.where(keep, 1.0 - t / torch.where(keep, norms, 1.0), 0.0)
        return x.mul_(factor) if inplace else x * factor


def _weighted_group_factor(x: Tensor, b: Tensor, rdims: tuple[int, ...]) -> Tensor:
    """``r / (r + b)`` per entry, ``r`` the per-group root of ``sum x^2 / (r + b)^2 = 1`` (0 if none)."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    xw, bw = x.to(dtype), b.to(dtype)
    r = solve_secular(xw * xw, bw, rdims)
    return (r / (r + bw)).to(x.dtype)
