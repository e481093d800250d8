"""The (projected) subgradient method with constant, diminishing, 1/sqrt(k) and Polyak step sizes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, final, overload

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import _rules as rules
from ._schedules import SCHEDULE_NAMES, SCHEDULES, polyak
from ._validation import (
    check_choice,
    check_floating_params,
    check_number,
    check_operator,
    group_label,
    resolve_foreach,
)

__all__ = ["Subgradient"]

_NAME = "Subgradient"


@final
class Subgradient(Optimizer):
    r"""The projected subgradient method, tracking the best iterate.

    .. math::

        x_{k+1} = P_C\big(x_k - \eta_k\, g_k\big), \qquad g_k \in \partial f(x_k),

    with :math:`g_k` whatever ``backward()`` left in ``.grad`` (one element of the Clarke set) and
    :math:`P_C` an optional projection. Step sizes (:math:`\gamma` = ``lr``, :math:`k` = steps taken):

    * ``"constant"``: :math:`\eta_k = \gamma`; only reaches an :math:`O(\gamma)` neighbourhood,
    * ``"diminishing"``: :math:`\eta_k = \gamma / (k + 1)`,
    * ``"sqrt"``: :math:`\eta_k = \gamma / \sqrt{k + 1}`, giving
      :math:`f_{best} - f^* = O(\log k / \sqrt{k})`,
    * ``"polyak"``: :math:`\eta_k = \gamma\,(f(x_k) - f_{min}) / \|g_k\|^2` with :math:`0 < \gamma < 2`
      and :math:`f_{min}` the optimal value (or a lower bound); :math:`\|g_k\|` runs over every parameter
      of every group. It needs the loss, so call ``step(closure)``.

    The last iterate of a subgradient method is not a descent sequence, so when ``step`` gets a closure the
    optimizer keeps the best loss seen and, with ``track_best=True``, a copy of the point where it was seen
    (the point *before* the update): :attr:`best_loss`, :attr:`best_step` and :meth:`best_params`. With
    ``average=True`` it also keeps the ergodic average :math:`\bar x_k = \sum_{i \le k} \eta_i x_i /
    \sum_{i \le k} \eta_i` (:meth:`averaged_params`), which obeys the same :math:`f(\bar x_k) - f^*`
    bound as :math:`f_{best}` for convex :math:`f` and needs no loss values.

    Cost: a Polyak step reads the gradients twice, once for :math:`\|g_k\|` (which must be known before
    any parameter moves) and once in the update: on CPU, where the update is bound by memory, that
    second read is a large fraction of an SGD step (``benchmarks/RESULTS.md``). A projection onto an
    elementwise set is applied slice by slice with the update, as in :class:`ProxSGD`.

    State: ``state[p]["step"]`` (an int), ``state[p]["best"]`` (the best iterate) and
    ``state[p]["average"]``; ``"best_loss"``, ``"best_step"``, ``"n_steps"`` and ``"weight_sum"`` live in the
    state of the first parameter, as ``torch.optim.LBFGS`` keeps its counters.

    Args:
        params: Parameters or parameter groups (dicts), as for any ``torch.optim.Optimizer``.
        lr: :math:`\gamma > 0`; for ``"polyak"`` it must lie in ``(0, 2)``.
        schedule: ``"constant"``, ``"diminishing"``, ``"sqrt"`` or ``"polyak"``.
        f_min: The optimal value :math:`f^*` used by ``"polyak"`` (required there). With
            ``maximize=True`` it is the optimal (largest) value and the gap is :math:`f^* - f(x_k)`.
        projection: ``None`` or a :class:`kinkgrad.prox.Projection` (``NonNegative``, ``Box``,
            ``L2Ball``), applied after every step.
        maximize: Step along :math:`+g_k` to maximise.
        foreach: Use the ``torch._foreach_*`` twin; ``None`` picks it on CUDA, as ``torch.optim`` does.
        track_best: Keep a copy of the best iterate (one extra tensor per parameter). An optimizer-wide
            setting, not a group option; best-loss bookkeeping follows the constructor's ``maximize``.
        average: Keep the step-size-weighted average of the iterates (one extra tensor per parameter
            and one extra pass per step), weighted by the first group's step sizes.

    Returns:
        An optimizer; ``step(closure)`` returns the closure's loss (``None`` without a closure).

    Example:
        >>> import torch
        >>> from kinkgrad.optim import Subgradient
        >>> x = torch.nn.Parameter(torch.tensor([2.0, -3.0]))
        >>> opt = Subgradient([x], lr=1.0, schedule="polyak", f_min=0.0)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = x.abs().max()  # f(x) = ||x||_inf, f* = 0
        ...     loss.backward()
        ...     return loss
        >>> for _ in range(3):
        ...     loss = opt.step(closure)
        >>> x.detach()
        tensor([0., 0.])
        >>> opt.best_loss
        0.0

    References:
        N. Z. Shor, "Minimization Methods for Non-Differentiable Functions", Springer, 1985.
        B. T. Polyak, "Introduction to Optimization", Optimization Software, 1987, ch. 5.3.
        S. Boyd, L. Xiao and A. Mutapcic, "Subgradient methods", Stanford EE392o notes, 2003.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        schedule: str = "constant",
        f_min: float | None = None,
        *,
        projection: Any = None,
        maximize: bool = False,
        foreach: bool | None = None,
        track_best: bool = True,
        average: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, schedule=schedule, f_min=f_min, projection=projection, maximize=maximize, foreach=foreach
        )
        self.track_best = bool(track_best)
        self.average = bool(average)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (as ``torch.optim.Optimizer.add_param_group``) and check its options."""
        super().add_param_group(param_group)
        index = len(self.param_groups) - 1
        group = self.param_groups[index]
        where = group_label(_NAME, index)
        schedule = check_choice(where, "schedule", group["schedule"], SCHEDULE_NAMES)
        if schedule == "polyak":
            check_number(where, "lr", group["lr"], low=0.0, high=2.0, low_open=True, high_open=True)
            if group["f_min"] is None:
                raise ValueError(
                    f"{where}: schedule='polyak' needs f_min, the optimal value f* (a lower bound; an upper "
                    "bound when maximize=True), got f_min=None"
                )
        else:
            check_number(where, "lr", group["lr"], low=0.0, low_open=True)
        if group["f_min"] is not None:
            check_number(where, "f_min", group["f_min"], low=-math.inf)
        check_operator(where, "projection", group["projection"], sets_only=True)
        check_floating_params(where, group, index, "projection")

    def __getstate__(self) -> dict[str, Any]:
        # torch.optim.Optimizer pickles defaults, state and param_groups only; keep our two settings too.
        return {**super().__getstate__(), "track_best": self.track_best, "average": self.average}

    # -- records of the best iterate ---------------------------------------------------------------

    def _record(self) -> dict[str, Any]:
        return self.state[self.param_groups[0]["params"][0]]

    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @property
    def best_loss(self) -> float | None:
        """The best loss seen by ``step(closure)`` (the smallest, or the largest with ``maximize``)."""
        return self._record().get("best_loss")

    @property
    def best_step(self) -> int | None:
        """The number of steps taken when :attr:`best_loss` was seen (the best point is that iterate)."""
        return self._record().get("best_step")

    def best_params(self) -> list[Tensor]:
        """Copies of the parameters at the best iterate, in the order of ``param_groups``.

        Returns:
            One tensor per parameter of every group.

        Raises:
            RuntimeError: With ``track_best=False``, or before any ``step(closure)``.
        """
        if not self.track_best:
            raise RuntimeError(f"{_NAME}: best_params() needs track_best=True")
        if self.best_loss is None:
            raise RuntimeError(f"{_NAME}: best_params() needs a loss first: call step(closure)")
        return [self.state[p]["best"].clone() for p in self._all_params()]

    def averaged_params(self) -> list[Tensor]:
        """Copies of the weighted average :math:`\\sum_k \\eta_k x_k / \\sum_k \\eta_k` of the iterates.

        Returns:
            One tensor per parameter of every group (the iterates before each step, as for the best).

        Raises:
            RuntimeError: With ``average=False``, or before the first step with a nonzero step size.
        """
        if not self.average:
            raise RuntimeError(f"{_NAME}: averaged_params() needs average=True")
        if not self._record().get("weight_sum"):
            raise RuntimeError(f"{_NAME}: averaged_params() needs a step with a nonzero step size first")
        return [self.state[p]["average"].clone() for p in self._all_params()]

    def _accumulate(self, eta: float, foreach: bool) -> None:
        """Fold the current point into the running average with weight ``eta``."""
        if eta <= 0.0:
            return
        record = self._record()
        total = record.get("weight_sum", 0.0) + eta
        params = self._all_params()
        averages = []
        for p in params:
            state = self.state[p]
            if "average" not in state:
                state["average"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            averages.append(state["average"])
        rules.lerp_(averages, [p.detach() for p in params], eta / total, foreach)
        record["weight_sum"] = total

    def _observe(self, objective: float, foreach: bool) -> None:
        """Record the current point if ``objective`` (to minimise) beats the best so far."""
        record = self._record()
        best = record.get("best_loss")
        sign = -1.0 if self.defaults["maximize"] else 1.0
        if math.isnan(objective) or (best is not None and not objective < sign * best):
            return
        params = self._all_params()
        record["best_loss"] = sign * objective
        record["best_step"] = record.get("n_steps", 0)
        if self.track_best:
            bests = []
            for p in params:
                state = self.state[p]
                if "best" not in state:
                    state["best"] = torch.empty_like(p, memory_format=torch.preserve_format)
                bests.append(state["best"])
            rules.copy_(bests, [p.detach() for p in params], foreach)

    # -- the step ----------------------------------------------------------------------------------

    def _step_sizes(
        self, group: dict[str, Any], params: list[Tensor], objective: float | None, sq_norm: float | None
    ) -> list[float]:
        """The step size of each parameter of a group (they differ only if their step counts do)."""
        ks = [self.state[p].setdefault("step", 0) for p in params]
        if group["schedule"] == "polyak":
            assert objective is not None and sq_norm is not None
            gap = group["f_min"] - objective if group["maximize"] else objective - group["f_min"]
            return [polyak(group["lr"], gap, sq_norm)] * len(params)
        rule = SCHEDULES[group["schedule"]]
        return [rule(group["lr"], k) for k in ks]

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one subgradient step; with a closure, evaluate the loss first and return it.

        Args:
            closure: Re-evaluates the model: zero the gradients, compute the loss, call ``backward()``
                and return the loss. Required by ``schedule="polyak"``.

        Returns:
            The closure's loss, or ``None``.
        """
        loss = rules.evaluate(closure)
        objective = None if loss is None else _as_float(loss)

        found = [rules.grads_of(_NAME, group["params"]) for group in self.param_groups]
        foreach_all = resolve_foreach(self.defaults["foreach"], self._all_params())
        if objective is not None:
            self._observe(-objective if self.defaults["maximize"] else objective, foreach_all)

        sq_norm = None
        if any(group["schedule"] == "polyak" for group in self.param_groups):
            if objective is None:
                raise ValueError(
                    f"{_NAME}: schedule='polyak' needs the loss at the current point: call step(closure) "
                    "with a closure that zeroes the gradients, computes the loss, calls backward() and "
                    "returns it; got step() without a closure"
                )
            sq_norm = rules.sq_norm([g for _, grads in found for g in grads])

        plans = [
            (group, params, grads, self._step_sizes(group, params, objective, sq_norm))
            for group, (params, grads) in zip(self.param_groups, found)
            if params
        ]
        if self.average and plans:
            self._accumulate(plans[0][3][0], foreach_all)
        for group, params, grads, etas in plans:
            foreach = resolve_foreach(group["foreach"], params)
            sign = 1.0 if group["maximize"] else -1.0
            for eta, idx in rules.buckets(etas, len(params)).items():
                assert isinstance(eta, float)
                moved = [params[i] for i in idx]
                rules.step_prox_(
                    moved, [grads[i] for i in idx], sign * eta, group["projection"], eta, foreach
                )
            for p in params:
                self.state[p]["step"] += 1
        record = self._record()
        record["n_steps"] = record.get("n_steps", 0) + 1
        return loss


def _as_float(loss: object) -> float:
    """The closure's loss as a float (detached first: ``float`` on a tensor that requires grad warns)."""
    if isinstance(loss, Tensor):
        return float(loss.detach())
    return float(loss)  # type: ignore[arg-type]
