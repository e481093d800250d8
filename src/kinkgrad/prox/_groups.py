"""Groups of coordinates for the non-separable operators, and the scalar root solve they share.

A grouping is given by ``dim``: the dimension(s) that *index* the groups. Each group is one slice with those
indices fixed, and norms run over all the other dimensions. ``dim=None`` makes the whole tensor one group.
For a ``Linear`` weight of shape ``(out, in)``, ``dim=0`` gives one group per row (per output unit),
``dim=1`` one per column (per input feature); for a ``Conv2d`` weight ``(out, in, kh, kw)``, ``dim=0``
gives one group per filter. A 1-D tensor with ``dim=0`` has one group per entry; a 0-dim tensor is always
a single group.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_dim", "group_sum", "reduced_dims", "solve_secular"]

Dim = int | tuple[int, ...] | None


def check_dim(owner: str, dim: object) -> Dim:
    """Validate a ``dim`` argument at construction (ranges are checked against each tensor later)."""
    if dim is None:
        return None
    if isinstance(dim, int) and not isinstance(dim, bool):
        return dim
    if isinstance(dim, (tuple, list)) and all(isinstance(d, int) and not isinstance(d, bool) for d in dim):
        if len(set(dim)) != len(dim):
            raise ValueError(f"{owner}: dim must not repeat a dimension, got dim={dim!r}")
        return tuple(dim)
    raise ValueError(f"{owner}: dim must be None, an int or a tuple of ints, got dim={dim!r}")


def reduced_dims(owner: str, x: Tensor, dim: Dim) -> tuple[int, ...]:
    """The dimensions a group norm runs over: all except those in ``dim`` (all of them if ``dim`` is None).

    An empty tuple means every entry is its own group.
    """
    n = x.ndim
    if n == 0:
        return ()
    if dim is None:
        return tuple(range(n))
    group_dims = (dim,) if isinstance(dim, int) else dim
    normalized = set()
    for d in group_dims:
        if not -n <= d < n:
            raise ValueError(
                f"{owner}: dim={dim!r} does not fit a tensor with {n} dimensions (shape {tuple(x.shape)}); "
                f"each entry of dim must lie in [{-n}, {n - 1}]"
            )
        normalized.add(d % n)
    if len(normalized) != len(group_dims):
        raise ValueError(f"{owner}: dim={dim!r} names the same dimension twice for a {n}-dim tensor")
    return tuple(d for d in range(n) if d not in normalized)


def group_sum(y: Tensor, rdims: tuple[int, ...]) -> Tensor:
    """Sum over ``rdims`` keeping dimensions; the identity when ``rdims`` is empty (one entry per group)."""
    return y.sum(dim=rdims, keepdim=True) if rdims else y


def group_norm(x: Tensor, rdims: tuple[int, ...]) -> Tensor:
    """Euclidean norm of each group, shaped to broadcast against ``x``."""
    return torch.linalg.vector_norm(x, dim=rdims, keepdim=True) if rdims else x.abs()


def solve_secular(a: Tensor, b: Tensor, rdims: tuple[int, ...], max_iter: int = 100) -> Tensor:
    r"""Per group, the root :math:`t \ge 0` of :math:`\sum_i a_i / (t + b_i)^2 = 1`, or 0 if there is none.

    With :math:`a \ge 0` and :math:`b > 0` the left side decreases in :math:`t`, so a root exists iff
    :math:`\sum_i a_i / b_i^2 > 1`. Newton's method is run on :math:`\varphi(t) = 1/N(t) - 1` with
    :math:`N(t) = (\sum_i a_i/(t+b_i)^2)^{1/2}`: :math:`\varphi` is increasing and concave, so Newton from
    :math:`t = 0` increases monotonically to the root without overshooting, and it is exact in one step for
    a single term. This is the secular equation of trust-region methods (Moré and Sorensen, 1983).

    Args:
        a: Nonnegative weights, shaped like the tensor being grouped.
        b: Positive offsets, same shape.
        rdims: The dimensions summed over (see :func:`reduced_dims`).
        max_iter: An upper bound on Newton iterations (it stops earlier once steps stall).

    Returns:
        ``t`` with the group shape (``keepdim``), in the dtype of ``a``.
    """
    t = torch.zeros_like(group_sum(a, rdims))
    rtol = 4.0 * torch.finfo(a.dtype).eps
    for _ in range(max_iter):
        d = t + b
        q = a / (d * d)
        n2 = group_sum(q, rdims)
        s3 = group_sum(q / d, rdims)
        active = n2 > 1.0
        # Newton step on 1/N - 1: t += (N - 1) N^2 / S3 with S3 = sum a / (t + b)^3.
        safe_s3 = torch.where(active, s3, torch.ones_like(s3))
        delta = torch.where(active, (n2.sqrt() - 1.0) * n2 / safe_s3, torch.zeros_like(t))
        t = t + delta
        if not bool((delta > rtol * t).any()):
            break
    return t
