"""Built-in experiments, one public module each; importing this package registers all of them.

To add an experiment, create ``src/kinkgrad/experiments/my_study.py`` that defines a frozen config
dataclass and a ``run(config, seed)`` generator decorated with :func:`kinkgrad.runner.experiment`.
Nothing else needs editing: every module here whose name does not start with ``_`` is imported when the
registry is first consulted, so ``kinkgrad list`` and ``kinkgrad run my-study`` find it. Modules starting
with ``_`` are shared helpers and are not imported automatically.

Example module::

    from dataclasses import dataclass
    from kinkgrad.runner import experiment, setting

    @dataclass(frozen=True)
    class Config:
        steps: int = setting(100, help="gradient steps")

    @experiment("my-study", config=Config)
    def run(config: Config, seed: int):
        '''One line for `kinkgrad list`.'''
        for step in range(config.steps):
            yield {"step": step, "loss": 1.0 / (step + 1)}

See ``docs/runner.md`` for sweeps, figures, claims and the run folder.
"""

from __future__ import annotations

import importlib
import pkgutil


def _import_all() -> tuple[str, ...]:
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
            names.append(info.name)
    return tuple(names)


MODULES: tuple[str, ...] = _import_all()
"""The experiment modules found and imported (registration happens on import)."""

__all__ = ["MODULES"]
