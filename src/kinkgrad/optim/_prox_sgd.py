"""Proximal stochastic gradient descent, with the heavy-ball and Nesterov momentum of ``torch.optim.SGD``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, final, overload

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import _rules as rules
from ._validation import check_floating_params, check_number, check_operator, group_label, resolve_foreach

__all__ = ["ProxSGD"]

_NAME = "ProxSGD"


@final
class ProxSGD(Optimizer):
    r"""Proximal (stochastic) gradient descent for :math:`\min_x f(x) + h(x)` with :math:`h` given by a prox.

    .. math::

        b_{k} = \mu\, b_{k-1} + (1 - \tau)\, g_k, \qquad
        d_k = g_k + \mu b_k \ (\text{Nesterov}) \text{ or } b_k, \qquad
        x_{k+1} = \operatorname{prox}_{h}\big(x_k - \eta\, d_k,\ \eta\big),

    with :math:`g_k` the gradient of the smooth (or subdifferentiable) part in ``.grad``, :math:`\mu` the
    momentum, :math:`\tau` the dampening and :math:`\eta` = ``lr``. The momentum recursion is exactly
    ``torch.optim.SGD``'s (``momentum=0`` gives plain proximal gradient, ``prox=None`` gives SGD). Unlike a
    subgradient step on :math:`f + \lambda\|x\|_1`, the prox of :class:`kinkgrad.prox.L1` sets coordinates
    to exact zeros.

    With ``maximize=True`` the step is :math:`\operatorname{prox}_h(x_k + \eta d_k, \eta)`, i.e. it
    maximises :math:`f - h` (the prox stays a penalty).

    State: ``state[p]["momentum_buffer"]`` when ``momentum > 0``.

    Cost: on CPU, with an elementwise prox (:attr:`kinkgrad.prox.Prox.elementwise`: ``L1``, ``ElasticNet``,
    ``L0``, ``NonNegative``, a scalar ``Box``), each large contiguous parameter is stepped and proxed slice
    by slice, so the prox reads from cache and the parameter crosses main memory once, as in
    ``torch.optim.SGD``; the result is the same as stepping the whole tensor and then proxing it. The
    prox kernel's own arithmetic remains, so a step still costs noticeably more than an SGD step on CPU
    (measured in ``benchmarks/RESULTS.md``, explained in ``docs/optimization.md``).

    Args:
        params: Parameters or parameter groups (dicts), as for any ``torch.optim.Optimizer``.
        lr: The step :math:`\eta > 0` (also the prox step).
        momentum: :math:`\mu \in [0, 1)`.
        dampening: :math:`\tau \in [0, 1]`.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).
        prox: ``None`` or a :class:`kinkgrad.prox.Prox` applied after every step, e.g. ``L1(1e-4)``.
        maximize: Maximise :math:`f - h` instead.
        foreach: Use the ``torch._foreach_*`` twin; ``None`` picks it on CUDA, as ``torch.optim`` does.

    Returns:
        An optimizer; ``step(closure)`` returns the closure's loss (``None`` without a closure).

    Example:
        >>> import torch
        >>> from kinkgrad.optim import ProxSGD
        >>> from kinkgrad.prox import L1
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 0.05, 0.5]))
        >>> opt = ProxSGD([w], lr=0.1, prox=L1(lam=1.0))
        >>> (w - torch.tensor([1.0, 0.0, 0.2])).square().sum().div(2).backward()
        >>> opt.step()
        >>> w.detach()
        tensor([0.9000, 0.0000, 0.3700])

    References:
        P. L. Combettes and V. R. Wajs, "Signal recovery by proximal forward-backward splitting",
        Multiscale Model. Simul. 4(4), 2005.
        A. Beck, "First-Order Methods in Optimization", SIAM, 2017, ch. 10.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        *,
        prox: Any = None,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            prox=prox,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (as ``torch.optim.Optimizer.add_param_group``) and check its options."""
        super().add_param_group(param_group)
        index = len(self.param_groups) - 1
        group = self.param_groups[index]
        where = group_label(_NAME, index)
        check_number(where, "lr", group["lr"], low=0.0, low_open=True)
        momentum = check_number(where, "momentum", group["momentum"], low=0.0, high=1.0)
        dampening = check_number(where, "dampening", group["dampening"], low=0.0, high=1.0, high_open=False)
        if group["nesterov"] and (momentum == 0.0 or dampening != 0.0):
            raise ValueError(
                f"{where}: nesterov=True needs momentum > 0 and dampening = 0, got momentum={momentum!r}, "
                f"dampening={dampening!r}"
            )
        check_operator(where, "prox", group["prox"])
        check_floating_params(where, group, index, "prox")

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one proximal gradient step.

        Args:
            closure: Optional; re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or ``None``.
        """
        loss = rules.evaluate(closure)
        for group in self.param_groups:
            params, grads = rules.grads_of(_NAME, group["params"])
            if not params:
                continue
            foreach = resolve_foreach(group["foreach"], params)
            momentum = group["momentum"]
            directions = grads
            if momentum != 0.0:
                bufs: list[Tensor | None] = [self.state[p].get("momentum_buffer") for p in params]
                filled = rules.heavy_ball_(bufs, grads, momentum, group["dampening"], foreach)
                for p, b in zip(params, filled):
                    self.state[p]["momentum_buffer"] = b
                directions = rules.nesterov(grads, filled, momentum, foreach) if group["nesterov"] else filled
            lr = group["lr"]
            rules.step_prox_(
                params, directions, lr if group["maximize"] else -lr, group["prox"], float(lr), foreach
            )
        return loss
