"""``kinkgrad env``: what a bug report needs."""

from __future__ import annotations

import argparse

from kinkgrad._env import environment

NAME = "env"
HELP = "Print versions and settings that a bug report needs (paste the output into the issue)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of aligned lines")


def run(args: argparse.Namespace) -> int:
    info = environment()
    if args.json:
        import json

        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0
