"""The two kinds of choice at a kink, their validation, and how a tie rule becomes weights.

* An **elementwise kink** is chosen by one number ``λ`` (``at_kink``): the derivative there is
  ``(1 - λ) · (left one-sided derivative) + λ · (right one-sided derivative)``. ``λ ∈ [0, 1]`` stays in
  the Clarke subdifferential; other values are allowed for research and warn once. ``λ`` may also be a
  tensor broadcastable to the input (one choice per element).
* A **tie** among several candidates (``max`` along a dim, max-pool windows, ``topk``...) is chosen by a
  rule: ``"first"`` (lowest index), ``"last"``, ``"split"`` (even weights) or ``"random"`` (one tied
  candidate drawn with the policy's seeded generator).
"""

from __future__ import annotations

import abc
import math
import numbers
import warnings
from typing import Literal, TypeAlias

import torch
from torch import Tensor

TieRule: TypeAlias = Literal["first", "last", "split", "random"]
TIE_RULES: tuple[str, ...] = ("first", "last", "split", "random")
Lambda: TypeAlias = "float | Tensor"


class Chooser(abc.ABC):
    """A choice made per element from the op's inputs (certified gradients decide by tangents).

    Passed as ``at_kink`` in place of a number or a tie rule; ops call it where a kink or tie is hit
    (and, under a transform, on every call), always in the same order for the same program.
    """

    @abc.abstractmethod
    def lambdas(self, op: str, argument: Tensor, mask: Tensor) -> Tensor | None:
        """``λ`` per element of ``mask`` (1: the side where the kink's ``argument`` increases), or
        ``None`` to keep PyTorch's derivative."""

    @abc.abstractmethod
    def weights(self, op: str, tied: Tensor, candidates: Tensor, rank: Tensor | None) -> Tensor | None:
        """Weights over the last dim of ``tied`` for the winner along the last dim of ``candidates``: the
        largest one, or (``rank`` given) the ``rank``-th smallest among the tied; ``None``: PyTorch's."""

    @abc.abstractmethod
    def order(self, op: str, input: Tensor, dim: int, descending: bool) -> Tensor | None:
        """The permutation that sorts ``input`` along ``dim`` with ties broken by the chooser."""

    @abc.abstractmethod
    def direction(self, op: str, input: Tensor) -> Tensor | None:
        """The direction from which a point kink (a norm at 0) is approached, shaped like ``input``."""


class KinkWarning(UserWarning):
    """A kink choice outside the Clarke subdifferential was requested (allowed, but warned once)."""


def check_lambda(at_kink: object, arg: str = "at_kink") -> float | Tensor:
    """Validate an elementwise kink choice ``λ``; return it as a float or floating tensor."""
    if type(at_kink) is float and 0.0 <= at_kink <= 1.0:
        return at_kink  # the common case, checked on every op call: no slower checks needed
    if isinstance(at_kink, Chooser):
        return at_kink  # type: ignore[return-value]
    if isinstance(at_kink, Tensor):
        if not at_kink.is_floating_point():
            raise TypeError(f"{arg} must be a float or a floating-point tensor, got a {at_kink.dtype} tensor")
        if not torch.compiler.is_compiling() and torch._C._functorch.peek_interpreter_stack() is None:
            if bool(torch.isnan(at_kink).any()):
                raise ValueError(f"{arg} must not contain NaN")
            if bool(((at_kink < 0) | (at_kink > 1)).any()):
                _warn_outside(arg, "a tensor with values outside [0, 1]")
        return at_kink
    if isinstance(at_kink, bool) or not isinstance(at_kink, numbers.Real):
        raise TypeError(
            f"{arg} must be a number λ (derivative = (1-λ)·left + λ·right), got {at_kink!r}; "
            f"tie rules {TIE_RULES} apply to selections such as max_pool, not to elementwise kinks"
        )
    value = float(at_kink)
    if not -math.inf < value < math.inf:  # (comparisons, not math.isfinite: torch.compile traces them)
        raise ValueError(f"{arg} must be finite, got {at_kink!r}")
    if not 0.0 <= value <= 1.0:
        _warn_outside(arg, repr(value))
    return value


_WARNED: set[str] = set()


def _warn_outside(arg: str, what: str) -> None:
    if what in _WARNED:  # once per value: ops re-check the choice their policy already checked
        return
    _WARNED.add(what)
    warnings.warn(
        f"{arg}={what} lies outside [0, 1]: the derivative at the kink leaves the Clarke subdifferential",
        KinkWarning,
        stacklevel=4,
    )


def check_tie_rule(rule: object, arg: str = "at_kink") -> TieRule:
    """Validate a tie rule."""
    if isinstance(rule, Chooser):
        return rule  # type: ignore[return-value]
    if not isinstance(rule, str) or rule not in TIE_RULES:
        raise ValueError(f"{arg} must be one of {', '.join(map(repr, TIE_RULES))} for ties, got {rule!r}")
    return rule  # type: ignore[return-value]


def tie_weights(
    tied: Tensor, rule: TieRule, dtype: torch.dtype, generator: torch.Generator | None = None
) -> Tensor:
    """Weights over the last dimension of the boolean ``tied`` (candidates in index order).

    Each row with at least one ``True`` gets nonnegative weights summing to one, on tied candidates
    only; rows with no candidate get zeros.

    Example:
        >>> tie_weights(torch.tensor([[True, False, True]]), "split", torch.float32)
        tensor([[0.5000, 0.0000, 0.5000]])
    """
    if rule == "split":
        w = tied.to(dtype)
        return w / w.sum(-1, keepdim=True).clamp_min(1.0)
    if rule == "first":
        chosen = tied & (tied.cumsum(-1) == 1)
    elif rule == "last":
        chosen = tied & (tied.flip(-1).cumsum(-1).flip(-1) == 1)
    else:
        noise = torch.rand(tied.shape, generator=generator, device=tied.device)
        score = torch.where(tied, noise + 1.0, torch.zeros((), device=tied.device))
        chosen = torch.nn.functional.one_hot(score.argmax(-1), tied.shape[-1]).bool() & tied
    return chosen.to(dtype)
