"""The run folder: its layout, atomic writes, and one file per finished unit.

Layout::

    runs/NAME/IDENTITY/          default location (IDENTITY hashes experiment, config and sweep)
        config.json              resolved run: experiment, seeds, config, sweep (a valid --config file)
        run.json                 experiment module, kinkgrad version, creation time, what was combined
        env.json                 `kinkgrad env` output
        units/KEY.json           one per finished (setting, seed) unit, written atomically
        units/KEY.error.txt      traceback of a unit that failed (it is retried on the next run)
        results/TABLE.csv        tidy results, one table per record type (and .parquet with pyarrow)
        figures/NAME.png         drawn only from results/
        report.md, report.html   claims, numeric summary, figures, config, environment
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinkgrad.runner._config import ConfigError
from kinkgrad.runner._spec import RunSpec, identity_data
from kinkgrad.runner._unit import UnitOutcome

CONFIG = "config.json"
RUN = "run.json"
ENV = "env.json"
UNITS = "units"
RESULTS = "results"
FIGURES = "figures"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
_TMP_PREFIX = ".tmp-"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``path`` so that readers see the old file or the whole new one, never a part.

    Writes a temporary file in the same folder, flushes it to disk, then renames it over ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: Any) -> None:
    """Atomically write indented JSON."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


def default_folder(spec: RunSpec[Any], root: str | Path = "runs") -> Path:
    """``root/NAME/IDENTITY``: the same command always resumes in the same folder."""
    return Path(root) / spec.experiment.name / spec.identity


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    if prefix == "" and "sweep" in old and "sweep" in new:
        old, new = {**old, "sweep": dict(old["sweep"])}, {**new, "sweep": dict(new["sweep"])}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(absent)"), new.get(key, "(absent)")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} in the folder, {b!r} now")
    return out


def write_environment(folder: Path) -> None:
    """Write ``env.json``: what ``kinkgrad env`` prints, for the machine that runs the units."""
    from kinkgrad._env import environment

    write_json(folder / ENV, environment())


def prepare_folder(spec: RunSpec[Any], folder: Path) -> None:
    """Create the run folder or check that an existing one holds the same run, then record the run.

    Raises:
        ConfigError: the folder holds a different experiment, config or sweep (the message lists the
            differences), or is a non-empty folder that is not a run folder.
    """
    from kinkgrad import __version__

    config_path = folder / CONFIG
    new = spec.to_json()
    if config_path.is_file():
        old = read_json(config_path)
        old_id, new_id = identity_data(old), identity_data(new)
        if old_id != new_id:
            diffs = "; ".join(_differences(old_id, new_id)[:8]) or "the sweep axes are in another order"
            raise ConfigError(
                f"{folder} holds a different run ({diffs}); choose another --out, or omit --out to use a "
                "folder named after the config"
            )
    elif folder.is_dir() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is not empty and is not a kinkgrad run folder (no {CONFIG})")
    folder.mkdir(parents=True, exist_ok=True)
    write_json(config_path, new)
    run_path = folder / RUN
    meta = read_json(run_path) if run_path.is_file() else {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    meta.update(experiment=spec.experiment.name, module=spec.experiment.module, kinkgrad=__version__)
    write_json(run_path, meta)
    for stale in (folder / UNITS).glob(_TMP_PREFIX + "*") if (folder / UNITS).is_dir() else ():
        with contextlib.suppress(OSError):
            stale.unlink()


@dataclass(frozen=True)
class UnitFile:
    """A finished unit as stored in ``units/KEY.json``."""

    key: str
    setting: dict[str, Any]
    seed: int
    seconds: float
    tables: dict[str, list[dict[str, Any]]]


def unit_path(folder: Path, key: str) -> Path:
    """Where the unit ``key`` is stored."""
    return folder / UNITS / f"{key}.json"


def write_unit(folder: Path, outcome: UnitOutcome) -> Path:
    """Store a finished unit atomically (and forget an earlier failure), or record a failure's traceback."""
    error_path = folder / UNITS / f"{outcome.key}.error.txt"
    if outcome.error is not None:
        atomic_write(error_path, outcome.error)
        return error_path
    path = unit_path(folder, outcome.key)
    data = {
        "key": outcome.key,
        "setting": outcome.setting,
        "seed": outcome.seed,
        "seconds": outcome.seconds,
        "tables": outcome.tables,
    }
    atomic_write(path, json.dumps(data, separators=(",", ":")))
    with contextlib.suppress(FileNotFoundError):
        error_path.unlink()
    return path


def read_unit(folder: Path, key: str) -> UnitFile | None:
    """The stored unit ``key``, or ``None`` if it has not finished (or its file is unreadable)."""
    path = unit_path(folder, key)
    try:
        data = read_json(path)
        return UnitFile(data["key"], data["setting"], data["seed"], float(data["seconds"]), data["tables"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def finished_keys(folder: Path) -> set[str]:
    """Keys of the units whose result file exists."""
    units = folder / UNITS
    if not units.is_dir():
        return set()
    return {p.name[: -len(".json")] for p in units.glob("*.json") if not p.name.startswith(_TMP_PREFIX)}
