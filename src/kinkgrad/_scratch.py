"""Reusable temporaries for passes that only look at a tensor (the monitor's counts, max-pool tie checks).

On the CPU a fresh large allocation is served by new pages of memory, and touching them costs more than
the pass itself; so these passes write into per-thread buffers reused from call to call. A buffer up to
:data:`KEEP_BYTES` stays for the next call; a larger one serves a single call. The views handed out
are remembered by shape, so that a pass repeated every step with the same shapes costs no tensor
operation to get its buffer.
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor

__all__ = ["KEEP_BYTES", "keep", "scratch"]

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
    shape, device = like.shape, like.device
    try:
        pools: dict[tuple[torch.dtype, torch.device], _Pool] = _local.pools
    except AttributeError:
        pools = _local.pools = {}
    pool = pools.get((dtype, device))
    if pool is not None:
        view = pool.views.get(shape)
        if view is not None and view.shape == shape:  # the common case: the same shapes every step,
            return view  # no tensor op at all (the check: should an out= argument have resized it)
    n = shape.numel()
    if pool is None or pool.buffer.numel() < n:
        buffer = torch.empty(n, dtype=dtype, device=device)
        if n * buffer.element_size() > KEEP_BYTES:
            return buffer.view(shape)
        pool = pools[(dtype, device)] = _Pool(buffer)
    if len(pool.views) >= _MAX_VIEWS:
        pool.views.clear()
    view = pool.views[shape] = pool.buffer[:n].view(shape)
    return view


class _Pool:
    """One thread's buffer of one dtype and device, with its views by shape."""

    __slots__ = ("buffer", "views")

    def __init__(self, buffer: Tensor) -> None:
        self.buffer = buffer
        self.views: dict[torch.Size, Tensor] = {}


_MAX_VIEWS = 64  # shapes remembered per buffer (a model has few; the dict is cleared beyond)


def keep(view: Tensor) -> Tensor:
    """``view``, a tensor from :func:`scratch`, for the caller to keep: later calls must not overwrite it.
    For a result found in a scratch buffer that must live on. When ``view`` fills at least half of its
    buffer, the buffer itself leaves this thread's pools (later calls allocate anew): no copy. A smaller
    view is copied out instead, so that a small result never holds on to a large buffer."""
    pools: dict[tuple[torch.dtype, torch.device], _Pool] = getattr(_local, "pools", {})
    key = (view.dtype, view.device)
    pool = pools.get(key)
    if pool is None or pool.buffer.untyped_storage().data_ptr() != view.untyped_storage().data_ptr():
        return view  # (not in a pool: a buffer that serves one call, or no scratch tensor at all)
    if 2 * view.numel() < pool.buffer.numel():
        return view.clone()
    del pools[key]
    return view
