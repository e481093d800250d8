"""Measurement helpers shared by the benchmarks: paired, interleaved timing and peak tensor memory.

Timing. The machine is small and shared, so a benchmark never times one arm and then the other: it
alternates them, so that a burst of load from elsewhere hits both arms alike. :func:`interleaved` runs
warm-up calls of both, then ``repeats`` rounds, each timing one call of each arm; the order within a
round alternates (A B, B A, A B, ...) so neither arm always runs second, right after the other one.
Garbage collection is paused while timing. It returns medians, not means: one descheduled call
should not move the result.

Memory. ``tracemalloc`` does not see PyTorch's CPU allocations, and the peak RSS of a process is
dominated by the interpreter, the torch libraries and the allocator's caching, so two arms that differ
by megabytes of tensors would look the same. :func:`peak_tensor_bytes` instead records every
allocation and free made through PyTorch's CPU allocator (``torch.profiler`` with
``profile_memory=True``) while one call runs, in time order, and returns the highest running total:
the peak of tensor memory allocated *during* the call on top of what was live before it. kinkgrad's
scratch buffers (kink masks, and the gradients of its relu rule) are mapped apart from
that allocator (see ``kinkgrad._scratch``), so the profiler does not see them: their pools are emptied
before the call, so that every buffer the call needs is mapped during it, and each mapping and unmapping
is merged, by time, into the profiler's timeline (both use ``time.time_ns()``'s clock). A buffer counts
from its mapping to its unmapping, including while it waits in its pool for the next step: memory
kinkgrad holds, not only memory a live tensor uses.
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch.profiler import ProfilerActivity, profile

from kinkgrad import _scratch

__all__ = ["PairedTiming", "interleaved", "peak_tensor_bytes"]


@dataclass(frozen=True)
class PairedTiming:
    """Medians of interleaved timings of a baseline and a candidate (seconds)."""

    baseline_s: float
    candidate_s: float
    repeats: int
    ratio_q1: float
    ratio_q3: float

    @property
    def ratio(self) -> float:
        """``median(candidate) / median(baseline)``."""
        return self.candidate_s / self.baseline_s

    def describe(self, baseline: str = "baseline", candidate: str = "candidate") -> str:
        """A one-line summary: both medians, the ratio spread over rounds, the number of rounds."""
        return (
            f"medians {baseline} {_ms(self.baseline_s)}, {candidate} {_ms(self.candidate_s)}; "
            f"per-round ratio IQR [{self.ratio_q1:.3f}, {self.ratio_q3:.3f}]; rounds {self.repeats}"
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def interleaved(
    baseline: Callable[[], object],
    candidate: Callable[[], object],
    *,
    repeats: int,
    warmup: int = 3,
) -> PairedTiming:
    """Time ``baseline`` and ``candidate`` alternately and return their medians.

    Args:
        baseline: the reference call (plain PyTorch).
        candidate: the call under test.
        repeats: rounds; each round times one call of each.
        warmup: untimed calls of each before timing.

    Returns:
        The median time of each, and the quartiles of the per-round ratio ``candidate / baseline``
        (how noisy the machine was).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        baseline()
        candidate()
    base: list[float] = []
    cand: list[float] = []
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for i in range(repeats):
            arms = ((baseline, base), (candidate, cand))
            for fn, samples in arms if i % 2 == 0 else arms[::-1]:
                start = clock()
                fn()
                samples.append((clock() - start) * 1e-9)
    finally:
        if gc_was_enabled:
            gc.enable()
    ratios = [c / b for b, c in zip(base, cand)]
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return PairedTiming(statistics.median(base), statistics.median(cand), repeats, q1, q3)


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null (C++ code writes there directly, not through sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of tensor memory allocated through PyTorch's CPU allocator while ``fn()`` runs.

    The running total starts at 0 when ``fn`` is called; frees of blocks allocated before the call are
    not recorded by the profiler (so they never lower the total). Make sure the call does not free
    memory it did not allocate, e.g. set gradients to ``None`` before it rather than inside it.
    """
    _scratch.release()  # kinkgrad's buffers: mapped anew during the call, and counted (see the module)
    gc.collect()
    _scratch.Mapped.reset(record=True)
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _stderr_silenced():  # Kineto prints a banner on start and stop
        prof.start()
    try:
        fn()
    finally:
        with _stderr_silenced():
            prof.stop()
    inner = prof.profiler
    results = None if inner is None else getattr(inner, "kineto_results", None)
    if results is None:
        raise RuntimeError("torch.profiler returned no allocation events; cannot measure memory")
    mapped = _scratch.Mapped.events or []
    _scratch.Mapped.reset()  # (stops recording)
    # one timeline: the profiler's allocations and frees, and kinkgrad's mappings, on the same clock
    deltas = sorted(
        [(e.start_ns(), e.nbytes()) for e in results.events() if e.name() == "[memory]"] + mapped,
        key=lambda pair: pair[0],
    )
    total = peak = 0
    for _, nbytes in deltas:
        total += nbytes
        peak = max(peak, total)
    return peak
