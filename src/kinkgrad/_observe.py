"""Observation of kink hits, for diagnostics (``KinkMonitor``).

While an observer is active, every routed kink op reports each call, whether or not a policy is active
and whether or not a gradient is recorded:

* ``output``: the tensor the op returns (a backward hook on it sees the incoming cotangent);
* ``kinks``: a boolean tensor broadcastable to ``output``: which outputs come from an input exactly at a
  kink (elementwise ops), from a tie (binary ops, reductions, pools, sorts), or from a slice with a kink
  (norms, losses);
* ``offset``: for elementwise and binary ops, each input's signed offset from its nearest kink, whose
  absolute value is the distance to it (``None`` elsewhere), from which "near kinks" are counted:
  outside any autograd graph and read only, since it may be the op's input itself (``relu``'s
  offset from its kink at 0 is ``x``; ``maximum(a, b)``'s is ``a - b``);
* ``exact``, when the op already counted it: the number of true entries of ``kinks``;
* ``span``, when the op's own pass over ``offset`` (for one kink at 0, the input itself) took it: a
  :class:`kinkgrad._native.Span`, which counts the offsets near 0 without another full pass.

Observing never changes a value or a derivative.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from torch import Tensor

from kinkgrad._native import Span


class Observer(Protocol):
    """Receives one report per kink-op call."""

    def report(
        self,
        op: str,
        output: Tensor,
        kinks: Tensor,
        offset: Tensor | None,
        exact: int | None = None,
        span: Span | None = None,
    ) -> None: ...


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


@contextmanager
def silenced() -> Iterator[None]:
    """No reports inside (for ops composed of other ops, which report once, themselves)."""
    previous = active_observer()
    _state.observer = None
    try:
        yield
    finally:
        _state.observer = previous
