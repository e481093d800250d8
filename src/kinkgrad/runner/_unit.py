"""One unit of work, a (setting, seed) pair: run it anywhere and turn its records into flat table rows.

:func:`execute_unit` is what every backend calls, in this process, a local worker process or a Dask worker.
It never raises for a failing experiment: the traceback comes back in :class:`UnitOutcome`.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TABLE = "records"
_SCALARS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class UnitTask:
    """What a worker needs to run one unit (plain data, so it pickles anywhere).

    Attributes:
        experiment: the experiment's registered name.
        module: the module that registers it (imported by workers that do not know the name yet).
        config: the unit's full config as nested dicts, sweep values applied.
        setting: the sweep-axis values of this unit.
        seed: the seed.
        key: the unit's file name stem in the run folder, such as ``s0002-seed1``.
    """

    experiment: str
    module: str
    config: dict[str, Any]
    setting: dict[str, Any]
    seed: int
    key: str


@dataclass(frozen=True)
class UnitOutcome:
    """What came back from one unit.

    Attributes:
        key: the unit's key.
        setting: its sweep-axis values.
        seed: its seed.
        tables: table name to rows (flat dicts, ``seed`` and axis columns first).
        seconds: wall-clock time of the unit.
        error: the traceback if the unit failed, else ``None``.
    """

    key: str
    setting: dict[str, Any]
    seed: int
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the unit finished."""
        return self.error is None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def table_name(record: Any) -> str:
    """``records`` for dicts, the snake_case class name for dataclass records.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class TrainStep:
        ...     loss: float
        >>> table_name({"loss": 1.0}), table_name(TrainStep(1.0))
        ('records', 'train_step')
    """
    if isinstance(record, Mapping):
        return DEFAULT_TABLE
    name = type(record).__name__
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _scalar(key: str, value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    item = getattr(value, "item", None)  # NumPy scalars, one-element tensors
    if callable(item):
        try:
            out = item()
        except (ValueError, RuntimeError):
            pass
        else:
            if isinstance(out, _SCALARS):
                return out
    raise TypeError(
        f"record field {key!r} must be a scalar (bool, int, float, str, None), got {type(value)!r}"
    )


def flatten_record(record: Any) -> dict[str, Any]:
    """A record as one flat row: nested mappings become dotted columns, scalars become Python scalars.

    Example:
        >>> flatten_record({"step": 1, "loss": {"train": 0.5, "test": 0.7}})
        {'step': 1, 'loss.train': 0.5, 'loss.test': 0.7}
    """
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        record = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    if not isinstance(record, Mapping):
        raise TypeError(f"records must be dicts or dataclass instances, got {type(record)!r}")
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
            row.update({f"{key}.{k}": v for k, v in flatten_record(value).items()})
        else:
            row[str(key)] = _scalar(str(key), value)
    return row


def _row(prefix: dict[str, Any], record: Any) -> dict[str, Any]:
    body = flatten_record(record)
    for key, value in prefix.items():
        if key in body and not _same(body[key], value):
            raise ValueError(
                f"record column {key!r} = {body[key]!r} contradicts the unit's {key} = {value!r}"
            )
    return {**prefix, **{k: v for k, v in body.items() if k not in prefix}}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def execute_unit(task: UnitTask) -> UnitOutcome:
    """Run one unit: look up the experiment, rebuild its config, seed, collect records.

    Exceptions from the experiment are returned as ``UnitOutcome.error`` (a traceback string).
    """
    from kinkgrad.runner._config import config_from_dict
    from kinkgrad.runner._registry import get_experiment

    start = time.perf_counter()
    tables: dict[str, list[dict[str, Any]]] = {}
    try:
        experiment = get_experiment(task.experiment, module=task.module)
        config = config_from_dict(experiment.config, task.config)
        seed_everything(task.seed)
        prefix = {"seed": task.seed, **task.setting}
        for record in experiment.run(config, task.seed):
            tables.setdefault(table_name(record), []).append(_row(prefix, record))
    except Exception:
        return UnitOutcome(
            task.key,
            task.setting,
            task.seed,
            seconds=time.perf_counter() - start,
            error=traceback.format_exc(),
        )
    return UnitOutcome(task.key, task.setting, task.seed, tables, time.perf_counter() - start)
