"""Activation modules with a chosen derivative at their kinks.

Each class is its ``torch.nn`` namesake (same constructor, parameters, ``state_dict`` and repr) plus
the keyword ``at_kink = λ``: at a kink the derivative is ``(1 - λ)·left + λ·right``, with ``left`` and
``right`` the one-sided derivatives; ``None`` keeps PyTorch's (or the active policy's). Forward values
are PyTorch's bit for bit.
"""

from __future__ import annotations

from typing import final

from torch import nn

from kinkgrad.nn._module import KinkModule

__all__ = [
    "CELU",
    "ELU",
    "SELU",
    "Hardshrink",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "LeakyReLU",
    "PReLU",
    "RReLU",
    "ReLU",
    "ReLU6",
    "Softshrink",
    "Threshold",
]


@final
class ReLU(KinkModule, nn.ReLU, op="relu", config=("inplace",)):
    """:class:`torch.nn.ReLU` with the derivative at 0 chosen by ``at_kink``.

    ``relu(x) = max(x, 0)``. Clarke set at ``x = 0``: ``[0, 1]``. PyTorch returns 0 there;
    ``at_kink=λ`` returns ``λ``.

    Args:
        inplace: as in :class:`torch.nn.ReLU`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.ReLU``'s, bit for bit.

    Example:
        >>> x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
        >>> ReLU(at_kink=0.3)(x).backward(torch.full((3,), 2.5))
        >>> x.grad  # 0.3 · 2.5 at the kink
        tensor([0.0000, 0.7500, 2.5000])
    """


@final
class LeakyReLU(KinkModule, nn.LeakyReLU, op="leaky_relu", config=("negative_slope", "inplace")):
    """:class:`torch.nn.LeakyReLU` with the derivative at 0 chosen by ``at_kink``.

    ``x if x > 0 else negative_slope·x``. Clarke set at 0: between ``negative_slope`` and 1. PyTorch
    returns ``negative_slope``; ``at_kink=λ`` returns ``(1 - λ)·negative_slope + λ``.

    Args:
        negative_slope, inplace: as in :class:`torch.nn.LeakyReLU`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.LeakyReLU``'s, bit for bit.

    Example:
        >>> x = torch.zeros(1, requires_grad=True)
        >>> LeakyReLU(0.1, at_kink=0.5)(x).backward(torch.full((1,), 2.0))
        >>> x.grad  # 2 · (0.5·0.1 + 0.5·1)
        tensor([1.1000])
    """


@final
class PReLU(KinkModule, nn.PReLU, op="prelu", config=("weight",)):
    """:class:`torch.nn.PReLU` with the derivative at 0 chosen by ``at_kink``.

    ``x if x > 0 else weight·x`` with a learned slope per channel. Clarke set at ``x = 0`` (in ``x``):
    between ``weight`` and 1; PyTorch returns ``weight``, ``at_kink=λ`` returns
    ``(1 - λ)·weight + λ``. The derivative in ``weight`` is 0 at ``x = 0`` whatever ``λ``.

    Args:
        num_parameters, init, device, dtype: as in :class:`torch.nn.PReLU`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.PReLU``'s, bit for bit.

    Example:
        >>> x = torch.zeros(1, requires_grad=True)
        >>> PReLU(init=0.25, at_kink=1.0)(x).backward(torch.full((1,), 2.0))
        >>> x.grad
        tensor([2.])
    """


@final
class RReLU(KinkModule, nn.RReLU, op="rrelu", config=("lower", "upper", "training", "inplace")):
    """:class:`torch.nn.RReLU` with the derivative at 0 chosen by ``at_kink`` (eval mode).

    In eval mode ``leaky_relu`` with slope ``s = (lower + upper) / 2``: Clarke set at 0 between ``s``
    and 1; PyTorch returns ``s``, ``at_kink=λ`` returns ``(1 - λ)·s + λ``. In training mode PyTorch
    draws the slopes inside its kernel, so no rule can be applied: a forward in training mode with
    ``at_kink`` set raises ``NotImplementedError`` (with ``at_kink=None`` it is PyTorch's module).

    Args:
        lower, upper, inplace: as in :class:`torch.nn.RReLU`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.RReLU``'s, bit for bit.

    Example:
        >>> x = torch.zeros(1, requires_grad=True)
        >>> RReLU(0.1, 0.3, at_kink=1.0).eval()(x).backward(torch.full((1,), 2.0))
        >>> x.grad
        tensor([2.])
    """


@final
class ReLU6(KinkModule, nn.ReLU6, op="relu6", config=("inplace",)):
    """:class:`torch.nn.ReLU6` with the derivative at 0 and at 6 chosen by ``at_kink``.

    ``min(max(x, 0), 6)``. Clarke sets: ``[0, 1]`` at 0 and at 6; PyTorch returns 0 at both.
    ``at_kink=λ`` returns ``λ`` at 0 and ``1 - λ`` at 6, as ``clamp(x, 0, 6)`` does.

    Args:
        inplace: as in :class:`torch.nn.ReLU6`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.ReLU6``'s, bit for bit.

    Example:
        >>> x = torch.tensor([0.0, 6.0], requires_grad=True)
        >>> ReLU6(at_kink=0.25)(x).backward(torch.full((2,), 2.0))
        >>> x.grad
        tensor([0.5000, 1.5000])
    """


@final
class Hardtanh(KinkModule, nn.Hardtanh, op="hardtanh", config=("min_val", "max_val", "inplace")):
    """:class:`torch.nn.Hardtanh` with the derivative at both bounds chosen by ``at_kink``.

    ``clamp(x, min_val, max_val)``. Clarke sets: ``[0, 1]`` at each bound; PyTorch returns 0 at both.
    ``at_kink=λ`` returns ``λ`` at ``min_val`` and ``1 - λ`` at ``max_val``.

    Args:
        min_val, max_val, inplace, min_value, max_value: as in :class:`torch.nn.Hardtanh`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.Hardtanh``'s, bit for bit.

    Example:
        >>> x = torch.tensor([-1.0, 1.0], requires_grad=True)
        >>> Hardtanh(at_kink=0.25)(x).backward(torch.full((2,), 2.0))
        >>> x.grad
        tensor([0.5000, 1.5000])
    """


@final
class Threshold(KinkModule, nn.Threshold, op="threshold", config=("threshold", "value", "inplace")):
    """:class:`torch.nn.Threshold` with the derivative at ``x = threshold`` chosen by ``at_kink``.

    ``x if x > threshold else value``: one-sided derivatives 0 (left) and 1 (right); continuous, with
    Clarke set ``[0, 1]``, when ``value == threshold``. PyTorch returns 0 at ``x == threshold``;
    ``at_kink=λ`` returns ``λ``.

    Args:
        threshold, value, inplace: as in :class:`torch.nn.Threshold`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.Threshold``'s, bit for bit.

    Example:
        >>> x = torch.full((1,), 0.5, requires_grad=True)
        >>> Threshold(0.5, 0.5, at_kink=0.5)(x).backward(torch.full((1,), 3.0))
        >>> x.grad
        tensor([1.5000])
    """


@final
class Hardsigmoid(KinkModule, nn.Hardsigmoid, op="hardsigmoid", config=("inplace",)):
    """:class:`torch.nn.Hardsigmoid` with the derivative at ±3 chosen by ``at_kink``.

    ``clamp(x/6 + 1/2, 0, 1)``. Clarke sets: ``[0, 1/6]`` at -3 and at 3; PyTorch returns 0 at both.
    ``at_kink=λ`` returns ``λ/6`` at -3 and ``(1 - λ)/6`` at 3.

    Args:
        inplace: as in :class:`torch.nn.Hardsigmoid`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.Hardsigmoid``'s, bit for bit.

    Example:
        >>> x = torch.tensor([-3.0, 3.0], requires_grad=True)
        >>> Hardsigmoid(at_kink=1.0)(x).backward(torch.full((2,), 6.0))
        >>> x.grad
        tensor([1., 0.])
    """


@final
class Hardswish(KinkModule, nn.Hardswish, op="hardswish", config=("inplace",)):
    """:class:`torch.nn.Hardswish` with the derivative at ±3 chosen by ``at_kink``.

    ``x · hardsigmoid(x)``. Clarke sets: ``[-1/2, 0]`` at -3 and ``[1, 3/2]`` at 3. ``at_kink=λ``
    returns ``-λ/2`` at -3 and ``(1 - λ)·3/2 + λ`` at 3.

    Args:
        inplace: as in :class:`torch.nn.Hardswish`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.Hardswish``'s, bit for bit.

    Example:
        >>> x = torch.tensor([-3.0, 3.0], requires_grad=True)
        >>> Hardswish(at_kink=1.0)(x).backward(torch.full((2,), 2.0))
        >>> x.grad
        tensor([-1.,  2.])
    """


@final
class ELU(KinkModule, nn.ELU, op="elu", config=("alpha", "inplace")):
    """:class:`torch.nn.ELU` with the derivative at 0 chosen by ``at_kink``.

    ``x if x > 0 else alpha·(exp(x) - 1)``. Clarke set at 0: between ``alpha`` and 1 (one point when
    ``alpha == 1``). PyTorch returns ``alpha``; ``at_kink=λ`` returns ``(1 - λ)·alpha + λ``.

    Args:
        alpha, inplace: as in :class:`torch.nn.ELU`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.ELU``'s, bit for bit.

    Example:
        >>> x = torch.zeros(1, requires_grad=True)
        >>> ELU(alpha=2.0, at_kink=0.5)(x).backward(torch.full((1,), 2.0))
        >>> x.grad  # 2 · (0.5·2 + 0.5·1)
        tensor([3.])
    """


@final
class SELU(KinkModule, nn.SELU, op="selu", config=("inplace",)):
    """:class:`torch.nn.SELU` with the derivative at 0 chosen by ``at_kink``.

    ``scale·elu(x, alpha)`` with SELU's constants. Clarke set at 0: between ``scale`` (right) and
    ``scale·alpha`` (left), about 1.0507 and 1.7581; ``at_kink=λ`` returns
    ``(1 - λ)·scale·alpha + λ·scale``.

    Args:
        inplace: as in :class:`torch.nn.SELU`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.SELU``'s, bit for bit.

    Example:
        >>> x = torch.zeros(1, requires_grad=True)
        >>> SELU(at_kink=1.0)(x).backward(torch.ones(1))
        >>> x.grad  # scale
        tensor([1.0507])
    """


@final
class CELU(KinkModule, nn.CELU, op="celu", config=("alpha", "inplace")):
    """:class:`torch.nn.CELU`, accepting ``at_kink`` like every kinkgrad module.

    ``max(0, x) + min(0, alpha·(exp(x/alpha) - 1))`` is continuously differentiable: both one-sided
    derivatives at 0 are 1, so every ``λ`` gives 1 (the Clarke set is ``{1}``).

    Args:
        alpha, inplace: as in :class:`torch.nn.CELU`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.CELU``'s, bit for bit.

    Example:
        >>> x = torch.zeros(1, requires_grad=True)
        >>> CELU(at_kink=0.0)(x).backward(torch.full((1,), 2.0))
        >>> x.grad
        tensor([2.])
    """


@final
class Hardshrink(KinkModule, nn.Hardshrink, op="hardshrink", config=("lambd",)):
    """:class:`torch.nn.Hardshrink` with the derivative at ``±lambd`` chosen by ``at_kink``.

    ``x if |x| > lambd else 0``: a jump at ``±lambd`` with one-sided derivatives 1 outside and 0
    inside. PyTorch returns 0 there; ``at_kink=λ`` returns ``1 - λ`` at ``-lambd`` and ``λ`` at
    ``lambd``.

    Args:
        lambd: as in :class:`torch.nn.Hardshrink`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.Hardshrink``'s, bit for bit.

    Example:
        >>> x = torch.tensor([-0.5, 0.5], requires_grad=True)
        >>> Hardshrink(at_kink=0.25)(x).backward(torch.full((2,), 2.0))
        >>> x.grad
        tensor([1.5000, 0.5000])
    """


@final
class Softshrink(KinkModule, nn.Softshrink, op="softshrink", config=("lambd",)):
    """:class:`torch.nn.Softshrink` with the derivative at ``±lambd`` chosen by ``at_kink``.

    ``x - lambd·sign(x) if |x| > lambd else 0``. Clarke sets: ``[0, 1]`` at ``±lambd``; PyTorch
    returns 0 there. ``at_kink=λ`` returns ``1 - λ`` at ``-lambd`` and ``λ`` at ``lambd``.

    Args:
        lambd: as in :class:`torch.nn.Softshrink`.
        at_kink: ``λ``; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs are ``torch.nn.Softshrink``'s, bit for bit.

    Example:
        >>> x = torch.tensor([-0.5, 0.5], requires_grad=True)
        >>> Softshrink(at_kink=0.25)(x).backward(torch.full((2,), 2.0))
        >>> x.grad
        tensor([1.5000, 0.5000])
    """
