"""Losses with kinks: ``l1_loss``, ``hinge_embedding_loss``, ``margin_ranking_loss``,
``multi_margin_loss``.

Each returns PyTorch's value bit for bit; its derivative is that of the same formula written with
kinkgrad's ``abs`` / ``clamp_min`` at ``λ`` (``|z|`` at 0 gives ``2λ - 1``; a hinge ``max(0, z)`` at 0
gives ``λ``). PyTorch returns 0 at these kinks, except where noted.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from kinkgrad._autodiff import Trace, needs_rule, straight_through, trace_mode
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


def _with_rule(value: Tensor, kinks: Tensor, mode: Trace, surrogate: Any) -> Tensor:
    if not needs_rule(mode, kinks):
        return value
    return straight_through(value, surrogate())


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
    if at_kink is None or not value.is_floating_point():
        return value
    lam = check_lambda(at_kink)
    mode = trace_mode(input, target, weight)
    if mode is Trace.NONE:
        return value
    return _with_rule(
        value,
        input == target,
        mode,
        lambda: _reduce(_weighted(_abs(input - target, at_kink=lam), weight), reduction),
    )


def hinge_embedding_loss(
    input: Tensor, target: Tensor, margin: float = 1.0, reduction: str = "mean", *, at_kink: Any = None
) -> Tensor:
    """``x`` where ``y = 1``, ``max(0, margin - x)`` where ``y = -1``; the hinge at ``x = margin`` gets ``λ``
    as the derivative of ``max(0, ·)`` (so ``-λ`` in ``x``)."""
    value = F.hinge_embedding_loss(input, target, margin=margin, reduction=reduction)
    if at_kink is None or not value.is_floating_point():
        return value
    lam = check_lambda(at_kink)
    mode = trace_mode(input)
    if mode is Trace.NONE:
        return value

    def surrogate() -> Tensor:
        hinge = _clamp_min(margin - input, 0.0, at_kink=lam)
        zero = torch.zeros((), dtype=input.dtype, device=input.device)
        loss = torch.where(target != 1, hinge, zero) + torch.where(target != -1, input, zero)
        return _reduce(loss, reduction)

    return _with_rule(value, (input == margin) & (target != 1), mode, surrogate)


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
    if at_kink is None or not value.is_floating_point():
        return value
    lam = check_lambda(at_kink)
    mode = trace_mode(input1, input2, target)
    if mode is Trace.NONE:
        return value
    z = -target * (input1 - input2) + margin
    return _with_rule(value, z == 0, mode, lambda: _reduce(_clamp_min(z, 0.0, at_kink=lam), reduction))


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
    if at_kink is None or not value.is_floating_point():
        return value
    lam = check_lambda(at_kink)
    mode = trace_mode(input, weight)
    if mode is Trace.NONE:
        return value
    x = input if input.dim() == 2 else input.unsqueeze(0)
    y = target.reshape(-1, 1)
    z = margin - x.gather(1, y) + x
    others = torch.ones_like(x, dtype=torch.bool).scatter(1, y, False)

    def surrogate() -> Tensor:
        hinge = _clamp_min(z, 0.0, at_kink=lam)
        if p == 2:
            hinge = hinge * hinge
        if weight is not None:
            hinge = hinge * weight[y]
        per_sample = (
            torch.where(others, hinge, torch.zeros((), dtype=x.dtype, device=x.device)).sum(1) / x.shape[1]
        )
        if input.dim() != 2:
            per_sample = per_sample.squeeze(0)
        return _reduce(per_sample, reduction)

    return _with_rule(value, (z == 0) & others, mode, surrogate)
