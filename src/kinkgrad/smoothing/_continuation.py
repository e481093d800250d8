r"""Continuation: a schedule that drives the smoothing temperature :math:`\mu` to (nearly) zero."""

from __future__ import annotations

import math
from typing import Any, final

__all__ = ["Continuation"]


@final
class Continuation:
    r"""Geometric continuation of the smoothing temperature, stepped like a learning-rate scheduler.

    .. math::

        \mu_k = \max\big(\mu_0\, \rho^{\lfloor k / T \rfloor},\ \mu_{min}\big),

    with :math:`\rho` = ``factor``, :math:`T` = ``every`` and :math:`k` the number of :meth:`step` calls.
    Solving a sequence of smoothed problems with decreasing :math:`\mu` (warm-started from each other)
    approaches the nonsmooth problem: every surrogate of :mod:`kinkgrad.smoothing` is within
    :math:`O(\mu_k)` of the exact function (:func:`kinkgrad.smoothing.error_bound`), uniformly.

    Pass the object itself as ``mu`` to :func:`kinkgrad.smooth`: the current :attr:`mu` is read at every
    op call, so stepping the schedule needs nothing else. ``float(schedule)`` is the current value and
    ``schedule(k)`` the value after ``k`` steps.

    Args:
        mu0: The first temperature :math:`\mu_0 > 0`.
        factor: :math:`\rho \in (0, 1]`, applied every ``every`` steps.
        every: :math:`T \ge 1`, steps between reductions.
        mu_min: The floor :math:`0 \le \mu_{min} \le \mu_0`; ``0`` lets :math:`\mu` reach exactly 0 once it
            underflows (then :func:`kinkgrad.smooth` is the exact function).

    Returns:
        A schedule with :attr:`mu`, :meth:`step`, :meth:`state_dict` and :meth:`load_state_dict`.

    Example:
        >>> schedule = Continuation(1.0, factor=0.1, every=2, mu_min=1e-3)
        >>> [round(schedule.step(), 6) for _ in range(8)]
        [1.0, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001]
        >>> schedule.state_dict()["steps"]
        8

    References:
        Y. Nesterov, "Smooth minimization of non-smooth functions", Math. Program. 103, 2005.
        X. Chen, "Smoothing methods for nonsmooth, nonconvex minimization", Math. Program. 134, 2012.
    """

    def __init__(self, mu0: float, factor: float = 0.5, every: int = 1, mu_min: float = 0.0) -> None:
        self.mu0 = _number("mu0", mu0, positive=True)
        self.factor = _number("factor", factor, positive=True)
        if self.factor > 1.0:
            raise ValueError(f"factor must lie in (0, 1], got {factor!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.every = every
        self.mu_min = _number("mu_min", mu_min, positive=False)
        if self.mu_min > self.mu0:
            raise ValueError(f"mu_min must not exceed mu0 = {mu0!r}, got {mu_min!r}")
        self.steps = 0

    def __call__(self, k: int) -> float:
        """The temperature after ``k`` steps."""
        return max(self.mu0 * self.factor ** (k // self.every), self.mu_min)

    @property
    def mu(self) -> float:
        """The current temperature :math:`\\mu_k`."""
        return self(self.steps)

    def __float__(self) -> float:
        return self.mu

    def step(self) -> float:
        """Advance one step (call it once per iteration, after the optimizer's step); return the new
        temperature."""
        self.steps += 1
        return self.mu

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings and its step count."""
        return {
            "mu0": self.mu0,
            "factor": self.factor,
            "every": self.every,
            "mu_min": self.mu_min,
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (validated as the constructor does)."""
        fresh = Continuation(state["mu0"], state["factor"], state["every"], state["mu_min"])
        steps = state["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        self.__dict__.update(fresh.__dict__, steps=steps)

    def __repr__(self) -> str:
        return (
            f"Continuation(mu0={self.mu0!r}, factor={self.factor!r}, every={self.every!r}, "
            f"mu_min={self.mu_min!r}; steps={self.steps}, mu={self.mu!r})"
        )


def _number(name: str, value: Any, *, positive: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)
