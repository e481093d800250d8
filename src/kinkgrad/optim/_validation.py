"""Argument checks shared by the optimizers; every error names the argument, the value and what is allowed."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from ..prox import Projection, Prox

__all__ = [
    "check_choice",
    "check_floating_params",
    "check_number",
    "check_operator",
    "group_label",
    "resolve_foreach",
]


def group_label(owner: str, index: int) -> str:
    """How errors name a param group: the optimizer alone for the first, with the group index after it."""
    return owner if index == 0 else f"{owner} (param group {index})"


def check_number(
    owner: str,
    name: str,
    value: object,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = True,
) -> float:
    """Return ``value`` as a float if it is a real number in the interval, else raise ``ValueError``."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{low:g}, {high:g}{right}"
        raise ValueError(f"{owner}: {name} must be a finite number in {interval}, got {name}={value!r}")
    return float(value)  # type: ignore[arg-type]


def check_choice(owner: str, name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise list them (and suggest the closest)."""
    if isinstance(value, str) and value in choices:
        return value
    valid = ", ".join(repr(c) for c in choices)
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, choices, n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    raise ValueError(f"{owner}: {name} must be one of {valid}, got {name}={value!r}{hint}")


def check_operator(owner: str, name: str, value: object, *, sets_only: bool = False) -> Prox | None:
    """``None`` or an instance of :class:`~kinkgrad.prox.Prox` (:class:`~kinkgrad.prox.Projection`)."""
    if value is None:
        return None
    kind = Projection if sets_only else Prox
    if not isinstance(value, kind):
        allowed = (
            "None or a kinkgrad.prox.Projection (NonNegative, Box, L2Ball)"
            if sets_only
            else "None or a kinkgrad.prox.Prox (L1, GroupL1, ElasticNet, L0, NonNegative, Box, L2Ball)"
        )
        raise TypeError(f"{owner}: {name} must be {allowed}, got {name}={value!r}")
    return value


def check_floating_params(owner: str, group: dict[str, Any], index: int, operator_key: str) -> None:
    """Every parameter must be a real floating-point tensor; name the operator that needs it, if any."""
    for position, p in enumerate(group["params"]):
        if p.is_floating_point():
            continue
        op = group.get(operator_key)
        needs = f"{operator_key}={op!r} needs" if op is not None else "needs"
        raise ValueError(
            f"{owner}: {needs} real floating-point parameters (float16, bfloat16, float32, float64), "
            f"got a parameter of dtype {p.dtype} (param group {index}, position {position})"
        )


def resolve_foreach(foreach: bool | None, params: Iterable[Tensor]) -> bool:
    """``foreach=None`` follows ``torch.optim``: the ``torch._foreach_*`` path on CUDA only."""
    if foreach is not None:
        return foreach
    return all(p.device.type == "cuda" for p in params) and not torch.jit.is_scripting()
