"""kinkgrad: make non-differentiability in PyTorch visible, controllable and correct.

Choose the derivative at every kink of unmodified model code with :class:`kink_policy`, or explicitly
with :mod:`kinkgrad.ops` and :mod:`kinkgrad.nn`; see what PyTorch does at each kink with :func:`atlas`.

Example:
    >>> import torch, kinkgrad
    >>> x = torch.zeros(3, requires_grad=True)
    >>> with kinkgrad.kink_policy(default=1.0):
    ...     torch.relu(x).sum().backward()
    >>> x.grad
    tensor([1., 1., 1.])
"""

__version__ = "0.1.0"

from kinkgrad import nn, ops, optim, prox, smoothing
from kinkgrad._atlas import AtlasRow, atlas
from kinkgrad._audit import AuditError, AuditReport, SiteAudit, audit, load_model
from kinkgrad._bifurcation import Bifurcation, bifurcation
from kinkgrad._certified import (
    ADCheck,
    KinkSite,
    UnsupportedKinkError,
    check_ad,
    check_ad_backward,
    clarke_backward,
    clarke_grad,
)
from kinkgrad._monitor import KinkMonitor, KinkRecord
from kinkgrad._patch import PatchHandle, patch
from kinkgrad._policy import kink_policy
from kinkgrad._registry import OPS as registry
from kinkgrad._rules import TIE_RULES, KinkWarning
from kinkgrad._scratch import release as release_buffers
from kinkgrad._smooth import SmoothHandle, Smoothing, smooth
from kinkgrad.smoothing import Continuation

__all__ = [
    "TIE_RULES",
    "ADCheck",
    "AtlasRow",
    "AuditError",
    "AuditReport",
    "Bifurcation",
    "Continuation",
    "KinkMonitor",
    "KinkRecord",
    "KinkSite",
    "KinkWarning",
    "PatchHandle",
    "SiteAudit",
    "SmoothHandle",
    "Smoothing",
    "UnsupportedKinkError",
    "__version__",
    "atlas",
    "audit",
    "bifurcation",
    "check_ad",
    "check_ad_backward",
    "clarke_backward",
    "clarke_grad",
    "kink_policy",
    "load_model",
    "nn",
    "ops",
    "optim",
    "patch",
    "prox",
    "registry",
    "release_buffers",
    "smooth",
    "smoothing",
]
