"""Reusable temporaries for passes that only look at a tensor (the monitor's counts, max-pool tie checks).

On the CPU a fresh large allocation is served by new pages of memory, and touching them costs more than
the pass itself; so these passes write into per-thread buffers reused from call to call. A buffer up to
:data:`KEEP_BYTES` stays for the next call; a larger one serves a single call.
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor

__all__ = ["KEEP_BYTES", "scratch"]

KEEP_BYTES = 2**24
_local = threading.local()


def scratch(like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """An uninitialised contiguous tensor shaped like ``like`` (of ``dtype``, default ``like``'s), on
    storage that the next call with the same dtype and device may reuse: consume it before then.

    Example:
        >>> x = torch.randn(3, 4)
        >>> scratch(x, torch.bool).copy_(x).shape  # x != 0, written into a reused buffer
        torch.Size([3, 4])
    """
    dtype = like.dtype if dtype is None else dtype
    buffers: dict[tuple[torch.dtype, torch.device], Tensor] = _local.__dict__.setdefault("buffers", {})
    key = (dtype, like.device)
    buffer = buffers.get(key)
    if buffer is None or buffer.numel() < like.numel():
        buffer = torch.empty(like.numel(), dtype=dtype, device=like.device)
        if buffer.numel() * buffer.element_size() <= KEEP_BYTES:
            buffers[key] = buffer
    return buffer[: like.numel()].view(like.shape)
