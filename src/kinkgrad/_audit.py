"""Audit a model's kinks before training it: where they are hit, whether they change backprop, and
whether plain backprop is a certified generalized gradient there.

:func:`audit` runs a model on a few mini-batches of a data set and measures, per batch:

1. kink statistics per call site (a :class:`~kinkgrad.KinkMonitor` around a plain PyTorch pass);
2. the bifurcation: whether backprop with every relu-type kink at ``λ = 0`` and at ``λ = 1`` returns
   different gradients (:func:`kinkgrad.bifurcation`);
3. whether plain PyTorch AD differs from the certified gradient (``kinkgrad.check_ad_backward``).

The model's state is left as it was: module buffers (batch-norm running statistics) are restored after
each batch and gradients are taken with :func:`torch.autograd.grad` (``.grad`` is untouched).
:func:`load_model` builds a model from an import path ``MODULE:FACTORY`` (the ``kinkgrad audit``
command line).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinkgrad._bifurcation import bifurcation
from kinkgrad._monitor import KinkMonitor

__all__ = ["AuditError", "AuditReport", "SiteAudit", "audit", "load_model"]


class AuditError(ValueError):
    """A model that cannot be audited: a bad import path, a failing factory, a model that rejects the data."""


@dataclass(frozen=True)
class SiteAudit:
    """Kink statistics of one call site over the audited batches.

    Attributes:
        site: module path (``features.3``) or ``path @ file.py:LINE`` (see :class:`~kinkgrad.KinkMonitor`).
        op: the kink op.
        calls, elements, exact_kinks, near_kinks, bifurcating_kinks: summed over batches (plain PyTorch
            pass; see :class:`~kinkgrad.KinkRecord`).
        batches_with_kinks: batches where the site met at least one exact kink.
        batches_bifurcating: batches where at least one of them received a nonzero cotangent.
    """

    site: str
    op: str
    calls: int
    elements: int
    exact_kinks: int
    near_kinks: int
    bifurcating_kinks: int
    batches_with_kinks: int
    batches_bifurcating: int


@dataclass(frozen=True)
class AuditReport:
    """What :func:`audit` measured.

    Attributes:
        model: a description of the model (class name, parameter count).
        data: the data set's name.
        dtype: the dtype the model ran in.
        batches: mini-batches audited.
        batch_size: examples per mini-batch.
        loss: the loss differentiated (``cross-entropy`` or ``mean square``).
        sites: per-site statistics, in the order sites were first met.
        bifurcating_batches: batches whose gradient differs between ``λ = 0`` and ``λ = 1``.
        max_relative_gap: the largest ``‖g₁ − g₀‖ / ‖g₀‖`` over those batches (0 if none).
        certified_checked: batches compared with the certified gradient (0 when not available).
        certified_differs: those where plain AD differs from it (``None`` when none was checked).
        notes: anything the reader should know (e.g. why the certified check was skipped).
    """

    model: str
    data: str
    dtype: str
    batches: int
    batch_size: int
    loss: str
    sites: tuple[SiteAudit, ...]
    bifurcating_batches: int
    max_relative_gap: float
    certified_checked: int
    certified_differs: int | None
    notes: tuple[str, ...]

    @property
    def bifurcation_frequency(self) -> float:
        """Fraction of audited batches in the bifurcation zone."""
        return self.bifurcating_batches / self.batches if self.batches else math.nan

    @property
    def certified_difference_frequency(self) -> float:
        """Fraction of checked batches where plain AD differs from the certified gradient (NaN if none)."""
        if not self.certified_checked or self.certified_differs is None:
            return math.nan
        return self.certified_differs / self.certified_checked


# ---- building the model ------------------------------------------------------------------------


def _import(module_name: str) -> ModuleType:
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise AuditError(f"no such file: {module_name!r}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
            raise AuditError(f"cannot import {module_name!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(path.stem, module)
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            raise AuditError(f"importing {module_name!r} raised {type(err).__name__}: {err}") from err
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules in the current folder are found
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise AuditError(f"cannot import module {module_name!r}: {err}") from err
        raise AuditError(f"importing {module_name!r} raised ModuleNotFoundError: {err}") from err
    except Exception as err:
        raise AuditError(f"importing {module_name!r} raised {type(err).__name__}: {err}") from err


def load_model(target: str) -> nn.Module:
    """Build a model from ``MODULE:FACTORY``.

    ``MODULE`` is a dotted module name (found on ``sys.path`` or in the current folder) or a path to a
    ``.py`` file; ``FACTORY`` is an attribute of it: a callable taking no arguments that returns an
    ``nn.Module`` (a function or a module class), or an ``nn.Module`` instance. Dots in ``FACTORY``
    reach nested attributes (``models:Zoo.small``).

    Args:
        target: the import path.

    Returns:
        The model.

    Raises:
        AuditError: a malformed path, a module that cannot be imported, a missing attribute, a factory
            that raises or returns something other than an ``nn.Module``.

    Example:
        >>> type(load_model("torch.nn:Tanh")).__name__
        'Tanh'
        >>> load_model("torch.nn:NoSuchThing")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        kinkgrad._audit.AuditError: module 'torch.nn' has no attribute 'NoSuchThing'; callables there: ...
    """
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise AuditError(f"expected MODULE:FACTORY (for example mypackage.models:make_model), got {target!r}")
    module = _import(module_name)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(
                n
                for n, v in vars(module).items()
                if not n.startswith("_") and (callable(v) or isinstance(v, nn.Module))
            )
            hint = f"; callables there: {', '.join(public[:20])}" + (" ..." if len(public) > 20 else "")
            raise AuditError(f"module {module_name!r} has no attribute {attr!r}{hint if public else ''}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise AuditError(f"{target} is a {type(obj).__name__}, not a callable that builds an nn.Module")
    try:
        model = obj()
    except Exception as err:
        raise AuditError(f"the factory {target} raised {type(err).__name__}: {err}") from err
    if not isinstance(model, nn.Module):
        raise AuditError(
            f"the factory {target} returned a {type(model).__name__}, expected a torch.nn.Module"
        )
    return model


# ---- the audit ---------------------------------------------------------------------------------


def _buffers(model: nn.Module) -> list[Tensor]:
    return [b.detach().clone() for b in model.buffers()]


def _restore(model: nn.Module, saved: Sequence[Tensor]) -> None:
    with torch.no_grad():
        for b, s in zip(model.buffers(), saved):
            b.copy_(s)


def _loss_fn(output: Any, num_classes: int) -> tuple[str, Callable[[Tensor, Tensor], Tensor]]:
    if not isinstance(output, Tensor):
        raise AuditError(
            f"the model returned a {type(output).__name__}; kinkgrad audit needs a tensor output"
        )
    if output.dim() == 2 and output.shape[1] >= num_classes and output.is_floating_point():
        return "cross-entropy", lambda out, y: F.cross_entropy(out.float() if out.dtype in _LOW else out, y)
    return (
        "mean square",
        lambda out, y: out.float().square().mean() if out.dtype in _LOW else out.square().mean(),
    )


_LOW = (torch.float16, torch.bfloat16)


def _describe(model: nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{type(model).__name__} ({n:,} parameters)"


def _certified_check() -> Callable[..., Any] | None:
    import kinkgrad

    return getattr(kinkgrad, "check_ad_backward", None)


def audit(
    model: nn.Module,
    data: Any,
    *,
    batches: int = 8,
    batch_size: int = 64,
    dtype: torch.dtype | None = None,
    flatten: bool = False,
    certified: bool = True,
) -> AuditReport:
    """Measure a model's kinks on a few mini-batches.

    For each batch :math:`B` with loss :math:`L_B`: the per-site kink counts of a plain PyTorch pass,
    whether :math:`\\nabla L_B` at ``λ = 0`` differs from ``λ = 1`` (every relu-type kink; the
    *bifurcation zone* of Bertoin et al. 2021), and whether plain AD differs from the certified
    gradient. The loss is the cross-entropy of the outputs against the labels when the output is
    ``(N, C)`` with ``C`` at least the number of classes, else the mean square of the outputs.

    Args:
        model: the model (used in its current train/eval mode; its buffers are restored after each batch).
        data: a :class:`~kinkgrad.data.Dataset` or a data set name (``digits``, ``mnist1d``,
            ``synthetic-mnist``...; loaded in ``dtype``).
        batches: mini-batches to audit (the first ``batches × batch_size`` training examples).
        batch_size: examples per mini-batch.
        dtype: convert the model and the inputs to this dtype first (``None``: the model's own dtype).
        flatten: flatten each input to a vector (for MLPs that expect ``(N, features)``).
        certified: also compare with the certified gradient (skipped, with a note, if this kinkgrad
            has no ``check_ad_backward``).

    Returns:
        An :class:`AuditReport`.

    Raises:
        AuditError: the model fails on the data, or has no parameter requiring a gradient.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10), torch.nn.ReLU())
        >>> report = audit(model, "digits", batches=2, batch_size=16)
        >>> [(s.site, s.op, s.elements) for s in report.sites], report.loss
        ([('2', 'relu', 320)], 'cross-entropy')
    """
    if batches < 1 or batch_size < 1:
        raise ValueError(f"batches and batch_size must be at least 1, got {batches} and {batch_size}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise AuditError("the model has no parameter that requires a gradient: nothing to differentiate")
    if dtype is None:
        dtype = params[0].dtype if params[0].is_floating_point() else torch.float32
    model.to(dtype)
    if isinstance(data, str):
        from kinkgrad.data import load_dataset

        sizes = {"synthetic-mnist": 10_000, "mnist1d": 4_000}
        n = batches * batch_size
        data = load_dataset(data, dtype=dtype, train_size=min(n, sizes[data]) if data in sizes else None)
    x_all, y_all = data.x_train.to(dtype), data.y_train
    available = len(y_all) // batch_size
    notes: list[str] = []
    if available < batches:
        if available == 0:
            raise ValueError(
                f"{data.name} has {len(y_all)} training examples, fewer than batch_size={batch_size}"
            )
        notes.append(
            f"{data.name} holds {available} batches of {batch_size}: audited {available}, not {batches}"
        )
        batches = available
    check = _certified_check() if certified else None
    if certified and check is None:
        notes.append("this kinkgrad has no check_ad_backward: the certified comparison was skipped")
    monitor = KinkMonitor(model)
    bifurcating, max_gap = 0, 0.0
    cert_checked, cert_differs = 0, 0
    loss_name = ""
    for b in range(batches):
        x = x_all[b * batch_size : (b + 1) * batch_size]
        y = y_all[b * batch_size : (b + 1) * batch_size]
        if flatten:
            x = x.flatten(1)
        saved = _buffers(model)
        try:
            with monitor:
                out = model(x)
        except Exception as err:
            raise AuditError(
                f"the model failed on a batch of shape {tuple(x.shape)} and dtype {x.dtype} from "
                f"{data.name}: {type(err).__name__}: {err}"
                + ("" if flatten else " (for an MLP, try --flatten)")
            ) from err
        loss_name, loss_fn = _loss_fn(out, data.num_classes)
        loss = loss_fn(out, y)
        torch.autograd.grad(loss, params, allow_unused=True)
        monitor.step()
        _restore(model, saved)

        def closure(x: Tensor = x, y: Tensor = y, loss_fn: Callable[..., Tensor] = loss_fn) -> Tensor:
            return loss_fn(model(x), y)

        gap = bifurcation(closure, params)
        _restore(model, saved)
        if gap.differs:
            bifurcating += 1
            if gap.gradient_norm > 0:
                max_gap = max(max_gap, gap.difference_norm / gap.gradient_norm)
        if check is not None:
            try:
                record = check(closure, params)
            except Exception as err:  # e.g. an op the certified engine does not support
                notes.append(f"certified check stopped at batch {b}: {type(err).__name__}: {err}")
                check = None
            else:
                cert_checked += 1
                cert_differs += not bool(record.agree)
            _restore(model, saved)
    return AuditReport(
        model=_describe(model),
        data=data.name,
        dtype=str(dtype).removeprefix("torch."),
        batches=batches,
        batch_size=batch_size,
        loss=loss_name,
        sites=_site_table(monitor),
        bifurcating_batches=bifurcating,
        max_relative_gap=max_gap,
        certified_checked=cert_checked,
        certified_differs=cert_differs if cert_checked else None,
        notes=tuple(notes),
    )


def _site_table(monitor: KinkMonitor) -> tuple[SiteAudit, ...]:
    rows: dict[tuple[str, str], list[int]] = {}
    for r in monitor.summary():
        row = rows.setdefault((r.site, r.op), [0] * 7)
        for i, v in enumerate((r.calls, r.elements, r.exact_kinks, r.near_kinks, r.bifurcating_kinks)):
            row[i] += v
        row[5] += r.exact_kinks > 0
        row[6] += r.bifurcating_kinks > 0
    return tuple(SiteAudit(site, op, *row) for (site, op), row in rows.items())
