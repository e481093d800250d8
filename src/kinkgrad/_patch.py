"""``kinkgrad.patch``: swap a model's kink modules for kinkgrad modules in place, and undo it.

Where :class:`kinkgrad.kink_policy` reroutes PyTorch's functions while a block runs, ``patch`` changes
the model itself: every submodule whose exact type is a ``torch.nn`` class with a kinkgrad twin
(``nn.ReLU``, ``nn.MaxPool2d``, ``nn.L1Loss``...) is replaced, through its parent, by the twin carrying
the chosen ``at_kink``. The replacement shares the original's state, so optimizers, hooks and
``state_dict`` keep working; ``undo()`` puts the original objects back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import Tensor, nn

import kinkgrad.nn  # noqa: F401  (defines every kinkgrad module class)
from kinkgrad._rules import check_lambda, check_tie_rule
from kinkgrad.nn._module import _CLASSES, KinkModule

__all__ = ["PatchHandle", "patch"]


class _Swap(NamedTuple):
    parent: nn.Module
    name: str
    old: nn.Module
    new: KinkModule


@dataclass
class PatchHandle:
    """The record of one :func:`patch`: what was replaced, and how to put it back.

    Usable as a context manager: leaving the ``with`` block calls :meth:`undo`.

    Attributes:
        replaced: paths (as in ``model.named_modules()``) of the replaced modules, in model order. A
            module registered under several paths is listed under each.
    """

    replaced: list[str]
    _swaps: list[_Swap] = field(default_factory=list, repr=False)

    def undo(self) -> None:
        """Put the original module objects back (a second call does nothing).

        State changed while patched (``train()``/``eval()``, attributes, hooks, parameters and
        buffers, which are shared) carries over to the originals. A path whose module was reassigned
        since the patch is left as it is; undo nested patches in reverse order.
        """
        swaps, self._swaps = self._swaps, []
        written: set[int] = set()
        for swap in reversed(swaps):
            if swap.parent._modules.get(swap.name) is not swap.new:
                continue
            setattr(swap.parent, swap.name, swap.old)
            if id(swap.new) not in written:
                written.add(id(swap.new))
                swap.new._write_back(swap.old)

    def __enter__(self) -> PatchHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.undo()


def patch(
    model: nn.Module, default: float | Tensor | None = None, *, ties: str | None = None, **per_op: Any
) -> PatchHandle:
    """Replace, in place, every kink module of ``model`` by its :mod:`kinkgrad.nn` twin with a chosen
    derivative at its kinks.

    Each submodule whose *exact* type is one of ``nn.ReLU``, ``nn.LeakyReLU``, ``nn.PReLU``,
    ``nn.RReLU``, ``nn.ReLU6``, ``nn.Hardtanh``, ``nn.Threshold``, ``nn.Hardsigmoid``,
    ``nn.Hardswish``, ``nn.ELU``, ``nn.SELU``, ``nn.CELU``, ``nn.Hardshrink``, ``nn.Softshrink``,
    ``nn.MaxPool1d/2d/3d``, ``nn.AdaptiveMaxPool1d/2d/3d``, ``nn.L1Loss``, ``nn.HingeEmbeddingLoss``,
    ``nn.MarginRankingLoss``, ``nn.MultiMarginLoss`` (or a kinkgrad module) is replaced through its
    parent's ``setattr``. At an elementwise kink the replacement's derivative is
    ``(1 - λ)·left + λ·right``; at a tie in a max-pool window it follows the tie rule. Forward values are
    PyTorch's bit for bit. The replacement shares the original's parameters, buffers and hooks (the same
    tensors: an optimizer built before patching keeps working) and ``state_dict`` keys are unchanged.
    Subclasses of these ``torch.nn`` classes are left alone (their forward may differ).

    The choice for a module is, first found: its op's keyword (``relu=``, ``relu6=`` for
    ``nn.ReLU6``, ``max_pool2d=``...), its group's (``max_pool=``: every max-pool, adaptive ones
    included), then ``default`` (elementwise kinks) or ``ties`` (max-pools). A module whose choice is
    ``None`` is not replaced (a kinkgrad module keeps its own ``at_kink``).

    Args:
        model: the model to patch in place (its kink modules must be submodules: the root itself
            cannot be swapped).
        default: ``λ`` for every elementwise kink (activations, losses).
        ties: tie rule for every max-pool: ``"first"``, ``"last"``, ``"split"`` or ``"random"``
            (``"random"`` draws from the global RNG, or the active policy's generator).
        **per_op: one op's (or group's) choice; names are those of :class:`kinkgrad.kink_policy`.

    Returns:
        A :class:`PatchHandle` with the replaced paths and ``undo()``; also a context manager that
        undoes the patch on exit.

    Raises:
        ValueError: an unknown op name (the message lists the valid ones), an invalid choice (the
            message names its keyword), or ``model`` itself is a kink module.
        TypeError: a tie rule given for an elementwise kink, or a number for a tie (naming the
            keyword).

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.MaxPool1d(2))
        >>> with patch(model, relu=1.0, ties="split") as handle:
        ...     print(handle.replaced, model[1], type(model[2]).__module__)
        ['1', '2'] ReLU(at_kink=1.0) kinkgrad.nn._pooling
        >>> type(model[1]) is torch.nn.ReLU
        True
    """
    choice = _resolver(default, ties, per_op)
    twins: dict[int, KinkModule] = {}
    swaps: list[_Swap] = []
    replaced: list[str] = []
    for path, module in model.named_modules(remove_duplicate=False):
        cls = _twin_class(type(module))
        if cls is None:
            continue
        at_kink = choice(cls.op_name)
        if at_kink is None:
            continue
        if not path:
            raise ValueError(
                f"patch swaps submodules through their parent, but model itself is a "
                f"{type(module).__name__}; build kinkgrad.nn.{cls.__name__}(..., at_kink=...) instead"
            )
        parent_path, _, name = path.rpartition(".")
        if id(module) not in twins:
            twins[id(module)] = cls._sharing(module, at_kink)
        swaps.append(_Swap(model.get_submodule(parent_path), name, module, twins[id(module)]))
        replaced.append(path)
    for swap in swaps:
        setattr(swap.parent, swap.name, swap.new)
    return PatchHandle(replaced, swaps)


def _twin_class(t: type[nn.Module]) -> type[KinkModule] | None:
    """The kinkgrad class for a module of exact type ``t`` (a kinkgrad class is its own), or ``None``."""
    if t in _CLASSES:
        return _CLASSES[t]
    if issubclass(t, KinkModule) and _CLASSES.get(t.torch_class) is t:
        return t
    return None


def _resolver(default: Any, ties: Any, per_op: dict[str, Any]) -> Callable[[str], Any]:
    """Validate the choices, as :class:`kinkgrad.kink_policy` does; return op name → ``at_kink``."""
    from kinkgrad._registry import GROUPS, OPS

    lam = None if default is None else check_lambda(default, "default")
    rule = None if ties is None else check_tie_rule(ties, "ties")
    choices: dict[str, Any] = {}
    # groups first, so that a single op's own keyword overrides its group's
    for name, value in sorted(per_op.items(), key=lambda item: item[0] in OPS):
        if name not in OPS and name not in GROUPS:
            valid = sorted(set(OPS) | set(GROUPS))
            raise ValueError(f"unknown kink op {name!r} for patch; valid names: {', '.join(valid)}")
        for member in GROUPS.get(name, (name,)):
            if value is None:
                choices[member] = None
            elif OPS[member].kind == "ties":
                choices[member] = check_tie_rule(value, name)
            else:
                choices[member] = check_lambda(value, name)

    def choice(op: str) -> Any:
        if op in choices:
            return choices[op]
        return rule if OPS[op].kind == "ties" else lam

    return choice
