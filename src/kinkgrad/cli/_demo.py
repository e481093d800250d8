"""``kinkgrad demo`` (the job of ``make demo``): a short atlas, a worked example, the monitor on a real
kink, then the ReLU'(0) study's quick run (``kinkgrad run relu-prime --quick``) and its summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from kinkgrad._atlas import atlas, render
from kinkgrad._policy import kink_policy

NAME = "demo"
HELP = (
    "A tour: what PyTorch returns at a few kinks, a case where plain backprop leaves the Clarke set, "
    "the kink monitor, and the quick ReLU'(0) study (kinkgrad run relu-prime --quick) with its report."
)

SHORT_ATLAS = ("relu", "clamp", "maximum", "abs", "hardtanh", "max_pool2d", "vector_norm")
"""The atlas rows the demo shows (``kinkgrad atlas`` shows all of them)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "markdown"), default="table", help="atlas format")
    parser.add_argument(
        "--out", metavar="DIR", help="run folder of the quick study (default runs/relu-prime/CONFIG-HASH)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the quick study, as for kinkgrad run (repeatable)",
    )
    parser.add_argument("--no-study", action="store_true", help="skip the quick study (a few seconds only)")


def worked_example() -> list[tuple[str, float]]:
    """d/dx [relu(x) - relu(-x)] at x = 0 (the function is x, so the true derivative is 1)."""
    results = []
    for label, policy in (
        ("plain PyTorch", None),
        ("kink_policy(relu=0.0)", kink_policy(relu=0.0)),
        ("kink_policy(default=0.5)", kink_policy(default=0.5)),
    ):
        x = torch.zeros((), dtype=torch.float64, requires_grad=True)
        if policy is None:
            y = torch.relu(x) - torch.relu(-x)
        else:
            with policy:
                y = torch.relu(x) - torch.relu(-x)
        y.backward()
        assert x.grad is not None
        results.append((label, float(x.grad)))
    return results


def monitor_example() -> list[Any]:
    """A bias-free convolution over sparse 8-bit images: blank patches sit exactly on ReLU's kink."""
    from kinkgrad._monitor import KinkMonitor

    generator = torch.Generator().manual_seed(0)
    images = torch.zeros(16, 1, 12, 12)
    images[:, :, 3:9, 4:8] = torch.randint(0, 256, (16, 1, 6, 4), generator=generator) / 255
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, bias=False),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 12 * 12, 3),
    )
    with KinkMonitor(model) as monitor:
        loss = torch.nn.functional.cross_entropy(model(images), torch.arange(16) % 3)
    loss.backward()
    return monitor.summary()


def _study(args: argparse.Namespace) -> int:
    from kinkgrad.cli import _run
    from kinkgrad.runner import default_folder, load_run, resolve_run

    spec = resolve_run("relu-prime", quick=True, overrides=args.overrides)
    folder = Path(args.out) if args.out else default_folder(spec)
    run_args = argparse.Namespace(
        name="relu-prime",
        quick=True,
        config=None,
        overrides=args.overrides,
        sweep=[],
        seeds=None,
        workers=None,
        out=str(folder),
        backend="local",
        scheduler=None,
    )
    status = int(_run.run(run_args))
    if status != 0:
        return status
    from kinkgrad.experiments._relu_prime_report import summary

    table = summary(load_run(folder))
    columns = ["dtype", "steps", "bifurcating steps", "without / with BN", "exact zeros / ReLU eval"]
    columns += ["plain ≠ certified", "final test accuracy"]
    rows = [[str(v) for v in row] for row in table[columns].itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print(f"\nSummary ({', '.join(dict.fromkeys(table['data']))}; report: {folder / 'report.md'}):")
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)))
    print(
        "\nBifurcating steps: mini-batches whose backprop differs between ReLU'(0) = 0 and 1 "
        "(Bertoin et al. 2021 report about half at 32 bits and all at 16 bits, on larger networks)."
    )
    print(f"Full study: kinkgrad run relu-prime   (the report: {folder / 'report.html'})")
    return 0


def run(args: argparse.Namespace) -> int:
    policy = kink_policy(default=0.5, ties="split")
    rows = [row for row in atlas(policy) if row.op in SHORT_ATLAS]
    print(f"What PyTorch {torch.__version__} returns at a few kinks, and {policy} (all: kinkgrad atlas)\n")
    print(render(rows, args.format))
    print("\nWorked example: f(x) = relu(x) - relu(-x) = x, so f'(0) = 1 (Clarke set {1}).")
    for label, grad in worked_example():
        verdict = "correct" if grad == 1.0 else "outside the Clarke set"
        print(f"  {label:<26} f'(0) = {grad:g}   ({verdict})")
    print(
        "\nOne λ makes every spelling of a kink agree (relu, clamp, maximum, hardtanh...); "
        "no single λ is right for every composition."
    )
    print("\nKinkMonitor on a bias-free convolution over sparse 8-bit images (one training step):")
    for record in monitor_example():
        print(
            f"  site {record.site} ({record.op}): {record.exact_kinks} of {record.elements} outputs "
            f"exactly at the kink, {record.bifurcating_kinks} of them bifurcating (nonzero cotangent)"
        )
    sys.stdout.flush()
    if args.no_study:
        return 0
    print("\nThe ReLU'(0) study, quick preset: kinkgrad run relu-prime --quick\n", flush=True)
    return _study(args)
