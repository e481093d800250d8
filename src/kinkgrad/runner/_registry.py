"""The experiment registry: register by decorator or call, look up by name, discover plug-ins.

Experiments are found in three places, loaded on first look-up:

1. every public module of the :mod:`kinkgrad.experiments` package (one module per experiment);
2. modules named by the ``kinkgrad.experiments`` entry-point group of installed packages;
3. modules listed, comma-separated, in the ``KINKGRAD_EXPERIMENTS`` environment variable.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from kinkgrad.runner._experiment import Claim, Experiment, FigureFn, Preset

if TYPE_CHECKING:
    import pandas as pd

    from kinkgrad.runner._results import RunResults

C = TypeVar("C")
F = TypeVar("F", bound=Callable[..., Iterable[Any]])

ENV_VAR = "KINKGRAD_EXPERIMENTS"
ENTRY_POINT_GROUP = "kinkgrad.experiments"

_REGISTRY: dict[str, Experiment[Any]] = {}
_loaded = False


def register_experiment(experiment: Experiment[C]) -> Experiment[C]:
    """Add an experiment to the registry and return it.

    Registering the same ``run`` function again (a module imported twice, a worker process) replaces the
    entry; a different experiment under a taken name is an error.
    """
    old = _REGISTRY.get(experiment.name)
    if old is not None and _identity(old) != _identity(experiment):
        raise ValueError(
            f"experiment name {experiment.name!r} is taken by {old.module}.{_qualname(old)}; "
            "choose another name"
        )
    _REGISTRY[experiment.name] = experiment
    return experiment


def _qualname(experiment: Experiment[Any]) -> str:
    return str(getattr(experiment.run, "__qualname__", repr(experiment.run)))


def _identity(experiment: Experiment[Any]) -> tuple[str, str]:
    return experiment.module, _qualname(experiment)


def experiment(
    name: str,
    *,
    config: type[Any],
    description: str = "",
    sweep: Mapping[str, Sequence[Any]] | None = None,
    seeds: int = 1,
    quick: Preset | None = None,
    figures: Mapping[str, FigureFn] | None = None,
    claims: Callable[[RunResults], Sequence[Claim]] | None = None,
    summary: Callable[[RunResults], pd.DataFrame] | None = None,
) -> Callable[[F], F]:
    """Decorator: register ``run(config, seed)`` as an experiment (see :class:`Experiment` for the arguments).

    The function is returned unchanged.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Config:
        ...     steps: int = 3
        >>> @experiment("doc-count", config=Config)
        ... def count(config: Config, seed: int):
        ...     '''Count to ``steps``.'''
        ...     for step in range(config.steps):
        ...         yield {"step": step}
        >>> get_experiment("doc-count").description
        'Count to ``steps``.'
        >>> unregister_experiment("doc-count")
    """

    def decorate(run: F) -> F:
        register_experiment(
            Experiment(
                name=name,
                config=config,
                run=run,
                description=description,
                sweep=dict(sweep or {}),
                seeds=seeds,
                quick=quick or Preset(),
                figures=dict(figures or {}),
                claims=claims,
                summary=summary,
            )
        )
        return run

    return decorate


def unregister_experiment(name: str) -> None:
    """Remove an experiment (tests use this to clean up)."""
    _REGISTRY.pop(name, None)


def load_plugins() -> None:
    """Import the built-in experiments, entry-point plug-ins and ``KINKGRAD_EXPERIMENTS`` modules once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import kinkgrad.experiments  # noqa: F401  (its __init__ imports every experiment module)

    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        importlib.import_module(entry.value.split(":")[0])
    for module in os.environ.get(ENV_VAR, "").split(","):
        if module.strip():
            importlib.import_module(module.strip())


def get_experiment(name: str, *, module: str | None = None) -> Experiment[Any]:
    """The experiment called ``name``.

    Args:
        name: the registered name.
        module: a module to import first if the name is not registered yet (worker processes use the
            module that defined the experiment).

    Raises:
        ValueError: unknown name; the message lists the registered ones.
    """
    if name not in _REGISTRY and module and module not in ("__main__", "__mp_main__"):
        importlib.import_module(module)
    if name not in _REGISTRY:
        load_plugins()
    if name not in _REGISTRY:
        names = sorted(_REGISTRY)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = ", ".join(names) if names else "none registered"
        raise ValueError(f"unknown experiment {name!r}{hint}; available: {listed}")
    return _REGISTRY[name]


def experiments() -> tuple[Experiment[Any], ...]:
    """All registered experiments, sorted by name (plug-ins loaded first)."""
    load_plugins()
    return tuple(_REGISTRY[name] for name in sorted(_REGISTRY))
