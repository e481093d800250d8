"""A resolved run: experiment, config, sweep axes and seeds, merged from defaults, files and overrides.

Precedence, lowest first: the config's defaults and the experiment's sweep and seeds; the ``--quick``
preset; the ``--config`` file; ``--set`` and ``--sweep``; ``--seeds``.

A config file (JSON, or TOML on Python >= 3.11) has up to four top-level entries, the same shape as the
``config.json`` every run folder holds, so ``--config runs/x/config.json`` repeats a run::

    experiment = "toy"          # optional; must match NAME
    seeds = 3                   # a count, or a list of seeds
    [config]                    # setting overrides; tables for groups
    lr = 0.05
    [config.data]
    name = "digits"
    [sweep]                     # replaces the experiment's sweep axes
    lr = [0.1, 0.05]
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, get_origin

from kinkgrad.runner._config import (
    ConfigError,
    _is_optional,
    _strip_optional,
    coerce_setting,
    config_to_dict,
    flatten_mapping,
    with_overrides,
)
from kinkgrad.runner._experiment import Experiment
from kinkgrad.runner._registry import get_experiment
from kinkgrad.runner._unit import UnitTask

C = TypeVar("C")

_FILE_KEYS = ("experiment", "seeds", "config", "sweep")


@dataclass(frozen=True)
class RunSpec(Generic[C]):
    """Everything that defines a run, resolved and checked.

    Attributes:
        experiment: the registered experiment.
        config: the base config; each setting replaces the swept keys.
        sweep: ordered sweep axes, ``((key, values), ...)``.
        seeds: the seeds; every setting runs once per seed.
    """

    experiment: Experiment[C]
    config: C
    sweep: tuple[tuple[str, tuple[Any, ...]], ...]
    seeds: tuple[int, ...]

    @property
    def axes(self) -> tuple[str, ...]:
        """The swept keys, which are also result columns."""
        return tuple(key for key, _ in self.sweep)

    def settings(self) -> list[dict[str, Any]]:
        """Every combination of the sweep axes, in a stable order (one empty dict without a sweep)."""
        keys = self.axes
        return [dict(zip(keys, combo)) for combo in itertools.product(*(values for _, values in self.sweep))]

    def units(self) -> list[UnitTask]:
        """One task per (setting, seed), keyed ``s0003-seed1``."""
        tasks = []
        for index, setting in enumerate(self.settings()):
            config = with_overrides(self.config, setting)
            for seed in self.seeds:
                tasks.append(
                    UnitTask(
                        experiment=self.experiment.name,
                        module=self.experiment.module,
                        config=config_to_dict(config),
                        setting=_jsonable(setting),
                        seed=seed,
                        key=f"s{index:04d}-seed{seed}",
                    )
                )
        return tasks

    def to_json(self) -> dict[str, Any]:
        """The resolved run in the config-file format (written to ``config.json``)."""
        return {
            "experiment": self.experiment.name,
            "seeds": list(self.seeds),
            "config": config_to_dict(self.config),
            "sweep": {key: _jsonable(list(values)) for key, values in self.sweep},
        }

    @property
    def identity(self) -> str:
        """A short hash of experiment, config and sweep (not the seeds): the default folder name.

        The order of the sweep axes counts: it fixes which setting each unit key stands for.
        """
        text = json.dumps(identity_data(self.to_json()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def identity_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a run in ``config.json`` contents: all but the seeds, sweep axes as ordered pairs."""
    return {
        "experiment": data.get("experiment"),
        "config": data.get("config", {}),
        "sweep": [[key, values] for key, values in dict(data.get("sweep", {})).items()],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.json`` or ``.toml`` run file and check its top-level keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    data: Any
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config file {str(path)!r} is not valid JSON: {err}") from None
    elif suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ModuleNotFoundError:
                raise ConfigError("TOML config files need Python >= 3.11 or `pip install tomli`") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {err}") from None
    else:
        raise ConfigError(f"config file {str(path)!r} must end in .json or .toml")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold an object/table at the top level")
    unknown = sorted(set(data) - set(_FILE_KEYS))
    if unknown:
        raise ConfigError(
            f"config file {str(path)!r} has unknown top-level keys {unknown}; "
            f"valid keys: {', '.join(_FILE_KEYS)} (put settings under 'config')"
        )
    return data


def parse_assignment(text: str, option: str = "--set") -> tuple[str, str]:
    """Split ``KEY=VALUE``.

    Example:
        >>> parse_assignment("data.root=/tmp/x")
        ('data.root', '/tmp/x')
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{option} expects KEY=VALUE, got {text!r}")
    return key.strip(), value


def _split_sweep_values(text: str, tp: Any) -> list[str]:
    inner = _strip_optional(tp) if _is_optional(tp) else tp
    sep = ";" if get_origin(inner) is tuple else ","
    return [part.strip() for part in text.split(sep)]


def _sweep_axis(experiment: Experiment[Any], key: str, values: Any) -> tuple[Any, ...]:
    from kinkgrad.runner._config import setting_info

    owner = f"experiment {experiment.name!r}"
    info = setting_info(experiment.config, key, owner=owner)
    if isinstance(values, str):
        values = _split_sweep_values(values, info.type)
    if not isinstance(values, (list, tuple)) or len(values) == 0:
        raise ConfigError(f"sweep axis {key!r} needs a non-empty list of values, got {values!r}")
    coerced = tuple(coerce_setting(experiment.config, key, v, owner=owner) for v in values)
    if len(set(map(repr, coerced))) != len(coerced):
        raise ConfigError(f"sweep axis {key!r} repeats a value: {list(coerced)}")
    return coerced


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: seeds must be a count or a list of ints, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}: the number of seeds must be at least 1, got {value}")
        return tuple(range(value))
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    ):
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}: seeds repeat: {list(value)}")
        return tuple(value)
    raise ConfigError(f"{where}: seeds must be a count or a list of non-negative ints, got {value!r}")


def resolve_run(
    name: str,
    *,
    quick: bool = False,
    config_file: str | Path | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    sweep: Sequence[str] | Mapping[str, Any] = (),
    seeds: int | Sequence[int] | None = None,
) -> RunSpec[Any]:
    """Resolve and check a run, as ``kinkgrad run`` does.

    Args:
        name: the experiment's name.
        quick: apply the experiment's ``--quick`` preset.
        config_file: a ``.json`` or ``.toml`` run file (see the module docstring).
        overrides: ``"key=value"`` strings or a mapping; setting a swept key fixes it to that one value.
        sweep: ``"key=v1,v2"`` strings (``;`` between tuple values) or a mapping key to values; each
            replaces or adds one axis.
        seeds: a count (seeds ``0 .. n-1``) or explicit seeds.

    Returns:
        The resolved :class:`RunSpec`.

    Raises:
        ConfigError: unknown keys, bad values; the message names them and lists what is valid.
        ValueError: unknown experiment.
    """
    experiment = get_experiment(name)
    owner = f"experiment {name!r}"
    config: Any = experiment.config()
    axes: dict[str, tuple[Any, ...]] = {
        key: _sweep_axis(experiment, key, list(values)) for key, values in experiment.sweep.items()
    }
    seed_list = tuple(range(experiment.seeds))

    def fix(settings: Mapping[str, Any]) -> None:
        nonlocal config
        for key, value in settings.items():
            config = with_overrides(config, {key: value}, owner=owner)
            axes.pop(key, None)

    if quick:
        preset = experiment.quick
        if preset.sweep is not None:
            axes = {key: _sweep_axis(experiment, key, list(vals)) for key, vals in preset.sweep.items()}
        fix(preset.overrides)
        if preset.seeds is not None:
            seed_list = _seeds(preset.seeds, "quick preset")
    if config_file is not None:
        data = read_config_file(config_file)
        where = f"config file {str(config_file)!r}"
        if "experiment" in data and data["experiment"] != name:
            raise ConfigError(f"{where} is for experiment {data['experiment']!r}, not {name!r}")
        section = data.get("config", {})
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where}: 'config' must be a table/object of settings")
        config = with_overrides(config, section, owner=owner)
        if "sweep" in data:
            if not isinstance(data["sweep"], Mapping):
                raise ConfigError(f"{where}: 'sweep' must be a table/object of key = [values]")
            flat = flatten_mapping(data["sweep"], experiment.config)
            axes = {key: _sweep_axis(experiment, key, values) for key, values in flat.items()}
        if "seeds" in data:
            seed_list = _seeds(data["seeds"], where)
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(parse_assignment, overrides)
    fix(dict(pairs))
    sweep_pairs = (
        sweep.items() if isinstance(sweep, Mapping) else (parse_assignment(s, "--sweep") for s in sweep)
    )
    for key, values in sweep_pairs:
        axes[key] = _sweep_axis(experiment, key, values)
    if seeds is not None:
        seed_list = _seeds(seeds if isinstance(seeds, int) else list(seeds), "--seeds")
    for key, values in axes.items():  # every swept value must also pass the config's own checks
        for value in values:
            with_overrides(config, {key: value}, owner=owner)
    return RunSpec(experiment, config, tuple(axes.items()), seed_list)


def spec_from_json(data: Mapping[str, Any]) -> RunSpec[Any]:
    """Rebuild a :class:`RunSpec` from a run folder's ``config.json`` contents."""
    experiment = get_experiment(str(data["experiment"]))
    config = with_overrides(experiment.config(), data.get("config", {}))
    axes = tuple(
        (key, _sweep_axis(experiment, key, values)) for key, values in dict(data.get("sweep", {})).items()
    )
    return RunSpec(experiment, config, axes, _seeds(list(data["seeds"]), "config.json"))
