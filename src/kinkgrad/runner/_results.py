"""Tidy result tables: combined from unit files, written as CSV (and Parquet), read back for figures.

Figures, summaries and claims see a run only through :class:`RunResults`, which :func:`load_run` builds
from the files in the run folder, so ``kinkgrad plot DIR`` redraws exactly what ``kinkgrad run`` drew.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinkgrad.runner._folder import CONFIG, RESULTS, RUN, atomic_write, read_json, read_unit, write_json
from kinkgrad.runner._registry import get_experiment
from kinkgrad.runner._spec import RunSpec, spec_from_json
from kinkgrad.runner._unit import DEFAULT_TABLE, UnitTask

if TYPE_CHECKING:
    import pandas as pd

    from kinkgrad.runner._experiment import Experiment


class RunFolderError(ValueError):
    """A folder that is not a (finished) run folder."""


def parquet_available() -> bool:
    """Whether pyarrow is importable, so tables are also written as Parquet."""
    return importlib.util.find_spec("pyarrow") is not None


@dataclass(frozen=True)
class RunResults:
    """A run as read back from its folder: what figure, summary and claims functions receive.

    Attributes:
        folder: the run folder.
        spec: the resolved run (experiment, base config, sweep axes, seeds) from ``config.json``.
        tables: table name to its tidy ``pandas.DataFrame`` (``records`` for dict records).
        meta: the contents of ``run.json`` (module, versions, compute time).
    """

    folder: Path
    spec: RunSpec[Any]
    tables: Mapping[str, pd.DataFrame]
    meta: Mapping[str, Any]

    @property
    def experiment(self) -> Experiment[Any]:
        """The experiment."""
        return self.spec.experiment

    @property
    def config(self) -> Any:
        """The base config (swept keys vary per unit: see :attr:`axes`)."""
        return self.spec.config

    @property
    def axes(self) -> tuple[str, ...]:
        """The swept keys; each is a column of every table, as is ``seed``."""
        return self.spec.axes

    @property
    def records(self) -> pd.DataFrame:
        """The ``records`` table (dict records)."""
        return self.table(DEFAULT_TABLE)

    def table(self, name: str) -> pd.DataFrame:
        """One table by name; the error lists the tables there are."""
        if name not in self.tables:
            raise KeyError(f"no table {name!r} in {self.folder}; tables: {', '.join(self.tables) or 'none'}")
        return self.tables[name]


def combine_units(folder: Path, tasks: Sequence[UnitTask], axes: Sequence[str]) -> dict[str, Path]:
    """Concatenate the units' files (in task order) into one CSV (and Parquet) file per table.

    Returns:
        Table name to the CSV path.

    Raises:
        RunFolderError: a unit file is missing, unreadable, or holds another setting or seed.
    """
    import pandas as pd

    rows: dict[str, list[dict[str, Any]]] = {}
    seconds = 0.0
    keys = [task.key for task in tasks]
    for task in tasks:
        key = task.key
        unit = read_unit(folder, key)
        if unit is None:
            raise RunFolderError(f"unit {key} has no readable result file in {folder}")
        if unit.setting != task.setting or unit.seed != task.seed:
            raise RunFolderError(
                f"unit file {key} in {folder} holds setting {unit.setting}, seed {unit.seed}; "
                f"expected {task.setting}, seed {task.seed}"
            )
        seconds += unit.seconds
        for name, table_rows in unit.tables.items():
            rows.setdefault(name, []).extend(table_rows)
    out = folder / RESULTS
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():  # tables from an earlier combination that no longer exist
        if old.suffix in (".csv", ".parquet") and old.stem not in rows:
            old.unlink()
    paths: dict[str, Path] = {}
    for name, table_rows in rows.items():
        frame = pd.DataFrame.from_records(table_rows)
        first = [c for c in ("seed", *axes) if c in frame.columns]
        frame = frame[first + [c for c in frame.columns if c not in first]]
        csv_path = out / f"{name}.csv"
        atomic_write(csv_path, frame.to_csv(index=False))
        paths[name] = csv_path
        parquet_path = out / f"{name}.parquet"
        if parquet_available():
            buffer = io.BytesIO()
            try:
                frame.to_parquet(buffer, index=False)
            except Exception:  # mixed-type columns: the CSV is the record
                parquet_path.unlink(missing_ok=True)
            else:
                atomic_write(parquet_path, buffer.getvalue())
    meta = read_json(folder / RUN)
    meta.update(combined=list(keys), tables=sorted(rows), compute_seconds=round(seconds, 3))
    write_json(folder / RUN, meta)
    return paths


def _read_table(path_csv: Path) -> pd.DataFrame:
    import pandas as pd

    parquet = path_csv.with_suffix(".parquet")
    if parquet.is_file() and parquet_available():
        return pd.read_parquet(parquet)
    return pd.read_csv(path_csv)


def load_run(folder: str | Path) -> RunResults:
    """Read a run folder's config, metadata and result tables.

    Raises:
        RunFolderError: not a run folder, or its results have not been combined yet.
        ValueError: the experiment is not registered (and its module cannot be imported).
    """
    folder = Path(folder)
    if not (folder / CONFIG).is_file() or not (folder / RUN).is_file():
        raise RunFolderError(f"{folder} is not a kinkgrad run folder (expected {CONFIG} and {RUN} in it)")
    meta = read_json(folder / RUN)
    data = read_json(folder / CONFIG)
    get_experiment(str(data["experiment"]), module=meta.get("module"))
    spec = spec_from_json(data)
    if "combined" not in meta:
        raise RunFolderError(
            f"{folder} has no combined results yet: finish the sweep with "
            f"`kinkgrad run {spec.experiment.name} --config {folder / CONFIG} --out {folder}`"
        )
    tables = {name: _read_table(folder / RESULTS / f"{name}.csv") for name in meta.get("tables", [])}
    return RunResults(folder, spec, tables, meta)
