"""``python -m benchmarks [--quick] [--only NAME] [--threads N]``: run, print, write RESULTS.md.

Exit status: 0 when every benchmark meets its target, 1 when one misses it, 2 when a module failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import RESULTS_PATH, discover, render_table, run_module, write_results


def _parser(modules: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run kinkgrad's benchmarks and write benchmarks/RESULTS.md."
    )
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats (about a minute)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only this module (repeatable, 'bench_' optional): {', '.join(modules) or 'none found'}",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help=(
            "torch intra-op threads, fixed for the whole run (default: 1; on a small shared machine a "
            "parallel region waits for its slowest thread, so more threads than idle cores make timings "
            "swing by several times; the count is written beside the results)"
        ),
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_PATH, help="results file (default: benchmarks/RESULTS.md)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    modules = discover()
    parser = _parser(modules)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    selected = modules
    if args.only:
        wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in args.only]
        unknown = [n for n in wanted if n not in modules]
        if unknown:
            parser.error(f"unknown benchmark module(s) {', '.join(unknown)}; found: {', '.join(modules)}")
        selected = wanted
    if not selected:
        parser.error("no benchmarks/bench_*.py module found")

    import torch

    torch.set_num_threads(args.threads)
    runs = []
    for module in selected:
        print(f"running {module}{' (quick)' if args.quick else ''} ...", file=sys.stderr, flush=True)
        runs.append(run_module(module, args.quick))
    rows = [row for run in runs for row in run.rows]
    print(render_table(rows))
    write_results(runs, args.output)
    print(f"\nwrote {args.output} ({runs[0].machine.describe()})")
    if any(row.error is not None for row in rows):
        return 2
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
