r"""Step-size rules of the subgradient method.

With :math:`\gamma` the ``lr`` and :math:`k = 0, 1, \dots` the number of steps already taken:

* ``"constant"``: :math:`\eta_k = \gamma` (converges only to a neighbourhood of size :math:`O(\gamma)`),
* ``"diminishing"``: :math:`\eta_k = \gamma / (k + 1)` (square-summable, not summable),
* ``"sqrt"``: :math:`\eta_k = \gamma / \sqrt{k + 1}` (the :math:`O(1/\sqrt{k})` rate for
  :math:`f_{best} - f^*`, up to a log factor),
* ``"polyak"``: :math:`\eta_k = \gamma\,(f(x_k) - f^*) / \|g_k\|^2`, with :math:`0 < \gamma < 2`.

References:
    N. Z. Shor, "Minimization Methods for Non-Differentiable Functions", Springer, 1985.
    B. T. Polyak, "Introduction to Optimization", Optimization Software, 1987, ch. 5.3.
    S. Boyd, L. Xiao and A. Mutapcic, "Subgradient methods", lecture notes, Stanford EE392o, 2003.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

__all__ = ["SCHEDULES", "SCHEDULE_NAMES", "polyak"]

StepSize = Callable[[float, int], float]


def constant(lr: float, k: int) -> float:
    """:math:`\\eta_k = \\gamma`."""
    return lr


def diminishing(lr: float, k: int) -> float:
    """:math:`\\eta_k = \\gamma / (k + 1)`."""
    return lr / (k + 1)


def inverse_sqrt(lr: float, k: int) -> float:
    """:math:`\\eta_k = \\gamma / \\sqrt{k + 1}`."""
    return lr / math.sqrt(k + 1)


SCHEDULES: Mapping[str, StepSize] = {"constant": constant, "diminishing": diminishing, "sqrt": inverse_sqrt}
SCHEDULE_NAMES: tuple[str, ...] = (*SCHEDULES, "polyak")


def polyak(lr: float, gap: float, sq_norm: float) -> float:
    """:math:`\\eta = \\gamma \\max(gap, 0) / \\|g\\|^2`; zero when the gap or the gradient vanishes."""
    if sq_norm <= 0.0 or not gap > 0.0:
        return 0.0
    return lr * gap / sq_norm
