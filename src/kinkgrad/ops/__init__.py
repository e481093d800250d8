"""Functional kink ops: PyTorch's forward values with the derivative at the kink chosen by ``at_kink``.

Each op has PyTorch's signature plus a keyword ``at_kink``: ``None`` keeps PyTorch's derivative (or the
active :func:`kinkgrad.kink_policy`'s); a number ``λ`` chooses ``(1-λ)·left + λ·right`` at an
elementwise kink; a tie rule (``"first"``, ``"last"``, ``"split"``, ``"random"``) chooses among tied
candidates of a selection. Each docstring states the op's Clarke set and PyTorch's own choice.

Example:
    >>> import torch
    >>> from kinkgrad import ops
    >>> x = torch.zeros(3, requires_grad=True)
    >>> (ops.relu(x, at_kink=0.5) - ops.relu(-x, at_kink=0.5)).sum().backward()
    >>> x.grad  # relu(x) - relu(-x) = x: the true derivative is 1 (PyTorch gives 0, λ = 1 gives 2)
    tensor([1., 1., 1.])
"""

from kinkgrad.ops._binary import fmax, fmin, maximum, minimum
from kinkgrad.ops._elementwise import (
    abs,
    celu,
    clamp,
    clamp_max,
    clamp_min,
    elu,
    hardshrink,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    prelu,
    relu,
    relu6,
    rrelu,
    selu,
    softshrink,
    threshold,
)
from kinkgrad.ops._losses import hinge_embedding_loss, l1_loss, margin_ranking_loss, multi_margin_loss
from kinkgrad.ops._norms import norm, vector_norm
from kinkgrad.ops._pooling import (
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
)
from kinkgrad.ops._selection import amax, amin, kthvalue, max, median, min, sort, topk

__all__ = [
    "abs",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "amax",
    "amin",
    "celu",
    "clamp",
    "clamp_max",
    "clamp_min",
    "elu",
    "fmax",
    "fmin",
    "hardshrink",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "hinge_embedding_loss",
    "kthvalue",
    "l1_loss",
    "leaky_relu",
    "margin_ranking_loss",
    "max",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "maximum",
    "median",
    "min",
    "minimum",
    "multi_margin_loss",
    "norm",
    "prelu",
    "relu",
    "relu6",
    "rrelu",
    "selu",
    "softshrink",
    "sort",
    "threshold",
    "topk",
    "vector_norm",
]
