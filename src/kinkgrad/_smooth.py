r"""``kinkgrad.smooth``: replace the kinks of unmodified PyTorch code by smooth surrogates.

The modeller's alternative to choosing subgradients: while smoothing is active, a
``TorchFunctionMode`` sends every registered entry point of a smoothable kink op (``torch.relu``,
``F.relu``, ``nn.ReLU``, ``x.clamp()``, ``torch.maximum``, ``torch.max``, ``F.l1_loss``...; the same
table :class:`kinkgrad.kink_policy` uses) to its surrogate in :mod:`kinkgrad.smoothing`, with a stated
uniform error bound (:func:`kinkgrad.smoothing.error_bound`). Everything else passes through unchanged,
and kink ops with no surrogate (max-pools, sorts, norms...) are counted in
:attr:`Smoothing.unsmoothed`. Outside the block PyTorch is untouched.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar, overload

from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from kinkgrad import smoothing as S
from kinkgrad.smoothing._surrogates import _check_abs_kind, _check_mu

__all__ = ["SmoothHandle", "Smoothing", "smooth"]

P = ParamSpec("P")
R = TypeVar("R")
Mu = float | S.Continuation | Callable[[], float]


class Smoothing(contextlib.ContextDecorator):
    r"""Smooth surrogates for every smoothable kink op of the code run inside the block.

    Made by :func:`smooth`; see there. Usable as a context manager (re-entrant, nestable: the innermost
    smoothing handles an op) or as a decorator.

    Attributes:
        mu: The temperature: a number, a :class:`~kinkgrad.smoothing.Continuation` (its current ``mu`` is
            read at every op call) or a function of no arguments returning it. May be reassigned.
        abs: ``"sqrt"`` or ``"huber"``, the surrogate of ``abs`` (and of ``l1_loss``).
        ops: The op names smoothed.
        unsmoothed: How many calls of each registered kink op ran unsmoothed inside the block (ops with
            no surrogate, ops left out of ``ops``, integer inputs, ``rrelu`` in training mode,
            a discontinuous ``threshold``), accumulated over every use.

    Example:
        >>> import torch
        >>> with smooth(mu=0.5) as smoothing:
        ...     y = torch.nn.functional.max_pool1d(torch.zeros(1, 1, 2), 2) + torch.zeros(1).abs()
        >>> y.flatten(), dict(smoothing.unsmoothed)
        (tensor([0.5000]), {'max_pool1d': 1})
    """

    def __init__(self, mu: Mu, *, abs: str = "sqrt", ops: Iterable[str] | None = None) -> None:
        self.mu = mu
        self.current_mu()  # validate now
        self.abs = _check_abs_kind(abs)
        self.ops = frozenset(_check_ops(ops))
        self.unsmoothed: Counter[str] = Counter()
        self._local = threading.local()

    def current_mu(self) -> float:
        """The temperature now (a schedule's current value)."""
        mu = self.mu
        if isinstance(mu, S.Continuation):
            value: Any = mu.mu
        elif callable(mu):
            value = mu()
        else:
            value = mu
        return _check_mu(value)

    def __enter__(self) -> Smoothing:
        modes = self._modes()
        mode = _SmoothMode(self)
        mode.__enter__()
        modes.append(mode)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._modes().pop().__exit__(*exc)

    def _modes(self) -> list[_SmoothMode]:
        if not hasattr(self._local, "modes"):
            self._local.modes = []
        modes: list[_SmoothMode] = self._local.modes
        return modes

    def __repr__(self) -> str:
        return f"Smoothing(mu={self.mu!r}, abs={self.abs!r}, ops={len(self.ops)} ops)"


def _check_ops(ops: Iterable[str] | None) -> tuple[str, ...]:
    if ops is None:
        return S.SMOOTHED_OPS
    if isinstance(ops, str):
        ops = (ops,)
    names = tuple(ops)
    for name in names:
        if name not in S.SMOOTHED_OPS:
            raise ValueError(
                f"ops: no smooth surrogate for {name!r}; valid names: {', '.join(S.SMOOTHED_OPS)}"
            )
    return names


@functools.cache
def _signature(op: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(op)


class _SmoothMode(TorchFunctionMode):
    def __init__(self, owner: Smoothing) -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        from kinkgrad._registry import ROUTES

        kwargs = kwargs or {}
        route = ROUTES.get(func)
        if route is None or "out" in kwargs:
            return func(*args, **kwargs)
        owner = self.owner
        names = route.names(args, kwargs)
        mu = owner.current_mu()
        smoothed = None
        if mu > 0.0 and any(name in owner.ops for name in names):
            a, kw = route.adapt(args, kwargs) if route.adapt is not None else (args, kwargs)
            bound = _signature(route.op).bind(*a, **kw)
            bound.apply_defaults()
            b = bound.arguments
            b.pop("at_kink", None)
            first = next(iter(b.values()))
            if isinstance(first, Tensor) and first.is_floating_point():
                inplace = route.inplace or bool(b.get("inplace", False))
                if inplace:
                    b[next(iter(b))] = first.clone()
                smoothed = _surrogate(names[0], func, args, kwargs, b, mu, owner.abs)
                if smoothed is not None and inplace:
                    return first.copy_(smoothed)
        if smoothed is None:
            owner.unsmoothed[names[0]] += 1
            return func(*args, **kwargs)
        return smoothed


def _surrogate(
    name: str, func: Any, args: Any, kwargs: Any, b: dict[str, Any], mu: float, abs_kind: str
) -> Any:
    """The smoothed result of one call (``b``: the call's arguments bound to kinkgrad's op), or ``None``."""
    x: Tensor = b["input"]
    if name == "relu":
        return S.relu(x, mu)
    if name == "leaky_relu":
        return S.leaky_relu(x, b["negative_slope"], mu)
    if name == "rrelu":
        return None if b["training"] else S.leaky_relu(x, (b["lower"] + b["upper"]) / 2, mu)
    if name == "relu6" and "min_val" not in b:
        return S.relu6(x, mu=mu)
    if name in ("relu6", "hardtanh"):
        return S.hardtanh(x, b["min_val"], b["max_val"], mu=mu)
    if name in ("clamp", "clamp_min", "clamp_max"):
        return S.clamp(x, b.get("min"), b.get("max"), mu=mu)
    if name == "threshold":
        return S.clamp(x, b["threshold"], None, mu=mu) if b["threshold"] == b["value"] else None
    if name == "abs":
        return S.abs(x, mu, abs_kind)  # type: ignore[arg-type]
    if name == "hardsigmoid":
        return S.hardsigmoid(x, mu=mu)
    if name == "hardswish":
        return S.hardswish(x, mu=mu)
    if name == "softshrink":
        return S.softshrink(x, b["lambd"], mu=mu)
    if name in ("maximum", "minimum", "fmax", "fmin"):
        other = b["other"] if "other" in b else b["dim"]  # torch.max(a, b) binds b to ``dim``
        binary = S.maximum if name in ("maximum", "fmax") else S.minimum
        return binary(x, other, mu)
    if name in ("max", "min"):
        reduce = S.max if name == "max" else S.min
        if b["dim"] is None:
            return reduce(x, None, mu=mu)
        native = func(*args, **kwargs)  # (values, indices): keep PyTorch's indices and return type
        return type(native)((reduce(x, b["dim"], b["keepdim"], mu=mu), native[1]))
    if name in ("amax", "amin"):
        return (S.max if name == "amax" else S.min)(x, b["dim"], b["keepdim"], mu=mu)
    if name == "l1_loss":
        error = S.abs(x - b["target"], mu, abs_kind)  # type: ignore[arg-type]
        if b["weight"] is not None:
            error = error * b["weight"]
        reduction = b["reduction"]
        return error.mean() if reduction == "mean" else error.sum() if reduction == "sum" else error
    return None


class SmoothHandle:
    """Smoothing attached to one module's forward (made by ``smooth(module, mu=...)``).

    Active from creation until :meth:`remove`; also a context manager that removes it on exit.

    Attributes:
        smoothing: The :class:`Smoothing` entered around every forward of the module.
        module: The module.

    Example:
        >>> import torch
        >>> model = torch.nn.ReLU()
        >>> with smooth(model, mu=1.0) as handle:
        ...     print(model(torch.zeros(1)), handle)
        tensor([0.6931]) SmoothHandle(ReLU, mu=1.0, active)
        >>> model(torch.zeros(1))
        tensor([0.])
    """

    def __init__(self, module: nn.Module, smoothing: Smoothing) -> None:
        self.module = module
        self.smoothing = smoothing

        def enter(module: nn.Module, args: Any) -> None:
            smoothing.__enter__()

        def leave(module: nn.Module, args: Any, output: Any) -> None:
            smoothing.__exit__(None, None, None)

        # always_call: the mode is left even when the forward raises
        self._hooks = [
            module.register_forward_pre_hook(enter),
            module.register_forward_hook(leave, always_call=True),
        ]

    @property
    def mu(self) -> Mu:
        """The temperature (settable)."""
        return self.smoothing.mu

    @mu.setter
    def mu(self, value: Mu) -> None:
        self.smoothing.mu = value
        self.smoothing.current_mu()

    def remove(self) -> None:
        """Stop smoothing the module's forward (a second call does nothing)."""
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook.remove()

    def __enter__(self) -> SmoothHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self._hooks else "removed"
        return f"SmoothHandle({type(self.module).__name__}, mu={self.mu!r}, {state})"


@overload
def smooth(
    model_or_fn: None = None, *, mu: Mu, abs: str = ..., ops: Iterable[str] | None = ...
) -> Smoothing: ...


@overload
def smooth(  # type: ignore[overload-overlap]
    model_or_fn: nn.Module, *, mu: Mu, abs: str = ..., ops: Iterable[str] | None = ...
) -> SmoothHandle: ...


@overload
def smooth(
    model_or_fn: Callable[P, R], *, mu: Mu, abs: str = ..., ops: Iterable[str] | None = ...
) -> Callable[P, R]: ...


def smooth(model_or_fn: Any = None, *, mu: Mu, abs: str = "sqrt", ops: Iterable[str] | None = None) -> Any:
    r"""Replace the kinks of unmodified PyTorch code by smooth surrogates with stated error bounds.

    Inside the block (or the module's forward, or the function), each call of a smoothable kink op is
    replaced by its :math:`C^\infty` (Huber: :math:`C^1`) surrogate of temperature :math:`\mu`, with
    :math:`\ell(\mu) \le s_\mu(x) - f(x) \le u(\mu)` everywhere
    (:func:`kinkgrad.smoothing.error_bound`):

    * ``relu``, ``threshold(x, t, t)``: softplus :math:`r_\mu(x) = \mu \log(1 + e^{x/\mu})`,
      error in :math:`[0, \mu\log 2]`;
    * ``leaky_relu``, ``rrelu`` (eval mode): :math:`\alpha x + (1-\alpha) r_\mu(x)`, error in
      :math:`[0, (1-\alpha)\mu\log 2]`;
    * ``clamp`` (also ``clamp_min``, ``clamp_max``), ``hardtanh``, ``relu6``:
      :math:`a + r_\mu(x-a) - r_\mu(x-b)`, error in :math:`[-\mu\log 2, \mu\log 2]`;
    * ``abs``, ``l1_loss``: :math:`\sqrt{x^2+\mu^2}` (``abs="sqrt"``), error in :math:`[0, \mu]`, or
      Huber (``abs="huber"``), error in :math:`[-\mu/2, 0]`;
    * ``maximum``, ``fmax``, ``max``, ``amax`` over :math:`n` entries: :math:`\mu \log \sum_i e^{x_i/\mu}`,
      error in :math:`[0, \mu\log n]`; ``minimum``, ``fmin``, ``min``, ``amin``: :math:`-\mu \log \sum_i
      e^{-x_i/\mu}`, error in :math:`[-\mu\log n, 0]`;

    plus ``hardsigmoid``, ``hardswish`` and ``softshrink`` through the smooth clamp and softplus. Reductions
    along a ``dim`` keep PyTorch's indices. In-place spellings write the surrogate in place. With
    :math:`\mu = 0` everything is the exact function. Other ops, integer tensors and kink ops without a
    surrogate (max-pools, sorts, norms, ``hardshrink``...) run unchanged; the latter are counted in
    :attr:`Smoothing.unsmoothed`.

    Args:
        model_or_fn: ``None`` (return a context manager), an ``nn.Module`` (smooth every forward of it
            until the handle is removed) or a function (return a smoothed copy of it).
        mu: Temperature :math:`\mu \ge 0`: a number, a :class:`kinkgrad.smoothing.Continuation` (read at
            every op call, so stepping it is enough) or a function of no arguments.
        abs: ``"sqrt"`` (:math:`\sqrt{x^2 + \mu^2}`) or ``"huber"``, for ``abs`` and ``l1_loss``.
        ops: Names of the ops to smooth (default :data:`kinkgrad.smoothing.SMOOTHED_OPS`, all of them).

    Returns:
        A :class:`Smoothing` context manager (also a decorator), a :class:`SmoothHandle`, or the wrapped
        function.

    Raises:
        ValueError: a negative or non-finite ``mu``, an unknown ``abs`` or op name (listing the valid ones).

    Example:
        >>> import torch
        >>> x = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        >>> with smooth(mu=0.1):
        ...     y = torch.relu(x).sum() + x.abs().sum()
        >>> y.backward()
        >>> x.grad  # softplus' slope 1/2 at 0, plus sqrt(x^2 + mu^2)'s slope 0
        tensor([0.5000, 0.5000], dtype=torch.float64)
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
        >>> handle = smooth(model, mu=1e-3)
        >>> handle.remove()

    References:
        Y. Nesterov, "Smooth minimization of non-smooth functions", Math. Program. 103, 2005.
        A. Beck and M. Teboulle, "Smoothing and first order methods", SIAM J. Optim. 22(2), 2012.
        X. Chen, "Smoothing methods for nonsmooth, nonconvex minimization", Math. Program. 134, 2012.
    """
    smoothing = Smoothing(mu, abs=abs, ops=ops)
    if model_or_fn is None:
        return smoothing
    if isinstance(model_or_fn, nn.Module):
        return SmoothHandle(model_or_fn, smoothing)
    if callable(model_or_fn):
        return smoothing(model_or_fn)
    raise TypeError(
        "smooth takes None, an nn.Module or a function as its first argument, got "
        f"{type(model_or_fn).__name__} (pass the temperature as mu=...)"
    )
