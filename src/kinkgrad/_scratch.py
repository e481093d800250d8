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
(use counts of its storage and of its views), so that a mask made every step reuses the same pages
instead of new ones. The views handed out are kept with their buffer, by shape, so that a buffer taken
back costs no tensor operation either: measured in a CNN's training step, where each operation found
the interpreter's and PyTorch's code out of cache, slicing a view and reshaping it took 50-60 us per
call, 0.3 ms a step.
"""

from __future__ import annotations

import mmap
import sys
import threading
import time
import weakref

import torch
from torch import Tensor

__all__ = ["KEEP_BYTES", "MAX_LENT", "MAX_LENT_BYTES", "Mapped", "keep", "release", "scratch"]

KEEP_BYTES = 2**24
_local = threading.local()


def scratch(like: Tensor, dtype: torch.dtype | None = None, shape: torch.Size | None = None) -> Tensor:
    """An uninitialised contiguous tensor shaped like ``like`` (or ``shape``) of ``dtype`` (default
    ``like``'s), on ``like``'s device, on storage that the next call with the same dtype and device may
    reuse: consume it (or :func:`keep` it) before then.

    Example:
        >>> x = torch.randn(3, 4)
        >>> scratch(x, torch.bool).copy_(x).shape  # x != 0, written into a reused buffer
        torch.Size([3, 4])
    """
    dtype = like.dtype if dtype is None else dtype
    shape, device = like.shape if shape is None else shape, like.device
    try:
        pools: dict[tuple[torch.dtype, torch.device], _Pool] = _local.pools
    except AttributeError:
        pools = _local.pools = {}
    pool = pools.get((dtype, device))
    if pool is not None and pool.current is not None:
        view = pool.current.views.get(shape)
        if view is not None and view.shape == shape:  # the common case: the same shapes every step,
            return view  # no tensor op at all (the check: should an out= argument have resized it)
    n = shape.numel()
    if pool is None:
        pool = pools[(dtype, device)] = _Pool()
    current = pool.current
    if current is None or current.numel < n:
        taken = pool.reclaim(n)
        if taken is None:
            if n * dtype.itemsize > KEEP_BYTES:
                return _allocate(n, dtype, device).view(shape)
            pool.current = current = None  # (the smaller one is let go first)
            taken = _Buffer(_allocate(n, dtype, device))
        elif current is not None:
            pool.lend()  # (the smaller one waits among the lent for a smaller call)
        pool.current = current = taken
    return current.view(shape, n)


def keep(view: Tensor) -> Tensor:
    """``view``, a tensor from :func:`scratch`, for the caller to keep: later calls must not overwrite it.
    For a result found in a scratch buffer that must live on. When ``view`` fills at least half of its
    buffer, the buffer itself leaves the pool's service (no copy) until no tensor uses it any more. A
    smaller view is copied out instead, so that a small result never holds on to a large buffer."""
    pools: dict[tuple[torch.dtype, torch.device], _Pool] = getattr(_local, "pools", {})
    pool = pools.get((view.dtype, view.device))
    current = None if pool is None else pool.current
    if current is None or view.data_ptr() != current.address or view.numel() == 0:
        return view  # (not in a pool: a buffer that serves one call, or no scratch tensor at all)
    if 2 * view.numel() < current.numel:
        return view.clone()
    pool.lend()  # type: ignore[union-attr]
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


class _Buffer:
    """One buffer of a pool: its memory (``flat``) and the views of it handed out, by shape. A view is
    handed out as it is, again and again: the same tensor, no tensor operation to make it."""

    __slots__ = ("address", "flat", "numel", "storage", "views")

    def __init__(self, flat: Tensor) -> None:
        self.flat, self.numel, self.address = flat, flat.numel(), flat.data_ptr()
        self.storage = flat.untyped_storage()
        self.views: dict[torch.Size, Tensor] = {}

    def view(self, shape: torch.Size, n: int) -> Tensor:
        view = self.views.get(shape)
        if view is None or view.shape != shape:
            if len(self.views) >= _MAX_VIEWS:
                self.views.clear()
            view = self.views[shape] = self.flat[:n].view(shape)
        return view

    def idle(self) -> bool:
        """Does no tensor but this buffer's own use its memory? Each view of it is referenced by this
        buffer alone: in C++ (autograd's saved tensors, a leaf's ``.grad``: its ``_use_count``) and in
        Python (``sys.getrefcount``); and the storage only by them (a tensor made from a view holds it)."""
        if torch._C._storage_Use_Count(self.storage._cdata) != _STORAGE_USES + len(self.views):
            return False
        for view in self.views.values():
            if view._use_count() != 1 or sys.getrefcount(view) != _VIEW_REFS:  # type: ignore[attr-defined]
                return False
        return True


class _Pool:
    """One thread's buffers of one dtype and device: the one in service, and those lent out by
    :func:`keep` until no tensor uses them."""

    __slots__ = ("current", "lent", "lent_bytes")

    def __init__(self) -> None:
        self.current: _Buffer | None = None
        self.lent: list[_Buffer] = []
        self.lent_bytes = 0

    def lend(self) -> None:
        """The buffer in service leaves it, to be taken back by :meth:`reclaim` once it is free. The
        pool watches at most :data:`MAX_LENT` buffers of :data:`MAX_LENT_BYTES` in all: beyond, the
        oldest is let go (freed with the last tensor that uses it)."""
        assert self.current is not None
        self.lent.append(self.current)
        self.lent_bytes += _nbytes(self.current.flat)
        self.current = None
        while len(self.lent) > MAX_LENT or self.lent_bytes > MAX_LENT_BYTES:
            self.lent_bytes -= _nbytes(self.lent.pop(0).flat)

    def reclaim(self, n: int) -> _Buffer | None:
        """A lent buffer of at least ``n`` entries that no tensor uses any more (the smallest), if any."""
        best = None
        for buffer in self.lent:
            if buffer.numel >= n and (best is None or buffer.numel < best.numel) and buffer.idle():
                best = buffer
        if best is not None:
            self.lent.remove(best)
            self.lent_bytes -= _nbytes(best.flat)
        return best


_PRIVATE = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
"""A process's own memory: a forked child's writes are copied (the default anonymous map is shared)."""


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


MAX_LENT = 64
"""Lent buffers a pool watches (a step keeps one mask per kink site hit: a model's worth)."""
MAX_LENT_BYTES = 2**27
"""Bytes of lent buffers a pool watches, free or not (memory kept for the next step's masks)."""
_MAX_VIEWS = 64  # shapes remembered per buffer (a model has few; the dict is cleared beyond)


def _baseline() -> tuple[int, int]:
    """Use counts of an idle buffer, read as :meth:`_Buffer.idle` reads them: its storage's, less one per
    view (the buffer tensor and its storage object), and a view's ``sys.getrefcount`` in the same loop
    (the interpreter's own references differ between Python versions)."""
    buffer = _Buffer(torch.empty(2))
    buffer.view(torch.Size((2,)), 2)
    for view in buffer.views.values():
        refs = sys.getrefcount(view)
    return torch._C._storage_Use_Count(buffer.storage._cdata) - len(buffer.views), refs


_STORAGE_USES, _VIEW_REFS = _baseline()
