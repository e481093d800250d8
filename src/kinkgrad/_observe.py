"""Observation of kink hits, for diagnostics (``KinkMonitor``).

While an observer is active, every routed kink op reports each call, whether or not a policy is active
and whether or not a gradient is recorded:

* ``output``: the tensor the op returns (a backward hook on it sees the incoming cotangent);
* ``kinks``: a boolean tensor broadcastable to ``output``: which outputs come from an input exactly at a
  kink (elementwise ops), from a tie (binary ops, reductions, pools, sorts), or from a slice with a kink
  (norms, losses);
* ``distance``: for elementwise and binary ops, each input's distance to its nearest kink (``None``
  elsewhere), from which "near kinks" are counted: a fresh tensor made for the observers, outside
  any autograd graph, which an observer may overwrite once it has passed the report on.

Observing never changes a value or a derivative.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from torch import Tensor


class Observer(Protocol):
    """Receives one report per kink-op call."""

    def report(self, op: str, output: Tensor, kinks: Tensor, distance: Tensor | None) -> None: ...


_state = threading.local()


def active_observer() -> Observer | None:
    """The observer of this thread, if any."""
    observer: Observer | None = getattr(_state, "observer", None)
    return observer


@contextmanager
def observing(observer: Observer) -> Iterator[None]:
    """Route every registered PyTorch entry point to kinkgrad's ops and report each call to ``observer``."""
    from kinkgrad._policy import routing

    previous = active_observer()
    _state.observer = observer
    try:
        with routing():
            yield
    finally:
        _state.observer = previous


def report(op: str, output: Tensor, kinks: Tensor, distance: Tensor | None = None) -> None:
    """Called by the ops; a no-op without an observer."""
    observer = active_observer()
    if observer is not None:
        observer.report(op, output, kinks, distance)


@contextmanager
def silenced() -> Iterator[None]:
    """No reports inside (for ops composed of other ops, which report once, themselves)."""
    previous = active_observer()
    _state.observer = None
    try:
        yield
    finally:
        _state.observer = previous
