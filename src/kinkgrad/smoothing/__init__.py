r"""Smooth surrogates of kink ops with stated error bounds, and continuation schedules for :math:`\mu`.

Use the surrogates explicitly (``smoothing.relu(x, mu=0.1)``), or let :func:`kinkgrad.smooth` put them in
place of every kink op of unmodified code. Each surrogate :math:`s_\mu` of :math:`f` satisfies
:math:`\ell(\mu) \le s_\mu - f \le u(\mu)` with :math:`[\ell, u]` = :func:`error_bound`, and
:math:`\mu = 0` gives the exact function.

Example:
    >>> import torch
    >>> from kinkgrad import smoothing
    >>> x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    >>> gap = smoothing.relu(x, mu=0.01) - torch.relu(x)
    >>> lo, hi = smoothing.error_bound("relu", 0.01)
    >>> bool(((lo <= gap) & (gap <= hi)).all())
    True
"""

from ._continuation import Continuation
from ._surrogates import (
    ABS_KINDS,
    SMOOTHED_OPS,
    abs,
    clamp,
    error_bound,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    max,
    maximum,
    min,
    minimum,
    relu,
    relu6,
    softshrink,
)

__all__ = [
    "ABS_KINDS",
    "SMOOTHED_OPS",
    "Continuation",
    "abs",
    "clamp",
    "error_bound",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "leaky_relu",
    "max",
    "maximum",
    "min",
    "minimum",
    "relu",
    "relu6",
    "softshrink",
]
