"""relu-prime: the two chain rules, one probe on a batch that sits on kinks, a tiny run end to end."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from kinkgrad.cli._main import main
from kinkgrad.data import DataConfig
from kinkgrad.experiments._relu_prime_model import KinkReLU, PublishedReLU, build_mlp, parse_relu_prime, rule
from kinkgrad.experiments._relu_prime_report import _sgd_claim, _zone_claim
from kinkgrad.experiments.relu_prime import (
    Config,
    Epoch,
    LayerEpoch,
    Probe,
    Step,
    _probe,
    _Trainer,
    load_data,
)
from kinkgrad.experiments.relu_prime import run as run_unit

UPSTREAM = torch.tensor([3.0, -2.0, 5.0, 0.5])
X = torch.tensor([0.0, 0.0, 1.0, -1.0])


def _grad(module: torch.nn.Module) -> torch.Tensor:
    x = X.clone().requires_grad_()
    module(x).backward(UPSTREAM)
    assert x.grad is not None
    return x.grad


def test_correct_rule_scales_the_upstream_gradient() -> None:
    assert torch.equal(_grad(KinkReLU(0.25, "correct")), torch.tensor([0.75, -0.5, 5.0, 0.0]))


def test_published_rule_sets_the_kink_gradient_to_alpha() -> None:
    # their code: α at the kink whatever the upstream gradient (3 and -2 here)
    assert torch.equal(_grad(KinkReLU(0.25, "published")), torch.tensor([0.25, 0.25, 5.0, 0.0]))
    x = X.clone().requires_grad_()
    PublishedReLU.apply(x, 1.0).backward(UPSTREAM)
    assert x.grad is not None and torch.equal(x.grad, torch.tensor([1.0, 1.0, 5.0, 0.0]))


def test_random_relu_prime_draws_per_call_from_a_seeded_generator() -> None:
    relu = KinkReLU("random", "correct", seed=7)
    slopes = [float(_grad(relu)[0]) / 3.0 for _ in range(4)]
    assert len(set(slopes)) == 4 and all(0.0 <= s <= 1.0 for s in slopes)
    again = KinkReLU("random", "correct", seed=7)
    assert [float(_grad(again)[0]) / 3.0 for _ in range(4)] == slopes


def test_settings_are_checked() -> None:
    assert parse_relu_prime("0.5") == 0.5 and parse_relu_prime("random") is None
    with pytest.raises(ValueError, match="relu_prime"):
        Config(relu_prime="2")
    with pytest.raises(ValueError, match="relu_prime"):
        Config(relu_prime="zero")
    with pytest.raises(ValueError, match="hidden"):
        Config(hidden=())


def test_probe_on_a_batch_at_the_kinks_reproduces_the_inflated_gap() -> None:
    """Quantized weights and inputs k/16: exact zeros in float16; the monitor predicts the gap, and the
    published rule's gap is far larger than the correct one."""
    torch.manual_seed(0)
    config = Config(
        dtype="float16", hidden=(16, 16), max_train=64, max_test=8, data=DataConfig(name="digits")
    )
    data = load_data(config, torch.float16)
    trainer = _Trainer(config, data, torch.float16, seed=0)
    with torch.no_grad():
        for p in trainer.params:
            p.copy_((p * 16).round() / 16)
    seen = {True: 0, False: 0}
    ratios = []
    for start in range(0, 64, 8):
        x, y = data.x_train[start : start + 8], data.y_train[start : start + 8]
        probe = _probe(trainer, x, y, config, 0, start, scheduled=True)
        assert probe.differs == (probe.bifurcating_kinks > 0)
        assert probe.published_differs or not probe.differs
        assert probe.certified_agree in (0.0, 1.0)
        seen[probe.differs] += 1
        if probe.differs:
            ratios.append(probe.published_difference_norm / probe.difference_norm)
    assert seen[True] >= 2, seen
    assert min(ratios) > 1.0 and sorted(ratios)[len(ratios) // 2] > 5.0, ratios


def test_unit_records_are_consistent() -> None:
    config = Config(
        dtype="bfloat16",
        relu_prime="random",
        optimizer="adam",
        batch_norm=True,
        hidden=(8, 8),
        epochs=2,
        batch_size=16,
        max_train=64,
        max_test=32,
        probe_every=3,
        data=DataConfig(name="mnist1d"),
    )
    torch.manual_seed(0)
    records = list(run_unit(config, seed=0))
    steps = [r for r in records if isinstance(r, Step)]
    layers = [r for r in records if isinstance(r, LayerEpoch)]
    probes = [r for r in records if isinstance(r, Probe)]
    epochs = [r for r in records if isinstance(r, Epoch)]
    assert [s.step for s in steps] == list(range(8)) and len(epochs) == 2
    assert {layer.layer for layer in layers} == {"relu1", "relu2"}
    assert all(layer.batches == 4 and layer.relu_evaluations == 4 * 16 * 8 for layer in layers)
    assert sum(s.relu_evaluations for s in steps) == sum(layer.relu_evaluations for layer in layers)
    assert [p.step for p in probes if p.scheduled] == [0, 3, 6]
    assert all(p.differs == (p.bifurcating_kinks > 0) for p in probes)
    assert all(0.0 <= e.test_accuracy <= 1.0 and math.isfinite(e.test_loss) for e in epochs)
    with rule(build_mlp(2, [2], 2, False, 0.0, "correct"), 1.0, "published"):
        pass


def test_claim_verdicts_from_tables() -> None:
    rates = pd.DataFrame(
        {
            "data.name": ["d"] * 3,
            "dtype": ["float16", "float32", "float64"],
            "layer": ["any"] * 3,
            "batches": [100, 100, 100],
            "bifurcating_batches": [97, 50, 0],
            "relu_evaluations": [10**6] * 3,
            "exact_kinks": [300, 70, 0],
        }
    )
    assert _zone_claim(rates, ["float16"], "s", "e", (0.9, 1.0)).verdict == "reproduced"
    assert _zone_claim(rates, ["float32"], "s", "e", (0.25, 0.75)).verdict == "reproduced"
    assert _zone_claim(rates, ["float32"], "s", "e", (0.9, 1.0)).verdict == "different"
    assert _zone_claim(rates, ["float64"], "s", "e", (0.25, 0.75)).verdict == "not reproduced"
    assert _zone_claim(rates, ["bfloat16"], "s", "e", (0.9, 1.0)).verdict == "inconclusive"
    accuracy = [0.90, 0.91, 0.80, 0.81, 0.85, 0.86]
    last = pd.DataFrame(
        {
            "data.name": "d",
            "dtype": "float32",
            "relu_prime": ["0", "0", "1", "1", "0.5", "0.5"],
            "optimizer": "sgd",
            "batch_norm": False,
            "test_accuracy": accuracy,
        }
    )
    claim = _sgd_claim(last)
    assert claim.verdict == "reproduced" and "+5.00 points" in claim.ours
    swapped = last.assign(relu_prime=["1", "1", "0", "0", "0.5", "0.5"])
    assert _sgd_claim(swapped).verdict == "different"


def test_tiny_run_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = [
        "run", "relu-prime", "--quick", "--out", str(out),
        "--set", "epochs=1", "--set", "max_train=96", "--set", "max_test=32", "--set", "hidden=8,8",
        "--set", "batch_size=32", "--set", "data.name=digits",
        "--sweep", "dtype=bfloat16,float64", "--sweep", "relu_prime=0,random", "--set", "batch_norm=false",
        "--seeds", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Claims:" in printed and "report.md" in printed
    report = (out / "report.md").read_text()
    assert "At 64 bits, backprop almost never differs" in report and "## Numeric summary" in report
    for name in ("bifurcation", "training", "gradient-gap", "certified"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    steps = pd.read_csv(out / "results" / "step.csv")
    assert set(steps["dtype"]) == {"bfloat16", "float64"} and len(steps) == 4 * 3
    assert main(["run", "relu-prime", "--set", "relu_prime=2", "--out", str(tmp_path / "bad")]) == 2
    assert "relu_prime" in capsys.readouterr().err


def test_default_sweep_covers_the_study() -> None:
    from kinkgrad.runner import get_experiment

    spec = get_experiment("relu-prime")
    assert spec.seeds >= 2
    assert set(spec.sweep["dtype"]) == {"float16", "bfloat16", "float32", "float64"}
    assert set(spec.sweep["relu_prime"]) == {"0", "0.5", "1", "random"}
    assert set(spec.sweep["optimizer"]) == {"sgd", "adam"} and set(spec.sweep["batch_norm"]) == {False, True}
    assert dataclasses.replace(Config(), variant="published").variant == "published"
