"""Entry point: builds the parser from the subcommand modules and dispatches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

import kinkgrad
from kinkgrad.cli import _atlas, _audit, _demo, _env, _list, _plot, _run


class UsageError(Exception):
    """A bad command-line value: printed as ``kinkgrad: error: ...`` with exit code 2, no traceback."""


# Each subcommand module defines NAME, HELP, add_arguments(parser) and run(args) -> int.
SUBCOMMANDS: tuple[ModuleType, ...] = (_env, _atlas, _demo, _run, _list, _plot, _audit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinkgrad",
        description=(
            "Make non-differentiability in PyTorch visible, controllable and correct.\n"
            "Run `kinkgrad COMMAND --help` for the options of one command."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kinkgrad {kinkgrad.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args))
    except (UsageError, ValueError) as err:
        print(f"kinkgrad {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `kinkgrad atlas | head`
        return 0
