"""The network of the ReLU'(0) study: an MLP whose ReLUs take ReLU'(0) from a switchable rule.

Two chain rules are offered at the kink, with ``α`` the chosen ReLU'(0):

* ``correct`` (kinkgrad): the derivative at 0 is ``α``, so the gradient passed down is
  ``α × upstream`` (``kink_policy(relu=α)`` around PyTorch's own ``torch.relu``);
* ``published``: the rule of Bertoin et al.'s public code, which *sets* the gradient at a kink to ``α``
  whatever the upstream gradient is. It is reproduced here, and only here, by :class:`PublishedReLU`, so
  that its effect can be measured; it is not a derivative of anything.

``α`` is a number in ``[0, 1]`` or ``"random"``: a fresh ``α ~ U[0, 1]`` for each call, drawn from the
activation's own seeded generator.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kinkgrad._policy import kink_policy

__all__ = ["KinkReLU", "PublishedReLU", "Variant", "build_mlp", "kink_relus", "parse_relu_prime", "rule"]

Variant = Literal["correct", "published"]


def parse_relu_prime(text: str) -> float | None:
    """``"0.5"`` → ``0.5``; ``"random"`` → ``None``. Raises ``ValueError`` outside ``[0, 1]``.

    Example:
        >>> parse_relu_prime("1"), parse_relu_prime("random")
        (1.0, None)
    """
    if text == "random":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"relu_prime must be a number in [0, 1] or 'random', got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"relu_prime must be a number in [0, 1] or 'random', got {text!r}")
    return value


class PublishedReLU(torch.autograd.Function):
    """``relu`` whose backward at ``x = 0`` returns ``α`` itself instead of ``α × upstream``.

    .. math:: \\bar x_i = \\bar y_i\\,[x_i > 0] + \\alpha\\,[x_i = 0]

    This reproduces a chain-rule bug on purpose (the ``published`` variant of the study); it is only
    used inside the experiment.

    Example:
        >>> x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
        >>> PublishedReLU.apply(x, 1.0).backward(torch.tensor([3.0, 3.0, 3.0]))
        >>> x.grad  # 1 at the kink, not 3
        tensor([0., 1., 3.])
    """

    @staticmethod
    def forward(x: Tensor, alpha: float) -> Tensor:
        return torch.relu(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, float], output: Tensor) -> None:
        x, alpha = inputs
        ctx.save_for_backward(x)
        ctx.alpha = alpha

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
        kink = torch.full((), ctx.alpha, dtype=grad.dtype, device=grad.device)
        return torch.where(x > 0, grad, torch.where(x == 0, kink, zero)), None


class KinkReLU(nn.Module):
    """ReLU with ReLU'(0) set by :attr:`alpha` under the chain rule :attr:`variant`.

    ``alpha=None`` with ``variant="correct"`` leaves the choice to the surrounding
    :class:`~kinkgrad.kink_policy` (or PyTorch's 0): that is how :func:`kinkgrad.bifurcation` and the
    certified check drive it.

    Args:
        alpha: ReLU'(0): a number, ``"random"`` (a new draw per call) or ``None``.
        variant: ``"correct"`` or ``"published"``.
        seed: seed of the generator behind ``"random"``.
    """

    def __init__(self, alpha: float | str | None, variant: Variant, seed: int = 0) -> None:
        super().__init__()
        self.alpha = alpha
        self.variant: Variant = variant
        self.generator = torch.Generator().manual_seed(seed)

    def _draw(self) -> float | None:
        if self.alpha == "random":
            return float(torch.rand((), generator=self.generator))
        return None if self.alpha is None else float(self.alpha)

    def forward(self, x: Tensor) -> Tensor:
        alpha = self._draw()
        if self.variant == "published":
            out: Tensor = PublishedReLU.apply(x, 0.0 if alpha is None else alpha)
            return out
        if alpha is None:
            return torch.relu(x)
        with kink_policy(relu=alpha):
            return torch.relu(x)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha!r}, variant={self.variant!r}"


def build_mlp(
    inputs: int,
    hidden: Sequence[int],
    classes: int,
    batch_norm: bool,
    alpha: float | str | None,
    variant: Variant,
    seed: int = 0,
) -> nn.Sequential:
    """``Flatten, [Linear, (BatchNorm1d), KinkReLU] × len(hidden), Linear``, every ReLU with one rule.

    Example:
        >>> model = build_mlp(4, [3], 2, batch_norm=True, alpha=0.0, variant="correct")
        >>> [type(m).__name__ for m in model]
        ['Flatten', 'Linear', 'BatchNorm1d', 'KinkReLU', 'Linear']
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = inputs
    for i, size in enumerate(hidden):
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(KinkReLU(alpha, variant, seed=seed + i))
        width = size
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def kink_relus(model: nn.Module) -> dict[str, KinkReLU]:
    """The ReLU modules by path (``"3"``, ``"6"``...): the monitor's sites."""
    return {name: module for name, module in model.named_modules() if isinstance(module, KinkReLU)}


@contextmanager
def rule(model: nn.Module, alpha: float | str | None, variant: Variant) -> Iterator[None]:
    """Temporarily give every :class:`KinkReLU` of ``model`` this ``alpha`` and ``variant``."""
    relus = list(kink_relus(model).values())
    saved = [(m.alpha, m.variant) for m in relus]
    for m in relus:
        m.alpha, m.variant = alpha, variant
    try:
        yield
    finally:
        for m, (a, v) in zip(relus, saved):
            m.alpha, m.variant = a, v
