"""Certified generalized gradients: ``clarke_grad``, ``clarke_backward``, ``check_ad``.

**Method** (Kakade & Lee 2018; Park 2023). Pick a direction ``d`` in the space being differentiated
(inputs or parameters). Run the forward pass with forward-mode AD along ``d``; wherever an op sits
exactly at a kink (a tie), take the branch that ``x + t·d`` takes for small ``t > 0``: the sign of
the op input's *tangent* decides (for ``relu`` at 0: tangent > 0 gives slope 1, < 0 slope 0; for a
max-pool window: the tied entry with the largest tangent wins; for ``sort``: equal values are ordered
by their tangents). Reverse mode then runs through the chosen branches. The result is the gradient of
the smooth piece of ``f`` that is active along the ray, an element of the Bouligand subdifferential
``∂_B f ⊆ ∂_C f``.

**Lexicographic directions.** If a tangent also ties (the direction does not move the op's input
off the tie), the next direction decides, lexicographically. The directions are: the caller's (if
any), then one Gaussian direction over all differentiated tensors, drawn from ``seed`` (documented
in :func:`_directions`). One Gaussian direction is the limit, and enough: a tie it leaves (tied
candidates with equal tangents, or an elementwise kink with zero tangent) has, with probability one,
candidates with *equal gradients* (a nonzero gradient difference is orthogonal to a Gaussian vector
with probability zero), so its branch cannot change the first-order result: such a tie is left as
PyTorch has it and counted in ``ADCheck.unresolved``.

**Cost** (the fast path, :class:`_FastPass`). The closure runs once, as it is: ``relu`` and
non-overlapping ``max_pool2d`` check their input for ties (one cheap pass); with no tie anywhere,
that forward pass and plain backprop are the whole cost. Ties whose candidates are locally constant (a
max-pool window of relu zeros whose inputs are strictly negative) cannot change the gradient and are
left alone. Other ties are decided *between* the forward and the backward pass: relu ties right after
a biased layer by kinkgrad's own direction on that bias (no tangent at all), the rest by tangents
computed from the forward pass's autograd graph (its saved tensors are the primal values: nothing is
recomputed), only upstream of the ties, and for bias-free convolutions only at the ties whose input
patch can move. Any other tie, or a graph node without a tangent rule, falls back to the general
method: re-run the closure with forward-mode AD along each direction (:class:`_Certifier`).

Batch norm in train mode, dropout: RNG state and module buffers (running statistics) are restored
before every re-run, so every pass sees the same masks and the buffers are updated once, when
``params`` is an ``nn.Module``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, overload

import torch
import torch.autograd.forward_ad as fwad
import torch.nn.functional as F
from torch import Tensor, nn

from kinkgrad import _native
from kinkgrad._policy import kink_policy
from kinkgrad._rules import Chooser
from kinkgrad._scratch import keep, scratch
from kinkgrad.ops._elementwise import _hit_mask
from kinkgrad.ops._pooling import _window_ties


class UnsupportedKinkError(RuntimeError):
    """A nonsmooth op that kinkgrad cannot certify was reached by the differentiated computation."""


@dataclass(frozen=True)
class KinkSite:
    """A kink op call that hit at least one kink: its op, its call index in the pass, how many ties."""

    op: str
    site: int
    ties: int
    after_bias: bool  #: elementwise kink whose input comes straight from a layer with a bias
    inert: int = 0  #: ties proven not to matter (locally constant candidates): left undecided


@dataclass(frozen=True)
class ADCheck:
    """Plain PyTorch AD against the certified gradient at one point.

    ``sufficient_condition`` names a cheap sufficient condition proving plain AD is already in the
    Clarke subdifferential here, when one holds: ``"no kink"`` (f is differentiable at the point), or
    ``"park-chun-lee-2024"`` (every kink hit is elementwise, right after a layer with a bias, and no
    selection ties: Park, Chun & Lee, ICLR 2024).

    ``unresolved`` counts the ties that no direction resolved (zero tangent, or tied candidates with
    equal tangents, after kinkgrad's Gaussian direction): with probability one their candidates have
    equal gradients, so their branch cannot change the result. ``KinkSite.inert`` counts the ties
    proven not to matter without any direction (locally constant candidates).
    """

    agree: bool
    difference_norm: float
    plain: tuple[Tensor, ...]
    certified: tuple[Tensor, ...]
    sites: tuple[KinkSite, ...]
    unresolved: int
    sufficient_condition: str | None
    #: how ties were decided: "no kink", "inert" (every tie provably cannot matter), "own bias" (see
    #: docs) or "tangents"
    method: str = "tangents"


def _tangent(x: Tensor) -> Tensor:
    t = fwad.unpack_dual(x).tangent
    return torch.zeros_like(x) if t is None else t


_ELEMENTWISE_AFTER_BIAS = {"AddmmBackward0", "ConvolutionBackward0", "AddBackward0"}


def _after_bias(x: Tensor) -> bool:
    fn = x.grad_fn
    if fn is None or fn.name() not in _ELEMENTWISE_AFTER_BIAS:
        return False
    for nxt, _ in fn.next_functions:
        variable = getattr(nxt, "variable", None)
        if isinstance(variable, nn.Parameter) and variable.dim() == 1:
            return True
    return False


@dataclass
class _Detector(Chooser):
    """First, cheap pass: records kink sites, changes nothing (every site needs the tangent pass)."""

    sites: list[KinkSite] = field(default_factory=list)
    needs_tangent: bool = False

    def _hit(self, op: str, count: Tensor, after_bias: bool = False) -> None:
        self.sites.append(KinkSite(op, len(self.sites), int(count), after_bias))
        self.needs_tangent = True

    def lambdas(self, op: str, argument: Tensor, mask: Tensor) -> Tensor | None:
        self._hit(op, mask.sum(), _after_bias(argument))
        return None

    def weights(self, op: str, tied: Tensor, candidates: Tensor, rank: Tensor | None) -> Tensor | None:
        self._hit(op, (tied.sum(-1) > 1).sum())
        return None

    def order(self, op: str, input: Tensor, dim: int, descending: bool) -> Tensor | None:
        self._hit(op, torch.ones(()))
        return None

    def direction(self, op: str, input: Tensor) -> Tensor | None:
        self._hit(op, torch.ones(()))
        return None


_CHANNEL_DIM = {"AddmmBackward0": -1, "AddBackward0": -1, "ConvolutionBackward0": 1}


@dataclass
class _Certifier(Chooser):
    """Decides every tie from tangents, lexicographically over passes (one direction per pass)."""

    state: list[Any] = field(default_factory=list)
    cursor: int = 0
    unresolved: int = 0
    sites: list[KinkSite] = field(default_factory=list)

    def start_pass(self) -> None:
        self.cursor, self.unresolved, self.sites = 0, 0, []

    def _slot(self, initial: Callable[[], Any]) -> tuple[int, Any]:
        index = self.cursor
        if index == len(self.state):
            self.state.append(initial())
        self.cursor += 1
        return index, self.state[index]

    def _record(self, op: str, index: int, ties: Tensor, after_bias: bool = False) -> None:
        count = int(ties)
        if count:
            self.sites.append(KinkSite(op, index, count, after_bias))

    def lambdas(self, op: str, argument: Tensor, mask: Tensor) -> Tensor:
        t = _tangent(argument)
        index, lam = self._slot(lambda: torch.full(mask.shape, float("nan"), dtype=t.dtype, device=t.device))
        lam = torch.where(mask & lam.isnan() & (t != 0), (t > 0).to(t.dtype), lam)
        self.state[index] = lam
        self.unresolved += int((mask & lam.isnan()).sum())
        self._record(op, index, mask.sum(), _after_bias(argument))
        return torch.where(lam.isnan(), torch.full_like(lam, 0.5), lam)

    def weights(self, op: str, tied: Tensor, candidates: Tensor, rank: Tensor | None) -> Tensor:
        t = _tangent(candidates)
        index, (alive, r) = self._slot(lambda: (tied, rank))
        if r is None:
            score = torch.where(alive, t, torch.full_like(t, -torch.inf))
            alive = alive & (score == score.amax(-1, keepdim=True))
        else:
            score = torch.where(alive, t, torch.full_like(t, torch.inf))
            ordered = score.sort(-1).values
            pick = ordered.gather(-1, r.clamp(0, t.shape[-1] - 1).unsqueeze(-1))
            r = r - (score < pick).sum(-1)
            alive = alive & (score == pick)
        self.state[index] = (alive, r)
        left = alive.sum(-1)
        self.unresolved += int((left > 1).sum())
        self._record(op, index, (tied.sum(-1) > 1).sum())
        first = alive & (alive.cumsum(-1) == 1)
        return first.to(candidates.dtype)

    def order(self, op: str, input: Tensor, dim: int, descending: bool) -> Tensor:
        index, keys = self._slot(list)
        keys.append(_tangent(input))
        perm = torch.arange(input.shape[dim], device=input.device).expand_as(input).movedim(-1, dim)
        perm = perm.contiguous() if input.dim() > 1 else perm
        for key in [input, *keys][::-1]:  # least significant key first, stable sorts
            perm = perm.gather(
                dim, torch.sort(key.gather(dim, perm), dim=dim, descending=descending, stable=True).indices
            )
        ordered = [k.gather(dim, perm) for k in [input, *keys]]
        n = input.shape[dim]
        same = torch.ones_like(ordered[0].narrow(dim, 1, n - 1), dtype=torch.bool)
        for k in ordered:
            same = same & (k.narrow(dim, 1, n - 1) == k.narrow(dim, 0, n - 1))
        self.unresolved += int(same.sum())
        value_ties = ordered[0].narrow(dim, 1, n - 1) == ordered[0].narrow(dim, 0, n - 1)
        self._record(op, index, value_ties.sum())
        return perm

    def direction(self, op: str, input: Tensor) -> Tensor:
        index, u = self._slot(lambda: torch.zeros_like(input))
        if not bool(u.ne(0).any()):
            u = _tangent(input).detach()
            self.state[index] = u
        self.unresolved += int(not bool(u.ne(0).any()))
        self._record(op, index, torch.ones(()))
        return u


_COMPARISONS: dict[Any, str] = {}
for _name, _kind in (("gt", "gt"), ("lt", "lt"), ("ge", "ge"), ("le", "le"), ("eq", "eq"), ("ne", "ne")):
    _COMPARISONS[getattr(torch, _name)] = _kind
    _COMPARISONS[getattr(Tensor, _name)] = _kind
    _COMPARISONS[getattr(Tensor, f"__{_name}__")] = _kind
_COMPARISONS.update(
    {torch.greater: "gt", torch.less: "lt", torch.greater_equal: "ge", torch.less_equal: "le"}
)


def _compare_along_ray(kind: str, a: Tensor, b: Tensor, result: Tensor) -> Tensor:
    """``a ⋈ b`` at ``x + t·d`` for small ``t > 0``: ties are decided by the tangents."""
    delta = _tangent(a) - _tangent(b) if isinstance(b, Tensor) else _tangent(a)
    tie = a == b
    if kind in ("gt", "ge"):
        along = delta > 0 if kind == "gt" else delta >= 0
    elif kind in ("lt", "le"):
        along = delta < 0 if kind == "lt" else delta <= 0
    else:
        along = (delta == 0) if kind == "eq" else (delta != 0)
    return torch.where(tie, along, result)


class _Strict(kink_policy):
    """The policy of a certified pass: every op decides with ``chooser``; unsupported kinks raise;
    comparisons of differentiated tensors that tie are decided along the ray too."""

    def __init__(self, chooser: Chooser, fast: _FastPass | None = None) -> None:
        super().__init__(default=chooser, ties=chooser)  # type: ignore[arg-type]
        self.strict = True
        self.chooser = chooser
        self.fast = fast

    def intercept(self, func: Any, args: Any, kwargs: Any) -> Any:
        return NotImplemented if self.fast is None else self.fast.intercept(func, args, kwargs)

    @staticmethod
    def passes(func: Any) -> bool:
        return func not in _COMPARISONS and func not in _RELU and func not in _MAX_POOL

    def call(self, func: Any, args: Any, kwargs: Any) -> Any:
        result = func(*args, **kwargs)
        kind = _COMPARISONS.get(func)
        if kind is None or len(args) != 2 or kwargs or not isinstance(args[0], Tensor):
            return result
        a, b = args
        moving = [t for t in (a, b) if isinstance(t, Tensor) and (t.requires_grad or _is_dual(t))]
        if not moving or not bool((a == b).any()):
            return result
        if isinstance(self.chooser, _Detector):
            self.chooser._hit(f"comparison {kind}", (a == b).sum())
            return result
        return _compare_along_ray(kind, a, b, result)


def _is_dual(t: Tensor) -> bool:
    return fwad.unpack_dual(t).tangent is not None


# ---- the driver -------------------------------------------------------------------------------------


@dataclass
class _Snapshot:
    """RNG state and module buffers, restored before each re-run of the closure."""

    module: nn.Module | None
    rng: Tensor = field(init=False)
    buffers: list[Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = torch.get_rng_state()
        self.buffers = [b.detach().clone() for b in self.module.buffers()] if self.module is not None else []

    def restore(self) -> None:
        torch.set_rng_state(self.rng)
        if self.module is not None:
            with torch.no_grad():
                for b, saved in zip(self.module.buffers(), self.buffers):
                    b.copy_(saved)


def _directions(
    tensors: Sequence[Tensor], direction: Any, seed: int | None, arg: str
) -> Iterator[tuple[Sequence[Tensor], bool]]:
    """The caller's direction (checked now), then one seeded Gaussian direction (flagged generic):
    one float64 ``randn`` per tensor, in order, from ``torch.Generator().manual_seed(seed or 0)``,
    cast to the tensor's dtype and device."""
    given = None if direction is None else _check_direction(tensors, direction, arg)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")

    def generate() -> Iterator[tuple[Sequence[Tensor], bool]]:
        if given is not None:
            yield given, False
        yield _gaussian(tensors, 0 if seed is None else seed), True

    return generate()


class _Gaussian(Sequence[Tensor]):
    """kinkgrad's own direction: one float64 ``randn`` per tensor, in order, from
    ``torch.Generator().manual_seed(seed)``, each cast to its tensor's dtype and device.

    The numbers are drawn once in order, only to record the generator's state where each tensor's
    numbers start (about 5 KB per tensor). A tensor's direction is drawn again from its state the first
    time it is read, and kept: only the tensors that decide a tie (usually biases, see
    :func:`_own_bias_tangent`) hold memory, not a copy of every parameter.
    """

    def __init__(self, tensors: Sequence[Tensor], seed: int) -> None:
        self.seed = seed
        self._meta = [(tuple(t.shape), t.dtype, t.device) for t in tensors]
        generator = torch.Generator().manual_seed(seed)
        self._states: list[Tensor] = []
        for shape, _, _ in self._meta:
            self._states.append(generator.get_state())
            torch.randn(shape, generator=generator, dtype=torch.float64)  # (drawn to move past it)
        self._drawn: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self._meta)

    @overload
    def __getitem__(self, i: int) -> Tensor: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Tensor]: ...

    def __getitem__(self, i: int | slice) -> Tensor | Sequence[Tensor]:
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        i = range(len(self))[i]  # (negative indices; IndexError past the end)
        drawn = self._drawn.get(i)
        if drawn is None:
            shape, dtype, device = self._meta[i]
            generator = torch.Generator()
            generator.set_state(self._states[i])
            drawn = torch.randn(shape, generator=generator, dtype=torch.float64)
            drawn = self._drawn[i] = drawn.to(dtype=dtype, device=device)
        return drawn


_GAUSSIAN: dict[Any, _Gaussian] = {}


def _gaussian(tensors: Sequence[Tensor], seed: int) -> _Gaussian:
    """The seeded Gaussian direction for these shapes (the last one asked for is kept, with the
    tensors of it drawn so far)."""
    key = (seed, *((tuple(t.shape), t.dtype, t.device) for t in tensors))
    if key not in _GAUSSIAN:
        _GAUSSIAN.clear()
        _GAUSSIAN[key] = _Gaussian(tensors, seed)
    return _GAUSSIAN[key]


class _Leaves(Mapping[int, Tensor]):
    """``id(tensor) -> its direction``, read from ``direction`` only when asked for (a
    :class:`_Gaussian` draws nothing for tensors no tie depends on)."""

    def __init__(self, tensors: Sequence[Tensor], direction: Sequence[Tensor]) -> None:
        self._index = {id(t): i for i, t in enumerate(tensors)}
        self._direction = direction

    def __getitem__(self, key: int) -> Tensor:
        return self._direction[self._index[key]]

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[int]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def _check_direction(tensors: Sequence[Tensor], direction: Any, arg: str) -> tuple[Tensor, ...]:
    ds = (direction,) if isinstance(direction, Tensor) else tuple(direction)
    if len(ds) != len(tensors):
        raise ValueError(f"direction must have one tensor per {arg} ({len(tensors)}), got {len(ds)}")
    for i, (t, d) in enumerate(zip(tensors, ds)):
        if not isinstance(d, Tensor):
            raise TypeError(f"direction[{i}] must be a tensor, got {type(d).__name__}")
        if d.shape != t.shape or d.dtype != t.dtype or d.device != t.device:
            raise ValueError(
                f"direction[{i}] must match {arg}[{i}]: shape {tuple(t.shape)}, dtype {t.dtype}, device "
                f"{t.device}; got shape {tuple(d.shape)}, dtype {d.dtype}, device {d.device}"
            )
        if bool(torch.isnan(d).any()):
            raise ValueError(f"direction[{i}] contains NaN")
    if all(not bool(d.ne(0).any()) for d in ds):
        raise ValueError("direction is zero: it decides no tie; pass None to let kinkgrad choose")
    return ds


@contextmanager
def _tangents_on(params: Sequence[Tensor], direction: Sequence[Tensor]) -> Iterator[None]:
    """Give the parameters themselves forward-mode tangents (in place, values unchanged)."""
    with fwad.dual_level():
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.copy_(fwad.make_dual(p.detach().clone(), d))
        yield


def _scalar(loss: Any, arg: str) -> Tensor:
    if not isinstance(loss, Tensor):
        raise TypeError(f"{arg} must return a tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"{arg} must return a scalar tensor, got shape {tuple(loss.shape)}")
    if not loss.requires_grad:
        raise ValueError(f"{arg} returned a tensor that does not depend on anything being differentiated")
    return loss


def _param_list(params: nn.Module | Iterable[Tensor]) -> tuple[nn.Module | None, list[Tensor]]:
    if isinstance(params, nn.Module):
        plist: list[Tensor] = [p for p in params.parameters() if p.requires_grad]
        module: nn.Module | None = params
    else:
        plist = list(params)
        module = None
        for i, p in enumerate(plist):
            if not isinstance(p, Tensor):
                raise TypeError(f"params[{i}] must be a tensor, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(f"params[{i}] does not require grad")
    if not plist:
        raise ValueError("params has no tensor that requires grad")
    return module, plist


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _any_rank(flag: bool) -> bool:
    """``flag`` on any data-parallel rank: every rank then runs the same passes (collectives match)."""
    if not _distributed():
        return flag
    t = torch.tensor([float(flag)])
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def _check_same_direction(
    directions: Iterator[tuple[Sequence[Tensor], bool]],
) -> Iterator[tuple[Sequence[Tensor], bool]]:
    """Under torch.distributed, every rank must use the same directions: compare a checksum of each."""
    for d, generic in directions:
        if _distributed():
            if isinstance(d, _Gaussian):  # same seed, same shapes: same numbers (nothing drawn here)
                checksum = torch.tensor(float(d.seed) + sum(len(m[0]) + math.prod(m[0]) for m in d._meta))
            else:
                checksum = torch.stack(
                    [t.double().sum().cpu() + t.double().flatten()[:1].sum().cpu() for t in d]
                ).sum()
            low, high = checksum.clone().view(1), checksum.clone().view(1)
            torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
            torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
            if bool(low != high):
                raise ValueError(
                    "the certified-gradient direction differs across data-parallel ranks: pass the same "
                    "seed (or the same direction) on every rank"
                )
        yield d, generic


# ---- the fast path: one ordinary forward pass; decisions made before the backward pass ----------------
#
# ``relu`` and non-overlapping ``max_pool2d`` (the kink ops of almost every network) are certified in the
# ordinary forward pass itself. Each checks for ties with one cheap pass over its input; a relu call with no
# tie runs PyTorch's op, nothing else. A max-pool is one compiled pass that computes the pool (PyTorch's
# values, bit for bit) and its tie check together, and keeps one byte per window for its backward instead
# of PyTorch's int64 indices (:class:`_BitsPool`; where that pass does not apply, PyTorch's pool and a
# tie pass run, :class:`_TiePool`). A call with ties runs PyTorch's op inside a small autograd
# function whose backward reads decisions that are made *after* the forward pass (``_ReluSite.opened``,
# ``_PoolSite.indices``), so no second forward pass is needed:
#
# * ties that provably cannot change the gradient are left alone (a max-pool window of relu outputs
#   that are 0 because their inputs are strictly negative: locally constant candidates);
# * with kinkgrad's own direction, relu ties right after a biased layer are decided by the bias's own
#   direction (:func:`_own_bias_tangent`), no tangent at all;
# * the others get tangents: forward-mode derivatives computed from the autograd graph of the forward
#   pass (its saved tensors are the primal values), only for the nodes upstream of a tie, freed as soon
#   as their consumers have them (:func:`_tangents`); a convolution's tangent is evaluated lazily
#   (:class:`_LazyConv`): only at the ties whose input patch moves, when they are few.
#
# Anything else (a tie at another kink op, a node type without a tangent rule, a transform) falls back
# to the general method: re-run the closure with forward-mode AD (``_Certifier``).


class _Unsupported(Exception):
    """The fast path cannot handle this graph: use the general method."""


class _ReluSite:
    """A relu call with ties. Decisions: ``opened`` (flat indices of ties decided on the increasing
    side, slope 1; the others keep relu's slope 0), ``pending`` (bool, ties not decided yet)."""

    op = "relu"
    inert = 0

    def __init__(self, index: int, tie: Tensor, after_bias: bool, own: Tensor | None) -> None:
        self.index, self.tie, self.after_bias, self.own = index, tie, after_bias, own
        self.out: Tensor | None = None  #: relu's output (saved for backward anyway)
        self.pending: Tensor | None = None  #: bool (``None``: every tie)
        self.opened: list[Tensor] = []
        self.node: Any = None
        self.done = False

    @property
    def ties(self) -> int:
        return int(self.tie.sum())

    def left(self) -> int:
        return 0 if self.done else int((self.tie if self.pending is None else self.pending).sum())

    def decide(self, t: Tensor | _Lazy | None) -> None:
        """Decide pending ties by the sign of the input tangent ``t`` (zero: stay pending)."""
        if self.done or t is None:
            return
        pending = self.tie if self.pending is None else self.pending
        if isinstance(t, _Lazy):
            support = t.support()
            if support is not None:
                flat = _nonzero_4d(pending & support)
                if flat.numel() <= _SPARSE_FRACTION * pending.numel():
                    self._decide_at(flat, t.at(flat))
                    return
            t = t.dense()
        self._decide_at(pending.view(-1).nonzero().squeeze(1), t.reshape(-1)[pending.view(-1)])

    def _decide_at(self, flat: Tensor, values: Tensor) -> None:
        if self.pending is None:
            self.pending = self.tie.clone()
        self.opened.append(flat[values > 0])
        self.pending.view(-1)[flat[values != 0]] = False
        self.done = not bool(self.pending.view(torch.uint8).amax())

    def forget(self) -> None:
        self.tie = self.pending = self.out = None  # type: ignore[assignment]

    def slope_at(self, flat: Tensor) -> Tensor:
        assert self.out is not None
        slope = self.out.detach().flatten()[flat].bool()
        for opened in self.opened:
            slope |= torch.isin(flat, opened)
        return slope

    def moves(self) -> Tensor:
        """bool, shaped like the output: where the output's tangent may be nonzero."""
        assert self.out is not None
        moves = self.out.detach().bool().contiguous()
        for opened in self.opened:
            moves.view(-1)[opened] = True
        return moves

    def through(self, t: Tensor, result: Tensor | None = None) -> Tensor:
        """The output's tangent (or gradient, the map is diagonal) from the input's."""
        result = self.out if result is None else result
        assert result is not None
        out = torch.ops.aten.threshold_backward(t, result, 0)
        if self.opened and not out.is_contiguous():
            out = out.contiguous()  # (flat indices are in logical order)
        for opened in self.opened:
            out.view(-1)[opened] = t.reshape(-1)[opened]
        return out

    def tangent(self, t: Tensor | _Lazy | None) -> Tensor | _Lazy | None:
        if t is None:
            return None
        return _LazyRelu(t, self) if isinstance(t, _Lazy) else self.through(t)


class _TieRelu(torch.autograd.Function):
    """``relu`` whose derivative at its ties is read from ``site.opened`` when backward runs."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, site: _ReluSite) -> Tensor:
        out = torch.relu(x)
        ctx.save_for_backward(out)
        ctx.kinkgrad_site = site
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        site: _ReluSite = ctx.kinkgrad_site
        (out,) = ctx.saved_tensors
        return site.through(grad, out), None


@dataclass(eq=False)
class _PoolSite:
    """A max-pool call with tied windows. ``pending`` (bool per window) marks the tied windows not yet
    decided; ``narrowed`` keeps, for windows a direction left with several best candidates, which
    candidates are still in the running."""

    index: int
    x: Tensor  #: the pool's input (saved for backward anyway)
    kernel: tuple[int, int]
    value: Tensor | None = None
    indices: Tensor | None = None  #: PyTorch's, then (a copy) with the decided winners
    bits: Tensor | None = None  #: per window, its entries that are not its maximum (no ``indices`` then)
    tied: Tensor | None = None  #: bool per window: the maximum is attained twice or more
    need: Tensor | None = None  #: bool per window: tied, and some candidate may move
    pending: Tensor | None = None  #: bool per window: still to decide (``need`` until a decision)
    narrowed: tuple[Tensor, Tensor] | None = None  #: (sorted windows, [windows, k] alive candidates)
    node: Any = None
    cloned: bool = False  #: ``indices`` is kinkgrad's own (no caller holds it): decide in place
    done: bool = False

    op = "max_pool2d"
    own = None
    after_bias = False

    @property
    def ties(self) -> int:
        return 0 if self.tied is None else int(self.tied.sum())

    @property
    def inert(self) -> int:
        """Tied windows whose candidates are all locally constant (left as PyTorch has them)."""
        return 0 if self.need is None else self.ties - int(self.need.sum())

    def _candidates(self, windows: Tensor) -> Tensor:
        """Flat indices into ``x`` of every candidate of ``windows``: ``[windows, kh*kw]``."""
        assert self.value is not None
        kh, kw = self.kernel
        h, w = self.x.shape[-2:]
        ho, wo = self.value.shape[-2:]
        plane, j = windows // wo, windows % wo
        nc, i = plane // ho, plane % ho
        base = nc * (h * w) + i * (kh * w) + j * kw
        dy = torch.arange(kh, device=base.device).repeat_interleave(kw)
        dx = torch.arange(kw, device=base.device).repeat(kh)
        return base[:, None] + (dy * w + dx)[None, :]

    def _alive(self, windows: Tensor, cand: Tensor) -> Tensor:
        """The candidates of ``windows`` still in the running: ``[windows, kh*kw]`` bool."""
        assert self.value is not None
        values = self.x.detach().flatten()[cand]
        alive = (values == self.value.flatten()[windows][:, None]) & torch.isfinite(values)
        if self.narrowed is not None:
            known, rows = self.narrowed
            at = torch.searchsorted(known, windows).clamp(max=known.numel() - 1)
            hit = known[at] == windows
            alive[hit] = rows[at[hit]]
        return alive

    def _moving(self, t: Tensor | _Lazy) -> Tensor:
        """Sorted flat indices of the pending windows where some candidate may move along ``t``."""
        assert self.value is not None and self.pending is not None
        if isinstance(t, _LazyRelu) and t.site.out is not None and t.site.out.shape == self.x.shape:
            # the input is a relu's output: its zeros move only where the relu opened a tie
            moving = self.pending & self.value.bool()
            h, w = self.x.shape[-2:]
            ho, wo = self.value.shape[-2:]
            kh, kw = self.kernel
            for opened in t.site.opened:
                plane, y, x = opened // (h * w), (opened // w) % h, opened % w
                inside = (y < ho * kh) & (x < wo * kw)
                window = (plane * (ho * wo) + (y // kh) * wo + x // kw)[inside]
                moving.view(-1)[window] = self.pending.view(-1)[window]
        else:
            support = t.support() if isinstance(t, _Lazy) else t
            if support is None:
                support = _dense(t)
            assert support is not None
            moving = self.pending & _window_any(support.expand(self.x.shape), self.kernel, self.value.shape)
        return moving.view(-1).nonzero().squeeze(1)

    def decide(self, t: Tensor | _Lazy | None) -> None:
        """Among the tied candidates of each pending window, keep those with the largest tangent; the
        window's gradient goes to the first of them. Windows where no candidate moves along this
        direction are left for the next one."""
        if self.done or t is None:
            return
        assert self.value is not None
        if self.pending is None:
            assert self.need is not None
            self.pending = self.need.clone()
        windows = self._moving(t)
        if windows.numel() == 0:
            return
        cand = self._candidates(windows)
        alive = self._alive(windows, cand)
        tangents = t.at(cand.flatten()).view(cand.shape) if isinstance(t, _Lazy) else t.flatten()[cand]
        score = torch.where(alive, tangents, torch.full_like(tangents, -torch.inf))
        alive = alive & (score == score.amax(-1, keepdim=True))
        best = score.argmax(-1, keepdim=True)  # first of the best (its position in the window)
        if self.bits is not None:  # the winner becomes the window's only maximum in its bits
            full = (1 << cand.shape[-1]) - 1
            self.bits.view(-1)[windows] = (full ^ (1 << best.squeeze(-1))).to(torch.uint8)
        else:
            assert self.indices is not None
            if not self.cloned:
                self.indices, self.cloned = self.indices.clone(), True
            h, w = self.x.shape[-2:]
            self.indices.view(-1)[windows] = cand.gather(-1, best).squeeze(-1) % (h * w)
        several = alive.sum(-1) > 1
        self.pending.view(-1)[windows[~several]] = False
        if bool(several.any()) or self.narrowed is not None:
            old = (windows[:0], alive[:0]) if self.narrowed is None else self.narrowed
            keep = ~torch.isin(old[0], windows)
            known = torch.cat([old[0][keep], windows[several]])
            rows = torch.cat([old[1][keep], alive[several]])
            order = known.argsort()
            self.narrowed = (known[order], rows[order]) if known.numel() else None
        self.done = not bool(self.pending.view(torch.uint8).amax())

    def left(self) -> int:
        pending = self.need if self.pending is None else self.pending
        return 0 if self.done or pending is None else int(pending.sum())

    def winners(self) -> Tensor:
        """Each window's winner as PyTorch's pool indexes it (flat within its plane), with the decisions
        so far: PyTorch's indices, or each window's first maximum in its ``bits`` (where a decided
        window's winner is its only one)."""
        if self.bits is not None:
            return _native.first_maxima(self.bits, self.kernel, self.x.shape[-1])
        assert self.indices is not None
        return self.indices

    def forget(self) -> None:
        self.tied = self.need = self.pending = self.value = self.indices = self.bits = None
        self.narrowed = None
        self.x = None  # type: ignore[assignment]

    def tangent(self, t: Tensor | _Lazy | None) -> Tensor | None:
        t = _dense(t)
        if t is None:
            return None
        assert self.value is not None
        return t.flatten(-2).gather(-1, self.winners().flatten(-2)).view(self.value.shape)


def _window_any(t: Tensor, kernel: tuple[int, int], shape: torch.Size) -> Tensor:
    """bool per non-overlapping window: some entry of ``t`` in it is nonzero."""
    ho, wo = shape[-2:]
    kh, kw = kernel
    nz = t.bool().view(torch.uint8)
    if kernel == (2, 2) and nz.is_contiguous() and nz.shape[-2] == 2 * ho and nz.shape[-1] == 2 * wo:
        rows = nz.view(*nz.shape[:-2], ho, 2, nz.shape[-1])
        either = torch.maximum(rows[..., 0, :], rows[..., 1, :])
        return torch.maximum(either[..., 0::2], either[..., 1::2]).view(torch.bool)
    windows = nz[..., : ho * kh, : wo * kw].unfold(-2, kh, kh).unfold(-2, kw, kw)
    return windows.amax((-1, -2)).view(torch.bool)


class _TiePool(torch.autograd.Function):
    """``max_pool2d`` whose backward sends each window's gradient to ``site.indices`` (set after the
    forward pass where ties were decided)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, site: _PoolSite, kernel: tuple[int, int]) -> tuple[Tensor, Tensor]:
        value, indices = torch.ops.aten.max_pool2d_with_indices(x, list(kernel), list(kernel))
        ctx.save_for_backward(x)
        ctx.kinkgrad_site, ctx.kernel = site, kernel
        site.indices = ctx.kinkgrad_indices = indices
        ctx.mark_non_differentiable(indices)
        ctx.set_materialize_grads(False)  # (no zero-filled gradient for the indices output)
        return value, indices

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None, _: Any) -> tuple[Tensor | None, None, None]:
        (x,) = ctx.saved_tensors
        k = list(ctx.kernel)
        indices = ctx.kinkgrad_indices
        ctx.kinkgrad_indices = None  # freed now, as autograd frees saved tensors (single use)
        if grad is None:
            return None, None, None
        return (
            torch.ops.aten.max_pool2d_with_indices_backward(grad, x, k, k, [0, 0], [1, 1], False, indices),
            None,
            None,
        )


class _BitsPool(torch.autograd.Function):
    """``max_pool2d`` whose value and maxima came from one compiled pass (:func:`_pool_bits`): its
    backward sends each window's gradient to its first maximum in the bits, in one compiled pass:
    PyTorch's own winner, or the decided one (:meth:`_PoolSite.decide` leaves it the only maximum of its
    window). Keeps one byte per window where PyTorch's pool keeps an int64 index. Eager only (as the
    fast path is), so ``forward`` takes ``ctx``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, value: Tensor, site: _PoolSite, kernel: tuple[int, int]) -> Tensor:
        ctx.save_for_backward(x)
        # (not a saved tensor: decisions, made after this forward pass, edit the bits in place)
        ctx.kinkgrad_site, ctx.kinkgrad_bits, ctx.kernel = site, site.bits, kernel
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        (x,) = ctx.saved_tensors
        k, bits = ctx.kernel, ctx.kinkgrad_bits
        ctx.kinkgrad_bits = None  # freed now, as autograd frees saved tensors (single use)
        if not torch.is_grad_enabled():
            out = _native.pool_scatter(grad, bits, x.shape, k, k, "first")
            if out is not None:
                return out, None, None, None
        indices = _native.first_maxima(bits, k, x.shape[-1])
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(
            grad, x, list(k), list(k), [0, 0], [1, 1], False, indices
        )
        return grad_x, None, None, None


def _pool_bits(x: Tensor, kernel: tuple[int, int]) -> tuple[Tensor, Tensor, int] | None:
    """The max-pool of ``x`` (non-overlapping ``kernel`` windows, no overhang), PyTorch's values bit for
    bit, with each window's maxima as bits and the number of tied windows, from one compiled pass
    (:func:`kinkgrad._native.pool_values`); ``None`` where it does not apply (NaN, a maximum that is
    not finite, another dtype...)."""
    (h, w), (kh, kw) = x.shape[-2:], kernel
    value = torch.empty((*x.shape[:-2], h // kh, w // kw), dtype=x.dtype)
    bits = scratch(value, torch.uint8)
    ties = _native.pool_values(x.detach(), kernel, kernel, value, bits)
    return None if ties is None else (value, keep(bits), ties)


def _pool_args(func: Any, args: Any, kwargs: Any) -> tuple[Tensor, tuple[int, int], bool] | None:
    """``(input, kernel, return_indices)`` of a max_pool2d call the fast path handles (non-overlapping
    windows, no padding or dilation, no ceil-mode overhang), else ``None``."""
    names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    bound = dict(zip(names, args))
    if len(args) > len(names) or any(k in bound or k not in names for k in kwargs):
        return None
    bound.update(kwargs)
    x = bound.get("input")
    if not isinstance(x, Tensor) or x.dim() != 4:
        return None
    kernel = _pair(bound.get("kernel_size"))
    stride = _pair(bound.get("stride")) or kernel
    if kernel is None or stride != kernel or _pair(bound.get("padding", 0)) not in ((0, 0), None):
        return None
    if _pair(bound.get("dilation", 1)) != (1, 1):
        return None
    if bound.get("ceil_mode", False) and (x.shape[-2] % kernel[0] or x.shape[-1] % kernel[1]):
        return None
    if x.shape[-2] < kernel[0] or x.shape[-1] < kernel[1]:
        return None
    return x, kernel, bool(bound.get("return_indices", False)) or func is _MAX_POOL_WITH_INDICES


def _pair(v: Any) -> tuple[int, int] | None:
    if v is None or (isinstance(v, list | tuple) and len(v) == 0):
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, list | tuple) and all(isinstance(i, int) for i in v) and len(v) in (1, 2):
        return (v[0], v[-1])
    raise _Unsupported


_RELU = {torch.relu, torch.nn.functional.relu, Tensor.relu}
_MAX_POOL_WITH_INDICES = torch.nn.functional.max_pool2d_with_indices
_MAX_POOL = {torch.nn.functional.max_pool2d, _MAX_POOL_WITH_INDICES, torch.max_pool2d}


class _FastPass:
    """The strict policy's interception (:meth:`_Strict.intercept`; the policy catches every other
    kink op and unsupported op): certifies ``relu`` and ``max_pool2d`` calls in place, records their
    tie sites."""

    def __init__(self, bias_direction: dict[int, Tensor] | None) -> None:
        self.detector = _Detector()
        self.bias_direction = bias_direction
        self.sites: list[_ReluSite | _PoolSite] = []
        self.calm: dict[int, Tensor] = {}  #: id -> relu outputs whose input had no zero (all zeros inert)

    def _moving(self, x: Tensor) -> bool:
        return (
            x.requires_grad
            and torch.is_grad_enabled()
            and x.is_floating_point()
            and x.is_contiguous()  # (decisions are kept as flat indices in logical order)
            and fwad._current_level < 0
            and torch._C._functorch.peek_interpreter_stack() is None
            and not torch.compiler.is_compiling()
        )

    def intercept(self, func: Any, args: Any, kwargs: Any) -> Any:
        """The certified result of a ``relu`` or ``max_pool2d`` call, else ``NotImplemented``."""
        if func in _RELU and len(args) == 1 and isinstance(args[0], Tensor) and not kwargs.get("inplace"):
            if self._moving(args[0]):
                return self._relu(args[0])
        elif func in _MAX_POOL:
            try:
                parsed = _pool_args(func, args, kwargs)
            except _Unsupported:
                parsed = None
            if parsed is not None and self._moving(parsed[0]):
                return self._pool(*parsed)
        return NotImplemented

    def _relu(self, x: Tensor) -> Tensor:
        with torch._C.DisableTorchFunction():
            at_zero = _hit_mask(x, 0.0)  # the policy's own check (no kink: nothing allocated)
            if at_zero is None:
                out = torch.relu(x)
                self.calm[id(out)] = out
                return out
            own = None if self.bias_direction is None else _own_bias_tangent(x, self.bias_direction)
            site = _ReluSite(len(self.sites), at_zero, _after_bias(x), own)
            out = _TieRelu.apply(x, site)
            site.out, site.node = out.detach(), out.grad_fn  # (detached: no reference cycle)
        self.sites.append(site)
        return out

    def _pool(self, x: Tensor, kernel: tuple[int, int], return_indices: bool) -> Any:
        with torch._C.DisableTorchFunction():
            site = _PoolSite(len(self.sites), x, kernel)
            pooled = None if return_indices else _pool_bits(x, kernel)
            indices: Tensor | None = None
            tied: Tensor | None = None
            if pooled is None:
                site.cloned = not return_indices  # PyTorch's indices are the caller's: decide on a copy
                value, indices = _TiePool.apply(x, site, kernel)
                tied = _window_ties(x.detach(), value.detach(), kernel)
            else:  # (the pool and its tie check in one pass)
                site.bits = pooled[1]
                value = _BitsPool.apply(x, pooled[0], site, kernel)
                if pooled[2]:
                    tied = _native.tied_windows(site.bits, kernel[0] * kernel[1])
            site.value, site.node = value.detach(), value.grad_fn
            v = value.detach()
            if tied is not None and bool(tied.view(torch.uint8).amax()):
                site.tied = site.need = tied
                if self.calm.get(id(x)) is x:  # zeros of a relu whose input is never 0: locally constant
                    site.need = site.tied & v.bool()
                site.done = not bool(site.need.view(torch.uint8).amax())
                self.sites.append(site)
        return (value, indices) if return_indices else value


def _own_bias_tangent(z: Tensor, bias_direction: dict[int, Tensor]) -> Tensor | None:
    """kinkgrad's direction restricted to the bias of the layer that produced ``z`` (if any), shaped to
    broadcast against ``z``: the tangent at ``z`` of the first direction of the own-bias sequence."""
    fn = z.grad_fn
    dim = None if fn is None else _CHANNEL_DIM.get(fn.name())
    if fn is None or dim is None:
        return None
    biases = [
        v for v in (getattr(n, "variable", None) for n, _ in fn.next_functions) if isinstance(v, Tensor)
    ]
    biases = [b for b in biases if b.dim() == 1 and id(b) in bias_direction]
    if len(biases) != 1 or z.dim() < 1 or z.shape[dim] != biases[0].numel():
        return None
    shape = [1] * z.dim()
    shape[dim] = -1
    return bias_direction[id(biases[0])].reshape(shape)


# ---- tangents from the autograd graph of the forward pass ---------------------------------------------


def _out_shape(node: Any) -> torch.Size:
    return torch.Size(node._input_metadata[0].shape)


def _sum(*terms: Tensor | None) -> Tensor | None:
    out = None
    for t in terms:
        if t is not None:
            out = t if out is None else out + t
    return out


def _conv(node: Any, tin: list[Tensor | None]) -> Tensor | None:
    tx, tw, tb = (tin + [None, None, None])[:3]
    args = (
        node._saved_stride,
        node._saved_padding,
        node._saved_dilation,
        node._saved_transposed,
        node._saved_output_padding,
        node._saved_groups,
    )
    out = None
    if tx is not None:
        out = torch.convolution(tx, node._saved_weight, None, *args)
    if tw is not None:
        term = torch.convolution(node._saved_input, tw, None, *args)
        out = term if out is None else out.add_(term)
    if tb is not None:
        shape = [1] * len(_out_shape(node))
        shape[1] = -1
        out = _sum(out, tb.reshape(shape).expand(_out_shape(node)))
    return out


def _addmm(node: Any, tin: list[Tensor | None]) -> Tensor | None:
    ts, t1, t2 = tin
    alpha, beta = node._saved_alpha, node._saved_beta
    out = None
    if t1 is not None:
        out = t1 @ node._saved_mat2
    if t2 is not None:
        term = node._saved_mat1 @ t2
        out = term if out is None else out.add_(term)
    if out is not None and alpha != 1:
        out = out * alpha
    if ts is not None:
        ts = (ts if beta == 1 else ts * beta).expand(_out_shape(node))
        out = ts if out is None else out + ts
    return out


def _mm(node: Any, tin: list[Tensor | None]) -> Tensor | None:
    t1, t2 = tin
    return _sum(None if t1 is None else t1 @ node._saved_mat2, None if t2 is None else node._saved_self @ t2)


def _broadcast_sum(node: Any, a: Tensor | None, b: Tensor | None) -> Tensor | None:
    out = _sum(a, b)
    return None if out is None else out.expand(_out_shape(node))


def _add(node: Any, tin: list[Tensor | None]) -> Tensor | None:
    a, b = tin
    alpha = node._saved_alpha
    return _broadcast_sum(node, a, None if b is None else (b if alpha == 1 else b * alpha))


def _sub(node: Any, tin: list[Tensor | None]) -> Tensor | None:
    a, b = tin
    alpha = node._saved_alpha
    return _broadcast_sum(node, a, None if b is None else (-b if alpha == 1 else -alpha * b))


def _mul(node: Any, tin: list[Tensor | None]) -> Tensor | None:
    a, b = tin
    return _broadcast_sum(
        node,
        None if a is None else a * node._saved_other,
        None if b is None else node._saved_self * b,
    )


def _mul_scalar(node: Any, tin: list[Tensor | None]) -> Tensor | None:
    return None if tin[0] is None else tin[0] * node._saved_other


def _unary(f: Callable[[Any, Tensor], Tensor]) -> Callable[[Any, list[Tensor | None]], Tensor | None]:
    def rule(node: Any, tin: list[Tensor | None]) -> Tensor | None:
        return None if tin[0] is None else f(node, tin[0])

    return rule


_RULES: dict[str, Callable[[Any, list[Tensor | None]], Tensor | None]] = {
    "ConvolutionBackward0": _conv,
    "AddmmBackward0": _addmm,
    "MmBackward0": _mm,
    "AddBackward0": _add,
    "SubBackward0": _sub,
    "MulBackward0": _mul,
    "MulBackward1": _mul_scalar,
    "AddBackward1": _unary(lambda node, t: t),
    "SubBackward1": _unary(lambda node, t: t),
    "CloneBackward0": _unary(lambda node, t: t),
    "AliasBackward0": _unary(lambda node, t: t),
    "NegBackward0": _unary(lambda node, t: -t),
    "TBackward0": _unary(lambda node, t: t.t()),
    "TransposeBackward0": _unary(lambda node, t: t.transpose(node._saved_dim0, node._saved_dim1)),
    "PermuteBackward0": _unary(lambda node, t: t.permute(node._saved_dims)),
    "ViewBackward0": _unary(lambda node, t: t.reshape(_out_shape(node))),
    "UnsafeViewBackward0": _unary(lambda node, t: t.reshape(_out_shape(node))),
    "ReshapeAliasBackward0": _unary(lambda node, t: t.reshape(_out_shape(node))),
    "ExpandBackward0": _unary(lambda node, t: t.expand(_out_shape(node))),
    "ReluBackward0": _unary(lambda node, t: torch.ops.aten.threshold_backward(t, node._saved_result, 0)),
    "MaxPool2DWithIndicesBackward0": _unary(
        lambda node, t: (
            t.flatten(-2).gather(-1, node._saved_result1.flatten(-2)).view(node._saved_result1.shape)
        )
    ),
}


class _Lazy:
    """A tangent evaluated only where it is asked for: ``at(flat indices)``, ``support()`` (a bool
    tensor broadcastable to the output, false where the tangent is exactly 0; ``None``: anywhere), and
    ``dense()``."""

    shape: torch.Size

    def dense(self) -> Tensor:
        raise NotImplementedError

    def at(self, flat: Tensor) -> Tensor:
        raise NotImplementedError

    def support(self) -> Tensor | None:
        raise NotImplementedError


def _dense(t: Tensor | _Lazy | None) -> Tensor | None:
    return t.dense() if isinstance(t, _Lazy) else t


_SPARSE_FRACTION = 1 / 32  # evaluate a lazy tangent densely when more entries than this are asked for


def _unravel(flat: Tensor, shape: Sequence[int]) -> list[Tensor]:
    out = []
    for size in reversed(shape[1:]):
        out.append(flat % size)
        flat = flat // size
    out.append(flat)
    return out[::-1]


class _LazyConv(_Lazy):
    """Tangent of a 2-d convolution (groups 1): ``conv(ẋ, W) + conv(x, Ẇ) + ḃ``. At a few outputs it
    is a dot product with each one's input patch; its support is where some patch entry moves."""

    def __init__(self, node: Any, tx: Tensor | None, tw: Tensor | None, tb: Tensor | None) -> None:
        self.node, self.tx, self.tw, self.tb = node, tx, tw, tb
        self.shape = _out_shape(node)
        self._dense: Tensor | None = None
        self._support: Tensor | None = None

    def dense(self) -> Tensor:
        if self._dense is None:
            out = _conv(self.node, [self.tx, self.tw, self.tb])
            self._dense = torch.zeros(self.shape, dtype=self.node._saved_weight.dtype) if out is None else out
        return self._dense

    def support(self) -> Tensor | None:
        if self._dense is not None or self.tb is not None:
            return None
        if self._support is None:
            node = self.node
            moving = None
            for t in (self.tx, None if self.tw is None else node._saved_input):
                if t is not None:
                    m = t.bool().view(torch.uint8).amax(1, keepdim=True)
                    moving = m if moving is None else torch.maximum(moving, m)
            if moving is None:
                return torch.zeros((), dtype=torch.bool)
            self._support = _reach(moving, node._saved_weight.shape[-2:], node)
        return self._support

    def at(self, flat: Tensor) -> Tensor:
        if self._dense is not None or flat.numel() > _SPARSE_FRACTION * self.shape.numel():
            return self.dense().flatten()[flat]
        node = self.node
        weight = node._saved_weight
        n, c, i, j = _unravel(flat, self.shape)
        source = self.tx if self.tx is not None else node._saved_input
        index, inside = _patch_index(source.shape, weight.shape, n, i, j, node)
        product = None
        if self.tw is not None:
            product = node._saved_input.flatten()[index] * self.tw.reshape(weight.shape[0], -1)[c]
        if self.tx is not None:
            term = self.tx.flatten()[index] * weight.reshape(weight.shape[0], -1)[c]
            product = term if product is None else product.add_(term)
        out = None
        if product is not None:
            out = (product if inside is None else product.mul_(inside)).sum(-1)
        if self.tb is not None:
            out = _sum(out, self.tb[c])
        return torch.zeros(flat.shape, dtype=weight.dtype) if out is None else out


def _reach(moving: Tensor, kernel: Sequence[int], node: Any) -> Tensor:
    """bool ``[N, 1, Ho, Wo]``: the outputs of a 2-d convolution whose input patch holds a nonzero of
    ``moving`` (uint8 ``[N, 1, H, W]``). Stride 1 without dilation: maxima of shifted copies (small
    tensors, where a max-pool kernel is slow); otherwise a max-pool with the convolution's geometry."""
    stride, padding, dilation = node._saved_stride, node._saved_padding, node._saved_dilation
    if tuple(stride) != (1, 1) or tuple(dilation) != (1, 1):
        return F.max_pool2d(moving.to(torch.float32), tuple(kernel), stride, padding, dilation).bool()
    (kh, kw), (py, px) = kernel, padding
    m = F.pad(moving, (px, px, py, py))
    ho, wo = m.shape[-2] - kh + 1, m.shape[-1] - kw + 1
    rows = m[..., 0:ho, :]
    for dy in range(1, kh):
        rows = torch.maximum(rows, m[..., dy : dy + ho, :])
    out = rows[..., 0:wo]
    for dx in range(1, kw):
        out = torch.maximum(out, rows[..., dx : dx + wo])
    return out.bool()


def _nonzero_4d(mask: Tensor) -> Tensor:
    """Flat indices of the true entries of a bool ``[N, C, H, W]`` mask, through the few spatial
    positions where some channel is true (a full ``nonzero`` scans every element twice)."""
    if mask.dim() != 4 or not mask.is_contiguous():
        return mask.reshape(-1).nonzero().squeeze(1)
    c, h, w = mask.shape[1:]
    spots = mask.view(torch.uint8).amax(1).view(-1).nonzero().squeeze(1)  # n*h*w + y*w + x
    if spots.numel() * c * 4 > mask.numel():
        return mask.view(-1).nonzero().squeeze(1)
    sample, place = spots // (h * w), spots % (h * w)
    flat = (sample * (c * h * w) + place)[:, None] + (torch.arange(c, device=mask.device) * (h * w))[None, :]
    flat = flat.view(-1)
    return flat[mask.view(-1)[flat]].sort().values


def _patch_index(
    shape: Sequence[int], kernel: Sequence[int], n: Tensor, i: Tensor, j: Tensor, node: Any
) -> tuple[Tensor, Tensor | None]:
    """Flat indices into a ``shape`` input of the patch of each output ``(n, ·, i, j)`` of a 2-d
    convolution: ``[outputs, cin*kh*kw]``, and where padding applies, which of them are inside."""
    (sy, sx), (py, px), (dy, dx) = node._saved_stride, node._saved_padding, node._saved_dilation
    _, cin, h, wd = shape
    kh, kw = kernel[-2:]
    ci = torch.arange(cin, device=n.device).repeat_interleave(kh * kw)
    ky = torch.arange(kh, device=n.device).repeat_interleave(kw).repeat(cin)
    kx = torch.arange(kw, device=n.device).repeat(cin * kh)
    y = (i * sy - py)[:, None] + (ky * dy)[None, :]
    z = (j * sx - px)[:, None] + (kx * dx)[None, :]
    start = (n * (cin * h * wd))[:, None] + (ci * (h * wd))[None, :]
    if py == 0 and px == 0:
        return start + y * wd + z, None
    inside = (y >= 0) & (y < h) & (z >= 0) & (z < wd)
    return start + y.clamp(0, h - 1) * wd + z.clamp(0, wd - 1), inside


class _LazyRelu(_Lazy):
    """Tangent of a relu output: the input's where the output is positive or a tie was opened."""

    def __init__(self, t: _Lazy, site: _ReluSite) -> None:
        self.t, self.site = t, site
        assert site.out is not None
        self.shape = site.out.shape

    def dense(self) -> Tensor:
        return self.site.through(self.t.dense())

    def support(self) -> Tensor | None:
        moves = self.site.moves()
        inner = self.t.support()
        return moves if inner is None else moves & inner

    def at(self, flat: Tensor) -> Tensor:
        return self.t.at(flat) * self.site.slope_at(flat)


def _plain_relu(out: Tensor) -> _ReluSite:
    """A relu call without ties (``ReluBackward0``), as the tangent sweep sees it."""
    site = _ReluSite(-1, out, False, None)
    site.out, site.done = out, True
    return site


def _tangents(
    sites: Sequence[_ReluSite | _PoolSite],
    leaf: Mapping[int, Tensor],
    boundary: dict[tuple[Any, int], Tensor],
    order: list[Any],
) -> None:
    """One forward-mode sweep along one direction: ``leaf`` (id of a differentiated leaf -> its
    direction) and ``boundary`` (edge of a differentiated non-leaf tensor -> its direction). Each site in
    ``sites`` decides its pending ties from its input's tangent; ``order`` is :func:`_plan`'s."""
    targets = {site.node for site in sites}
    uses: dict[Any, int] = {}
    for node in order:
        for edge in node.next_functions:
            if edge[0] is not None:
                uses[edge[0]] = uses.get(edge[0], 0) + 1
    values: dict[Any, Tensor | _Lazy | None] = {}

    def tangent(edge: tuple[Any, int]) -> Tensor | _Lazy | None:
        node = edge[0]
        if node is None:
            return None
        if edge in boundary:
            return boundary[edge]
        variable = getattr(node, "variable", None)
        if variable is not None:
            return leaf.get(id(variable))
        value = values.get(node)
        uses[node] -= 1
        if uses[node] == 0:
            values.pop(node, None)
        return value

    for node in order:
        tin = [tangent(edge) for edge in node.next_functions]
        site = getattr(node, "kinkgrad_site", None)
        if site is not None and node in targets:
            site.decide(tin[0])
        if uses.get(node, 0) > 0:  # (a site that only decides needs no output tangent)
            values[node] = _rule(node, tin) if site is None else site.tangent(tin[0])


def _rule(node: Any, tin: list[Tensor | _Lazy | None]) -> Tensor | _Lazy | None:
    name = node.name()
    conv = name == "ConvolutionBackward0" and not node._saved_transposed and node._saved_groups == 1
    if conv and len(node._saved_stride) == 2 and any(t is not None for t in tin[:2]):
        tx, tw, tb = (_dense(t) for t in (tin + [None, None, None])[:3])
        return _LazyConv(node, tx, tw, tb)
    if name == "ReluBackward0" and isinstance(tin[0], _Lazy):
        return _LazyRelu(tin[0], _plain_relu(node._saved_result))
    return _RULES[name](node, [_dense(t) for t in tin])


def _plan(
    sites: Sequence[_ReluSite | _PoolSite],
    leaf: Mapping[int, Tensor],
    boundary: dict[tuple[Any, int], Tensor],
) -> list[Any]:
    """The nodes upstream of the sites, inputs first, that depend on a differentiated tensor; raises
    :class:`_Unsupported` at a node without a tangent rule (or a second output of a node)."""
    moving: dict[Any, bool] = {}
    order: list[Any] = []
    for site in sites:
        stack: list[tuple[Any, bool]] = [(site.node, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                edges = [e for e in node.next_functions if e[0] is not None]
                moves = any(
                    e in boundary
                    or (
                        id(getattr(e[0], "variable", None)) in leaf
                        if hasattr(e[0], "variable")
                        else moving.get(e[0], False)
                    )
                    for e in edges
                )
                moving[node] = moves
                if moves:
                    order.append(node)
                continue
            if node in moving:
                continue
            if getattr(node, "kinkgrad_site", None) is None and node.name() not in _RULES:
                raise _Unsupported(node.name())
            stack.append((node, True))
            for edge in node.next_functions:
                child = edge[0]
                if child is None or edge in boundary or hasattr(child, "variable") or child in moving:
                    continue
                if edge[1] != 0:
                    raise _Unsupported(f"{child.name()} output {edge[1]}")
                stack.append((child, False))
    return order


@dataclass
class _Outcome:
    loss: Tensor
    record: Callable[[], tuple[tuple[KinkSite, ...], int]]  #: sites and unresolved ties (counted lazily)
    method: str  #: "no kink", "inert", "own bias" or "tangents"


def _fast(
    fast: _FastPass,
    tensors: Sequence[Tensor],
    directions: list[tuple[Sequence[Tensor], bool]],
    boundary: Callable[[Sequence[Tensor]], dict[tuple[Any, int], Tensor]],
) -> str | None:
    """Decide the sites of the fast pass (before its backward runs) and return the method, or ``None``
    when the fast path cannot (the general method then re-runs the closure)."""
    sites = fast.sites
    pending = [s for s in sites if not s.done]
    own = fast.bias_direction is not None and all(
        isinstance(s, _ReluSite) and s.own is not None for s in pending
    )
    # every data-parallel rank takes the same branch (same direction sequence, same collectives)
    if not _any_rank(bool(pending) and not own):
        if not pending:
            return "inert" if sites else "no kink"
        for s in pending:
            assert isinstance(s, _ReluSite) and s.own is not None
            s.decide(s.own.expand(s.tie.shape))
        return "own bias"
    try:
        plans = []
        for d, _ in directions:
            leaf = _Leaves(tensors, d)
            edges = boundary(d)
            plans.append((leaf, edges, _plan(pending, leaf, edges)))
        ok = True
    except _Unsupported:
        ok = False
    if _any_rank(not ok):
        return None
    if not pending:
        return "inert" if sites else "no kink"
    with torch.no_grad():
        for leaf, edges, order in plans:
            _tangents(pending, leaf, edges, order)
            pending = [s for s in pending if not s.done]
            if not pending:
                break
    return "tangents"


def _release(sites: Sequence[_ReluSite | _PoolSite], record: bool) -> None:
    """Drop the sites' references to their autograd nodes (which reference the sites: a cycle), and,
    when no record is wanted, all that the backward pass does not read (tie masks, pending windows)."""
    for s in sites:
        if isinstance(s, _PoolSite) and s.node is not None and s.bits is None:
            s.node.kinkgrad_indices = s.indices  # (a copy, if the caller holds PyTorch's)
        s.node = None
        if not record:
            s.forget()


def _certify(
    run: Callable[[], Tensor],
    tensors: Sequence[Tensor],
    directions: Iterator[tuple[Sequence[Tensor], bool]],
    snapshot: _Snapshot,
    dual: Callable[[Sequence[Tensor]], Any],
    own: Sequence[Tensor] | None = None,
    boundary: Callable[[Sequence[Tensor]], dict[tuple[Any, int], Tensor]] = lambda d: {},
    record: bool = True,
) -> _Outcome:
    """Run ``run`` and decide every tie; return the loss whose graph carries the decisions.

    First the fast path (one ordinary forward pass, see :class:`_FastPass`); if a tie it cannot decide
    was hit, the general method: re-run with forward-mode tangents along each direction in turn.
    ``own``: kinkgrad's Gaussian direction, when the caller gave none and ``tensors`` are parameters:
    then elementwise kinks right after a biased layer can be decided by their own bias
    (:func:`_own_bias_tangent`).
    """
    listed = list(directions)  # checks every direction now, on every rank alike
    biases = None if own is None else {id(t): own[i] for i, t in enumerate(tensors) if t.dim() == 1}
    fast = _FastPass(biases)
    with _Strict(fast.detector, fast):
        loss = run()
    fast.calm.clear()
    if not _any_rank(fast.detector.needs_tangent):
        method = _fast(fast, tensors, listed, boundary)
        _release(fast.sites, record)
        if method is not None:
            sites = fast.sites

            def summary() -> tuple[tuple[KinkSite, ...], int]:
                kinks = tuple(KinkSite(s.op, s.index, s.ties, s.after_bias, s.inert) for s in sites)
                return kinks, sum(s.left() for s in sites)

            return _Outcome(loss, summary, method)
    del loss
    snapshot.restore()
    certifier = _Certifier()
    for k, (d, generic) in enumerate(listed):
        if k:
            snapshot.restore()
        certifier.start_pass()
        with dual(d), _Strict(certifier):
            loss = run()
        # After a Gaussian direction, a tie left (equal or zero tangents) has, with probability one,
        # equal gradients on every branch: no further direction can change the result.
        if generic or not _any_rank(certifier.unresolved > 0):
            break
    kinks, unresolved = tuple(certifier.sites), certifier.unresolved
    return _Outcome(loss, lambda: (kinks, unresolved), "tangents")


def clarke_backward(
    closure: Callable[[], Tensor],
    params: nn.Module | Iterable[Tensor],
    *,
    direction: Sequence[Tensor] | None = None,
    seed: int | None = None,
) -> Tensor:
    """A drop-in for ``loss.backward()`` that accumulates a *certified* gradient into ``.grad``.

    The gradient is that of the smooth piece of the loss active along ``params + t·direction``
    (``t → 0+``), an element of the Bouligand (hence Clarke) subdifferential; see the module docstring.

    Args:
        closure: runs an ordinary forward pass of unmodified model code and returns the scalar loss,
            e.g. ``lambda: F.cross_entropy(model(x), y)``.
        params: an ``nn.Module`` (its parameters that require grad; its buffers are restored between
            passes) or an iterable of parameters.
        direction: one tensor per parameter (same shape, dtype, device); ``None`` lets kinkgrad draw
            Gaussian directions from ``seed``. Either way, seeded directions follow lexicographically.
        seed: seed of kinkgrad's directions (use the same on every data-parallel rank).

    Returns:
        The loss (detached), as computed in the final pass.

    Example:
        >>> import torch
        >>> b = torch.zeros(1, requires_grad=True)
        >>> loss = clarke_backward(lambda: (torch.relu(b) - torch.relu(-b)).sum(), [b])
        >>> b.grad  # relu(b) - relu(-b) = b; plain backprop gives 0
        tensor([1.])
    """
    module, plist = _param_list(params)
    snapshot = _Snapshot(module)
    outcome = _certify(
        lambda: _scalar(closure(), "closure"),
        plist,
        _check_same_direction(_directions(plist, direction, seed, "params")),
        snapshot,
        lambda d: _tangents_on(plist, d),
        None if direction is not None else _gaussian(plist, 0 if seed is None else seed),
        record=False,
    )
    outcome.loss.backward()
    return outcome.loss.detach()


def _inputs(inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    xs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    for i, x in enumerate(xs):
        if not isinstance(x, Tensor):
            raise TypeError(f"inputs[{i}] must be a tensor, got {type(x).__name__}")
        if not x.requires_grad:
            raise ValueError(f"inputs[{i}] does not require grad; call .requires_grad_() on it")
    return xs


def _certified_inputs(
    fn: Callable[..., Tensor], xs: tuple[Tensor, ...], direction: Any, seed: int | None
) -> tuple[tuple[Tensor, ...], _Outcome]:
    current: list[Tensor] = list(xs)

    @contextmanager
    def dual(d: Sequence[Tensor]) -> Iterator[None]:
        with fwad.dual_level():
            current[:] = [fwad.make_dual(x, t) for x, t in zip(xs, d)]
            yield
        current[:] = list(xs)

    outcome = _certify(
        lambda: _scalar(fn(*current), "fn"),
        xs,
        _directions(xs, direction, seed, "inputs"),
        _Snapshot(None),
        dual,
        boundary=lambda d: {(x.grad_fn, x.output_nr): t for x, t in zip(xs, d) if x.grad_fn is not None},
    )
    grads = torch.autograd.grad(outcome.loss, xs, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for x, g in zip(xs, grads)), outcome


def clarke_grad(
    fn: Callable[..., Tensor],
    inputs: Tensor | Sequence[Tensor],
    *,
    direction: Tensor | Sequence[Tensor] | None = None,
    seed: int | None = None,
) -> tuple[Tensor, ...]:
    """Certified gradient of ``fn(*inputs)``: one tensor per input, an element of ``∂_B f``.

    Args:
        fn: any PyTorch code returning a scalar tensor.
        inputs: a tensor or a tuple of tensors that require grad.
        direction: shaped like ``inputs``; ``None`` lets kinkgrad choose (seeded, see module docstring).
        seed: seed of kinkgrad's directions.

    Returns:
        The gradient of the smooth piece of ``fn`` active along ``inputs + t·direction``, ``t → 0+``.

    Example:
        >>> import torch
        >>> x = torch.zeros(3, requires_grad=True)
        >>> clarke_grad(lambda x: (torch.relu(x) - torch.clamp(x, min=0)).sum(), x)  # f = 0
        (tensor([0., 0., 0.]),)
    """
    grads, _ = _certified_inputs(fn, _inputs(inputs), direction, seed)
    return grads


def _compare(
    plain: tuple[Tensor, ...], certified: tuple[Tensor, ...], outcome: _Outcome, rtol: float, atol: float
) -> ADCheck:
    diff = torch.sqrt(torch.stack([((p - c).double() ** 2).sum() for p, c in zip(plain, certified)]).sum())
    agree = all(torch.allclose(p, c, rtol=rtol, atol=atol) for p, c in zip(plain, certified))
    sites, unresolved = outcome.record()
    condition = None
    if not sites:
        condition = "no kink"
    elif all(site.after_bias for site in sites):
        condition = "park-chun-lee-2024"
    return ADCheck(agree, float(diff), plain, certified, sites, unresolved, condition, outcome.method)


def check_ad(
    fn: Callable[..., Tensor],
    inputs: Tensor | Sequence[Tensor],
    *,
    direction: Tensor | Sequence[Tensor] | None = None,
    seed: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> ADCheck:
    """Compare plain PyTorch AD with the certified gradient of ``fn(*inputs)``.

    Example:
        >>> import torch
        >>> x = torch.zeros(2, requires_grad=True)
        >>> record = check_ad(lambda x: (torch.relu(x) - torch.relu(-x)).sum(), x)
        >>> record.agree, record.difference_norm, [s.op for s in record.sites]
        (False, 1.4142135623730951, ['relu', 'relu'])
    """
    xs = _inputs(inputs)
    rng = torch.get_rng_state()
    plain = torch.autograd.grad(_scalar(fn(*xs), "fn"), xs, allow_unused=True)
    plain_t = tuple(torch.zeros_like(x) if g is None else g for x, g in zip(xs, plain))
    torch.set_rng_state(rng)
    certified, outcome = _certified_inputs(fn, xs, direction, seed)
    return _compare(plain_t, certified, outcome, rtol, atol)


def check_ad_backward(
    closure: Callable[[], Tensor],
    params: nn.Module | Iterable[Tensor],
    *,
    direction: Sequence[Tensor] | None = None,
    seed: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> ADCheck:
    """Compare ``closure().backward()`` with :func:`clarke_backward`; leaves every ``.grad`` untouched."""
    module, plist = _param_list(params)
    snapshot = _Snapshot(module)
    loss = _scalar(closure(), "closure")
    plain = tuple(
        torch.zeros_like(p) if g is None else g
        for p, g in zip(plist, torch.autograd.grad(loss, plist, allow_unused=True))
    )
    snapshot.restore()
    outcome = _certify(
        lambda: _scalar(closure(), "closure"),
        plist,
        _directions(plist, direction, seed, "params"),
        snapshot,
        lambda d: _tangents_on(plist, d),
        None if direction is not None else _gaussian(plist, 0 if seed is None else seed),
    )
    certified = tuple(
        torch.zeros_like(p) if g is None else g
        for p, g in zip(plist, torch.autograd.grad(outcome.loss, plist, allow_unused=True))
    )
    snapshot.restore()
    return _compare(plain, certified, outcome, rtol, atol)
