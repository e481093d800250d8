"""Max-pooling modules with ties resolved by a rule.

Each class is its ``torch.nn`` namesake (same constructor, ``state_dict`` and repr) plus the keyword
``at_kink``, a tie rule for windows whose maximum is attained more than once. Forward values and
indices are PyTorch's bit for bit.
"""

from __future__ import annotations

from typing import final

from torch import nn

from kinkgrad.nn._module import KinkModule

__all__ = [
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
]


@final
class MaxPool1d(
    KinkModule,
    nn.MaxPool1d,
    op="max_pool1d",
    config=("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
):
    """:class:`torch.nn.MaxPool1d` with ties in a window resolved by ``at_kink``.

    The maximum over each window of a 1-d max pooling.
    A window whose maximum is attained by several entries is a tie; its Clarke set is the simplex over
    the tied entries. PyTorch sends the whole gradient to the first of them; ``at_kink`` is a tie rule:
    ``"first"``, ``"last"``, ``"split"`` (even shares) or ``"random"`` (one tied entry, drawn from the
    active policy's seeded generator, else from the global RNG).

    Args:
        kernel_size, stride, padding, dilation, return_indices, ceil_mode: as in
            :class:`torch.nn.MaxPool1d`.
        at_kink: a tie rule; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs (and indices) are ``torch.nn.MaxPool1d``'s, bit for bit.

    Example:
        >>> x = torch.ones((1, 1, 2), requires_grad=True)
        >>> MaxPool1d(2, at_kink="split")(x).backward(torch.full((1, 1, 1), 2.0))
        >>> x.grad.flatten()  # 2 / 2 to each tied entry
        tensor([1., 1.])
    """


@final
class AdaptiveMaxPool1d(
    KinkModule, nn.AdaptiveMaxPool1d, op="adaptive_max_pool1d", config=("output_size", "return_indices")
):
    """:class:`torch.nn.AdaptiveMaxPool1d` with ties in a window resolved by ``at_kink``.

    The maximum over each of PyTorch's adaptive windows (1-d).
    A window whose maximum is attained by several entries is a tie; its Clarke set is the simplex over
    the tied entries. PyTorch sends the whole gradient to the first of them; ``at_kink`` is a tie rule:
    ``"first"``, ``"last"``, ``"split"`` (even shares) or ``"random"`` (one tied entry, drawn from the
    active policy's seeded generator, else from the global RNG).

    Args:
        output_size, return_indices: as in :class:`torch.nn.AdaptiveMaxPool1d`.
        at_kink: a tie rule; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs (and indices) are ``torch.nn.AdaptiveMaxPool1d``'s, bit for bit.

    Example:
        >>> x = torch.ones((1, 1, 2), requires_grad=True)
        >>> AdaptiveMaxPool1d(1, at_kink="split")(x).backward(torch.full((1, 1, 1), 2.0))
        >>> x.grad.flatten()  # 2 / 2 to each tied entry
        tensor([1., 1.])
    """


@final
class MaxPool2d(
    KinkModule,
    nn.MaxPool2d,
    op="max_pool2d",
    config=("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
):
    """:class:`torch.nn.MaxPool2d` with ties in a window resolved by ``at_kink``.

    The maximum over each window of a 2-d max pooling.
    A window whose maximum is attained by several entries is a tie; its Clarke set is the simplex over
    the tied entries. PyTorch sends the whole gradient to the first of them; ``at_kink`` is a tie rule:
    ``"first"``, ``"last"``, ``"split"`` (even shares) or ``"random"`` (one tied entry, drawn from the
    active policy's seeded generator, else from the global RNG).

    Args:
        kernel_size, stride, padding, dilation, return_indices, ceil_mode: as in
            :class:`torch.nn.MaxPool2d`.
        at_kink: a tie rule; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs (and indices) are ``torch.nn.MaxPool2d``'s, bit for bit.

    Example:
        >>> x = torch.ones((1, 1, 2, 2), requires_grad=True)
        >>> MaxPool2d(2, at_kink="split")(x).backward(torch.full((1, 1, 1, 1), 2.0))
        >>> x.grad.flatten()  # 2 / 4 to each tied entry
        tensor([0.5000, 0.5000, 0.5000, 0.5000])
    """


@final
class AdaptiveMaxPool2d(
    KinkModule, nn.AdaptiveMaxPool2d, op="adaptive_max_pool2d", config=("output_size", "return_indices")
):
    """:class:`torch.nn.AdaptiveMaxPool2d` with ties in a window resolved by ``at_kink``.

    The maximum over each of PyTorch's adaptive windows (2-d).
    A window whose maximum is attained by several entries is a tie; its Clarke set is the simplex over
    the tied entries. PyTorch sends the whole gradient to the first of them; ``at_kink`` is a tie rule:
    ``"first"``, ``"last"``, ``"split"`` (even shares) or ``"random"`` (one tied entry, drawn from the
    active policy's seeded generator, else from the global RNG).

    Args:
        output_size, return_indices: as in :class:`torch.nn.AdaptiveMaxPool2d`.
        at_kink: a tie rule; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs (and indices) are ``torch.nn.AdaptiveMaxPool2d``'s, bit for bit.

    Example:
        >>> x = torch.ones((1, 1, 2, 2), requires_grad=True)
        >>> AdaptiveMaxPool2d(1, at_kink="split")(x).backward(torch.full((1, 1, 1, 1), 2.0))
        >>> x.grad.flatten()  # 2 / 4 to each tied entry
        tensor([0.5000, 0.5000, 0.5000, 0.5000])
    """


@final
class MaxPool3d(
    KinkModule,
    nn.MaxPool3d,
    op="max_pool3d",
    config=("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
):
    """:class:`torch.nn.MaxPool3d` with ties in a window resolved by ``at_kink``.

    The maximum over each window of a 3-d max pooling.
    A window whose maximum is attained by several entries is a tie; its Clarke set is the simplex over
    the tied entries. PyTorch sends the whole gradient to the first of them; ``at_kink`` is a tie rule:
    ``"first"``, ``"last"``, ``"split"`` (even shares) or ``"random"`` (one tied entry, drawn from the
    active policy's seeded generator, else from the global RNG).

    Args:
        kernel_size, stride, padding, dilation, return_indices, ceil_mode: as in
            :class:`torch.nn.MaxPool3d`.
        at_kink: a tie rule; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs (and indices) are ``torch.nn.MaxPool3d``'s, bit for bit.

    Example:
        >>> x = torch.ones((1, 1, 1, 2, 2), requires_grad=True)
        >>> MaxPool3d((1, 2, 2), at_kink="split")(x).backward(torch.full((1, 1, 1, 1, 1), 2.0))
        >>> x.grad.flatten()  # 2 / 4 to each tied entry
        tensor([0.5000, 0.5000, 0.5000, 0.5000])
    """


@final
class AdaptiveMaxPool3d(
    KinkModule, nn.AdaptiveMaxPool3d, op="adaptive_max_pool3d", config=("output_size", "return_indices")
):
    """:class:`torch.nn.AdaptiveMaxPool3d` with ties in a window resolved by ``at_kink``.

    The maximum over each of PyTorch's adaptive windows (3-d).
    A window whose maximum is attained by several entries is a tie; its Clarke set is the simplex over
    the tied entries. PyTorch sends the whole gradient to the first of them; ``at_kink`` is a tie rule:
    ``"first"``, ``"last"``, ``"split"`` (even shares) or ``"random"`` (one tied entry, drawn from the
    active policy's seeded generator, else from the global RNG).

    Args:
        output_size, return_indices: as in :class:`torch.nn.AdaptiveMaxPool3d`.
        at_kink: a tie rule; ``None`` keeps PyTorch's derivative (or the active policy's).

    Returns:
        A module whose outputs (and indices) are ``torch.nn.AdaptiveMaxPool3d``'s, bit for bit.

    Example:
        >>> x = torch.ones((1, 1, 1, 2, 2), requires_grad=True)
        >>> AdaptiveMaxPool3d((1, 1, 1), at_kink="split")(x).backward(torch.full((1, 1, 1, 1, 1), 2.0))
        >>> x.grad.flatten()  # 2 / 4 to each tied entry
        tensor([0.5000, 0.5000, 0.5000, 0.5000])
    """
