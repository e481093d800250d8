"""Binary ties: ``maximum``, ``minimum``, ``fmax``, ``fmin``.

At a tie ``a == b`` the derivative is split by ``λ`` the way ``relu`` splits its kink, so that
``maximum(x, 0)`` *is* ``relu(x)`` and ``minimum(x, 6)`` is the top of ``relu6``:

* ``maximum(a, b)``: ``∂/∂a = λ``, ``∂/∂b = 1 - λ`` (``max(a, b) = b + relu(a - b)``);
* ``minimum(a, b)``: ``∂/∂a = 1 - λ``, ``∂/∂b = λ`` (``min(a, b) = a - relu(a - b)``).

For ``λ ∈ [0, 1]`` both lie in the Clarke set ``{(θ, 1 - θ) : θ ∈ [0, 1]}``. PyTorch returns
``(1/2, 1/2)``. Non-finite ties (``inf == inf``) keep PyTorch's derivative; NaN never ties.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from kinkgrad._autodiff import Trace, at_kinks, needs_rule, trace_mode, zero_weight
from kinkgrad._observe import active_observer
from kinkgrad._policy import from_policy
from kinkgrad._rules import Chooser, check_lambda

__all__ = ["fmax", "fmin", "maximum", "minimum"]


def _tie(native: Any, input: Tensor, other: Tensor, at_kink: Any, upper: bool) -> Tensor:
    value = native(input, other)
    at_kink = from_policy(native.__name__, at_kink)
    watch = active_observer()
    if (at_kink is None and watch is None) or not value.is_floating_point():
        return value
    lam = None if at_kink is None else check_lambda(at_kink)
    mode = trace_mode(input, other)
    if mode is Trace.NONE and watch is None:
        return value
    tie = (input == other) & torch.isfinite(input)
    out = value
    if isinstance(lam, Chooser) and needs_rule(mode, tie):
        lam = lam.lambdas(native.__name__, input - other, tie)
    if lam is not None and needs_rule(mode, tie):
        w_input, w_other = (lam, 1.0 - lam) if upper else (1.0 - lam, lam)
        # (a side of zero weight is left out, not multiplied by 0: an infinite cotangent would make NaN)
        terms = [w * (t - t.detach()) for w, t in ((w_input, input), (w_other, other)) if not zero_weight(w)]
        tangent = sum(terms[1:], terms[0])
        out = at_kinks(value, tie, tangent.to(value.dtype))
    if watch is not None:
        watch.report(native.__name__, out, tie, input.detach() - other.detach())
    return out


def maximum(input: Tensor, other: Tensor, *, at_kink: Any = None) -> Tensor:
    """Elementwise ``max(input, other)`` (NaN propagates).

    At a tie: ``λ`` to ``input`` and ``1 - λ`` to ``other`` (PyTorch: ``1/2`` each).

    Example:
        >>> x = torch.zeros(1, requires_grad=True)
        >>> maximum(x, torch.zeros(1), at_kink=0.0).backward(torch.tensor([2.0]))
        >>> x.grad  # like relu'(0) = 0
        tensor([0.])
    """
    return _tie(torch.maximum, input, other, at_kink, upper=True)


def minimum(input: Tensor, other: Tensor, *, at_kink: Any = None) -> Tensor:
    """Elementwise ``min(input, other)`` (NaN propagates).

    At a tie: ``1 - λ`` to ``input`` and ``λ`` to ``other`` (PyTorch: ``1/2`` each).
    """
    return _tie(torch.minimum, input, other, at_kink, upper=False)


def fmax(input: Tensor, other: Tensor, *, at_kink: Any = None) -> Tensor:
    """Elementwise ``max`` that ignores NaN; ties as :func:`maximum`."""
    return _tie(torch.fmax, input, other, at_kink, upper=True)


def fmin(input: Tensor, other: Tensor, *, at_kink: Any = None) -> Tensor:
    """Elementwise ``min`` that ignores NaN; ties as :func:`minimum`."""
    return _tie(torch.fmin, input, other, at_kink, upper=False)
