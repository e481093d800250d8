"""The registry of kink ops: names, kinds, Clarke sets, the PyTorch entry points a policy reroutes,
and probe points (inputs exactly at a kink) used by the atlas and by the tests.

Adding an op here gives it policy routing, a line in ``kinkgrad atlas`` and the whole test matrix.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from kinkgrad import ops

Kind = Literal["lambda", "ties"]
Args = tuple[Any, ...]
Kwargs = dict[str, Any]


@dataclass(frozen=True)
class Probe:
    """An input exactly at one of an op's kinks.

    ``make(dtype)`` builds the inputs; ``call(*inputs)`` is plain PyTorch code (so a policy reroutes it);
    the floating-point inputs are the ones differentiated. ``directions`` drive the test oracle (the
    gradient of PyTorch's own function at ``inputs + ε·d``, where it is differentiable): for
    ``oracle="lambda"`` one direction ``v`` along which the kink's argument increases, and the expected
    derivative is ``λ·∇f(x + εv) + (1-λ)·∇f(x - εv)``; for ``oracle="ties"`` one direction per tied
    candidate, in rule order (``"first"`` is the first direction, ``"split"`` the mean).
    """

    point: str
    make: Callable[[torch.dtype], tuple[Tensor, ...]]
    call: Callable[..., Any]
    directions: Sequence[Sequence[Any]]
    oracle: Literal["lambda", "ties", "split"] = "lambda"
    clarke: str | None = None  #: this point's Clarke set, where it differs from the op's


@dataclass(frozen=True)
class OpSpec:
    """One registered kink op."""

    name: str
    kind: Kind
    op: Callable[..., Any]
    clarke: str
    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class Route:
    """A PyTorch entry point that a policy sends to a kinkgrad op."""

    name: str
    op: Callable[..., Any]
    inplace: bool = False
    adapt: Callable[[Args, Kwargs], tuple[Args, Kwargs]] | None = None
    namer: Callable[[Args, Kwargs], tuple[str, ...]] | None = None
    has_inplace_arg: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_inplace_arg", "inplace" in inspect.signature(self.op).parameters)

    def names(self, args: Args, kwargs: Kwargs) -> tuple[str, ...]:
        return (self.name,) if self.namer is None else self.namer(args, kwargs)

    def call(self, choice: Any, args: Args, kwargs: Kwargs) -> Any:
        if self.adapt is not None:
            args, kwargs = self.adapt(args, kwargs)
        if not self.inplace:
            return self.op(*args, **kwargs, at_kink=choice)
        if self.has_inplace_arg:
            return self.op(*args, **kwargs, inplace=True, at_kink=choice)
        # PyTorch's backward may need the input that the copy overwrites: compute on a copy of it
        return args[0].copy_(self.op(args[0].clone(), *args[1:], **kwargs, at_kink=choice))


def _t(values: Any, dtype: torch.dtype) -> Tensor:
    return torch.tensor(values, dtype=dtype)


def _point(*values: Any) -> Callable[[torch.dtype], tuple[Tensor, ...]]:
    return lambda dtype: tuple(_t(v, dtype) for v in values)


def _scalar(
    op: str, points: Sequence[float], call: Callable[..., Any], clarke: str, kind: Kind = "lambda"
) -> OpSpec:
    probes = tuple(Probe(f"x = {p:g}", _point([p]), call, [[1.0]]) for p in points)
    return OpSpec(op, kind, getattr(ops, op), clarke, probes)


def _binary(op: str, call: Callable[..., Any]) -> OpSpec:
    probe = Probe("a = b = 0", _point([0.0], [0.0]), call, [[[1.0], [-1.0]]])
    return OpSpec(op, "lambda", getattr(ops, op), "{(θ, 1-θ) : θ ∈ [0, 1]}", (probe,))


def _ties(op: str, point: str, make: Any, call: Callable[..., Any], directions: Any) -> OpSpec:
    probe = Probe(point, make, call, directions, "ties")
    return OpSpec(op, "ties", getattr(ops, op), "simplex over the tied entries", (probe,))


def _e(n: int, i: int, sign: float = 1.0) -> list[float]:
    return [sign if j == i else 0.0 for j in range(n)]


def _pool(n: int, call: Callable[..., Any]) -> tuple[Probe, ...]:
    shape = {1: (1, 1, 2), 2: (1, 1, 2, 2), 3: (1, 1, 1, 2, 2)}[n]
    size = 4 if n > 1 else 2
    make = lambda dtype: (torch.ones(shape, dtype=dtype),)  # noqa: E731
    return (Probe("all entries equal", make, call, [[_e(size, i)] for i in range(size)], "ties"),)


_SPECS: tuple[OpSpec, ...] = (
    _scalar("relu", [0.0], torch.relu, "[0, 1]"),
    _scalar("leaky_relu", [0.0], lambda x: F.leaky_relu(x, 0.1), "[0.1, 1] (negative_slope=0.1)"),
    OpSpec(
        "prelu",
        "lambda",
        ops.prelu,
        "[weight, 1] in x; {0} in weight",
        (Probe("x = 0, weight = 0.25", _point([[0.0]], [0.25]), F.prelu, [[[[1.0]], [0.0]]]),),
    ),
    _scalar("rrelu", [0.0], lambda x: F.rrelu(x, training=False), "[(lower+upper)/2, 1] (eval mode)"),
    _scalar("relu6", [0.0, 6.0], F.relu6, "[0, 1]"),
    _scalar("hardtanh", [-1.0, 1.0], F.hardtanh, "[0, 1]"),
    OpSpec(
        "clamp",
        "lambda",
        ops.clamp,
        "[0, 1]; with a tensor bound {(θ, 1-θ)}",
        (
            Probe("x = min = 0", _point([0.0]), lambda x: torch.clamp(x, min=0.0), [[1.0]]),
            Probe("x = max = 1, min = 0", _point([1.0]), lambda x: torch.clamp(x, 0.0, 1.0), [[1.0]]),
            Probe(
                "x = min (tensor) = 0",
                _point([0.0], [0.0]),
                lambda x, m: torch.clamp(x, min=m),
                [[[1.0], [-1.0]]],
            ),
        ),
    ),
    _scalar("clamp_min", [0.0], lambda x: torch.clamp_min(x, 0.0), "[0, 1]"),
    _scalar("clamp_max", [0.0], lambda x: torch.clamp_max(x, 0.0), "[0, 1]"),
    _scalar("threshold", [0.5], lambda x: F.threshold(x, 0.5, 0.5), "[0, 1] (threshold = value = 0.5)"),
    _scalar("abs", [0.0], torch.abs, "[-1, 1]"),
    _scalar("hardsigmoid", [-3.0, 3.0], F.hardsigmoid, "[0, 1/6]"),
    _scalar("hardswish", [-3.0, 3.0], F.hardswish, "[-1/2, 0] at -3; [1, 3/2] at 3"),
    _scalar("elu", [0.0], lambda x: F.elu(x, 2.0), "[1, 2] (alpha=2)"),
    _scalar("selu", [0.0], F.selu, "[scale, scale·alpha] ≈ [1.0507, 1.7581]"),
    _scalar("celu", [0.0], F.celu, "{1} (C¹)"),
    _scalar("hardshrink", [0.5], F.hardshrink, "jump (discontinuous); one-sided slopes 0 and 1"),
    _scalar("softshrink", [0.5], F.softshrink, "[0, 1]"),
    _binary("maximum", torch.maximum),
    _binary("minimum", torch.minimum),
    _binary("fmax", torch.fmax),
    _binary("fmin", torch.fmin),
    OpSpec(
        "max",
        "ties",
        ops.max,
        "simplex over the tied entries",
        (
            Probe("x = [1, 1, 0]", _point([1.0, 1.0, 0.0]), torch.max, [[_e(3, 0)], [_e(3, 1)]], "ties"),
            Probe(
                "x = [[1, 1, 0]], dim=1",
                _point([[1.0, 1.0, 0.0]]),
                lambda x: torch.max(x, 1).values,
                [[[_e(3, 0)]], [[_e(3, 1)]]],
                "ties",
            ),
        ),
    ),
    _ties("min", "x = [0, 0, 1]", _point([0.0, 0.0, 1.0]), torch.min, [[_e(3, 0, -1)], [_e(3, 1, -1)]]),
    _ties("amax", "x = [1, 1, 0]", _point([1.0, 1.0, 0.0]), torch.amax, [[_e(3, 0)], [_e(3, 1)]]),
    _ties("amin", "x = [0, 0, 1]", _point([0.0, 0.0, 1.0]), torch.amin, [[_e(3, 0, -1)], [_e(3, 1, -1)]]),
    OpSpec(
        "max_pool1d",
        "ties",
        ops.max_pool1d,
        "simplex over the tied entries",
        _pool(1, lambda x: F.max_pool1d(x, 2)),
    ),
    OpSpec(
        "max_pool2d",
        "ties",
        ops.max_pool2d,
        "simplex over the tied entries",
        _pool(2, lambda x: F.max_pool2d(x, 2)),
    ),
    OpSpec(
        "max_pool3d",
        "ties",
        ops.max_pool3d,
        "simplex over the tied entries",
        _pool(3, lambda x: F.max_pool3d(x, (1, 2, 2))),
    ),
    OpSpec(
        "adaptive_max_pool1d",
        "ties",
        ops.adaptive_max_pool1d,
        "simplex over the tied entries",
        _pool(1, lambda x: F.adaptive_max_pool1d(x, 1)),
    ),
    OpSpec(
        "adaptive_max_pool2d",
        "ties",
        ops.adaptive_max_pool2d,
        "simplex over the tied entries",
        _pool(2, lambda x: F.adaptive_max_pool2d(x, 1)),
    ),
    OpSpec(
        "adaptive_max_pool3d",
        "ties",
        ops.adaptive_max_pool3d,
        "simplex over the tied entries",
        _pool(3, lambda x: F.adaptive_max_pool3d(x, (1, 1, 1))),
    ),
    _ties(
        "topk",
        "x = [2, 1, 1], k = 2",
        _point([2.0, 1.0, 1.0]),
        lambda x: torch.topk(x, 2).values,
        [[_e(3, 1)], [_e(3, 2)]],
    ),
    _ties("sort", "x = [1, 1]", _point([1.0, 1.0]), lambda x: torch.sort(x).values, [[_e(2, 1)], [_e(2, 0)]]),
    _ties(
        "median",
        "x = [1, 1, 1]",
        _point([1.0, 1.0, 1.0]),
        torch.median,
        [[[0.0, -1.0, 1.0]], [[-1.0, 0.0, 1.0]], [[-1.0, 1.0, 0.0]]],
    ),
    _ties(
        "kthvalue",
        "x = [1, 1, 0], k = 2",
        _point([1.0, 1.0, 0.0]),
        lambda x: torch.kthvalue(x, 2).values,
        [[_e(3, 1)], [_e(3, 0)]],
    ),
    OpSpec(
        "vector_norm",
        "lambda",
        ops.vector_norm,
        "dual unit ball at 0",
        (
            Probe("x = 0 (p=2)", _point([0.0, 0.0]), torch.linalg.vector_norm, [[[1.0, 1.0]]]),
            Probe(
                "x = 0 (p=1)",
                _point([0.0, 0.0]),
                lambda x: torch.linalg.vector_norm(x, 1),
                [[[1.0, 1.0]]],
                clarke="[-1, 1] per coordinate",
            ),
            Probe(
                "x = [1, -1] (p=∞)",
                _point([1.0, -1.0]),
                lambda x: torch.linalg.vector_norm(x, float("inf")),
                [[[1.0, 0.0]], [[0.0, -1.0]]],
                "split",
                "{(θ, θ - 1) : θ ∈ [0, 1]}",
            ),
        ),
    ),
    OpSpec(
        "norm",
        "lambda",
        ops.norm,
        "unit ball at 0",
        (Probe("x = 0", _point([0.0, 0.0]), torch.linalg.norm, [[[1.0, 1.0]]]),),
    ),
    OpSpec(
        "l1_loss",
        "lambda",
        ops.l1_loss,
        "[-1, 1]·(1, -1)/n",
        (Probe("input = target = 0", _point([0.0], [0.0]), F.l1_loss, [[[1.0], [-1.0]]]),),
    ),
    OpSpec(
        "hinge_embedding_loss",
        "lambda",
        ops.hinge_embedding_loss,
        "[-1, 0] in x",
        (
            Probe(
                "x = margin = 1, y = -1",
                _point([1.0], [-1.0]),
                F.hinge_embedding_loss,
                [[[-1.0], [0.0]]],
            ),
        ),
    ),
    OpSpec(
        "margin_ranking_loss",
        "lambda",
        ops.margin_ranking_loss,
        "{θ·(-1, 1)} in (x1, x2)",
        (
            Probe(
                "x1 = x2 = 0, y = 1",
                _point([0.0], [0.0], [1.0]),
                F.margin_ranking_loss,
                [[[-1.0], [1.0], [0.0]]],
            ),
        ),
    ),
    OpSpec(
        "multi_margin_loss",
        "lambda",
        ops.multi_margin_loss,
        "{θ·(-1, 1)/C} in x",
        (
            Probe(
                "x = [[1, 0]], y = 0",
                _point([[1.0, 0.0]]),
                lambda x: F.multi_margin_loss(x, torch.tensor([0])),
                [[[[0.0, 1.0]]]],
            ),
        ),
    ),
)

OPS: dict[str, OpSpec] = {spec.name: spec for spec in _SPECS}
"""Every registered kink op by name (the keywords of :class:`kinkgrad.kink_policy`)."""

GROUPS: dict[str, tuple[str, ...]] = {
    "max_pool": tuple(n for n in OPS if n.startswith(("max_pool", "adaptive_max_pool"))),
}
"""Names that set several ops at once."""


# ---- how PyTorch's entry points reach the ops --------------------------------------------------


def _legacy_reduction(params: Sequence[str]) -> Callable[[Args, Kwargs], tuple[Args, Kwargs]]:
    """Bind a loss's PyTorch signature, fold ``size_average``/``reduce`` into ``reduction``."""

    def adapt(args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
        bound = dict(zip(params, args)) | kwargs
        size_average, reduce = bound.pop("size_average", None), bound.pop("reduce", None)
        if size_average is not None or reduce is not None:
            from torch.nn import _reduction

            bound["reduction"] = _reduction.legacy_get_string(size_average, reduce)
        return (), bound

    return adapt


def _extremum_names(binary: str, reduction: str) -> Callable[[Args, Kwargs], tuple[str, ...]]:
    def names(args: Args, kwargs: Kwargs) -> tuple[str, ...]:
        second = args[1] if len(args) > 1 else kwargs.get("other")
        return (binary,) if isinstance(second, Tensor) else (reduction,)

    return names


def _extremum_adapt(args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    if "other" in kwargs:
        kwargs = dict(kwargs)
        args = (args[0], kwargs.pop("other"))
    return args, kwargs


def _hardtanh_names(args: Args, kwargs: Kwargs) -> tuple[str, ...]:
    lo = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
    hi = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
    return ("relu6", "hardtanh") if (lo, hi) == (0.0, 6.0) else ("hardtanh",)


def _torch_norm(
    input: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None, *, at_kink: Any
) -> Tensor:
    """``torch.norm`` / ``Tensor.norm``: a vector norm over ``dim`` unless ``p == "nuc"``."""
    if p == "nuc":
        return torch.norm(input, p, dim, keepdim, dtype=dtype)
    return ops.vector_norm(input, 2 if p == "fro" else p, dim, keepdim, dtype=dtype, at_kink=at_kink)


T = torch.Tensor
NN = torch._C._nn  # the builtins behind F.*; torch.compile may inline F.* and call these directly
_ROUTE_TABLE: list[tuple[Any, Route]] = []


def _route(
    name: str, op: Callable[..., Any], funcs: Sequence[Any], inplace: Sequence[Any] = (), **kw: Any
) -> None:
    for f in funcs:
        _ROUTE_TABLE.append((f, Route(name, op, **kw)))
    for f in inplace:
        _ROUTE_TABLE.append((f, Route(name, op, inplace=True, **kw)))


_route("relu", ops.relu, [torch.relu, F.relu, T.relu], [torch.relu_, T.relu_])
_route("leaky_relu", ops.leaky_relu, [F.leaky_relu, NN.leaky_relu], [F.leaky_relu_, NN.leaky_relu_])
_route("prelu", ops.prelu, [torch.prelu, F.prelu, T.prelu])
_route("rrelu", ops.rrelu, [F.rrelu, torch.rrelu], [F.rrelu_, torch.rrelu_])
_route("relu6", ops.relu6, [F.relu6, NN.relu6], [NN.relu6_], namer=lambda args, kwargs: ("relu6", "hardtanh"))
_route(
    "hardtanh", ops.hardtanh, [F.hardtanh, NN.hardtanh], [F.hardtanh_, NN.hardtanh_], namer=_hardtanh_names
)
_route(
    "clamp",
    ops.clamp,
    [torch.clamp, torch.clip, T.clamp, T.clip],
    [torch.clamp_, torch.clip_, T.clamp_, T.clip_],
)
_route("clamp_min", ops.clamp_min, [torch.clamp_min, T.clamp_min], [torch.clamp_min_, T.clamp_min_])
_route("clamp_max", ops.clamp_max, [torch.clamp_max, T.clamp_max], [torch.clamp_max_, T.clamp_max_])
_route("threshold", ops.threshold, [F.threshold, torch.threshold], [torch.threshold_])
_route("abs", ops.abs, [torch.abs, torch.absolute, T.abs, T.absolute], [torch.abs_, T.abs_, T.absolute_])
_route("hardsigmoid", ops.hardsigmoid, [F.hardsigmoid, NN.hardsigmoid], [NN.hardsigmoid_])
_route("hardswish", ops.hardswish, [F.hardswish, NN.hardswish], [NN.hardswish_])
_route("elu", ops.elu, [F.elu], [F.elu_])
_route("selu", ops.selu, [F.selu, torch.selu], [torch.selu_])
_route("celu", ops.celu, [F.celu, torch.celu], [torch.celu_])
_route("hardshrink", ops.hardshrink, [F.hardshrink, T.hardshrink])
_route("softshrink", ops.softshrink, [F.softshrink, NN.softshrink])
_route("maximum", ops.maximum, [torch.maximum, T.maximum])
_route("minimum", ops.minimum, [torch.minimum, T.minimum])
_route("fmax", ops.fmax, [torch.fmax, T.fmax])
_route("fmin", ops.fmin, [torch.fmin, T.fmin])
_route("max", ops.max, [torch.max, T.max], namer=_extremum_names("maximum", "max"), adapt=_extremum_adapt)
_route("min", ops.min, [torch.min, T.min], namer=_extremum_names("minimum", "min"), adapt=_extremum_adapt)
_route("amax", ops.amax, [torch.amax, T.amax])
_route("amin", ops.amin, [torch.amin, T.amin])
for _n in (1, 2, 3):
    _route(
        f"max_pool{_n}d",
        getattr(ops, f"max_pool{_n}d"),
        [
            getattr(F, f"max_pool{_n}d"),
            getattr(F, f"max_pool{_n}d_with_indices"),
            getattr(torch, f"max_pool{_n}d"),
        ],
    )
    _route(
        f"adaptive_max_pool{_n}d",
        getattr(ops, f"adaptive_max_pool{_n}d"),
        [getattr(F, f"adaptive_max_pool{_n}d"), getattr(F, f"adaptive_max_pool{_n}d_with_indices")],
    )
_route("topk", ops.topk, [torch.topk, T.topk])
_route("sort", ops.sort, [torch.sort, T.sort])
_route("median", ops.median, [torch.median, T.median])
_route("kthvalue", ops.kthvalue, [torch.kthvalue, T.kthvalue])
_route("vector_norm", ops.vector_norm, [torch.linalg.vector_norm])
_route("norm", ops.norm, [torch.linalg.norm])
_route("vector_norm", _torch_norm, [torch.norm, T.norm])
_route(
    "l1_loss",
    ops.l1_loss,
    [F.l1_loss],
    adapt=_legacy_reduction(("input", "target", "size_average", "reduce", "reduction", "weight")),
)
_route(
    "hinge_embedding_loss",
    ops.hinge_embedding_loss,
    [F.hinge_embedding_loss],
    adapt=_legacy_reduction(("input", "target", "margin", "size_average", "reduce", "reduction")),
)
_route(
    "margin_ranking_loss",
    ops.margin_ranking_loss,
    [F.margin_ranking_loss],
    adapt=_legacy_reduction(("input1", "input2", "target", "margin", "size_average", "reduce", "reduction")),
)
_route(
    "multi_margin_loss",
    ops.multi_margin_loss,
    [F.multi_margin_loss],
    adapt=_legacy_reduction(
        ("input", "target", "p", "margin", "weight", "size_average", "reduce", "reduction")
    ),
)

ROUTES: dict[Any, Route] = dict(_ROUTE_TABLE)
"""PyTorch entry point → route (a policy's dispatch table)."""


UNSUPPORTED: frozenset[Any] = frozenset(
    [
        *(getattr(torch, n) for n in ("round", "floor", "ceil", "trunc", "fix", "sign", "sgn", "heaviside")),
        *(getattr(torch, n) for n in ("frac", "fmod", "remainder", "floor_divide", "bucketize")),
        *(getattr(T, n) for n in ("round", "floor", "ceil", "trunc", "fix", "sign", "sgn", "heaviside")),
        *(getattr(T, n) for n in ("frac", "fmod", "remainder", "floor_divide", "__mod__", "__floordiv__")),
        torch.nn.functional.gumbel_softmax,
    ]
)
"""Nonsmooth PyTorch functions with no kink rule: certification raises ``UnsupportedKinkError`` there."""
