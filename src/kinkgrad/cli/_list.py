"""``kinkgrad list``: the registered experiments and their settings (names, types, defaults, help)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

NAME = "list"
HELP = "List the experiments and their settings (names, types, defaults, help)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these experiments")


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "()"
    return str(value)


def _columns(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
        for row in rows
    ]


def describe(experiment: Any) -> list[str]:
    """The lines ``kinkgrad list`` prints for one experiment."""
    from kinkgrad.runner import describe_settings

    lines = [f"{experiment.name}: {experiment.description}" if experiment.description else experiment.name]
    sweep = "; ".join(f"{k} = {', '.join(map(_value, v))}" for k, v in experiment.sweep.items())
    lines.append(f"  seeds: {experiment.seeds}" + (f"   sweep: {sweep}" if sweep else ""))
    if experiment.figures:
        lines.append(f"  figures: {', '.join(experiment.figures)}")
    quick = experiment.quick
    parts = [f"{k}={_value(v)}" for k, v in quick.overrides.items()]
    if quick.sweep is not None:
        parts += [f"sweep {k} = {', '.join(map(_value, v))}" for k, v in quick.sweep.items()] or ["no sweep"]
    if quick.seeds is not None:
        parts.append(f"seeds={quick.seeds}")
    if parts:
        lines.append(f"  --quick: {'; '.join(parts)}")
    rows = [("SETTING", "TYPE", "DEFAULT", "HELP")]
    rows += [(s.key, s.type_name, _value(s.default), s.help) for s in describe_settings(experiment.config)]
    return [*lines, *_columns(rows)]


def run(args: argparse.Namespace) -> int:
    from kinkgrad.runner import experiments, get_experiment

    chosen = [get_experiment(name) for name in args.names] if args.names else list(experiments())
    if not chosen:
        print("No experiments registered. Add a module under src/kinkgrad/experiments/ (see docs/runner.md).")
        return 0
    blocks = ["\n".join(describe(experiment)) for experiment in chosen]
    print("\n\n".join(blocks))
    print("\nSet values with `kinkgrad run NAME --set KEY=VALUE`; sweep with `--sweep KEY=V1,V2`.")
    return 0
