"""``KinkMonitor``: count, per call site and per step, how often a model meets its kinks.

While a monitor is active, every kink op (``relu``, ``clamp``, ``maximum``, max-pools, norms, losses...
reached through PyTorch's own entry points, with or without a :class:`~kinkgrad.kink_policy`) reports
each call, and the monitor adds up four exact integer counts for the op's outputs:

* ``elements``: outputs seen;
* ``exact_kinks``: outputs whose input sits exactly at a kink (elementwise ops), at a tie (binary ops,
  reductions, max-pools, sorts), or whose slice holds a kink (norms, losses);
* ``near_kinks``: outputs whose input lies within ``near_ulps`` units in the last place of the call's
  scale from a kink, exact kinks included;
* ``bifurcating_kinks``: exact kinks whose incoming cotangent in the backward pass is nonzero, the ones
  where the choice of derivative at the kink changes what backprop returns.

Counting never changes a value or a derivative: the monitor only reads the forward masks and adds a
backward hook that returns nothing.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, final

import torch
from torch import Tensor, nn

from kinkgrad import _native
from kinkgrad._observe import Observer, active_observer, observing
from kinkgrad._scratch import scratch

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KinkMonitor", "KinkRecord"]

Count = int | Tensor
"""A running count: a Python ``int`` for CPU tensors, a 0-dim ``int64`` tensor on an accelerator
(converted to ``int`` only when a summary is asked for, so counting never synchronises the device)."""


@dataclass(frozen=True)
class KinkRecord:
    """The kink counts of one call site and one op during one step.

    Attributes:
        site: where the op was called: the module path (``features.3``) when the monitor watches a
            model and the op runs in a leaf module; ``path @ file.py:LINE`` for a functional call in a
            module's ``forward``; ``file.py:LINE`` (the first frame outside PyTorch and kinkgrad)
            without a model.
        op: the kink op's registered name (``relu``, ``max_pool2d``, ``maximum``...).
        step: the monitor's step counter when the op ran (see :meth:`KinkMonitor.step`).
        calls: how many times the op ran there during the step.
        elements: outputs seen (summed over calls).
        exact_kinks: outputs at a kink or a tie.
        near_kinks: outputs within ``near_ulps`` ulps of a kink, exact kinks included (ops that report
            no distance, such as pools and losses, count their exact kinks here).
        bifurcating_kinks: exact kinks that received a nonzero cotangent in backward passes.
    """

    site: str
    op: str
    step: int
    calls: int
    elements: int
    exact_kinks: int
    near_kinks: int
    bifurcating_kinks: int


_COUNTS = ("calls", "elements", "exact_kinks", "near_kinks", "bifurcating_kinks")


class _Tally:
    """Mutable running counts of one (site, op, step)."""

    __slots__ = _COUNTS

    def __init__(self) -> None:
        self.calls: Count = 0
        self.elements: Count = 0
        self.exact_kinks: Count = 0
        self.near_kinks: Count = 0
        self.bifurcating_kinks: Count = 0

    def values(self) -> list[int]:
        return [int(getattr(self, name)) for name in _COUNTS]


Key = tuple[str, str, int]


_LANES = 127
"""Mask bytes summed into one byte lane of a 64-bit word by :func:`_count`: 127 ones never carry into
the next lane (and never reach the sign bit)."""

_SWAR_MIN = 1 << 16
"""Masks smaller than this are counted by ``count_nonzero`` directly."""


def _count(mask: Tensor) -> Count:
    """``True`` entries of a boolean ``mask``: an ``int`` on the CPU, a device tensor elsewhere (no
    synchronisation).

    On the CPU, a contiguous mask is counted by one compiled pass (:func:`kinkgrad._native.count`).
    Without it, ``count_nonzero`` and byte sums are slow kernels (several times slower than a float
    sum of four times the bytes). A large mask is instead read as 64-bit words holding eight 0/1 bytes
    each: summing :data:`_LANES` rows of words adds each byte position separately (no carry), and the
    bytes of the few resulting words are then summed exactly. Only the tail that does not fill a whole
    block, and small or misaligned masks, go through ``count_nonzero``.
    """
    if mask.device.type != "cpu":
        return torch.count_nonzero(mask)
    fused = _native.count(mask)
    if fused is not None:
        return fused
    if mask.numel() < _SWAR_MIN:
        return int(torch.count_nonzero(mask))
    flat = mask.reshape(-1).contiguous().view(torch.uint8)
    block = 8 * _LANES
    whole = flat.numel() - flat.numel() % block
    if flat.storage_offset() % 8:
        return int(torch.count_nonzero(flat))
    lanes = flat[:whole].view(torch.int64).view(_LANES, -1).sum(0)
    total = int(lanes.view(torch.uint8).sum(dtype=torch.int64))
    if whole < flat.numel():
        total += int(torch.count_nonzero(flat[whole:]))
    return total


def _finite_max(distance: Tensor) -> Tensor:
    """The largest finite entry of ``distance`` (0 when there is none)."""
    return torch.where(torch.isfinite(distance), distance, 0).amax()


def _expanded(kinks: Tensor, output: Tensor) -> int:
    """How many outputs each entry of ``kinks`` (broadcastable to ``output``) stands for."""
    return output.numel() // max(kinks.numel(), 1)


def _transformed() -> bool:
    """Whether a compiler or a ``torch.func`` transform is tracing (nothing to count then)."""
    return torch.compiler.is_compiling() or torch._C._functorch.peek_interpreter_stack() is not None


# ---- call sites -------------------------------------------------------------------------------

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_KINKGRAD_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_INTERNAL: dict[str, bool] = {}


def _internal(filename: str) -> bool:
    """Frames of PyTorch and of kinkgrad's machinery (ops, modules, policy, monitor) are not call sites;
    kinkgrad's experiments and runner are, like any user code."""
    known = _INTERNAL.get(filename)
    if known is None:
        if filename.startswith(_TORCH_DIR) or filename.startswith("<frozen"):
            known = True
        elif filename.startswith(_KINKGRAD_DIR):
            rest = filename[len(_KINKGRAD_DIR) :]
            known = rest.startswith(("ops" + os.sep, "nn" + os.sep, "_")) or os.sep not in rest
        else:
            known = filename.endswith(os.sep + "contextlib.py")
        _INTERNAL[filename] = known
    return known


def _location(frame: FrameType | None) -> str:
    """``file.py:LINE`` of the first frame outside PyTorch and kinkgrad's machinery."""
    while frame is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{_short(frame.f_code.co_filename)}:{frame.f_lineno}"


_SHORT: dict[str, str] = {}


def _short(filename: str) -> str:
    """``filename`` relative to the working directory when it lies below it, else its base name
    (remembered per file: the site of every report is named this way)."""
    short = _SHORT.get(filename)
    if short is None:
        try:
            short = os.path.relpath(filename)
            if short.startswith(".."):
                short = os.path.basename(filename)
        except ValueError:  # another drive (Windows)
            short = os.path.basename(filename)
        _SHORT[filename] = short
    return short


# ---- the monitor -------------------------------------------------------------------------------


@final
class KinkMonitor:
    """Count kink hits per call site and per step; a context manager.

    Inside ``with monitor:`` every registered kink op reached from PyTorch's entry points (``torch.relu``,
    ``F.relu``, ``nn.ReLU``, ``torch.clamp``, ``F.max_pool2d``, ``torch.maximum``, losses, norms...)
    reports each call, whether or not a :class:`~kinkgrad.kink_policy` is active and whether or not a
    gradient is recorded. For each call with outputs :math:`y_i`, inputs :math:`x_i` and incoming
    cotangents :math:`\\bar y_i` the monitor adds

    .. math::

        \\text{exact} = \\#\\{i : x_i \\in K\\}, \\qquad
        \\text{near} = \\#\\{i : d(x_i, K) \\le k\\,\\varepsilon\\,s\\}, \\qquad
        \\text{bifurcating} = \\#\\{i : x_i \\in K,\\ \\bar y_i \\ne 0\\},

    where :math:`K` is the op's kink set (a tie, for multi-input ops), :math:`d(x_i, K)` the distance the
    op reports (elementwise ops: to the nearest kink; binary ops: :math:`|a_i - b_i|`),
    :math:`k` = ``near_ulps``, :math:`\\varepsilon` the machine epsilon of the input's dtype
    (``torch.finfo(dtype).eps``: :math:`2^{-10}` for float16, :math:`2^{-7}` bfloat16, :math:`2^{-23}`
    float32, :math:`2^{-52}` float64) and :math:`s` the call's scale: its largest finite distance
    (for ``relu``, :math:`\\max_i |x_i|`; for ``maximum(a, b)``, :math:`\\max_i |a_i - b_i|`). ``near``
    includes ``exact``; ops that report no distance (pools, sorts, norms, losses) count
    ``near = exact``. Bifurcating kinks are
    counted by a hook on the op's output, once per backward pass through it (``retain_graph`` and a
    second backward count again), and credited to the step of the forward pass.

    Steps: counts go to the monitor's current step, 0 at first; :meth:`step` starts the next one (call it
    once per training iteration, e.g. after ``optimizer.step()``). Re-entering the same monitor keeps
    counting. Under ``torch.compile`` or ``torch.func`` transforms nothing is counted. Monitors nest:
    an inner monitor also passes each report on to the outer one.

    Args:
        model: a module whose submodules name the call sites (``features.3``); without it, sites are
            source locations of the calling code.
        near_ulps: ``k`` above, the width of the "near" band in units of ``ε·s``.

    Example:
        >>> import torch
        >>> x = torch.tensor([-1.0, 0.0, 0.0, 2.0], requires_grad=True)
        >>> model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU())
        >>> with KinkMonitor(model) as monitor:
        ...     y = model(x)
        >>> y.backward(torch.tensor([5.0, 5.0, 0.0, 5.0]))  # the second zero gets no cotangent
        >>> [(r.site, r.op, r.elements, r.exact_kinks, r.bifurcating_kinks) for r in monitor.summary()]
        [('1', 'relu', 4, 2, 1)]
    """

    def __init__(self, model: nn.Module | None = None, near_ulps: float = 4) -> None:
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module or None, got {type(model).__name__}")
        if (
            isinstance(near_ulps, bool)
            or not isinstance(near_ulps, (int, float))
            or not 0 <= near_ulps < math.inf  # (an infinite band times a zero scale is NaN)
        ):
            raise ValueError(f"near_ulps must be a finite number >= 0, got {near_ulps!r}")
        self.model = model
        self.near_ulps = float(near_ulps)
        self._step = 0
        self._tallies: dict[Key, _Tally] = {}
        self._lock = threading.Lock()  # backward hooks may run on autograd's worker threads
        self._paths: dict[int, tuple[nn.Module, str, bool]] = {}  # id -> (module, path, is a leaf)
        self._contexts: list[Any] = []
        self._outer: list[Observer | None] = []

    # ---- context manager ----

    def __enter__(self) -> KinkMonitor:
        if self.model is not None and not self._contexts:  # (the model's structure may have changed)
            self._paths = {
                id(module): (module, path, next(iter(module.children()), None) is None)
                for path, module in self.model.named_modules()
            }
        self._outer.append(active_observer())
        context = observing(self)
        context.__enter__()
        self._contexts.append(context)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        context = self._contexts.pop()
        self._outer.pop()
        context.__exit__(kind, error, trace)

    # ---- counting ----

    def _module(self, frame: FrameType | None) -> tuple[str, bool] | None:
        """``(path, is a leaf)`` of the innermost module of the model whose call is on the stack.

        Every module call runs ``Module._call_impl(self, ...)`` and then ``forward(self, ...)``, so the
        stack itself says which modules are running: no hooks on the model, which would cost every
        module call (and their registration every ``with monitor:``) rather than only kink-op calls.
        """
        while frame is not None:
            code = frame.f_code
            if code.co_argcount and code.co_varnames[0] == "self":
                this = frame.f_locals.get("self")
                entry = self._paths.get(id(this))
                if entry is not None and entry[0] is this:
                    return entry[1], entry[2]
            frame = frame.f_back
        return None

    def _site(self) -> str:
        caller = sys._getframe(2)
        running = self._module(caller) if self._paths else None
        if running is None:
            return _location(caller)
        path, leaf = running
        if leaf:
            return path
        where = _location(caller)
        return f"{path} @ {where}" if path else where

    def report(
        self,
        op: str,
        output: Tensor,
        kinks: Tensor,
        offset: Tensor | None,
        exact: int | None = None,
        span: _native.Span | None = None,
    ) -> None:
        """Count one op call (called by the ops, with the arguments described in :mod:`kinkgrad._observe`)."""
        outer = self._outer[-1] if self._outer else None
        if _transformed():
            if outer is not None:
                outer.report(op, output, kinks, offset, exact, span)
            return
        with torch._C.DisableTorchFunction():  # our own arithmetic is not routed or reported
            key = (self._site(), op, self._step)
            kinks = kinks.detach()
            repeat = _expanded(kinks, output)
            counted: Count = _count(kinks) if exact is None else exact
            if repeat != 1:
                counted = counted * repeat
            near: Count = counted
            if offset is not None and offset.numel() > 0:
                near = self._near(offset.detach(), counted, span)
            with self._lock:
                tally = self._tallies.get(key)
                if tally is None:
                    tally = self._tallies[key] = _Tally()
                tally.calls += 1
                tally.elements += output.numel()
                tally.exact_kinks += counted
                tally.near_kinks += near
            if output.requires_grad and not (isinstance(counted, int) and counted == 0):
                output.register_hook(self._cotangent_hook(tally, kinks))
        if outer is not None:
            outer.report(op, output, kinks, offset, exact, span)

    def _near(self, offset: Tensor, exact: Count, span: _native.Span | None = None) -> Count:
        """Entries with ``|offset| <= k·ε·s`` (see the class docstring): from the ``span`` the op took of
        the offset in its own pass where it gave one (reading only the blocks that hold a near entry),
        else one or two compiled passes (:func:`kinkgrad._native.near`) where they apply; otherwise
        counted on the CPU with float kernels and casts into reused buffers, several times cheaper there
        than ``<=`` comparisons.

        With no exact kink (the usual case away from sparse data), one ``abs`` pass and one ``aminmax``
        give the scale and the smallest distance; when that is beyond the tolerance, nothing is near and
        the count is skipped. With exact kinks (some distance is 0), the scale comes from ``aminmax`` of
        the signed offsets, with no ``abs`` pass. Then ``hardshrink`` keeps exactly the offsets beyond
        the tolerance (NaN included) nonzero, and those are counted."""
        eps = self.near_ulps * torch.finfo(offset.dtype).eps
        if span is not None:
            return span.near(eps)
        fused = _native.near(offset, eps)
        if fused is not None:
            return fused
        if offset.device.type != "cpu":  # no synchronisation
            distance = offset.abs()
            return _count(distance <= _finite_max(distance) * eps)
        if exact == 0:
            offset = torch.abs(offset, out=scratch(offset))
        lo, hi = (float(v) for v in torch.aminmax(offset))
        scale = max(-lo, hi)
        if not math.isfinite(scale):
            scale = float(_finite_max(offset.abs()))
        tolerance = scale * eps
        if exact == 0 and lo > tolerance:
            return 0
        beyond = torch.hardshrink(offset, tolerance, out=scratch(offset))
        return offset.numel() - _count(scratch(offset, torch.bool).copy_(beyond))

    def _cotangent_hook(self, tally: _Tally, kinks: Tensor) -> Callable[[Tensor], None]:
        def hook(grad: Tensor) -> None:
            with torch._C.DisableTorchFunction():
                hit: Count | None = _native.hits(grad, kinks)
                if hit is None:
                    nonzero = scratch(grad, torch.bool).copy_(grad)  # NaN cotangents count as nonzero
                    hit = _count(nonzero.logical_and_(kinks))
            with self._lock:
                tally.bifurcating_kinks += hit

        return hook

    # ---- steps and results ----

    @property
    def current_step(self) -> int:
        """The step that counts go to now."""
        return self._step

    def step(self) -> int:
        """Start the next step: later calls are counted under it. Returns its number."""
        self._step += 1
        return self._step

    def reset(self) -> None:
        """Forget every count and go back to step 0."""
        with self._lock:
            self._tallies.clear()
        self._step = 0

    def summary(self) -> list[KinkRecord]:
        """One record per (site, op, step), in the order sites were first met within each step.

        Returns:
            Typed records with exact integer counts (accelerator counts are synchronised here).
        """
        with self._lock:
            items = list(self._tallies.items())
        order = {key: i for i, (key, _) in enumerate(items)}
        items.sort(key=lambda item: (item[0][2], order[item[0]]))
        return [KinkRecord(site, op, step, *tally.values()) for (site, op, step), tally in items]

    def totals(self) -> dict[str, KinkRecord]:
        """Counts summed over steps, per site (``step`` is the number of steps seen there).

        Returns:
            Site to one record (of the first op met there; ``op`` joins the names if several ran).
        """
        out: dict[str, list[Any]] = {}
        ops: dict[str, list[str]] = {}
        for record in self.summary():
            row = out.setdefault(record.site, [0] * 6)
            row[0] += 1
            for i, name in enumerate(_COUNTS, start=1):
                row[i] += getattr(record, name)
            names = ops.setdefault(record.site, [])
            if record.op not in names:
                names.append(record.op)
        return {site: KinkRecord(site, "+".join(ops[site]), row[0], *row[1:]) for site, row in out.items()}

    def to_dataframe(self) -> pd.DataFrame:
        """The summary as a ``pandas.DataFrame`` (one row per record; needs pandas).

        Raises:
            ImportError: pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - pandas is a dev dependency
            raise ImportError("KinkMonitor.to_dataframe needs pandas: pip install pandas") from err
        columns = [f.name for f in fields(KinkRecord)]
        return pd.DataFrame([asdict(r) for r in self.summary()], columns=columns)

    def all_reduce(self, group: Any = None) -> list[KinkRecord]:
        """Sum the counts over the ranks of a ``torch.distributed`` process group, in place.

        Every rank must call it (it is a collective). Sites met on some ranks only are added on the
        others. After it, every rank holds the same counts.

        Args:
            group: the process group (default: the world).

        Returns:
            The summed :meth:`summary`.

        Raises:
            RuntimeError: ``torch.distributed`` is not initialised.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("KinkMonitor.all_reduce needs an initialised torch.distributed process group")
        with self._lock:
            local = {key: tally.values() for key, tally in self._tallies.items()}
        gathered: list[Any] = [None] * dist.get_world_size(group)
        dist.all_gather_object(gathered, list(local), group=group)
        keys: dict[Key, None] = {}
        for rank_keys in gathered:
            for key in rank_keys:
                keys.setdefault((str(key[0]), str(key[1]), int(key[2])), None)
        union = list(keys)
        device = torch.device("cpu")
        if dist.get_backend(group) == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        table = torch.tensor(
            [local.get(key, [0] * len(_COUNTS)) for key in union], dtype=torch.int64, device=device
        ).reshape(len(union), len(_COUNTS))
        dist.all_reduce(table, op=dist.ReduceOp.SUM, group=group)
        with self._lock:
            self._tallies.clear()
            for key, row in zip(union, table.tolist()):
                tally = _Tally()
                for name, value in zip(_COUNTS, row):
                    setattr(tally, name, int(value))
                self._tallies[key] = tally
        return self.summary()

    def __repr__(self) -> str:
        model = "None" if self.model is None else type(self.model).__name__
        return f"KinkMonitor(model={model}, near_ulps={self.near_ulps:g}, step={self._step})"


def iter_records(records: list[KinkRecord], op_kind: str | None = None) -> Iterator[KinkRecord]:
    """The records whose op is of ``op_kind`` (``"lambda"`` or ``"ties"``; ``None``: all)."""
    from kinkgrad._registry import OPS

    for record in records:
        spec = OPS.get(record.op)
        if op_kind is None or (spec is not None and spec.kind == op_kind):
            yield record
