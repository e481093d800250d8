"""``kinkgrad demo``: the main job of ``make demo``: the atlas and a worked example."""

from __future__ import annotations

import argparse

import torch

from kinkgrad._atlas import atlas, render
from kinkgrad._policy import kink_policy

NAME = "demo"
HELP = "Show the kink atlas and a worked example where plain backprop leaves the Clarke set."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "markdown"), default="table", help="atlas format")


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


def run(args: argparse.Namespace) -> int:
    policy = kink_policy(default=0.5, ties="split")
    print(f"The kink atlas: PyTorch {torch.__version__} at every registered kink, and {policy}\n")
    print(render(atlas(policy), args.format))
    print("\nWorked example: f(x) = relu(x) - relu(-x) = x, so f'(0) = 1 (Clarke set {1}).")
    for label, grad in worked_example():
        verdict = "correct" if grad == 1.0 else "outside the Clarke set"
        print(f"  {label:<26} f'(0) = {grad:g}   ({verdict})")
    print(
        "\nOne λ makes every spelling of a kink agree (relu, clamp, maximum, hardtanh...); "
        "no single λ is right for every composition."
    )
    return 0
