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
with probability zero), so its branch cannot change the first-order result. Such ties are counted in
``ADCheck.unresolved`` only when the caller's direction left them and no Gaussian pass followed.

**Cost.** An eager pass first checks for kinks (one comparison per element, as a policy does); with
no kink hit, the gradient is plain backprop's (f is differentiable there), so a batch with no tie
costs a backward pass. Otherwise one forward pass with tangents (about twice a forward) plus one
backward resolve all ties with probability one. After a batch with ties, the next call skips the
check (ties tend to persist: quantized weights, sparse inputs, 16-bit).

Batch norm in train mode, dropout: RNG state and module buffers (running statistics) are restored
before every re-run, so every pass sees the same masks and the buffers are updated once, when
``params`` is an ``nn.Module``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor, nn

from kinkgrad._policy import kink_policy
from kinkgrad._rules import Chooser


class UnsupportedKinkError(RuntimeError):
    """A nonsmooth op that kinkgrad cannot certify was reached by the differentiated computation."""


@dataclass(frozen=True)
class KinkSite:
    """A kink op call that hit at least one kink: its op, its call index in the pass, how many ties."""

    op: str
    site: int
    ties: int
    after_bias: bool  #: elementwise kink whose input comes straight from a layer with a bias


@dataclass(frozen=True)
class ADCheck:
    """Plain PyTorch AD against the certified gradient at one point.

    ``sufficient_condition`` names a cheap sufficient condition proving plain AD is already in the
    Clarke subdifferential here, when one holds: ``"no kink"`` (f is differentiable at the point), or
    ``"park-chun-lee-2024"`` (every kink hit is elementwise, right after a layer with a bias, and no
    selection ties: Park, Chun & Lee, ICLR 2024).
    """

    agree: bool
    difference_norm: float
    plain: tuple[Tensor, ...]
    certified: tuple[Tensor, ...]
    sites: tuple[KinkSite, ...]
    unresolved: int
    sufficient_condition: str | None
    method: str = "tangents"  #: how ties were decided: "no kink", "own bias" (see docs) or "tangents"


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
class _OwnBias(_Detector):
    """First pass with kinkgrad's own direction ``g``: an elementwise kink right after a layer with a
    bias (``z = W x + b``) is decided by ``g`` restricted to that bias, whose tangent at ``z`` is just
    ``g_b`` (no forward-mode pass). That is the first nonzero direction at ``z`` in the lexicographic
    sequence (``g`` on each bias, latest used first, then ``g``): later biases cannot move ``z``. Any
    other tie marks the pass as needing tangents."""

    bias_direction: dict[int, Tensor] = field(default_factory=dict)  #: id(bias) -> g restricted to it

    def lambdas(self, op: str, argument: Tensor, mask: Tensor) -> Tensor | None:
        tangent = self._own_bias_tangent(argument)
        self.sites.append(KinkSite(op, len(self.sites), int(mask.sum()), tangent is not None))
        if tangent is None:
            self.needs_tangent = True
            return None
        return (tangent > 0).to(argument.dtype).expand(argument.shape)

    def _own_bias_tangent(self, z: Tensor) -> Tensor | None:
        fn = z.grad_fn
        dim = None if fn is None else _CHANNEL_DIM.get(fn.name())
        if fn is None or dim is None:
            return None
        biases = [
            v for v in (getattr(n, "variable", None) for n, _ in fn.next_functions) if isinstance(v, Tensor)
        ]
        biases = [b for b in biases if b.dim() == 1 and id(b) in self.bias_direction]
        if len(biases) != 1 or z.dim() < 1 or z.shape[dim] != biases[0].numel():
            return None
        g = self.bias_direction[id(biases[0])]
        shape = [1] * z.dim()
        shape[dim] = -1
        return g.reshape(shape)


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

    def __init__(self, chooser: Chooser) -> None:
        super().__init__(default=chooser, ties=chooser)  # type: ignore[arg-type]
        self.strict = True
        self.chooser = chooser

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
) -> Iterator[tuple[tuple[Tensor, ...], bool]]:
    """The caller's direction (checked now), then one seeded Gaussian direction (flagged generic):
    one float64 ``randn`` per tensor, in order, from ``torch.Generator().manual_seed(seed or 0)``,
    cast to the tensor's dtype and device."""
    given = None if direction is None else _check_direction(tensors, direction, arg)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")

    def generate() -> Iterator[tuple[tuple[Tensor, ...], bool]]:
        if given is not None:
            yield given, False
        yield _gaussian(tensors, 0 if seed is None else seed), True

    return generate()


_GAUSSIAN: dict[Any, tuple[Tensor, ...]] = {}


def _gaussian(tensors: Sequence[Tensor], seed: int) -> tuple[Tensor, ...]:
    """The seeded Gaussian direction (cached for the last shapes seen: drawing it costs a pass)."""
    key = (seed, *((tuple(t.shape), t.dtype, t.device) for t in tensors))
    if key not in _GAUSSIAN:
        generator = torch.Generator().manual_seed(seed)
        gaussian = [torch.randn(t.shape, generator=generator, dtype=torch.float64) for t in tensors]
        _GAUSSIAN.clear()
        _GAUSSIAN[key] = tuple(g.to(dtype=t.dtype, device=t.device) for g, t in zip(gaussian, tensors))
    return _GAUSSIAN[key]


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


_TIES_SEEN: dict[tuple[int, ...], tuple[weakref.ref[Tensor], bool]] = {}
"""Did the last call for these tensors need the tangent pass? (Ties persist from batch to batch, so the
next call then skips the kink check.) Keyed by ids, checked against a weak reference."""


def _ties_seen(key: tuple[int, ...], first: Tensor) -> bool:
    entry = _TIES_SEEN.get(key)
    return entry is not None and entry[0]() is first and entry[1]


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
    directions: Iterator[tuple[tuple[Tensor, ...], bool]],
) -> Iterator[tuple[tuple[Tensor, ...], bool]]:
    """Under torch.distributed, every rank must use the same directions: compare a checksum of each."""
    for d, generic in directions:
        if _distributed():
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


@dataclass
class _Outcome:
    loss: Tensor
    sites: tuple[KinkSite, ...]
    unresolved: int
    method: str  #: "no kink", "own bias" or "tangents"


def _certify(
    run: Callable[[], Tensor],
    tensors: Sequence[Tensor],
    directions: Iterator[tuple[tuple[Tensor, ...], bool]],
    snapshot: _Snapshot,
    key: tuple[int, ...],
    dual: Callable[[Sequence[Tensor]], Any],
    own: tuple[Tensor, ...] | None = None,
) -> _Outcome:
    """Run ``run`` until every tie is decided; return the loss whose graph carries the decisions.

    ``own``: kinkgrad's Gaussian direction, when the caller gave none and ``tensors`` are parameters:
    then elementwise kinks right after a biased layer are decided in the first pass (:class:`_OwnBias`).
    """
    if not _ties_seen(key, tensors[0]):
        first = (
            _Detector() if own is None else _OwnBias(bias_direction={id(t): g for t, g in zip(tensors, own)})
        )
        with _Strict(first):
            loss = run()
        if not _any_rank(bool(first.sites)):
            return _Outcome(loss, (), 0, "no kink")
        if not _any_rank(first.needs_tangent):
            return _Outcome(loss, tuple(first.sites), 0, "own bias")
        snapshot.restore()
    certifier = _Certifier()
    for k, (d, generic) in enumerate(directions):
        if k:
            snapshot.restore()
        certifier.start_pass()
        with dual(d), _Strict(certifier):
            loss = run()
        _TIES_SEEN[key] = (weakref.ref(tensors[0]), bool(certifier.sites))
        # After a Gaussian direction, a tie left (equal or zero tangents) has, with probability one,
        # equal gradients on every branch: no further direction can change the result.
        if generic or not _any_rank(certifier.unresolved > 0):
            break
    return _Outcome(loss, tuple(certifier.sites), certifier.unresolved, "tangents")


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
        tuple(id(p) for p in plist),
        lambda d: _tangents_on(plist, d),
        None if direction is not None else _gaussian(plist, 0 if seed is None else seed),
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
        (id(fn),) + tuple(id(x) for x in xs),
        dual,
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
    condition = None
    if not outcome.sites:
        condition = "no kink"
    elif all(site.after_bias for site in outcome.sites):
        condition = "park-chun-lee-2024"
    return ADCheck(
        agree, float(diff), plain, certified, outcome.sites, outcome.unresolved, condition, outcome.method
    )


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
        tuple(id(p) for p in plist),
        lambda d: _tangents_on(plist, d),
        None if direction is not None else _gaussian(plist, 0 if seed is None else seed),
    )
    certified = tuple(
        torch.zeros_like(p) if g is None else g
        for p, g in zip(plist, torch.autograd.grad(outcome.loss, plist, allow_unused=True))
    )
    snapshot.restore()
    return _compare(plain, certified, outcome, rtol, atol)
