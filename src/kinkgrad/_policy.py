"""``kink_policy``: one choice of derivative at every kink, reaching unmodified model code.

A policy is entered as a context manager or used as a decorator. While one is active, a
``TorchFunctionMode`` routes every registered PyTorch entry point (``torch.relu``, ``F.relu``,
``nn.ReLU``, ``x.relu()``, ``torch.clamp``, ``F.max_pool2d``, ``x.abs()``, ...) to the matching
:mod:`kinkgrad.ops` function with the policy's ``at_kink``. Policies nest: the innermost one is the
whole policy in effect (it does not inherit from the outer one) and the outer one is restored on exit.
Outside any policy PyTorch is untouched.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Iterator, Mapping
from types import FrameType, MethodType, MethodWrapperType
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from kinkgrad._native import compiled
from kinkgrad._observe import active_observer
from kinkgrad._rules import check_lambda, check_tie_rule

_dispatch = compiled("_dispatch", 1, "policies cost more per PyTorch call")
"""The common case of the mode in C (``None``: the mode is its Python method alone)."""

_ROUTES: dict[int, Any] = {}
"""The registry's dispatch table by ``id`` of each entry point (the registry keeps them alive), filled
when the first routing mode is entered (the registry imports the ops, which import this module).
Keyed by ``id``: under ``torch.compile``, a lookup keyed by the function made Dynamo guard all 115
entries on every call (measured with the flag below: 170 us of Dynamo's cache lookup per compiled MLP
step, 125 us without those guards, 47 us with a mode that routes nothing)."""
_KINDS: dict[str, str] = {}
"""Each registered op's kind (``"lambda"``, ``"ties"``...), filled with :data:`_ROUTES`."""


_OPS_NAMESPACES: set[int] = set()
"""``id`` of the global namespace of every ``kinkgrad.ops`` module (see :func:`_routed_already`)."""


_LOADED = False
"""Whether :data:`_ROUTES` is filled (a flag, not the dict's truth, which Dynamo guards entry by entry)."""


def _load_registry() -> None:
    global _LOADED
    if not _LOADED:
        from kinkgrad._registry import OPS, ROUTES

        _KINDS.update({name: spec.kind for name, spec in OPS.items()})
        ops = [m for name, m in sys.modules.items() if name.startswith("kinkgrad.ops.")]
        _OPS_NAMESPACES.update(id(vars(m)) for m in ops)
        _ROUTES.update({id(func): route for func, route in ROUTES.items()})
        _LOADED = True


class kink_policy(contextlib.ContextDecorator):
    """Choose the derivative at every kink, for unmodified PyTorch code inside the block.

    Args:
        default: ``λ`` for every elementwise kink and binary tie (``relu``, ``clamp``, ``maximum``,
            ``abs``, norms and losses...): the derivative there is ``(1-λ)·left + λ·right``. With one
            ``λ``, ``relu(x)``, ``clamp(x, min=0)`` and ``maximum(x, 0)`` agree, and so do ``hardtanh``
            and ``clamp(x, -1, 1)``. ``None`` keeps PyTorch's choices.
        ties: tie rule for every selection (``max``/``min`` reductions, max-pools, ``topk``, ``sort``,
            ``median``, ``kthvalue``): ``"first"``, ``"last"``, ``"split"`` or ``"random"``.
        seed: seed of the generator behind ``"random"`` ties (reset each time the policy is entered).
        **per_op: one op's choice, overriding ``default``/``ties``: ``relu=1.0``, ``max_pool="split"``...
            Names are those of :func:`kinkgrad.registry` (``kinkgrad atlas`` lists them); ``max_pool``
            names all max-pools, adaptive ones included.

    Example:
        >>> import torch
        >>> x = torch.zeros(3, requires_grad=True)
        >>> with kink_policy(default=0.5):
        ...     y = torch.relu(x) + torch.clamp(x, min=0) + torch.maximum(x, torch.zeros(3))
        >>> y.sum().backward()
        >>> x.grad  # PyTorch alone gives 0 + 1 + 0.5
        tensor([1.5000, 1.5000, 1.5000])
    """

    def __init__(
        self, default: float | None = None, *, ties: str | None = None, seed: int = 0, **per_op: Any
    ) -> None:
        from kinkgrad._registry import GROUPS, OPS

        self.default = None if default is None else check_lambda(default, "default")
        self.ties = None if ties is None else check_tie_rule(ties, "ties")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        choices: dict[str, Any] = {}
        # groups first, so that a single op's own keyword overrides its group's
        for name, value in sorted(per_op.items(), key=lambda item: item[0] in OPS):
            if name not in OPS and name not in GROUPS:
                valid = sorted(set(OPS) | set(GROUPS))
                raise ValueError(f"unknown kink op {name!r} for kink_policy; valid names: {', '.join(valid)}")
            for member in GROUPS.get(name, (name,)):  # None: PyTorch's own choice for this op
                choices[member] = None if value is None else _check_choice(OPS[member].kind, value, name)
        self.choices: Mapping[str, Any] = choices
        self._generator: torch.Generator | None = None

    strict: bool = False  #: certification: nonsmooth ops without a kink rule raise

    def call(self, func: Any, args: Any, kwargs: Any) -> Any:
        """How a strict policy runs an unrouted function (certification overrides it for comparisons)."""
        return func(*args, **kwargs)

    def intercept(self, func: Any, args: Any, kwargs: Any) -> Any:
        """A strict policy's first look at every call: its result, or ``NotImplemented`` to route the
        call as usual (certification's fast pass takes ``relu`` and ``max_pool2d`` here, in the same
        torch-function mode, rather than in a second mode that every call would cross)."""
        return NotImplemented

    @staticmethod
    def passes(func: Any) -> bool:
        """Whether a strict policy of this class runs ``func`` (a smooth function without a route) as it
        is, unseen by :meth:`intercept` and :meth:`call`: the torch-function mode then runs it from C."""
        return True

    def choice(self, *names: str) -> Any:
        """The ``at_kink`` this policy gives the first of ``names`` it sets explicitly, else the default
        for the kind of ``names[0]`` (``None``: PyTorch's own)."""
        for name in names:
            if name in self.choices:
                return self.choices[name]
        _load_registry()
        return self.ties if _KINDS[names[0]] == "ties" else self.default

    def __repr__(self) -> str:
        parts = [f"default={self.default!r}"] if self.default is not None else []
        if self.ties is not None:
            parts.append(f"ties={self.ties!r}")
        parts += [f"{k}={v!r}" for k, v in sorted(self.choices.items())]
        return f"kink_policy({', '.join(parts)})"

    def __enter__(self) -> kink_policy:
        _teach_dynamo()
        self._generator = torch.Generator().manual_seed(self.seed)
        _stack().append(self)
        _acquire_mode()
        _set_policy(self)
        return self

    def __exit__(self, *exc: object) -> None:
        stack = _stack()
        stack.pop()
        _set_policy(stack[-1] if stack else None)
        _release_mode(*exc)


def _check_choice(kind: str, value: Any, name: str) -> Any:
    if kind == "ties":
        return check_tie_rule(value, name)
    return check_lambda(value, name)


_state = threading.local()


@functools.cache
def _teach_dynamo() -> None:
    """Make ``torch.compile`` dispatch every routed entry point through the policy's mode.

    Dynamo only consults torch-function modes for functions in its cached set of overridable
    functions, and PyTorch's list misses some (``F.hardsigmoid``, ``F.hardswish``, in-place
    variants such as ``torch.relu_``): under ``torch.compile`` a policy would silently skip them.
    The registry's compiled tests fail if this stops working.
    """
    from kinkgrad._registry import ROUTES

    with contextlib.suppress(ImportError, AttributeError):
        from torch._dynamo.variables import torch as dynamo_torch

        dynamo_torch.get_overridable_functions().update(ROUTES)
    # Dynamo traces the mode's Python method in place of its C one (registered whenever the extension is
    # built, whether or not this process uses it: the tests switch its use on and off)
    with contextlib.suppress(ImportError, AttributeError):
        from kinkgrad._dispatch import call

        def traced(mode: _PolicyMode, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            return _PolicyMode.__torch_function__(mode, func, types, args, kwargs)

        torch.compiler.substitute_in_graph(call, skip_signature_check=True)(traced)


def _set_policy(policy: kink_policy | None) -> None:
    """Make ``policy`` this thread's innermost (its mode exists: the policy holds it)."""
    _state.policy = policy
    _state.mode.plain = _STRICT_PLAIN if policy is not None and policy.strict else None


def _stack() -> list[kink_policy]:
    if not hasattr(_state, "stack"):
        _state.stack = []
        _state.mode = None
        _state.policy = None  # the innermost policy (the stack's last), read on every routed call
        _state.users = 0
    stack: list[kink_policy] = _state.stack
    return stack


def _acquire_mode() -> _PolicyMode:
    """Enter this thread's routing mode (shared by policies and observers), counting its users."""
    _stack()
    _load_registry()
    if _state.users == 0:
        _state.mode = _PolicyMode()
        _state.mode.__enter__()
    _state.users += 1
    mode: _PolicyMode = _state.mode
    return mode


def _release_mode(*exc: object) -> None:
    _state.users -= 1
    if _state.users == 0:
        mode, _state.mode = _state.mode, None
        mode.__exit__(*exc)


@contextlib.contextmanager
def routing() -> Iterator[None]:
    """Route registered PyTorch entry points to kinkgrad's ops for the duration (used by observers)."""
    _teach_dynamo()
    _acquire_mode()
    try:
        yield
    finally:
        _release_mode(None, None, None)


def active_policy() -> kink_policy | None:
    """The innermost active policy of this thread, if any."""
    stack = _stack()
    return stack[-1] if stack else None


def from_policy(name: str, at_kink: Any) -> Any:
    """An op's ``at_kink``: the explicit one, else the active policy's choice for op ``name``."""
    if at_kink is not None or torch.compiler.is_compiling():
        return at_kink  # (under torch.compile the policy's mode routes the PyTorch call instead)
    policy = active_policy()
    return None if policy is None else policy.choice(name)


def active_generator() -> torch.Generator | None:
    """The generator of the innermost policy (for ``"random"`` ties), or ``None`` (global RNG)."""
    policy = active_policy()
    return None if policy is None else policy._generator


_STRICT_PLAIN: dict[int, Any] = {}
"""The functions strict policies run as they are, by ``id`` (each kept alive here, so that its ``id``
is not reused): filled as their mode meets them."""


class _PolicyMode(TorchFunctionMode):
    """The thread's routing mode. Where kinkgrad's compiled dispatch is built, PyTorch calls
    :func:`_dispatch.call` rather than :meth:`__torch_function__`: it runs every function without a
    route as it is (``plain`` is ``None``), or under a strict policy those of ``plain`` and attribute
    accessors, and hands every other call to :meth:`__torch_function__`."""

    plain: dict[int, Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        if _dispatch is not None:
            self.__torch_function__ = MethodType(_dispatch.call, self)  # type: ignore[method-assign]

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        # (the active policy is read from the thread's state, not from this mode: under torch.compile,
        # Dynamo guards what it reads, and through the mode stack each guard costs a Python call)
        route = _ROUTES.get(id(func))
        policy: kink_policy | None = _state.policy
        if route is None and (policy is None or not policy.strict):
            return func(*args, **kwargs) if kwargs else func(*args)  # every other call: as fast as can be
        if policy is not None and policy.strict:
            taken = policy.intercept(func, args, kwargs or {})
            if taken is not NotImplemented:
                return taken
        if route is None:  # (a strict policy's: certification checks and may re-run every call)
            if _smooth_or_refuse(func, args, kwargs or {}) and policy.passes(func):  # type: ignore[union-attr]
                if len(_STRICT_PLAIN) > 4096:  # (bounded, should callables be made on the fly)
                    _STRICT_PLAIN.clear()
                _STRICT_PLAIN[id(func)] = func
            return policy.call(func, args, kwargs or {})  # type: ignore[union-attr]
        kwargs = kwargs or {}
        if "out" in kwargs or (not torch.compiler.is_compiling() and _routed_already()):
            return func(*args, **kwargs)
        choice = None if policy is None else policy.choice(*route.names(args, kwargs))
        if choice is None and active_observer() is None:
            return func(*args, **kwargs)
        _require_strided(func, args, kwargs)
        return route.call(choice, args, kwargs)


if _dispatch is not None:
    # (for an attribute, x.grad or x.shape, PyTorch passes a method-wrapper bound afresh on every call;
    # none is a kink, so a strict policy's mode runs every one as it is)
    _dispatch.configure(_ROUTES, _PolicyMode.__torch_function__, MethodWrapperType)


def _require_strided(func: Any, args: Any, kwargs: Any) -> None:
    """kinkgrad's kink rules read dense tensors: a sparse (or other non-strided) input is a clear error,
    not a derivative silently left to PyTorch."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor) and a.layout != torch.strided:
            name = getattr(func, "__name__", None) or str(func)
            raise NotImplementedError(
                f"{name} got a tensor of layout {a.layout} inside a kink policy or monitor; kinkgrad's kink "
                "rules support dense (torch.strided) tensors only: call .to_dense() first, or run this op "
                "outside the policy"
            )


def _routed_already() -> bool:
    """Is this call one that kinkgrad has routed already? Then it must run as it is. Two such calls:
    - PyTorch's own op inside a kinkgrad op (called directly, while a mode is active): the kinkgrad op
      around it applies the choice and reports;
    - an op of a graph that ``torch.compile`` traced through this mode (the mode's routes are in the
      graph), run by a backend that calls the graph's ``torch`` functions from Python
      (``backend="eager"``): PyTorch runs that graph with the mode still active
      (pytorch/pytorch#196056), and each kink would get its rule twice.
    """
    frame: FrameType | None = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return False
        if id(frame.f_globals) in _OPS_NAMESPACES:
            return True
        if frame.f_code.co_filename.startswith("<eval_with_key>"):  # an FX graph's generated code
            graph = frame.f_locals.get("self")
            return isinstance(graph, torch.fx.GraphModule) and "dynamo_compile_id" in graph.meta
        frame = frame.f_back
    return False


_SUSPECT: dict[Any, bool] = {}
"""Per function: is it nonsmooth without a kink rule (a registry entry) or a custom extension op?"""


def _suspect(func: Any) -> bool:
    from kinkgrad._registry import UNSUPPORTED

    if isinstance(func, torch._ops.OpOverload | torch._ops.OpOverloadPacket):
        namespace = getattr(func, "_qualified_op_name", "aten::").split("::")[0]
        if namespace not in ("aten", "prim", "prims", "profiler", "c10d", "_c10d_functional"):
            return True
    return func in UNSUPPORTED


def _smooth_or_refuse(func: Any, args: Any, kwargs: Any) -> bool:
    """Under certification, a nonsmooth op without a kink rule on a differentiated tensor raises.
    Whether ``func`` is smooth (else it is nonsmooth, on tensors not differentiated)."""
    try:
        suspect = _SUSPECT.get(func)
        if suspect is None:
            if len(_SUSPECT) > 4096:  # (bounded, should callables be made on the fly)
                _SUSPECT.clear()
            suspect = _SUSPECT[func] = _suspect(func)
    except TypeError:  # (an unhashable callable)
        suspect = _suspect(func)
    if not suspect:
        return True
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    if any(t.requires_grad or torch.autograd.forward_ad.unpack_dual(t).tangent is not None for t in tensors):
        from kinkgrad._certified import UnsupportedKinkError

        name = getattr(func, "__name__", None) or str(func)
        raise UnsupportedKinkError(
            f"{name} is nonsmooth and has no kink rule in kinkgrad, so the gradient through it cannot be "
            "certified; detach its input if it should not be differentiated"
        )
    return False
