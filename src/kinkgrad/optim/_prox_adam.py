"""Proximal Adam: Adam's step followed by the prox in Adam's own per-coordinate metric."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, final, overload

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import _rules as rules
from ._validation import check_floating_params, check_number, check_operator, group_label, resolve_foreach

__all__ = ["ProxAdam"]

_NAME = "ProxAdam"


@final
class ProxAdam(Optimizer):
    r"""Adam followed by a prox taken with Adam's per-coordinate step, giving exact zeros.

    .. math::

        m_k = \beta_1 m_{k-1} + (1-\beta_1) g_k, \quad v_k = \beta_2 v_{k-1} + (1-\beta_2) g_k^2, \quad
        s_k = \frac{\eta}{\sqrt{v_k / (1-\beta_2^k)} + \epsilon},

    .. math::

        x_{k+1} = \operatorname{prox}_h\Big(x_k - s_k \odot \frac{m_k}{1-\beta_1^k},\ s_k\Big)
        = \operatorname*{argmin}_z\ h(z) + \sum_i \frac{(z_i - y_i)^2}{2 s_{k,i}} .

    The prox is the scaled proximal step in the diagonal metric Adam already uses, so fixed points are the
    minimisers of :math:`f + h` for separable :math:`h`, and :class:`kinkgrad.prox.GroupL1` or
    :class:`kinkgrad.prox.L2Ball` are solved exactly in that metric. With ``prox=None`` this is
    ``torch.optim.Adam`` (same operations, same rounding). A coordinate whose gradient has always been
    zero has :math:`s = \eta/\epsilon`, a very long step, so an ``L1`` prox zeroes it at once.

    State: ``state[p]["step"]`` (an int), ``["exp_avg"]`` and ``["exp_avg_sq"]``.

    Args:
        params: Parameters or parameter groups (dicts), as for any ``torch.optim.Optimizer``.
        lr: :math:`\eta > 0`.
        betas: :math:`(\beta_1, \beta_2)`, each in ``[0, 1)``.
        eps: :math:`\epsilon \ge 0`.
        prox: ``None`` or a :class:`kinkgrad.prox.Prox`, e.g. ``L1(1e-4)``.
        maximize: Step along :math:`+m_k` (maximise :math:`f - h`).
        foreach: Use the ``torch._foreach_*`` twin; ``None`` picks it on CUDA, as ``torch.optim`` does.

    Returns:
        An optimizer; ``step(closure)`` returns the closure's loss (``None`` without a closure).

    Example:
        >>> import torch
        >>> from kinkgrad.optim import ProxAdam
        >>> from kinkgrad.prox import L1
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 0.001]))
        >>> opt = ProxAdam([w], lr=0.01, prox=L1(lam=1.0))
        >>> w.sum().backward()
        >>> opt.step()  # the first step has s = lr / (|g| + eps), about 0.01, in every coordinate
        >>> w.detach()
        tensor([0.9800, 0.0000])

    References:
        D. P. Kingma and J. Ba, "Adam: A method for stochastic optimization", ICLR 2015.
        J. Yun, A. C. Lozano and E. Yang, "Adaptive proximal gradient methods for structured neural
        networks", NeurIPS 2021.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        prox: Any = None,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, prox=prox, maximize=maximize, foreach=foreach)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (as ``torch.optim.Optimizer.add_param_group``) and check its options."""
        super().add_param_group(param_group)
        index = len(self.param_groups) - 1
        group = self.param_groups[index]
        where = group_label(_NAME, index)
        check_number(where, "lr", group["lr"], low=0.0, low_open=True)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{where}: betas must be a pair (beta1, beta2), got betas={betas!r}")
        check_number(where, "betas[0]", betas[0], low=0.0, high=1.0)
        check_number(where, "betas[1]", betas[1], low=0.0, high=1.0)
        check_number(where, "eps", group["eps"], low=0.0)
        check_operator(where, "prox", group["prox"])
        check_floating_params(where, group, index, "prox")

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one proximal Adam step.

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
            beta1, beta2 = group["betas"]
            states = []
            for p in params:
                state = self.state[p]
                if "step" not in state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                states.append(state)
            exp_avgs = [s["exp_avg"] for s in states]
            exp_avg_sqs = [s["exp_avg_sq"] for s in states]
            rules.adam_moments_(exp_avgs, exp_avg_sqs, grads, beta1, beta2, foreach)
            sign = 1.0 if group["maximize"] else -1.0
            for k, idx in rules.buckets([s["step"] for s in states], len(params)).items():
                assert isinstance(k, int)
                ps = [params[i] for i in idx]
                ms = [exp_avgs[i] for i in idx]
                bias_correction1 = 1.0 - beta1**k
                denoms = rules.adam_denominators(
                    [exp_avg_sqs[i] for i in idx], 1.0 - beta2**k, group["eps"], foreach
                )
                if group["prox"] is None:
                    rules.addcdiv_(ps, ms, denoms, sign * group["lr"] / bias_correction1, foreach)
                    continue
                steps = rules.reciprocal_scaled(denoms, group["lr"], foreach)
                rules.addcmul_(ps, ms, steps, sign / bias_correction1, foreach)
                rules.prox_(ps, group["prox"], steps)
        return loss
