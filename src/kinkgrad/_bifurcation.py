"""``bifurcation``: does the choice of derivative at relu-type kinks change what backprop returns?

Bertoin et al. (2021) call the set of mini-batches on which backprop with ReLU'(0) = 0 and with
ReLU'(0) = 1 return different gradients the *bifurcation zone*. :func:`bifurcation` tests one
mini-batch: it backpropagates twice, with every elementwise kink (the ``"lambda"`` kind of
:data:`kinkgrad.registry`: ``relu``, ``clamp``, ``maximum``, ``abs``, ``hardtanh``, norms, losses...) at
``λ = a`` and then at ``λ = b``, and compares the two gradients bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kinkgrad._monitor import KinkMonitor, KinkRecord, iter_records
from kinkgrad._policy import kink_policy

__all__ = ["Bifurcation", "bifurcation"]


@dataclass(frozen=True)
class Bifurcation:
    """The outcome of :func:`bifurcation` on one mini-batch.

    Attributes:
        differs: whether any gradient entry differs between ``λ = a`` and ``λ = b`` (bitwise; NaN equals
            NaN).
        difference_norm: ``‖g_b - g_a‖₂`` over all parameters, computed in float64.
        gradient_norm: ``‖g_a‖₂``, for scale.
        a, b: the two choices of ``λ``.
        loss: the closure's value (the same in both passes).
        exact_kinks: exact kinks of elementwise (``"lambda"``) ops in the ``λ = a`` pass.
        bifurcating_kinks: those of them that received a nonzero cotangent: zero exactly when the two
            gradients agree (up to floating-point absorption, see :func:`bifurcation`).
        sites: the ``λ = a`` pass's per-site kink counts (:class:`~kinkgrad.KinkRecord`, all ops).
    """

    differs: bool
    difference_norm: float
    gradient_norm: float
    a: float
    b: float
    loss: float
    exact_kinks: int
    bifurcating_kinks: int
    sites: tuple[KinkRecord, ...]


def _rng_state() -> tuple[Tensor, list[Tensor] | None]:
    cuda = (
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    )
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[Tensor, list[Tensor] | None]) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _gradients(
    closure: Callable[[], Tensor], params: Sequence[Tensor], lam: float
) -> tuple[Tensor, list[Tensor]]:
    with kink_policy(default=lam):
        loss = closure()
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise TypeError("closure must return the loss as a one-element tensor (without calling backward)")
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _same(x: Tensor, y: Tensor) -> bool:
    return bool(((x == y) | (torch.isnan(x) & torch.isnan(y))).all())


def bifurcation(
    closure: Callable[[], Tensor],
    params: Iterable[Tensor],
    a: float = 0.0,
    b: float = 1.0,
    *,
    model: nn.Module | None = None,
) -> Bifurcation:
    """Backpropagate twice, with every elementwise kink at ``λ = a`` and at ``λ = b``, and compare.

    With :math:`g_\\lambda` the gradient backprop returns when every relu-type kink takes the
    derivative :math:`(1-\\lambda)\\cdot\\text{left} + \\lambda\\cdot\\text{right}`
    (``kink_policy(default=λ)``):

    .. math::

        \\text{differs} = [\\, g_a \\ne g_b \\,], \\qquad
        \\text{difference\\_norm} = \\lVert g_b - g_a \\rVert_2 .

    The random number generators of PyTorch (CPU and initialised CUDA devices) are restored before the
    second pass, so dropout draws the same masks; they are left as after one pass. Ties (max-pools,
    ``max``, ``sort``) keep PyTorch's choice in both passes. The first pass runs under a
    :class:`~kinkgrad.KinkMonitor`; its ``bifurcating_kinks`` (exact kinks of elementwise ops with a
    nonzero incoming cotangent) are zero exactly when no kink can change the result, so
    ``bifurcating_kinks == 0`` implies ``not differs``. The converse holds unless, at every bifurcating
    kink, the kink's input does not depend on ``params`` (a bias-free convolution over a blank patch:
    its weight gradient there is ``cotangent × 0``), or the change cancels or is absorbed by rounding.

    Args:
        closure: computes and returns the scalar loss (a fresh forward pass each call; it must not call
            ``backward``: gradients are taken with :func:`torch.autograd.grad`, ``.grad`` is untouched).
        params: the tensors to differentiate with respect to.
        a: the first ``λ`` (ReLU'(0) = ``a``).
        b: the second ``λ``.
        model: optional module, to name the sites of :attr:`Bifurcation.sites` by module path.

    Returns:
        A :class:`Bifurcation` record.

    Example:
        >>> import torch
        >>> w = torch.tensor([1.0, -1.0], requires_grad=True)
        >>> x = torch.tensor([[1.0, 1.0], [2.0, 1.0]])   # the first row sits at relu's kink
        >>> result = bifurcation(lambda: torch.relu(x @ w).sum(), [w])
        >>> result.differs, result.difference_norm, result.bifurcating_kinks
        (True, 1.4142135623730951, 1)
    """
    params = list(params)
    if not params:
        raise ValueError("params is empty: nothing to differentiate")
    a, b = float(a), float(b)
    state = _rng_state()
    monitor = KinkMonitor(model)
    with monitor:
        loss, grads_a = _gradients(closure, params, a)
    _set_rng_state(state)
    _, grads_b = _gradients(closure, params, b)
    differs = not all(_same(ga, gb) for ga, gb in zip(grads_a, grads_b))
    diff_sq = sum(float((gb.double() - ga.double()).square().sum()) for ga, gb in zip(grads_a, grads_b))
    grad_sq = sum(float(ga.double().square().sum()) for ga in grads_a)
    sites = tuple(monitor.summary())
    relu_type = list(iter_records(list(sites), "lambda"))
    return Bifurcation(
        differs=differs,
        difference_norm=math.sqrt(diff_sq),
        gradient_norm=math.sqrt(grad_sq),
        a=a,
        b=b,
        loss=float(loss.double()),
        exact_kinks=sum(r.exact_kinks for r in relu_type),
        bifurcating_kinks=sum(r.bifurcating_kinks for r in relu_type),
        sites=sites,
    )
