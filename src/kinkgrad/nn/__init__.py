"""Modules with a chosen derivative at every kink: drop-in replacements for their ``torch.nn`` namesakes.

``kinkgrad.nn.ReLU(at_kink=λ)`` *is* a :class:`torch.nn.ReLU` (same constructor, parameters,
``state_dict`` keys and repr) whose derivative at 0 is ``λ``; max-pools take a tie rule
(``"first"``, ``"last"``, ``"split"``, ``"random"``). Forward values are PyTorch's bit for bit. To
swap the modules of an existing model in place, see :func:`kinkgrad.patch`.

Example:
    >>> import torch
    >>> from kinkgrad import nn as knn
    >>> act = knn.ReLU(at_kink=1.0)
    >>> isinstance(act, torch.nn.ReLU), act
    (True, ReLU(at_kink=1.0))
"""

from kinkgrad.nn._activation import (
    CELU,
    ELU,
    SELU,
    Hardshrink,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    PReLU,
    ReLU,
    ReLU6,
    RReLU,
    Softshrink,
    Threshold,
)
from kinkgrad.nn._loss import HingeEmbeddingLoss, L1Loss, MarginRankingLoss, MultiMarginLoss
from kinkgrad.nn._module import KinkModule
from kinkgrad.nn._pooling import (
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AdaptiveMaxPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)

__all__ = [
    "CELU",
    "ELU",
    "SELU",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "Hardshrink",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "HingeEmbeddingLoss",
    "KinkModule",
    "L1Loss",
    "LeakyReLU",
    "MarginRankingLoss",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MultiMarginLoss",
    "PReLU",
    "RReLU",
    "ReLU",
    "ReLU6",
    "Softshrink",
    "Threshold",
]
