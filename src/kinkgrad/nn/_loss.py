"""Loss modules with a chosen derivative at their kinks.

Each class is its ``torch.nn`` namesake (same constructor, ``weight`` buffer, ``state_dict`` and repr)
plus the keyword ``at_kink = λ``: an absolute value ``|z|`` at 0 gets ``2λ - 1``, a hinge ``max(0, z)``
at 0 gets ``λ``; ``None`` keeps PyTorch's derivative (0 at these kinks) or the active policy's. Loss
values are PyTorch's bit for bit.
"""

from __future__ import annotations

from typing import final

from torch import nn

from kinkgrad.nn._module import KinkModule

__all__ = ["HingeEmbeddingLoss", "L1Loss", "MarginRankingLoss", "MultiMarginLoss"]


@final
class L1Loss(KinkModule, nn.L1Loss, op="l1_loss", config=("reduction",)):
    """:class:`torch.nn.L1Loss` with the derivative at ``input == target`` chosen by ``at_kink``.

    ``reduce(|input - target|)``. Clarke set of ``|z|`` at 0: ``[-1, 1]``; PyTorch returns 0,
    ``at_kink=λ`` returns ``2λ - 1`` in ``input`` (``1 - 2λ`` in ``target``), divided by ``n`` under
    ``reduction="mean"``.

    Args:
        size_average, reduce, reduction: as in :class:`torch.nn.L1Loss`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose losses are ``torch.nn.L1Loss``'s, bit for bit.

    Example:
        >>> x = torch.zeros(2, requires_grad=True)
        >>> L1Loss(reduction="sum", at_kink=1.0)(x, torch.zeros(2)).backward(torch.tensor(3.0))
        >>> x.grad
        tensor([3., 3.])
    """


@final
class HingeEmbeddingLoss(
    KinkModule, nn.HingeEmbeddingLoss, op="hinge_embedding_loss", config=("margin", "reduction")
):
    """:class:`torch.nn.HingeEmbeddingLoss` with the derivative at ``x == margin`` chosen by ``at_kink``.

    ``x`` where ``y = 1`` and ``max(0, margin - x)`` where ``y = -1``. At ``x == margin`` (``y = -1``)
    the Clarke set in ``x`` is ``[-1, 0]``; PyTorch returns 0, ``at_kink=λ`` returns ``-λ``.

    Args:
        margin, size_average, reduce, reduction: as in :class:`torch.nn.HingeEmbeddingLoss`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose losses are ``torch.nn.HingeEmbeddingLoss``'s, bit for bit.

    Example:
        >>> x = torch.ones(1, requires_grad=True)
        >>> HingeEmbeddingLoss(at_kink=0.5)(x, -torch.ones(1)).backward(torch.tensor(2.0))
        >>> x.grad
        tensor([-1.])
    """


@final
class MarginRankingLoss(
    KinkModule, nn.MarginRankingLoss, op="margin_ranking_loss", config=("margin", "reduction")
):
    """:class:`torch.nn.MarginRankingLoss` with the derivative at the hinge chosen by ``at_kink``.

    ``max(0, z)`` with ``z = -y·(x1 - x2) + margin``. At ``z = 0`` the Clarke set is
    ``{θ·(-y, y) : θ ∈ [0, 1]}`` in ``(x1, x2)``; PyTorch returns 0, ``at_kink=λ`` returns
    ``θ = λ``.

    Args:
        margin, size_average, reduce, reduction: as in :class:`torch.nn.MarginRankingLoss`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose losses are ``torch.nn.MarginRankingLoss``'s, bit for bit.

    Example:
        >>> x1, x2 = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
        >>> MarginRankingLoss(at_kink=0.5)(x1, x2, torch.ones(1)).backward(torch.tensor(2.0))
        >>> x1.grad, x2.grad
        (tensor([-1.]), tensor([1.]))
    """


@final
class MultiMarginLoss(
    KinkModule, nn.MultiMarginLoss, op="multi_margin_loss", config=("p", "margin", "weight", "reduction")
):
    """:class:`torch.nn.MultiMarginLoss` with the derivative at each hinge chosen by ``at_kink``.

    ``Σ_{i≠y} max(0, margin - x[y] + x[i])^p / C`` (times ``weight[y]``). Each hinge at 0 has Clarke
    set ``[0, 1]`` in its argument; PyTorch returns 0, ``at_kink=λ`` returns ``λ``. With ``p = 2`` the
    loss is continuously differentiable and ``λ`` changes nothing.

    Args:
        p, margin, weight, size_average, reduce, reduction: as in :class:`torch.nn.MultiMarginLoss`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose losses are ``torch.nn.MultiMarginLoss``'s, bit for bit.

    Example:
        >>> x = torch.tensor([[1.0, 0.0]], requires_grad=True)
        >>> MultiMarginLoss(at_kink=1.0)(x, torch.tensor([0])).backward(torch.tensor(4.0))
        >>> x.grad  # 4 · (-1, 1) / C with C = 2
        tensor([[-2.,  2.]])
    """
