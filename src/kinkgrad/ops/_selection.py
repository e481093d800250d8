"""Ties in reductions and selections: ``max``/``min``/``amax``/``amin``, ``topk``, ``sort``,
``median``, ``kthvalue``.

When several candidates attain the selected value, the Clarke set is the set of convex combinations
of their unit gradients (a simplex). ``at_kink`` picks one element of it with a tie rule:
``"first"`` (lowest index), ``"last"``, ``"split"`` (even weights) or ``"random"`` (one candidate,
from the policy's seeded generator). Forward values and returned indices are PyTorch's own.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from kinkgrad._autodiff import Trace, carry, needs_rule, trace_mode, weighted, zero_tangent
from kinkgrad._observe import active_observer
from kinkgrad._policy import from_policy
from kinkgrad._rules import Chooser, check_tie_rule, tie_weights

__all__ = ["amax", "amin", "kthvalue", "max", "median", "min", "sort", "topk"]


def _generator() -> torch.Generator | None:
    from kinkgrad._policy import active_generator

    return active_generator()


def _dims(input: Tensor, dim: int | Sequence[int] | None) -> list[int]:
    if dim is None or (isinstance(dim, Sequence) and len(dim) == 0):
        return list(range(input.dim()))
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted({d % builtins.max(input.dim(), 1) for d in dims})


def _dim_arg(dim: int | Sequence[int]) -> int | tuple[int, ...]:
    return dim if isinstance(dim, int) else tuple(dim)


def _finite_where(value: Tensor, tangent: Tensor) -> Tensor:
    return torch.where(torch.isfinite(value), carry(value, tangent), value)


def reduce_ties(
    name: str,
    input: Tensor,
    value: Tensor,
    dims: list[int],
    keepdim: bool,
    at_kink: Any,
    select: str | int = "max",
) -> Tensor:
    """``value`` (the entries of ``input`` selected over ``dims``: the ``"max"``, the ``"min"``, or the
    order statistic of that 0-based index) with ties resolved by ``at_kink``."""
    at_kink = from_policy(name, at_kink)
    watch = active_observer()
    if (at_kink is None and watch is None) or not input.is_floating_point():
        return value
    rule = None if at_kink is None else check_tie_rule(at_kink)
    mode = trace_mode(input)
    if (mode is Trace.NONE and watch is None) or input.dim() == 0:
        return value
    kept = value if keepdim else _keep(value, dims, input.dim())
    tied = (input == kept) & torch.isfinite(input)
    hit = tied.sum(dims, keepdim=keepdim) > 1
    out = value
    if rule is not None and needs_rule(mode, hit):
        rest = [d for d in range(input.dim()) if d not in dims]
        flat = tied.permute(rest + dims).flatten(len(rest))
        if isinstance(rule, Chooser):
            candidates = input.permute(rest + dims).flatten(len(rest))
            rank = None
            if isinstance(select, int):
                below = (input < kept).sum(dims, keepdim=True).permute(rest + dims).flatten(len(rest))
                rank = select - below[..., 0]
            w = rule.weights(name, flat, -candidates if select == "min" else candidates, rank)
        else:
            w = tie_weights(flat, rule, input.dtype, _generator())
        if w is not None:
            tangent = weighted(w, zero_tangent(input).permute(rest + dims).flatten(len(rest))).sum(-1)
            out = _finite_where(value, tangent.reshape(value.shape))
    if watch is not None:
        watch.report(name, out, hit, None)
    return out


def _keep(value: Tensor, dims: list[int], ndim: int) -> Tensor:
    for d in dims:
        value = value.unsqueeze(d)
    return value


def _maybe_binary(name: str, input: Tensor, dim: Any, at_kink: Any) -> Tensor | None:
    if not isinstance(dim, Tensor):
        return None
    from kinkgrad.ops import _binary

    lam = (
        {"first": 1.0, "last": 0.0, "split": 0.5}.get(at_kink, at_kink)
        if isinstance(at_kink, str)
        else at_kink
    )
    return getattr(_binary, name)(input, dim, at_kink=lam)


def max(input: Tensor, dim: Any = None, keepdim: bool = False, *, at_kink: Any = None) -> Any:
    """``torch.max``: full reduction, along ``dim`` (values and indices), or elementwise with a tensor.

    Ties: PyTorch splits evenly in the full reduction and gives everything to the first index along
    ``dim``. ``at_kink`` is a tie rule; with a tensor second argument this is
    :func:`~kinkgrad.ops.maximum` (``"first"``/``"last"``/``"split"`` mean ``λ`` = 1, 0, 1/2).

    Example:
        >>> x = torch.tensor([2.0, 1.0, 2.0], requires_grad=True)
        >>> max(x, at_kink="last").backward(torch.tensor(4.0))
        >>> x.grad
        tensor([0., 0., 4.])
    """
    return _extremum("max", torch.max, "maximum", input, dim, keepdim, at_kink)


def min(input: Tensor, dim: Any = None, keepdim: bool = False, *, at_kink: Any = None) -> Any:
    """``torch.min``; ties as in :func:`max`."""
    return _extremum("min", torch.min, "minimum", input, dim, keepdim, at_kink)


def _extremum(
    name: str, native: Any, binary: str, input: Tensor, dim: Any, keepdim: bool, at_kink: Any
) -> Any:
    as_binary = _maybe_binary(binary, input, dim, at_kink)
    if as_binary is not None:
        return as_binary
    if dim is None:
        return reduce_ties(name, input, native(input), _dims(input, None), False, at_kink, name)
    result = native(input, dim, keepdim)
    values, indices = result
    out = reduce_ties(name, input, values, _dims(input, dim), keepdim, at_kink, name)
    return type(result)((out, indices))


def amax(
    input: Tensor, dim: int | Sequence[int] = (), keepdim: bool = False, *, at_kink: Any = None
) -> Tensor:
    """``torch.amax``: the maximum over ``dim`` (all dims by default). PyTorch splits ties evenly."""
    return reduce_ties(
        "amax", input, torch.amax(input, _dim_arg(dim), keepdim), _dims(input, dim), keepdim, at_kink
    )


def amin(
    input: Tensor, dim: int | Sequence[int] = (), keepdim: bool = False, *, at_kink: Any = None
) -> Tensor:
    """``torch.amin``: the minimum over ``dim`` (all dims by default). PyTorch splits ties evenly."""
    return reduce_ties(
        "amin", input, torch.amin(input, _dim_arg(dim), keepdim), _dims(input, dim), keepdim, at_kink, "min"
    )


def median(input: Tensor, dim: int | None = None, keepdim: bool = False, *, at_kink: Any = None) -> Any:
    """``torch.median`` (the lower median); ties among entries equal to the median follow ``at_kink``."""
    if dim is None:
        rank = (input.numel() - 1) // 2
        return reduce_ties("median", input, torch.median(input), _dims(input, None), False, at_kink, rank)
    values, indices = torch.median(input, dim, keepdim)
    rank = (input.shape[dim] - 1) // 2 if input.dim() else 0
    out = reduce_ties("median", input, values, _dims(input, dim), keepdim, at_kink, rank)
    return torch.return_types.median((out, indices))


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False, *, at_kink: Any = None) -> Any:
    """``torch.kthvalue``: the k-th smallest along ``dim``; ties follow ``at_kink``."""
    values, indices = torch.kthvalue(input, k, dim, keepdim)
    out = reduce_ties("kthvalue", input, values, _dims(input, dim), keepdim, at_kink, k - 1)
    return torch.return_types.kthvalue((out, indices))


def _ordered_tangent(name: str, input: Tensor, dim: int, descending: bool, rule: Any) -> Tensor:
    """Tangents of the sorted values along ``dim``, equal values matched to entries by ``rule``."""
    if isinstance(rule, Chooser):
        perm = rule.order(name, input, dim, descending)
        if perm is None:
            perm = torch.sort(input, dim=dim, descending=descending, stable=True).indices
    elif rule == "last":
        n = input.shape[dim]
        perm = (n - 1) - torch.sort(input.flip(dim), dim=dim, descending=descending, stable=True).indices
    elif rule == "random":
        shuffle = torch.rand(input.shape, generator=_generator(), device=input.device).argsort(dim)
        inner = torch.sort(input.gather(dim, shuffle), dim=dim, descending=descending, stable=True).indices
        perm = shuffle.gather(dim, inner)
    else:
        perm = torch.sort(input, dim=dim, descending=descending, stable=True).indices
    tangent = zero_tangent(input).gather(dim, perm)
    if rule != "split":
        return tangent
    ordered = input.gather(dim, perm)
    head = torch.ones_like(ordered.narrow(dim, 0, 1), dtype=torch.long)
    step = (
        ordered.narrow(dim, 1, ordered.shape[dim] - 1) != ordered.narrow(dim, 0, ordered.shape[dim] - 1)
    ).long()
    group = torch.cat([head - 1, step], dim).cumsum(dim)
    sums = torch.zeros_like(tangent).scatter_add(dim, group, tangent)
    counts = torch.zeros_like(tangent).scatter_add(dim, group, torch.ones_like(tangent))
    return (sums / counts.clamp_min(1)).gather(dim, group)


def _neighbour_ties(input: Tensor, dim: int, descending: bool) -> Tensor:
    """For each position of the sorted ``input``: does its value equal a neighbour's (a tie)?"""
    ordered = torch.sort(input, dim=dim, descending=descending).values
    n = ordered.shape[dim]
    same = (ordered.narrow(dim, 1, n - 1) == ordered.narrow(dim, 0, n - 1)) & torch.isfinite(
        ordered.narrow(dim, 1, n - 1)
    )
    edge = torch.zeros_like(ordered.narrow(dim, 0, 1), dtype=torch.bool)
    return torch.cat([edge, same], dim) | torch.cat([same, edge], dim)


def sort(
    input: Tensor,
    dim: int = -1,
    descending: bool = False,
    stable: bool | None = False,
    *,
    at_kink: Any = None,
) -> Any:
    """``torch.sort``. Equal values may be matched to their output positions in any order (the Clarke
    set averages over the matchings); PyTorch uses the order of its returned indices.
    ``"first"``/``"last"`` match in (reverse) index order, ``"split"`` averages over the group."""
    values, indices = torch.sort(input, dim=dim, descending=descending, stable=bool(stable))
    n = values.shape[dim] if input.dim() else 1
    return torch.return_types.sort(
        (_sorted_ties("sort", input, values, dim, descending, at_kink, n), indices)
    )


def topk(
    input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True, *, at_kink: Any = None
) -> Any:
    """``torch.topk``. A tie at the boundary (the k-th value also outside the top k) or inside the top
    k is resolved by ``at_kink``: ``"split"`` spreads each selected position over every equal entry."""
    values, indices = torch.topk(input, k, dim, largest, sorted)
    at_kink = from_policy("topk", at_kink)
    if sorted or input.dim() == 0 or (at_kink is None and active_observer() is None):
        return torch.return_types.topk(
            (_sorted_ties("topk", input, values, dim, largest, at_kink, k), indices)
        )
    ordered, order = torch.sort(values, dim=dim, descending=largest, stable=True)
    out_sorted = _sorted_ties("topk", input, ordered, dim, largest, at_kink, k, order)
    return torch.return_types.topk((torch.empty_like(out_sorted).scatter(dim, order, out_sorted), indices))


def _sorted_ties(
    name: str,
    input: Tensor,
    values: Tensor,
    dim: int,
    descending: bool,
    at_kink: Any,
    k: int,
    order: Tensor | None = None,
) -> Tensor:
    """The first ``k`` sorted values with ties resolved by ``at_kink``; ``order`` (if given) is the
    permutation that PyTorch's own output order applies to them (``topk(sorted=False)``)."""
    at_kink = from_policy(name, at_kink)
    watch = active_observer()
    if (at_kink is None and watch is None) or not input.is_floating_point():
        return values
    if input.dim() == 0 or input.shape[dim] < 2:
        return values
    rule = None if at_kink is None else check_tie_rule(at_kink)
    mode = trace_mode(input)
    if mode is Trace.NONE and watch is None:
        return values
    hit = _neighbour_ties(input, dim, descending).narrow(dim, 0, k)
    out = values
    if rule is not None and needs_rule(mode, hit):
        tangent = _ordered_tangent(name, input, dim, descending, rule).narrow(dim, 0, k)
        out = _finite_where(values, tangent)
    if watch is not None:
        placed = hit if order is None else torch.empty_like(hit).scatter(dim, order, hit)
        watch.report(name, out, placed, None)
    return out
