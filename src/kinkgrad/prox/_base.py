"""The two abstract interfaces of :mod:`kinkgrad.prox`: :class:`Prox` and :class:`Projection`."""

from __future__ import annotations

import abc
import math
from numbers import Real

import torch
from torch import Tensor

__all__ = ["Projection", "Prox"]


class Prox(abc.ABC):
    r"""A closed proper function :math:`h` together with its proximal operator.

    Every operator in :mod:`kinkgrad.prox` has the same signature: an object holding the parameters of
    :math:`h` with

    .. math::

        \operatorname{prox}(x, s) = \operatorname*{argmin}_z \; h(z) + \sum_i \frac{(z_i - x_i)^2}{2 s_i},

    where the step :math:`s` is a number (the usual Euclidean prox) or a tensor broadcastable to ``x``
    (a diagonal metric, e.g. Adam's per-coordinate step). For a penalty ``step=0`` gives the limit
    ``prox(x, 0) = x``; a :class:`Projection` projects whatever the scalar step.

    Subclasses implement :meth:`value` and the private ``_apply(x, step, inplace)``; :meth:`prox` and the
    in-place twin :meth:`prox_` are defined here once and are not overridden.

    Args:
        None here: each concrete operator documents the parameters it holds.

    Returns:
        An abstract interface; ``prox`` and ``prox_`` return tensors shaped like ``x``.

    Example:
        >>> import torch
        >>> from kinkgrad.prox import L1
        >>> L1(lam=1.0).prox(torch.tensor([-3.0, 0.5, 2.0]), step=1.0)
        tensor([-2.,  0.,  1.])

    References:
        N. Parikh and S. Boyd, "Proximal Algorithms", Foundations and Trends in Optimization 1(3), 2014.
    """

    @abc.abstractmethod
    def value(self, x: Tensor) -> Tensor:
        """The value :math:`h(x)` as a 0-dim tensor of ``x``'s dtype (``inf`` outside a constraint set)."""

    @abc.abstractmethod
    def _apply(self, x: Tensor, step: float | Tensor, inplace: bool) -> Tensor:
        """Compute the prox of ``x``, overwriting ``x`` when ``inplace`` (and returning it).

        ``step`` is already checked: a float ``>= 0`` or a tensor of ``x``'s dtype and device that
        broadcasts to ``x.shape``.
        """

    @property
    def elementwise(self) -> bool:
        """Whether, for a scalar step, the prox acts on each coordinate alone by one rule for all.

        Then the prox of any slice of ``x`` is the same slice of the prox of ``x``, so an optimizer may
        apply it slice by slice, right after updating each slice, while the slice is still in cache.
        ``False`` here; operators for which it holds say so.
        """
        return False

    def prox(self, x: Tensor, step: float | Tensor) -> Tensor:
        """Return :math:`\\operatorname{prox}(x, s)` as a new tensor (``x`` is left unchanged).

        Args:
            x: A floating-point tensor.
            step: A number ``>= 0`` or a tensor broadcastable to ``x`` (per-coordinate steps, ``> 0``).

        Returns:
            A tensor shaped like ``x``.
        """
        return self._apply(x, _check_step(self, x, step), False)

    def prox_(self, x: Tensor, step: float | Tensor) -> Tensor:
        """In-place :meth:`prox`: overwrite ``x`` with :math:`\\operatorname{prox}(x, s)` and return it."""
        return self._apply(x, _check_step(self, x, step), True)


class Projection(Prox):
    r"""The indicator :math:`\iota_C` of a nonempty closed convex set :math:`C`.

    .. math::

        \iota_C(x) = 0 \text{ if } x \in C, \quad +\infty \text{ otherwise},

    so :meth:`prox` is the projection onto :math:`C`: Euclidean for a scalar step (whatever its value),
    in the metric :math:`\sum_i (z_i - x_i)^2 / s_i` for a tensor step. These are the sets accepted as
    ``projection=`` by :class:`kinkgrad.optim.Subgradient`.

    Subclasses implement ``_contains(x)`` and ``_apply``; :meth:`value` is defined here.

    Args:
        None here: each concrete set documents the parameters it holds.

    Returns:
        An abstract interface; ``value`` returns ``0`` or ``inf``.

    Example:
        >>> import torch
        >>> from kinkgrad.prox import Box
        >>> Box(-1.0, 1.0).value(torch.tensor([0.5, 2.0]))
        tensor(inf)

    References:
        H. H. Bauschke and P. L. Combettes, "Convex Analysis and Monotone Operator Theory in Hilbert
        Spaces", 2nd ed., Springer, 2017, ch. 3.
    """

    @abc.abstractmethod
    def _contains(self, x: Tensor) -> bool:
        """Whether ``x`` lies in the set (up to rounding where stated)."""

    def value(self, x: Tensor) -> Tensor:
        """``0`` if ``x`` lies in the set, ``inf`` otherwise (a 0-dim tensor of ``x``'s dtype)."""
        _check_x(self, x)
        inside = self._contains(x)
        return torch.tensor(0.0 if inside else math.inf, dtype=x.dtype, device=x.device)


def _check_x(op: Prox, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op!r}: x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(
            f"{op!r}: x must be a floating-point tensor (float16, bfloat16, float32, float64), "
            f"got dtype {x.dtype}"
        )


def _check_step(op: Prox, x: Tensor, step: float | Tensor) -> float | Tensor:
    """Validate ``x`` and ``step``; return a float or a tensor of ``x``'s dtype and device."""
    _check_x(op, x)
    if isinstance(step, Tensor):
        if step.is_complex() or step.dtype == torch.bool:
            raise ValueError(f"{op!r}: step must be a real tensor, got dtype {step.dtype}")
        try:
            shape = torch.broadcast_shapes(step.shape, x.shape)
        except RuntimeError:
            shape = None
        if shape != x.shape:
            raise ValueError(
                f"{op!r}: step must be a number or a tensor broadcastable to x.shape={tuple(x.shape)}, "
                f"got a tensor of shape {tuple(step.shape)}"
            )
        return step.to(dtype=x.dtype, device=x.device)
    if isinstance(step, bool) or not isinstance(step, Real) or not (0.0 <= float(step) < math.inf):
        raise ValueError(f"{op!r}: step must be a finite number >= 0 or a tensor, got step={step!r}")
    return float(step)


def _check_nonneg(owner: str, name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number ``>= 0``; raise ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, Real) or not (0.0 <= float(value) < math.inf):
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {name}={value!r}")
    return float(value)
