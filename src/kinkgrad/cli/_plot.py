"""``kinkgrad plot``: redraw a run folder's figures and report from its result files."""

from __future__ import annotations

import argparse
import sys

NAME = "plot"
HELP = "Redraw the figures and the report of a run folder from its result files."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="a run folder written by `kinkgrad run`")


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from kinkgrad.runner import render_run

    rendered = render_run(args.folder)
    for path in rendered.figures.values():
        print(f"Figure: {path}")
    print(f"Report: {rendered.report_md}")
    print(f"Report: {rendered.report_html}")
    if rendered.problems:
        for name, text in rendered.problems.items():
            print(f"{name} failed:\n{text}", file=sys.stderr)
        return 1
    return 0
