"""``kinkgrad run``: sweep an experiment over settings × seeds into a resumable run folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

NAME = "run"
HELP = "Run an experiment (a sweep over settings x seeds) into a run folder; rerunning resumes it."

_EPILOG = """\
examples:
  kinkgrad run NAME --quick
  kinkgrad run NAME --set data.name=digits --set data.train_size=1000 --seeds 5 --workers 2
  kinkgrad run NAME --sweep KEY=V1,V2,V3 --out runs/my-study
  kinkgrad run NAME --config study.toml --backend dask --scheduler tcp://10.0.0.5:8786

`kinkgrad list NAME` shows an experiment's settings. Rerunning the same command resumes an interrupted
sweep, and does nothing if it finished. `kinkgrad plot DIR` redraws figures and report from the files.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("name", metavar="NAME", help="the experiment (see `kinkgrad list`)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set one setting, e.g. data.root=/data or lr=0.1 (repeatable; fixes a swept key to one value)",
    )
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a setting over values (repeatable; use ';' between values of tuple settings)",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="a .json or .toml run file (same shape as config.json)"
    )
    parser.add_argument("--seeds", type=_positive_int, metavar="N", help="run seeds 0..N-1 for every setting")
    parser.add_argument(
        "--workers", type=_positive_int, metavar="N", help="local worker processes (default 1: this process)"
    )
    parser.add_argument("--out", metavar="DIR", help="the run folder (default runs/NAME/CONFIG-HASH)")
    parser.add_argument(
        "--quick", action="store_true", help="the experiment's small preset, for a smoke test"
    )
    parser.add_argument(
        "--backend", choices=("local", "dask"), default="local", help="where units run (default local)"
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address or scheduler file (with --backend dask)",
    )


def _backend(args: argparse.Namespace) -> Any:
    from kinkgrad.runner import DaskBackend, LocalBackend

    if args.backend == "dask":
        if args.workers is not None:
            raise ValueError("--workers is for --backend local; a Dask cluster brings its own workers")
        if not args.scheduler:
            raise ValueError("--backend dask needs --scheduler ADDRESS (tcp://host:8786 or a scheduler file)")
        return DaskBackend(args.scheduler)
    if args.scheduler:
        raise ValueError("--scheduler needs --backend dask")
    return LocalBackend(args.workers or 1)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from tqdm import tqdm

    from kinkgrad.runner import UnitOutcome, default_folder, resolve_run, run_sweep

    backend = _backend(args)
    spec = resolve_run(
        args.name,
        quick=args.quick,
        config_file=args.config,
        overrides=args.overrides,
        sweep=args.sweep,
        seeds=args.seeds,
    )
    folder = Path(args.out) if args.out else default_folder(spec)
    resume = f"kinkgrad run {spec.experiment.name} --config {folder / 'config.json'} --out {folder}"
    print(f"Run folder: {folder}", flush=True)
    bar: Any = None

    def on_start(total: int, pending: int) -> None:
        nonlocal bar
        n_settings = len(spec.settings())
        n_seeds = len(spec.seeds)
        shape = f"{n_settings} setting{'s' * (n_settings != 1)} x {n_seeds} seed{'s' * (n_seeds != 1)}"
        if pending == 0:
            print(f"All {total} units ({shape}) finished earlier: no unit to run.", flush=True)
            return
        earlier = f", {total - pending} finished earlier" if pending < total else ""
        print(f"{total} units ({shape}){earlier}; running {pending} on {backend.description}.", flush=True)
        bar = tqdm(total=pending, unit="unit", desc=spec.experiment.name, file=sys.stderr, dynamic_ncols=True)

    def on_unit(outcome: UnitOutcome) -> None:
        if outcome.error is not None:
            bar.write(f"unit {outcome.key} failed: {_last_line(outcome.error)}", file=sys.stderr)
        bar.update(1)

    try:
        result = run_sweep(spec, folder, backend=backend, on_start=on_start, on_unit=on_unit)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(
            f"\nInterrupted. Finished units are kept in {folder}; to resume run:\n  {resume}", file=sys.stderr
        )
        return 130
    if bar is not None:
        bar.close()
    if result.failures:
        print(f"{len(result.failures)} of {result.total} units failed:", file=sys.stderr)
        for failure in result.failures:
            print(f"  {failure.key} {failure.setting or ''}: {_last_line(failure.error)}", file=sys.stderr)
            print(f"    traceback: {failure.path}", file=sys.stderr)
        print(f"Finished units are kept. After a fix, resume with:\n  {resume}", file=sys.stderr)
        return 1
    if result.nothing_to_do:
        print("Nothing to do: the sweep is finished and its results, figures and report are up to date.")
    results = sorted((folder / "results").glob("*.csv"))
    for path in results:
        print(f"Results: {path}")
    if result.rendered is not None:
        for path in result.rendered.figures.values():
            print(f"Figure:  {path}")
        if result.rendered.claims:
            print("Claims:")
            width = max(len(c.verdict) for c in result.rendered.claims)
            for claim in result.rendered.claims:
                print(f"  {claim.verdict:<{width}}  {claim.statement}  (ours: {claim.ours})")
    print(f"Report:  {result.report_md}")
    print(f"Report:  {result.report_html}")
    if result.rendered is not None and result.rendered.problems:
        names = ", ".join(result.rendered.problems)
        print(
            f"Problems drawing {names}: tracebacks are in the report. After a fix: kinkgrad plot {folder}",
            file=sys.stderr,
        )
        return 1
    return 0
