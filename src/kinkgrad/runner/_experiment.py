"""What an experiment is: a typed config, a function yielding tidy records, figures and a claims hook."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, get_args

from kinkgrad.runner._config import check_config_type, coerce_setting, describe_settings

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from kinkgrad.runner._results import RunResults

C = TypeVar("C")

Verdict = Literal["reproduced", "not reproduced", "different", "inconclusive"]
"""How our number compares with a published claim."""

RunFn = Callable[[C, int], Iterable[Any]]
"""``run(config, seed)`` yields records: flat dicts, or dataclass instances (one table per class)."""

FigureFn = Callable[["RunResults"], "Figure"]
"""Draws one figure from a run's result files (never from memory)."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_RESERVED = frozenset({"seed"})


@dataclass(frozen=True)
class Claim:
    """One row of a report's claims table: a published statement beside our measurement.

    Attributes:
        statement: the claim, in words ("ReLU'(0) = 0 trains best with plain SGD").
        ours: our number, formatted ("+1.3 points over ReLU'(0) = 1, 3 seeds").
        verdict: ``reproduced``, ``not reproduced``, ``different`` or ``inconclusive``.
        expected: the published number, if any ("about 50% of mini-batches").

    Example:
        >>> Claim("loss decreases", "0.01 after 20 steps", "reproduced").verdict
        'reproduced'
    """

    statement: str
    ours: str
    verdict: Verdict
    expected: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in get_args(Verdict):
            raise ValueError(f"verdict must be one of {get_args(Verdict)}, got {self.verdict!r}")


@dataclass(frozen=True)
class Preset:
    """Overrides applied together, e.g. by ``--quick``.

    Attributes:
        overrides: dotted setting keys to values (setting a swept key fixes it to one value).
        sweep: if given, replaces the sweep axes.
        seeds: if given, the number of seeds.
    """

    overrides: Mapping[str, Any] = field(default_factory=dict)
    sweep: Mapping[str, Sequence[Any]] | None = None
    seeds: int | None = None


@dataclass(frozen=True)
class Experiment(Generic[C]):
    """An experiment: a typed config, a record generator, figures drawn from files, and a claims hook.

    Attributes:
        name: the command-line name (lower case, digits and dashes: ``relu-prime``).
        config: the frozen config dataclass type; all fields have defaults.
        run: ``run(config, seed)`` yields tidy records for one (setting, seed) unit. Dict records go to the
            table ``records``; dataclass records to a table named after their class in snake_case. The runner
            adds a ``seed`` column and one column per sweep axis.
        description: one line for ``kinkgrad list`` and the report title (default: first docstring line).
        sweep: default sweep axes, dotted setting key to values; every combination is one setting.
        seeds: default number of seeds (0, 1, ..., seeds - 1).
        quick: the ``--quick`` preset.
        figures: figure name to a function drawing it from :class:`~kinkgrad.runner.RunResults`.
        claims: returns the report's claims table from the results.
        summary: returns the report's numeric summary (default: final value per unit, mean and std over
            seeds, per setting).
    """

    name: str
    config: type[C]
    run: RunFn[C]
    description: str = ""
    sweep: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    seeds: int = 1
    quick: Preset = field(default_factory=Preset)
    figures: Mapping[str, FigureFn] = field(default_factory=dict)
    claims: Callable[[RunResults], Sequence[Claim]] | None = None
    summary: Callable[[RunResults], pd.DataFrame] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"experiment name {self.name!r} must be lower case letters, digits and dashes")
        check_config_type(self.config)
        keys = {info.key for info in describe_settings(self.config)}
        clash = keys & _RESERVED
        if clash:
            raise TypeError(f"config of {self.name!r} uses reserved setting names: {sorted(clash)}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        owner = f"experiment {self.name!r}"
        for preset in (Preset(sweep=self.sweep), self.quick):
            for key, value in preset.overrides.items():
                coerce_setting(self.config, key, value, owner=owner)
            for key, values in (preset.sweep or {}).items():
                if len(values) == 0:
                    raise ValueError(f"sweep axis {key!r} of {self.name!r} has no values")
                for value in values:
                    coerce_setting(self.config, key, value, owner=owner)
        for fig_name in self.figures:
            if not _NAME.match(fig_name.replace("_", "-")):
                raise ValueError(f"figure name {fig_name!r} must be lower case letters, digits, - and _")
        if not self.description:
            doc = (getattr(self.run, "__doc__", None) or "").strip()
            object.__setattr__(self, "description", doc.splitlines()[0] if doc else "")

    @property
    def module(self) -> str:
        """The module defining ``run``: workers import it to find this experiment."""
        return str(getattr(self.run, "__module__", "__main__"))
