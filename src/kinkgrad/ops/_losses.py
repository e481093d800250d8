"""Losses with kinks: ``l1_loss``, ``hinge_embedding_loss``, ``margin_ranking_loss``,
``multi_margin_loss``.

Each returns PyTorch's value bit for bit; its derivative is that of the same formula written with
kinkgrad's ``abs`` / ``clamp_min`` at ``λ`` (``|z|`` at 0 gives ``2λ - 1``; a hinge ``max(0, z)`` at 0
gives ``λ``). PyTorch returns 0 at these kinks, except where noted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kinkgrad._autodiff import Trace, needs_rule, straight_through, trace_mode
from kinkgrad._observe import active_observer, silenced
from kinkgrad._policy import from_policy
from kinkgrad._rules import check_lambda
from kinkgrad.ops._elementwise import abs as _abs
from kinkgrad.ops._elementwise import clamp_min as _clamp_min

__all__ = ["hinge_embedding_loss", "l1_loss", "margin_ranking_loss", "multi_margin_loss"]


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _weighted(loss: Tensor, weight: Tensor | None) -> Tensor:
    return loss if weight is None else loss * weight


def _loss(
    name: str,
    value: Tensor,
    at_kink: Any,
    tensors: tuple[Tensor | None, ...],
    kinks: Callable[[], Tensor],
    surrogate: Callable[[Any], Tensor],
    reduction: str,
) -> Tensor:
    """PyTorch's ``value``; where a kink is hit and a rule is chosen, the derivative of ``surrogate(λ)``."""
    at_kink = from_policy(name, at_kink)
    watch = active_observer()
    if (at_kink is None and watch is None) or not value.is_floating_point():
        return value
    lam = None if at_kink is None else check_lambda(at_kink)
    mode = trace_mode(*tensors)
    if mode is Trace.NONE and watch is None:
        return value
    hit = kinks()
    out = value
    if lam is not None and needs_rule(mode, hit):
        with silenced():
            out = straight_through(value, surrogate(lam))
    if watch is not None:
        watch.report(name, out, hit if reduction == "none" else hit.any(), None)
    return out


def l1_loss(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    weight: Tensor | None = None,
    *,
    at_kink: Any = None,
) -> Tensor:
    """``reduce(|input - target|)``. At ``input == target``: ``2λ - 1`` (PyTorch: 0).

    Example:
        >>> x = torch.zeros(2, requires_grad=True)
        >>> l1_loss(x, torch.zeros(2), at_kink=1.0).backward()
        >>> x.grad
        tensor([0.5000, 0.5000])
    """
    value = F.l1_loss(input, target, reduction=reduction, weight=weight)  # type: ignore[call-arg]
    return _loss(
        "l1_loss",
        value,
        at_kink,
        (input, target, weight),
        lambda: torch.broadcast_to(input == target, torch.broadcast_shapes(input.shape, target.shape)),
        lambda lam: _reduce(_weighted(_abs(input - target, at_kink=lam), weight), reduction),
        reduction,
    )


def hinge_embedding_loss(
    input: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean", *, at_kink: Any = None
) -> Tensor:
    """``x`` where ``y = 1``, ``max(0, margin - x)`` where ``y = -1``; the hinge at ``x = margin`` gets ``λ``
    as the derivative of ``max(0, ·)`` (so ``-λ`` in ``x``)."""
    value = F.hinge_embedding_loss(input, target, margin=margin, reduction=reduction)

    def surrogate(lam: Any) -> Tensor:
        hinge = _clamp_min(margin - input, 0.0, at_kink=lam)
        zero = torch.zeros((), dtype=input.dtype, device=input.device)
        loss = torch.where(target != 1, hinge, zero) + torch.where(target != -1, input, zero)
        return _reduce(loss, reduction)

    kinks = lambda: (input == margin) & (target != 1)  # noqa: E731
    return _loss("hinge_embedding_loss", value, at_kink, (input,), kinks, surrogate, reduction)


def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    reduction: str = "mean",
    *,
    at_kink: Any = None,
) -> Tensor:
    """``max(0, -y·(x1 - x2) + margin)``; the hinge at 0 gets ``λ``."""
    value = F.margin_ranking_loss(input1, input2, target, margin=margin, reduction=reduction)

    def z() -> Tensor:
        return -target * (input1 - input2) + margin

    return _loss(
        "margin_ranking_loss",
        value,
        at_kink,
        (input1, input2, target),
        lambda: z() == 0,
        lambda lam: _reduce(_clamp_min(z(), 0.0, at_kink=lam), reduction),
        reduction,
    )


def multi_margin_loss(
    input: Tensor,
    target: Tensor,
    p: int = 1,
    margin: float = 1.0,
    weight: Tensor | None = None,
    reduction: str = "mean",
    *,
    at_kink: Any = None,
) -> Tensor:
    """``Σ_{i≠y} max(0, margin - x[y] + x[i])^p / C`` (times ``weight[y]``); each hinge at 0 gets ``λ``.

    With ``p = 2`` the loss is continuously differentiable and ``λ`` changes nothing.
    """
    value = F.multi_margin_loss(input, target, p=p, margin=margin, weight=weight, reduction=reduction)
    x = input if input.dim() == 2 else input.unsqueeze(0)
    y = target.reshape(-1, 1)

    def hinges() -> tuple[Tensor, Tensor]:
        others = torch.ones_like(x, dtype=torch.bool).scatter(1, y, False)
        return margin - x.gather(1, y) + x, others

    def kinks() -> Tensor:
        z, others = hinges()
        per_sample = ((z == 0) & others).any(1)
        return per_sample if input.dim() == 2 else per_sample.squeeze(0)

    def surrogate(lam: Any) -> Tensor:
        z, others = hinges()
        hinge = _clamp_min(z, 0.0, at_kink=lam)
        if p == 2:
            hinge = hinge * hinge
        if weight is not None:
            hinge = hinge * weight[y]
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        per_sample = torch.where(others, hinge, zero).sum(1) / x.shape[1]
        return _reduce(per_sample if input.dim() == 2 else per_sample.squeeze(0), reduction)

    return _loss("multi_margin_loss", value, at_kink, (input, weight), kinks, surrogate, reduction)
