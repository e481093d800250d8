"""Reusable temporaries for passes that only look at a tensor (kink masks, the monitor's counts, max-pool
tie checks).

On the CPU a fresh large allocation is served by new pages of memory, and touching them costs more than
the pass itself; so these passes write into per-thread buffers reused from call to call. A buffer up to
:data:`KEEP_BYTES` stays for the next call; a larger one serves a single call. The views handed out
are remembered by shape, so that a pass repeated every step with the same shapes costs no tensor
operation to get its buffer.

CPU buffers are mapped from the operating system (an anonymous ``mmap``) instead of taken from the C
heap that PyTorch's own tensors share. A long-lived block in that heap changes where the step's large
tensors land and how often the allocator hands freed memory back to the system and faults it in
again: measured on a small CNN's training step, one 1.6 MB mask buffer on the heap added 360 page faults
to the forward pass and about 1000 to the backward pass (about 2 us each), none once mapped apart.

A buffer that must outlive the next call (a kink mask saved for backward) is handed over by :func:`keep`
rather than copied; the pool takes it back for a later call once no tensor uses its memory any more
(its storage's use count), so that a mask made every step reuses the same pages instead of new ones.
"""

from __future__ import annotations

import mmap
import threading
import time
import weakref

import torch
from torch import Tensor

__all__ = ["KEEP_BYTES", "MAX_LENT", "MAX_LENT_BYTES", "Mapped", "keep", "release", "scratch"]

KEEP_BYTES = 2**24
_local = threading.local()


def scratch(like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """An uninitialised contiguous tensor shaped like ``like`` (of ``dtype``, default ``like``'s), on
    storage that the next call with the same dtype and device may reuse: consume it (or :func:`keep`
    it) before then.

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
    if pool is not None and pool.buffer is not None:
        view = pool.views.get(shape)
        if view is not None and view.shape == shape:  # the common case: the same shapes every step,
            return view  # no tensor op at all (the check: should an out= argument have resized it)
    n = shape.numel()
    if pool is None:
        pool = pools[(dtype, device)] = _Pool()
    if pool.buffer is None or pool.buffer.numel() < n:
        buffer = pool.reclaim(n)
        if buffer is None:
            if n * dtype.itemsize > KEEP_BYTES:
                return _allocate(n, dtype, device).view(shape)
            pool.buffer, pool.views = None, {}  # (the smaller one and its views are let go first)
            buffer = _allocate(n, dtype, device)
        elif pool.buffer is not None:
            pool.lend()  # (the smaller one waits among the lent for a smaller call)
        pool.buffer, pool.views = buffer, {}
    if len(pool.views) >= _MAX_VIEWS:
        pool.views.clear()
    view = pool.views[shape] = pool.buffer[:n].view(shape)
    return view


def keep(view: Tensor) -> Tensor:
    """``view``, a tensor from :func:`scratch`, for the caller to keep: later calls must not overwrite it.
    For a result found in a scratch buffer that must live on. When ``view`` fills at least half of its
    buffer, the buffer itself leaves the pool's service (no copy) until no tensor uses it any more. A
    smaller view is copied out instead, so that a small result never holds on to a large buffer."""
    pools: dict[tuple[torch.dtype, torch.device], _Pool] = getattr(_local, "pools", {})
    pool = pools.get((view.dtype, view.device))
    buffer = None if pool is None else pool.buffer
    if (
        pool is None
        or buffer is None
        or buffer.untyped_storage().data_ptr() != view.untyped_storage().data_ptr()
    ):
        return view  # (not in a pool: a buffer that serves one call, or no scratch tensor at all)
    if 2 * view.numel() < buffer.numel():
        return view.clone()
    pool.lend()
    return view


def release() -> None:
    """Give back the memory kinkgrad keeps between steps in this thread: the reused buffers of kink masks
    and of the relu rule's gradients (each is freed with the last tensor that uses it; the next call
    that needs one maps it anew). Call it in each thread that ran kinkgrad ops.

    Example:
        >>> import torch, kinkgrad
        >>> x = torch.zeros(4, requires_grad=True)
        >>> with kinkgrad.kink_policy(default=0.5):
        ...     torch.relu(x).sum().backward()
        >>> kinkgrad.release_buffers()
    """
    _local.pools = {}


class Mapped:
    """Bytes of CPU buffers mapped by :func:`scratch`, all threads: ``live`` now, ``peak`` the most at
    once since the last :meth:`reset`, and, when that asked to record, ``events``: each change as
    ``(time.time_ns(), bytes)``, the clock of ``torch.profiler``'s events (PyTorch's allocator, and so
    the profiler, does not see these buffers; the benchmarks merge them into the memory a step uses)."""

    live = 0
    peak = 0
    events: list[tuple[int, int]] | None = None
    _lock = threading.Lock()

    @classmethod
    def reset(cls, record: bool = False) -> None:
        """Start a new ``peak`` from the bytes live now, and a new list of ``events`` (``record``) or none."""
        with cls._lock:
            cls.peak = cls.live
            cls.events = [] if record else None

    @classmethod
    def _add(cls, size: int) -> None:
        with cls._lock:
            cls.live += size
            cls.peak = max(cls.peak, cls.live)
            if cls.events is not None:
                cls.events.append((time.time_ns(), size))


def _allocate(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``n`` uninitialised entries; on the CPU in memory mapped apart from the heap (see the module)."""
    size = n * dtype.itemsize
    if device.type != "cpu" or size == 0:
        return torch.empty(n, dtype=dtype, device=device)
    memory = mmap.mmap(-1, size, **_PRIVATE)
    Mapped._add(size)
    weakref.finalize(memory, Mapped._add, -size)  # (when the last tensor on it is freed)
    return torch.frombuffer(memory, dtype=dtype, count=n)


class _Pool:
    """One thread's buffers of one dtype and device: the one in service with its views by shape, and
    those lent out by :func:`keep` with the storage whose use count tells when they are free again."""

    __slots__ = ("buffer", "lent", "views")

    def __init__(self) -> None:
        self.buffer: Tensor | None = None
        self.views: dict[torch.Size, Tensor] = {}
        self.lent: list[tuple[Tensor, torch.UntypedStorage]] = []

    @property
    def lent_bytes(self) -> int:
        return sum(_nbytes(buffer) for buffer, _ in self.lent)

    def lend(self) -> None:
        """The buffer in service leaves it, to be taken back by :meth:`reclaim` once it is free. The
        pool watches at most :data:`MAX_LENT` buffers of :data:`MAX_LENT_BYTES` in all: beyond, the
        oldest is let go (freed with the last tensor that uses it)."""
        assert self.buffer is not None
        self.lent.append((self.buffer, self.buffer.untyped_storage()))
        self.buffer, self.views = None, {}
        while len(self.lent) > MAX_LENT or self.lent_bytes > MAX_LENT_BYTES:
            self.lent.pop(0)

    def reclaim(self, n: int) -> Tensor | None:
        """A lent buffer of at least ``n`` entries that no tensor uses any more (the smallest), if any."""
        free = [
            i
            for i, (buffer, storage) in enumerate(self.lent)
            # referenced by the buffer tensor and the storage object kept here, and nothing else
            if buffer.numel() >= n and torch._C._storage_Use_Count(storage._cdata) <= _IDLE_USES
        ]
        if not free:
            return None
        return self.lent.pop(min(free, key=lambda i: self.lent[i][0].numel()))[0]


_PRIVATE = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
"""A process's own memory: a forked child's writes are copied (the default anonymous map is shared)."""


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


MAX_LENT = 64
"""Lent buffers a pool watches (a step keeps one mask per kink site hit: a model's worth)."""
MAX_LENT_BYTES = 2**27
"""Bytes of lent buffers a pool watches, free or not (memory kept for the next step's masks)."""
_MAX_VIEWS = 64  # shapes remembered per buffer (a model has few; the dict is cleared beyond)
_IDLE_USES = 2  # a lent buffer's storage use count when only its pool holds it
