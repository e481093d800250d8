"""``kinkgrad audit MODULE:FACTORY``: where a model meets its kinks, and whether that changes backprop."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

NAME = "audit"
HELP = (
    "Audit a model before training: kink statistics per call site, how often backprop depends on "
    "ReLU'(0) (the bifurcation zone), and how often plain AD differs from the certified gradient."
)

_EPILOG = """\
examples:
  kinkgrad audit mypackage.models:make_model --data digits --flatten
  kinkgrad audit path/to/models.py:resnet_tiny --data synthetic-mnist --dtype float16 --batches 16
  kinkgrad audit mypackage.models:make_model --json > audit.json

FACTORY is a function or class that builds the model with no arguments (or an nn.Module instance).
"""

_DTYPES = ("float16", "bfloat16", "float32", "float64")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kinkgrad.data import DATASETS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("target", metavar="MODULE:FACTORY", help="import path of a model factory")
    parser.add_argument(
        "--data",
        default="synthetic-mnist",
        choices=tuple(DATASETS),
        help="data set (default synthetic-mnist)",
    )
    parser.add_argument(
        "--data-root", metavar="DIR", help="folder of file-based data sets (mnist, cifar10, svhn)"
    )
    parser.add_argument(
        "--batches", type=int, default=8, metavar="N", help="mini-batches to audit (default 8)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, metavar="N", help="examples per batch (default 64)"
    )
    parser.add_argument("--dtype", choices=_DTYPES, default=None, help="run the model in this dtype")
    parser.add_argument("--flatten", action="store_true", help="flatten inputs to (N, features), for MLPs")
    parser.add_argument("--no-certified", action="store_true", help="skip the certified-gradient comparison")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed before building the model")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from kinkgrad._audit import audit, load_model
    from kinkgrad.data import load_dataset

    if args.batches < 1 or args.batch_size < 1:
        raise ValueError("--batches and --batch-size must be at least 1")
    dtype = getattr(torch, args.dtype) if args.dtype else None
    torch.manual_seed(args.seed)
    model = load_model(args.target)
    n = args.batches * args.batch_size
    sizes = {"synthetic-mnist": 10_000, "mnist1d": 4_000}
    data = load_dataset(
        args.data,
        root=args.data_root,
        dtype=dtype or torch.float32,
        train_size=min(n, sizes[args.data]) if args.data in sizes else None,
    )
    report = audit(
        model,
        data,
        batches=args.batches,
        batch_size=args.batch_size,
        dtype=dtype,
        flatten=args.flatten,
        certified=not args.no_certified,
    )
    if args.json:
        payload = dataclasses.asdict(report)
        payload["bifurcation_frequency"] = report.bifurcation_frequency
        cert = report.certified_difference_frequency
        payload["certified_difference_frequency"] = None if math.isnan(cert) else cert
        print(json.dumps(payload, indent=2))
        return 0
    print(f"Audit of {args.target}: {report.model}")
    print(
        f"data {report.data}, {report.batches} batches of {report.batch_size}, dtype {report.dtype}, "
        f"loss {report.loss}\n"
    )
    columns = ("site", "op", "outputs", "exact", "near", "bifurcating", "batches w/ kinks", "batches bif.")
    rows = [
        (s.site, s.op, str(s.elements), str(s.exact_kinks), str(s.near_kinks), str(s.bifurcating_kinks),
         f"{s.batches_with_kinks}/{report.batches}", f"{s.batches_bifurcating}/{report.batches}")
        for s in report.sites
    ]  # fmt: skip
    if rows:
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    else:
        print("No kink op was called (no relu, clamp, max-pool, abs... reached through PyTorch).")
    print(
        f"\nBifurcation zone: {report.bifurcating_batches}/{report.batches} batches "
        f"({report.bifurcation_frequency:.0%}) give different gradients with ReLU'(0) = 0 and 1"
        + (f"; largest relative gap {report.max_relative_gap:.3g}" if report.bifurcating_batches else "")
    )
    if report.certified_checked:
        checked, differs = report.certified_checked, report.certified_differs
        print(
            f"Plain AD vs certified gradient: differs on {differs}/{checked} batches "
            f"({report.certified_difference_frequency:.0%})"
        )
    for note in report.notes:
        print(f"Note: {note}")
    return 0
