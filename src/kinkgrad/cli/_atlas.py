"""``kinkgrad atlas``: what PyTorch returns at every kink, beside the Clarke set and a kinkgrad policy."""

from __future__ import annotations

import argparse
from typing import Any

from kinkgrad._atlas import atlas, render
from kinkgrad._policy import kink_policy

NAME = "atlas"
HELP = (
    "Measure, at run time, the derivative the installed PyTorch (and JAX, if importable) returns at "
    "every registered kink, beside the Clarke subdifferential and a kinkgrad policy."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("table", "csv", "json", "markdown"), default="table", help="output format"
    )
    parser.add_argument(
        "--default",
        type=float,
        default=0.5,
        metavar="λ",
        help="λ of the policy shown in the kinkgrad column, for every elementwise kink (default: 0.5)",
    )
    parser.add_argument(
        "--ties", default="split", help="tie rule of that policy: first, last, split, random (default: split)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OP=CHOICE",
        help="one op's choice in that policy, e.g. --set relu=1 --set max_pool=first (repeatable)",
    )
    parser.add_argument("--no-jax", action="store_true", help="do not measure JAX even if it is importable")


def _choice(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def run(args: argparse.Namespace) -> int:
    per_op: dict[str, Any] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects OP=CHOICE (e.g. relu=1.0), got {item!r}")
        per_op[name.strip()] = _choice(value.strip())
    try:
        policy = kink_policy(default=args.default, ties=args.ties, **per_op)
    except TypeError as err:  # a tie rule given to an elementwise op, or the reverse
        raise ValueError(str(err)) from None
    print(render(atlas(policy, jax=False if args.no_jax else None), args.format))
    return 0
