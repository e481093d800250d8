"""Figures, claims and numeric summary of ``relu-prime``, drawn only from the run folder's tables.

Tables (written by the units): ``step`` (every training step), ``layer_epoch`` (per ReLU layer and
epoch), ``probe`` (gradient gaps every ``probe_every`` steps) and ``epoch`` (test metrics).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kinkgrad.runner import Claim, RunResults
from kinkgrad.runner._experiment import Verdict

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["FIGURES", "claims", "summary"]

DTYPES = ("float16", "bfloat16", "float32", "float64")
ARMS = ("optimizer", "batch_norm")


# ---- reading the tables ------------------------------------------------------------------------


def _frame(run: RunResults, table: str) -> pd.DataFrame:
    """A table with every setting that the figures group by as a column (swept or not)."""
    frame = run.table(table).copy()
    for key in ("data.name", "dtype", "relu_prime", "optimizer", "batch_norm", "variant"):
        if key not in frame.columns:
            value: Any = run.config
            for part in key.split("."):
                value = getattr(value, part)
            frame[key] = value
    frame["relu_prime"] = frame["relu_prime"].astype(str)
    frame["batch_norm"] = frame["batch_norm"].astype(str).str.lower().isin(["true", "1"])
    return frame


def _dtypes(frame: pd.DataFrame) -> list[str]:
    present = set(frame["dtype"].astype(str))
    return [d for d in DTYPES if d in present]


def bifurcation_rates(run: RunResults) -> pd.DataFrame:
    """Per data set, dtype and layer (``any`` for the whole network): the fraction of training steps whose
    backprop differs between ReLU'(0) = 0 and 1, and the exact kinks per ReLU evaluation."""
    import pandas as pd

    layers = _frame(run, "layer_epoch")
    steps = _frame(run, "step")
    keys = ["data.name", "dtype"]
    per_layer = layers.groupby([*keys, "layer"], sort=False)[
        ["batches", "bifurcating_batches", "relu_evaluations", "exact_kinks"]
    ].sum()
    per_layer = per_layer.reset_index()
    whole = steps.groupby(keys, sort=False).agg(
        batches=("bifurcates", "size"),
        bifurcating_batches=("bifurcates", "sum"),
        relu_evaluations=("relu_evaluations", "sum"),
        exact_kinks=("exact_kinks", "sum"),
    )
    whole = whole.reset_index().assign(layer="any")
    both = pd.concat([per_layer, whole], ignore_index=True)
    both["fraction"] = both["bifurcating_batches"] / both["batches"].clip(lower=1)
    both["kink_rate"] = both["exact_kinks"] / both["relu_evaluations"].clip(lower=1)
    return both


def _scheduled(probes: pd.DataFrame) -> pd.DataFrame:
    """The regular probes (every ``probe_every`` steps): an unbiased sample of the training steps."""
    return probes[probes["scheduled"].astype(str).str.lower().isin(["true", "1"])]


def _final(run: RunResults) -> pd.DataFrame:
    epochs = _frame(run, "epoch")
    last = epochs[epochs["epoch"] == epochs["epoch"].max()]
    return last


# ---- figures -----------------------------------------------------------------------------------


def bifurcation_figure(run: RunResults) -> Figure:
    """Fraction of training steps in the bifurcation zone, per dtype and ReLU layer."""
    from matplotlib.figure import Figure

    rates = bifurcation_rates(run)
    datasets = list(dict.fromkeys(rates["data.name"]))
    figure = Figure(figsize=(4.2 * len(datasets) + 0.6, 3.6), layout="constrained")
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    for ax, name in zip(axes, datasets):
        part = rates[rates["data.name"] == name]
        dtypes = [d for d in DTYPES if d in set(part["dtype"])]
        layers = list(dict.fromkeys(part["layer"]))
        width = 0.8 / max(len(layers), 1)
        for i, layer in enumerate(layers):
            values = [
                float(part[(part["dtype"] == d) & (part["layer"] == layer)]["fraction"].sum()) for d in dtypes
            ]
            ax.bar(
                [j + (i - (len(layers) - 1) / 2) * width for j in range(len(dtypes))],
                values,
                width,
                label=layer,
            )
        ax.set_xticks(range(len(dtypes)), dtypes)
        top = float(part["fraction"].max()) if len(part) else 0.0
        ax.set_ylim(0, max(0.05, 1.2 * top))  # small fractions stay visible; the labels give the values
        for j, d in enumerate(dtypes):
            value = float(part[(part["dtype"] == d) & (part["layer"] == "any")]["fraction"].sum())
            x = j + (len(layers) - 1) / 2 * width if "any" in layers else j
            ax.annotate(f"{value:.1%}", (x, value), ha="center", va="bottom", fontsize=7)
        ax.set_title(f"{name}: steps that bifurcate", fontsize=10)
        ax.set_ylabel("fraction of mini-batches")
    axes[-1].legend(fontsize=8)
    return figure


def training_figure(run: RunResults) -> Figure:
    """Test accuracy per epoch, one line per ReLU'(0), per optimizer / batch norm / dtype."""
    from matplotlib.figure import Figure

    frame = _frame(run, "epoch")
    arms = list(dict.fromkeys(zip(frame["optimizer"], frame["batch_norm"])))
    dtypes = _dtypes(frame)
    figure = Figure(figsize=(3.2 * len(dtypes) + 0.6, 2.6 * len(arms) + 0.4), layout="constrained")
    axes = figure.subplots(len(arms), len(dtypes), squeeze=False, sharey=True)
    for r, (optimizer, batch_norm) in enumerate(arms):
        for c, dtype in enumerate(dtypes):
            ax = axes[r][c]
            part = frame[(frame["optimizer"] == optimizer) & (frame["batch_norm"] == batch_norm)]
            part = part[part["dtype"] == dtype]
            for prime, group in part.groupby("relu_prime", sort=True):
                curve = group.groupby("epoch")["test_accuracy"].mean()
                ax.plot(curve.index, curve.to_numpy(), marker="o", markersize=3, label=f"ReLU'(0)={prime}")
            ax.set_title(f"{optimizer}{' + BN' if batch_norm else ''}, {dtype}", fontsize=9)
            ax.set_xlabel("epoch")
            if c == 0:
                ax.set_ylabel("test accuracy (mean)")
    axes[0][-1].legend(fontsize=7)
    return figure


def gap_figure(run: RunResults) -> Figure:
    """Relative gradient gap ``‖g₁ − g₀‖ / ‖g₀‖`` on probed mini-batches that bifurcate: correct chain
    rule against the published rule."""
    from matplotlib.figure import Figure

    probes = _frame(run, "probe")
    dtypes = _dtypes(probes)
    figure = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = figure.add_subplot()
    for offset, (column, flag, label) in zip(
        (-0.15, 0.15),
        (
            ("difference_norm", "differs", "correct: α × upstream"),
            ("published_difference_norm", "published_differs", "published: α"),
        ),
    ):
        for j, dtype in enumerate(dtypes):
            part = probes[(probes["dtype"] == dtype) & probes[flag].astype(bool)]
            rel = (part[column] / part["gradient_norm"].clip(lower=1e-300)).to_numpy()
            ax.scatter(
                [j + offset] * len(rel),
                rel,
                s=9,
                alpha=0.6,
                color="C0" if offset < 0 else "C3",
                label=label if j == 0 else None,
            )
    ax.set_xticks(range(len(dtypes)), dtypes)
    if any(c.get_offsets().shape[0] for c in ax.collections):  # type: ignore[union-attr]
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no probed mini-batch bifurcates", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("‖g(1) − g(0)‖ / ‖g(0)‖")
    ax.set_title("gradient gap on bifurcating mini-batches", fontsize=10)
    return figure


def certified_figure(run: RunResults) -> Figure:
    """Fraction of probed mini-batches where plain AD differs from the certified gradient."""
    from matplotlib.figure import Figure

    probes = _scheduled(_frame(run, "probe"))
    dtypes = _dtypes(probes)
    figure = Figure(figsize=(4.8, 3.4), layout="constrained")
    ax = figure.add_subplot()
    values = []
    for dtype in dtypes:
        agree = probes[probes["dtype"] == dtype]["certified_agree"].dropna()
        values.append(float((agree == 0).mean()) if len(agree) else math.nan)
    ax.bar(range(len(dtypes)), values, color="C2")
    ax.set_xticks(range(len(dtypes)), dtypes)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of probed mini-batches")
    ax.set_title("plain AD ≠ certified gradient (regular probes)", fontsize=10)
    return figure


FIGURES = {
    "bifurcation": bifurcation_figure,
    "training": training_figure,
    "gradient-gap": gap_figure,
    "certified": certified_figure,
}


# ---- claims ------------------------------------------------------------------------------------


def _fraction(rates: pd.DataFrame, dtype: str) -> tuple[float, int, float, float]:
    """(fraction of bifurcating steps, steps, exact kinks per ReLU evaluation, ReLU evaluations per
    step) for one dtype, over all data sets."""
    whole = rates[(rates["layer"] == "any") & (rates["dtype"] == dtype)]
    steps = int(whole["batches"].sum())
    if steps == 0:
        return math.nan, 0, math.nan, math.nan
    evaluations = int(whole["relu_evaluations"].sum())
    fraction = float(whole["bifurcating_batches"].sum()) / steps
    return fraction, steps, float(whole["exact_kinks"].sum()) / max(evaluations, 1), evaluations / steps


def extrapolation(rate: float, per_step: float) -> str:
    """Where half of the mini-batches would bifurcate if exact zeros were independent at ``rate``.

    Example:
        >>> extrapolation(0.0, 100.0)
        'no exact zero at 100 ReLU evaluations per step'
        >>> extrapolation(1e-7, 32768.0).endswith("from about 6.9e+06 evaluations per mini-batch")
        True
    """
    if not rate > 0:
        return f"no exact zero at {per_step:.3g} ReLU evaluations per step"
    half = math.log(2) / rate
    return (
        f"{rate:.2g} exact zeros per ReLU evaluation at {per_step:.3g} evaluations per step: half of the "
        f"mini-batches would bifurcate from about {half:.2g} evaluations per mini-batch"
    )


def _zone_claim(
    rates: pd.DataFrame, dtypes: Sequence[str], statement: str, expected: str, band: tuple[float, float]
) -> Claim:
    parts, verdicts = [], []
    for dtype in dtypes:
        fraction, steps, rate, per_step = _fraction(rates, dtype)
        if steps == 0:
            continue
        parts.append(f"{dtype}: {fraction:.1%} of {steps} steps ({extrapolation(rate, per_step)})")
        lo, hi = band
        if lo <= fraction <= hi:
            verdicts.append("reproduced")
        elif (hi < 0.5 and fraction > 2 * max(hi, 0.01)) or (lo > 0 and fraction < lo / 4):
            verdicts.append("not reproduced")
        else:
            verdicts.append("different")
    if not parts:
        return Claim(statement, "not measured in this run", "inconclusive", expected)
    verdict: Verdict = verdicts[0] if len(set(verdicts)) == 1 else "different"  # type: ignore[assignment]
    return Claim(statement, "; ".join(parts), verdict, expected)


def _accuracy_table(run: RunResults) -> pd.DataFrame:
    last = _final(run)
    if "variant" in last.columns:
        last = last[last["variant"] == "correct"]
    return last


def _sgd_claim(last: pd.DataFrame) -> Claim:
    statement = "With plain SGD, ReLU'(0) = 0 trains best"
    expected = "ReLU'(0) = 0 best; over 10 points ahead of ReLU'(0) = 1 on ImageNet (VGG, 16 bits)"
    sgd = last[(last["optimizer"] == "sgd") & (~last["batch_norm"])]
    primes = set(sgd["relu_prime"])
    if "0" not in primes or len(primes) < 2:
        return Claim(
            statement,
            "needs ReLU'(0) = 0 and another value with SGD, no batch norm",
            "inconclusive",
            expected,
        )
    parts, verdicts = [], []
    for dtype in _dtypes(sgd):
        part = sgd[sgd["dtype"] == dtype]
        means = part.groupby("relu_prime")["test_accuracy"].mean()
        stds = part.groupby(["relu_prime", "data.name"])["test_accuracy"].std(ddof=1)
        noise = float(stds.mean()) if stds.notna().any() else math.nan
        best_other = means.drop("0").max()
        gap = float(means["0"] - best_other)
        parts.append(
            f"{dtype}: ReLU'(0)=0 {means['0']:.3f} vs best other {best_other:.3f} "
            f"({gap * 100:+.2f} points; seed std {noise * 100:.2f})"
        )
        if math.isnan(noise):
            verdicts.append("inconclusive")
        elif gap > 2 * noise:
            verdicts.append("reproduced")
        elif gap < -2 * noise:
            verdicts.append("different")
        else:
            verdicts.append("not reproduced")
    verdict: Verdict = verdicts[0] if len(set(verdicts)) == 1 else "different"  # type: ignore[assignment]
    return Claim(statement, "; ".join(parts), verdict, expected)


def _spread(last: pd.DataFrame, optimizer: str, batch_norm: bool) -> float:
    part = last[(last["optimizer"] == optimizer) & (last["batch_norm"] == batch_norm)]
    if part["relu_prime"].nunique() < 2:
        return math.nan
    means = part.groupby(["data.name", "dtype", "relu_prime"])["test_accuracy"].mean()
    spreads = means.groupby(level=[0, 1]).agg(lambda s: s.max() - s.min())
    return float(spreads.mean())


def _buffer_claim(last: pd.DataFrame) -> Claim:
    statement = "Batch norm and Adam buffer the effect of ReLU'(0)"
    expected = "accuracy spread over ReLU'(0) smaller with batch norm or Adam than with plain SGD"
    plain = _spread(last, "sgd", False)
    bn = _spread(last, "sgd", True)
    adam = _spread(last, "adam", False)
    if math.isnan(plain) or (math.isnan(bn) and math.isnan(adam)):
        return Claim(
            statement,
            "needs SGD without and with batch norm or Adam, two ReLU'(0) values",
            "inconclusive",
            expected,
        )
    stds = last.groupby(["data.name", "dtype", "relu_prime", "optimizer", "batch_norm"])["test_accuracy"].std(
        ddof=1
    )
    noise = float(stds.mean()) if stds.notna().any() else math.nan

    def points(value: float) -> str:
        return "not run" if math.isnan(value) else f"{value * 100:.2f} points"

    ours = (
        f"spread of mean test accuracy over ReLU'(0): SGD {points(plain)}, SGD + BN {points(bn)}, "
        f"Adam {points(adam)} (seed std {noise * 100:.2f})"
    )
    if not math.isnan(noise) and plain <= 2 * noise:
        return Claim(
            statement,
            ours + ": nothing to buffer, plain SGD shows no effect above noise",
            "inconclusive",
            expected,
        )
    smaller = all(math.isnan(v) or v < plain for v in (bn, adam))
    return Claim(statement, ours, "reproduced" if smaller else "not reproduced", expected)


def _published_claim(probes: pd.DataFrame) -> Claim:
    statement = (
        "Their public code sets the gradient at a kink to α instead of α × upstream; with a correct chain "
        "rule the gap between ReLU'(0) = 0 and 1 at a bifurcation is small"
    )
    expected = "background: the bug inflates the gap by orders of magnitude"
    correct = probes[probes["differs"].astype(bool)]
    published = probes[probes["published_differs"].astype(bool)]
    if correct.empty or published.empty:
        return Claim(
            statement,
            f"{len(correct)} probed mini-batches bifurcate with the correct rule, {len(published)} with the "
            "published one: too few to compare",
            "inconclusive",
            expected,
        )
    rel_c = float((correct["difference_norm"] / correct["gradient_norm"]).median())
    rel_p = float((published["published_difference_norm"] / published["gradient_norm"]).median())
    ours = (
        f"median ‖g(1) − g(0)‖/‖g(0)‖: correct {rel_c:.2g} ({len(correct)} mini-batches), "
        f"published {rel_p:.2g} ({len(published)}); ratio {rel_p / rel_c:.3g}"
    )
    return Claim(statement, ours, "reproduced" if rel_p > 10 * rel_c else "not reproduced", expected)


def claims(run: RunResults) -> list[Claim]:
    """The paper's claims beside our numbers."""
    rates = bifurcation_rates(run)
    out = [
        _zone_claim(
            rates,
            ["float32"],
            "At 32 bits, backprop differs between ReLU'(0) = 0 and 1 on a large share of mini-batches",
            "about half of the mini-batches (MNIST-scale networks and larger)",
            (0.25, 0.75),
        ),
        _zone_claim(
            rates,
            ["float16", "bfloat16"],
            "At 16 bits, backprop differs on essentially every mini-batch",
            "essentially all mini-batches",
            (0.9, 1.0),
        ),
        _zone_claim(rates, ["float64"], "At 64 bits, backprop almost never differs", "none", (0.0, 0.01)),
    ]
    last = _accuracy_table(run)
    out.append(_sgd_claim(last))
    out.append(_buffer_claim(last))
    out.append(_published_claim(_frame(run, "probe")))
    return out


# ---- numeric summary ---------------------------------------------------------------------------


def summary(run: RunResults) -> pd.DataFrame:
    """One row per data set and dtype: bifurcation zone, kinks, gaps, certified check, accuracy."""
    import pandas as pd

    rates = bifurcation_rates(run)
    probes = _frame(run, "probe")
    steps = _frame(run, "step")
    last = _final(run)
    rows: list[Mapping[str, Any]] = []
    whole = rates[rates["layer"] == "any"]
    for _, row in whole.iterrows():
        name, dtype = row["data.name"], row["dtype"]
        layer_rows = rates[
            (rates["data.name"] == name) & (rates["dtype"] == dtype) & (rates["layer"] != "any")
        ]
        p = probes[(probes["data.name"] == name) & (probes["dtype"] == dtype)]
        agree = _scheduled(p)["certified_agree"].dropna()
        bif = p[p["differs"].astype(bool)]
        acc = last[(last["data.name"] == name) & (last["dtype"] == dtype)]
        rows.append(
            {
                "data": name,
                "dtype": dtype,
                "steps": int(row["batches"]),
                "bifurcating steps": f"{row['fraction']:.1%}",
                "per layer": ", ".join(f"{r['layer']} {r['fraction']:.1%}" for _, r in layer_rows.iterrows()),
                "without / with BN": _by_batch_norm(steps, name, dtype),
                "exact zeros / ReLU eval": f"{row['kink_rate']:.2g}",
                "median gap (correct)": _median(bif["difference_norm"] / bif["gradient_norm"]),
                "plain ≠ certified": f"{float((agree == 0).mean()):.1%}" if len(agree) else "not measured",
                "final test accuracy": f"{acc['test_accuracy'].mean():.3f}" if len(acc) else "",
            }
        )
    return pd.DataFrame(rows)


def _by_batch_norm(steps: pd.DataFrame, name: str, dtype: str) -> str:
    """Bifurcating fraction of the steps without and with batch norm (batch norm in 16 bits can round a
    normalised pre-activation to exactly 0)."""
    part = steps[(steps["data.name"] == name) & (steps["dtype"] == dtype)]
    fractions = part.groupby("batch_norm")["bifurcates"].mean()
    return " / ".join(f"{fractions[bn]:.1%}" if bn in fractions.index else "-" for bn in (False, True))


def _median(series: pd.Series) -> str:
    return f"{float(series.median()):.2g}" if len(series) else "-"
