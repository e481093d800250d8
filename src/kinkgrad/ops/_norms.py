"""Norms at their kinks: ``vector_norm`` (``ord`` = 1, 2, inf, and any ``p ≥ 1`` at 0) and ``linalg.norm``.

* At the zero vector every ``p``-norm with ``p ≥ 1`` has the dual unit ball as Clarke set; PyTorch
  returns 0 there. ``at_kink=λ`` returns the one-sided derivative along the diagonal blended as for
  ``abs``: ``(2λ - 1) · n^((1-p)/p)`` in every coordinate (``2λ - 1`` for ``p = 1``, ``(2λ - 1)/√n`` for
  ``p = 2``, ``(2λ - 1)/n`` for ``p = ∞``), which is ``abs``'s rule when ``n = 1``.
* ``p = 1`` also kinks wherever one coordinate is 0: that coordinate gets ``2λ - 1`` (``abs``).
* ``p = ∞`` also kinks where several coordinates share the largest magnitude: they split evenly (the
  gradient along the diagonal), each with its ``abs`` sign.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from kinkgrad._autodiff import Trace, carry, needs_rule, straight_through, trace_mode, zero_tangent
from kinkgrad._observe import active_observer, silenced
from kinkgrad._policy import from_policy
from kinkgrad._rules import Chooser, check_lambda
from kinkgrad.ops._elementwise import abs as _abs
from kinkgrad.ops._selection import _dims, reduce_ties

__all__ = ["norm", "vector_norm"]


def vector_norm(
    x: Tensor,
    ord: float = 2,
    dim: int | Sequence[int] | None = None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
    at_kink: Any = None,
) -> Tensor:
    """``torch.linalg.vector_norm`` with the derivative at its kinks set by ``λ`` (see module doc).

    Example:
        >>> x = torch.zeros(4, requires_grad=True)
        >>> vector_norm(x, 2, at_kink=1.0).backward()
        >>> x.grad  # the unit vector along the diagonal, not PyTorch's 0
        tensor([0.5000, 0.5000, 0.5000, 0.5000])
    """
    value = torch.linalg.vector_norm(x, ord, dim, keepdim, dtype=dtype)
    at_kink = from_policy("vector_norm", at_kink)
    p = float(ord)
    watch = active_observer()
    if (at_kink is None and watch is None) or not x.is_floating_point() or not p >= 1 or x.numel() == 0:
        return value
    lam = None if at_kink is None else check_lambda(at_kink)
    mode = trace_mode(x)
    if mode is Trace.NONE and watch is None:
        return value
    dims = _dims(x, dim)
    xs = x if dtype is None else x.to(dtype)
    zero = xs == 0
    if p == 1:
        hit = zero.any(dims, keepdim) if dims else zero
    elif p == math.inf:
        top = torch.amax(xs.abs(), dims, keepdim=True)
        hit = ((xs.abs() == top).sum(dims, keepdim) > 1) | (top == 0).reshape(value.shape)
    else:
        hit = zero.all(dims, keepdim) if dims else zero
    out = value
    if lam is not None and needs_rule(mode, hit):
        with silenced():
            out = _with_rule(value, xs, p, dims, keepdim, lam, hit)
    if watch is not None:
        watch.report("vector_norm", out, hit, None)
    return out


def _with_rule(
    value: Tensor, xs: Tensor, p: float, dims: list[int], keepdim: bool, lam: Any, hit: Tensor
) -> Tensor:
    if p == 1:
        return straight_through(value, _abs(xs, at_kink=lam).sum(dims, keepdim))
    if p == math.inf:
        magnitude = _abs(xs, at_kink=lam)
        top = torch.amax(magnitude, dims, keepdim)
        ties = lam if isinstance(lam, Chooser) else "split"
        return straight_through(value, reduce_ties("vector_norm", magnitude, top, dims, keepdim, ties))
    if isinstance(lam, Chooser):  # approached along u: the gradient of the norm at u
        u = lam.direction("vector_norm", xs)
        if u is None:
            return value
        scale = torch.linalg.vector_norm(u, p, dims, keepdim=True)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        slope_t = torch.where(scale > 0, u.sign() * (u.abs() / safe) ** (p - 1), torch.zeros_like(u))
        tangent = (slope_t * zero_tangent(xs)).sum(dims, keepdim)
        return torch.where(hit, carry(value, tangent.to(value.dtype)), value)
    n = math.prod([xs.shape[d] for d in dims])
    slope = (2 * lam - 1) * n ** ((1 - p) / p)
    tangent = (slope * zero_tangent(xs)).sum(dims, keepdim)
    return torch.where(hit, carry(value, tangent.to(value.dtype)), value)


def norm(
    x: Tensor,
    ord: Any = None,
    dim: int | Sequence[int] | None = None,
    keepdim: bool = False,
    *,
    dtype: torch.dtype | None = None,
    at_kink: Any = None,
) -> Tensor:
    """``torch.linalg.norm``: vector norms (and the Frobenius norm) as :func:`vector_norm`.

    Matrix norms other than Frobenius (``"nuc"``, ``±2``, ``±1``, ``±inf`` over two dims) are not
    kink-registered: they return PyTorch's value and derivative.
    """
    at_kink = from_policy("norm", at_kink)
    if at_kink is None:
        return torch.linalg.norm(x, ord, dim, keepdim, dtype=dtype)
    two_dims = (dim is None and x.dim() == 2 and ord is not None) or (
        dim is not None and not isinstance(dim, int) and len(dim) == 2
    )
    if two_dims and ord != "fro":
        return torch.linalg.norm(x, ord, dim, keepdim, dtype=dtype)
    p = 2.0 if ord in (None, "fro") else float(ord)
    return vector_norm(x, p, dim, keepdim, dtype=dtype, at_kink=at_kink)
