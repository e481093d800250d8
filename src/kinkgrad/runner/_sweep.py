"""A sweep: run every unfinished (setting, seed) unit, store each as it finishes, then combine and render.

Resuming is the same call: units whose file exists are skipped, so a killed sweep loses at most the units
that were running, and a finished sweep does no work at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinkgrad.runner._backend import Backend, LocalBackend
from kinkgrad.runner._folder import (
    ENV,
    REPORT_HTML,
    REPORT_MD,
    RESULTS,
    RUN,
    default_folder,
    finished_keys,
    prepare_folder,
    read_json,
    write_environment,
    write_unit,
)
from kinkgrad.runner._render import Rendered, render_run
from kinkgrad.runner._results import combine_units
from kinkgrad.runner._spec import RunSpec, resolve_run
from kinkgrad.runner._unit import UnitOutcome


class SweepFailedError(RuntimeError):
    """Some units of a sweep raised; the finished ones are kept and the failed ones rerun next time."""


@dataclass(frozen=True)
class UnitFailure:
    """A unit that raised.

    Attributes:
        key: the unit's key.
        setting: its sweep-axis values.
        seed: its seed.
        error: the traceback.
        path: the file in ``units/`` holding the traceback.
    """

    key: str
    setting: dict[str, Any]
    seed: int
    error: str
    path: Path


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did.

    Attributes:
        folder: the run folder.
        total: number of units in the sweep.
        finished_before: units already finished when the sweep started (skipped).
        ran: units finished by this call.
        failures: units that raised in this call.
        rendered: figures and report, if the tables were (re)combined and rendered by this call.
    """

    folder: Path
    total: int
    finished_before: int
    ran: int
    failures: tuple[UnitFailure, ...]
    rendered: Rendered | None

    @property
    def complete(self) -> bool:
        """Whether every unit has finished."""
        return not self.failures

    @property
    def nothing_to_do(self) -> bool:
        """Whether the sweep was already finished and combined, so this call did no work."""
        return self.ran == 0 and not self.failures and self.rendered is None

    @property
    def report_md(self) -> Path:
        """The Markdown report."""
        return self.folder / REPORT_MD

    @property
    def report_html(self) -> Path:
        """The self-contained HTML report."""
        return self.folder / REPORT_HTML

    def raise_for_failures(self) -> None:
        """Raise :class:`SweepFailedError` if any unit failed (the message shows the first traceback)."""
        if self.failures:
            first = self.failures[0]
            raise SweepFailedError(
                f"{len(self.failures)} of {self.total} units failed (tracebacks in {self.folder / 'units'}); "
                f"the first, {first.key}:\n{first.error}"
            )


def _up_to_date(folder: Path, keys: Sequence[str]) -> bool:
    meta = read_json(folder / RUN)
    if meta.get("combined") != list(keys) or meta.get("render_problems", ["never rendered"]):
        return False
    tables_there = all((folder / RESULTS / f"{name}.csv").is_file() for name in meta.get("tables", []))
    return tables_there and (folder / REPORT_MD).is_file() and (folder / REPORT_HTML).is_file()


def run_sweep(
    spec: RunSpec[Any],
    folder: str | Path,
    *,
    backend: Backend | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_unit: Callable[[UnitOutcome], None] | None = None,
) -> SweepResult:
    """Run the unfinished units of ``spec`` into ``folder``, then combine the tables and render the report.

    Args:
        spec: the resolved run (see :func:`resolve_run`).
        folder: the run folder; created, or checked to hold the same run.
        backend: where units run (default: this process).
        on_start: called once with ``(total units, units to run)`` before any runs (e.g. to size a progress
            bar).
        on_unit: called with each outcome as it arrives (already stored in the folder).

    Returns:
        A :class:`SweepResult`. Units that raise are reported in ``failures``, not raised: the rest of the
        sweep still runs; call :meth:`SweepResult.raise_for_failures` to turn them into an exception.
    """
    folder = Path(folder)
    backend = backend or LocalBackend()
    prepare_folder(spec, folder)
    tasks = spec.units()
    done = finished_keys(folder)
    pending = [task for task in tasks if task.key not in done]
    if pending or not (folder / ENV).is_file():
        write_environment(folder)
    if on_start is not None:
        on_start(len(tasks), len(pending))
    failures: list[UnitFailure] = []
    ran = 0
    if pending:
        for outcome in backend.run(pending):
            path = write_unit(folder, outcome)
            if outcome.error is None:
                ran += 1
            else:
                failures.append(UnitFailure(outcome.key, outcome.setting, outcome.seed, outcome.error, path))
            if on_unit is not None:
                on_unit(outcome)
    keys = [task.key for task in tasks]
    finished_before = len(tasks) - len(pending)
    if failures:
        failures.sort(key=lambda f: keys.index(f.key))
        return SweepResult(folder, len(tasks), finished_before, ran, tuple(failures), None)
    if not pending and _up_to_date(folder, keys):
        return SweepResult(folder, len(tasks), finished_before, 0, (), None)
    combine_units(folder, tasks, spec.axes)
    return SweepResult(folder, len(tasks), finished_before, ran, (), render_run(folder))


def run_experiment(
    name: str,
    *,
    out: str | Path | None = None,
    root: str | Path = "runs",
    backend: Backend | None = None,
    quick: bool = False,
    config_file: str | Path | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    sweep: Sequence[str] | Mapping[str, Any] = (),
    seeds: int | Sequence[int] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_unit: Callable[[UnitOutcome], None] | None = None,
) -> SweepResult:
    """Resolve, run and report an experiment: ``kinkgrad run`` as a function.

    Args:
        name: the experiment.
        out: the run folder (default ``root/NAME/IDENTITY``, so the same call resumes in the same place).
        root: parent of default run folders.
        backend: where units run (default: this process).
        quick, config_file, overrides, sweep, seeds: as for :func:`resolve_run`.
        on_start, on_unit: progress callbacks, as for :func:`run_sweep`.

    Example:
        >>> from dataclasses import dataclass
        >>> import tempfile
        >>> from kinkgrad.runner import experiment, unregister_experiment
        >>> @dataclass(frozen=True)
        ... class Config:
        ...     steps: int = 3
        >>> @experiment("doc-steps", config=Config, sweep={"steps": [2, 3]})
        ... def steps(config: Config, seed: int):
        ...     for step in range(config.steps):
        ...         yield {"step": step, "value": 0.5**step}
        >>> tmp = tempfile.TemporaryDirectory()
        >>> result = run_experiment("doc-steps", out=tmp.name + "/run", seeds=2)
        >>> result.total, result.ran, result.complete
        (4, 4, True)
        >>> run_experiment("doc-steps", out=result.folder, seeds=2).nothing_to_do
        True
        >>> unregister_experiment("doc-steps")
        >>> tmp.cleanup()
    """
    spec = resolve_run(
        name, quick=quick, config_file=config_file, overrides=overrides, sweep=sweep, seeds=seeds
    )
    folder = Path(out) if out is not None else default_folder(spec, root)
    return run_sweep(spec, folder, backend=backend, on_start=on_start, on_unit=on_unit)
