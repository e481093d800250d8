"""The one mechanism behind every kinkgrad module: a PyTorch module whose forward calls the kinkgrad op.

A kinkgrad module subclasses the matching ``torch.nn`` class, so its constructor arguments, parameters,
buffers, ``state_dict`` keys and ``extra_repr`` are PyTorch's own. It adds one keyword, ``at_kink``,
validated at construction, and its forward is ``op(*inputs, <the module's configuration>,
at_kink=self.at_kink)``: the configuration is read from the module's attributes at each call (they are
named like the op's keywords), so ``m.inplace = True`` or ``m.eval()`` act as on the PyTorch module.

A concrete class is one line of table in its class statement::

    class ReLU(KinkModule, torch.nn.ReLU, op="relu", config=("inplace",)): ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn

from kinkgrad._rules import check_lambda, check_tie_rule

__all__ = ["KinkModule"]

_AT_KINK = "_at_kink"
_CLASSES: dict[type[nn.Module], type[KinkModule]] = {}
"""``torch.nn`` class → the kinkgrad class that extends it (filled as the classes are defined)."""


class KinkModule(nn.Module):
    """Abstract base of the kinkgrad modules: a ``torch.nn`` module with a chosen derivative at its kinks.

    A concrete kinkgrad module subclasses ``KinkModule`` and one ``torch.nn`` class, naming the
    :mod:`kinkgrad.ops` op it calls and the module attributes passed to it. Its constructor takes the
    ``torch.nn`` class's arguments plus the keyword ``at_kink``; its forward returns PyTorch's values
    bit for bit and, at a kink, the derivative chosen by ``at_kink``:

    * elementwise kinks and binary ties (activations, losses): a number ``λ``, giving
      ``(1 - λ)·(left derivative) + λ·(right derivative)``;
    * ties among several candidates (max-pools): ``"first"``, ``"last"``, ``"split"`` or ``"random"``
      (``"random"`` draws from the active policy's seeded generator, else from the global RNG);
    * ``None``: PyTorch's own derivative (or the active :class:`kinkgrad.kink_policy`'s).

    ``isinstance(m, kinkgrad.nn.KinkModule)`` tells kinkgrad modules from PyTorch's.
    """

    op_name: ClassVar[str]
    """Name of the registered kink op (a key of ``kinkgrad``'s registry and of ``kink_policy``)."""
    kind: ClassVar[str]
    """``"lambda"`` (``at_kink`` is a number) or ``"ties"`` (``at_kink`` is a tie rule)."""
    torch_class: ClassVar[type[nn.Module]]
    """The ``torch.nn`` class this class extends (and that :func:`kinkgrad.patch` replaces)."""
    _op: ClassVar[Callable[..., Any]]
    _config: ClassVar[tuple[str, ...]]
    _at_kink: Any

    def __init_subclass__(cls, *, op: str, config: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from kinkgrad._registry import OPS

        spec = OPS[op]
        torch_class = next(
            b for b in cls.__bases__ if issubclass(b, nn.Module) and not issubclass(b, KinkModule)
        )
        cls.op_name, cls.kind, cls.torch_class = op, spec.kind, torch_class
        cls._op, cls._config = staticmethod(spec.op), config
        setattr(cls, "__signature__", _signature(torch_class, spec.kind))  # noqa: B010
        _CLASSES[torch_class] = cls

    def __init__(self, *args: Any, at_kink: float | Tensor | str | None = None, **kwargs: Any) -> None:
        at_kink = self._check(at_kink)  # before building anything: a bad choice fails fast
        super().__init__(*args, **kwargs)
        self.__dict__[_AT_KINK] = at_kink

    @classmethod
    def _check(cls, at_kink: object) -> Any:
        if at_kink is None:
            return None
        if cls.kind == "ties":
            return check_tie_rule(at_kink, "at_kink")
        return check_lambda(at_kink, "at_kink")

    @classmethod
    def _sharing(cls, module: nn.Module, at_kink: Any) -> KinkModule:
        """A new instance that shares ``module``'s state (parameters, buffers, hooks, submodules),
        with ``at_kink`` (already validated) as its own choice."""
        new = cls.__new__(cls)
        new.__dict__.update(module.__dict__)
        new.__dict__[_AT_KINK] = at_kink
        if new.__dict__.get("_compiled_call_impl") is not None:  # ``module.compile()`` ran the old forward
            new.__dict__["_compiled_call_impl"] = None
        return new

    def _write_back(self, module: nn.Module) -> None:
        """Copy this instance's state (attributes such as ``training``) back into ``module``, the
        module it was made from by :meth:`_sharing`; ``module`` keeps its own ``at_kink``."""
        own = (_AT_KINK, "_compiled_call_impl")
        module.__dict__.update({k: v for k, v in self.__dict__.items() if k not in own})

    @property
    def at_kink(self) -> Any:
        """The choice at the kink: ``λ``, a tie rule, or ``None`` (PyTorch's or the active policy's)."""
        return self._at_kink

    @at_kink.setter
    def at_kink(self, value: Any) -> None:
        self.__dict__[_AT_KINK] = self._check(value)

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        config = {name: getattr(self, name) for name in self._config}
        return self._op(*inputs, **kwargs, **config, at_kink=self._at_kink)

    def extra_repr(self) -> str:
        base = super().extra_repr()
        choice = f"at_kink={self.at_kink!r}"
        return f"{base}, {choice}" if base else choice


def _signature(torch_class: type[nn.Module], kind: str) -> inspect.Signature:
    """``torch_class``'s constructor signature plus the keyword-only ``at_kink`` (for ``help``/IDEs)."""
    params = list(inspect.signature(torch_class).parameters.values())
    annotation = "str | None" if kind == "ties" else "float | Tensor | None"
    keyword = inspect.Parameter.KEYWORD_ONLY
    at_kink = inspect.Parameter("at_kink", keyword, default=None, annotation=annotation)
    last = len(params) - int(bool(params) and params[-1].kind is inspect.Parameter.VAR_KEYWORD)
    return inspect.Signature([*params[:last], at_kink, *params[last:]], return_annotation=None)
