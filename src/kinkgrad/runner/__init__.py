"""The experiment runner: typed configs, sweeps over settings × seeds, resumable run folders, reports.

An experiment is a frozen config dataclass plus a function ``run(config, seed)`` that yields tidy records;
figures and a claims table are drawn from the result files only. Register one with :func:`experiment`,
then ``kinkgrad run NAME`` sweeps it (in parallel processes or on a Dask cluster), ``kinkgrad list`` shows
its settings and ``kinkgrad plot DIR`` redraws a run folder. See ``docs/runner.md``.

Example:
    >>> from dataclasses import dataclass
    >>> from kinkgrad.runner import experiment, resolve_run, setting, unregister_experiment
    >>> @dataclass(frozen=True)
    ... class Config:
    ...     lr: float = setting(0.1, help="step size")
    ...     steps: int = setting(5, help="gradient steps")
    >>> @experiment("doc-decay", config=Config, sweep={"lr": [0.1, 0.5]}, seeds=2)
    ... def decay(config: Config, seed: int):
    ...     '''Gradient descent on x**2 / 2.'''
    ...     x = 1.0 + seed
    ...     for step in range(config.steps):
    ...         x -= config.lr * x
    ...         yield {"step": step, "x": x}
    >>> spec = resolve_run("doc-decay", overrides=["steps=3"])
    >>> [(task.key, task.setting) for task in spec.units()][:2]
    [('s0000-seed0', {'lr': 0.1}), ('s0000-seed1', {'lr': 0.1})]
    >>> unregister_experiment("doc-decay")
"""

from kinkgrad.runner._backend import Backend, LocalBackend
from kinkgrad.runner._config import (
    ConfigError,
    SettingInfo,
    config_from_dict,
    config_to_dict,
    describe_settings,
    setting,
    with_overrides,
)
from kinkgrad.runner._dask import DaskBackend, DaskNotInstalledError
from kinkgrad.runner._experiment import Claim, Experiment, FigureFn, Preset, Verdict
from kinkgrad.runner._folder import default_folder
from kinkgrad.runner._registry import (
    experiment,
    experiments,
    get_experiment,
    register_experiment,
    unregister_experiment,
)
from kinkgrad.runner._render import Rendered, render_run
from kinkgrad.runner._report import default_summary
from kinkgrad.runner._results import RunFolderError, RunResults, load_run
from kinkgrad.runner._spec import RunSpec, read_config_file, resolve_run
from kinkgrad.runner._sweep import SweepFailedError, SweepResult, UnitFailure, run_experiment, run_sweep
from kinkgrad.runner._unit import UnitOutcome, UnitTask, execute_unit

__all__ = [
    "Backend",
    "Claim",
    "ConfigError",
    "DaskBackend",
    "DaskNotInstalledError",
    "Experiment",
    "FigureFn",
    "LocalBackend",
    "Preset",
    "Rendered",
    "RunFolderError",
    "RunResults",
    "RunSpec",
    "SettingInfo",
    "SweepFailedError",
    "SweepResult",
    "UnitFailure",
    "UnitOutcome",
    "UnitTask",
    "Verdict",
    "config_from_dict",
    "config_to_dict",
    "default_folder",
    "default_summary",
    "describe_settings",
    "execute_unit",
    "experiment",
    "experiments",
    "get_experiment",
    "load_run",
    "read_config_file",
    "register_experiment",
    "render_run",
    "resolve_run",
    "run_experiment",
    "run_sweep",
    "setting",
    "unregister_experiment",
    "with_overrides",
]
