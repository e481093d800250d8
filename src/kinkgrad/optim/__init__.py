"""Optimizers for nonsmooth objectives, all ``torch.optim.Optimizer`` subclasses.

* :class:`Subgradient`: the projected subgradient method (constant, diminishing, ``1/sqrt(k)`` and Polyak
  step sizes), tracking the best iterate.
* :class:`ProxSGD`: proximal gradient descent with ``torch.optim.SGD``'s momentum, for
  ``f + h`` with ``h`` a :mod:`kinkgrad.prox` operator.
* :class:`ProxAdam`: Adam followed by the prox in Adam's per-coordinate metric.

Each has a plain loop and a ``torch._foreach_*`` twin built from the same small step rules.
"""

from ._gradient_sampling import (
    GradientSamplingResult,
    GradientSamplingStep,
    gradient_sampling,
    min_norm_element,
)
from ._prox_adam import ProxAdam
from ._prox_sgd import ProxSGD
from ._schedules import SCHEDULE_NAMES
from ._subgradient import Subgradient

__all__ = [
    "SCHEDULE_NAMES",
    "GradientSamplingResult",
    "GradientSamplingStep",
    "ProxAdam",
    "ProxSGD",
    "Subgradient",
    "gradient_sampling",
    "min_norm_element",
]
