r"""Proximal operators with one signature: ``op.prox(x, step)`` and ``op.value(x)``.

Every operator is an object holding the parameters of a function :math:`h` and computes

.. math::

    \operatorname{prox}(x, s) = \operatorname*{argmin}_z \; h(z) + \sum_i \frac{(z_i - x_i)^2}{2 s_i}

for a scalar step or a per-coordinate tensor step (``prox_`` is the in-place twin). Penalties: :class:`L1`,
:class:`GroupL1`, :class:`ElasticNet`, :class:`L0`. Constraint sets (:class:`Projection`):
:class:`NonNegative`, :class:`Box`, :class:`L2Ball`. New operators subclass :class:`Prox`.

Operators are frozen dataclasses, so they pickle; ``torch.load(..., weights_only=True)`` of an optimizer
``state_dict`` holding one needs ``torch.serialization.safe_globals([L1])`` (or the classes you use).
"""

from ._base import Projection, Prox
from ._penalties import L0, L1, ElasticNet, GroupL1
from ._sets import Box, L2Ball, NonNegative

__all__ = ["L0", "L1", "Box", "ElasticNet", "GroupL1", "L2Ball", "NonNegative", "Projection", "Prox"]
