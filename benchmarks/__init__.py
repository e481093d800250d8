"""kinkgrad's benchmark harness: ``python -m benchmarks [--quick] [--only NAME]`` (``make bench``).

Every module ``benchmarks/bench_*.py`` exposes ``run(quick: bool) -> list[dict]``; each dict is one
benchmark with ``name`` (str), ``ratio`` (float: kinkgrad / baseline, medians measured side by side in
one run), ``target`` (float: the ratio must be ``<= target``; ``None``: a row for information, shown
as ``INFO`` and never a miss) and ``detail`` (str). The harness runs
the modules, prints a table and rewrites ``benchmarks/RESULTS.md`` atomically with the date, the
machine and one row per benchmark. Each module owns one section of that file: a run of some modules
(``--only``) replaces their sections and keeps the others.
"""

from __future__ import annotations

import datetime
import importlib
import math
import os
import pkgutil
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RESULTS_PATH",
    "Machine",
    "ModuleRun",
    "Row",
    "discover",
    "machine",
    "render_table",
    "run_module",
    "write_results",
]

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
_PREFIX = "bench_"


@dataclass(frozen=True)
class Row:
    """One benchmark's result: ``ratio <= target`` passes; a row without a target (``nan``) is
    information only and never fails. ``error`` is set when the module failed."""

    module: str
    name: str
    ratio: float
    target: float
    detail: str
    error: str | None = None

    @property
    def informational(self) -> bool:
        return self.error is None and math.isnan(self.target)

    @property
    def passed(self) -> bool:
        if self.informational:
            return True
        return self.error is None and math.isfinite(self.ratio) and self.ratio <= self.target

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "ERROR"
        if self.informational:
            return "INFO"
        return "PASS" if self.passed else "MISS"


@dataclass(frozen=True)
class Machine:
    """Where a run happened (written beside its results)."""

    cpu: str
    cores: int
    torch_threads: int
    torch: str
    kinkgrad: str
    python: str
    platform: str

    def describe(self) -> str:
        return (
            f"{self.cpu}, {self.cores} logical CPUs, torch threads {self.torch_threads}; "
            f"torch {self.torch}, kinkgrad {self.kinkgrad}, python {self.python}; {self.platform}"
        )


@dataclass(frozen=True)
class ModuleRun:
    """The rows of one module, with when, how and where they were measured."""

    module: str
    summary: str  # first line of the module's docstring
    rows: tuple[Row, ...]
    quick: bool
    started: datetime.datetime
    seconds: float
    machine: Machine


def discover() -> list[str]:
    """Names of the benchmark modules (``bench_*``) in this package, sorted."""
    names = (m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))
    return sorted(n for n in names if n.startswith(_PREFIX))


def _cpu_model() -> str:
    """The first CPU's model name from /proc/cpuinfo (with family/model numbers when given)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or fields.get("Hardware") or fields.get("cpu model")
    if not name:
        return platform.processor() or platform.machine() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def _source_revision() -> str:
    """The git commit of the checkout, marked when ``src/`` has uncommitted changes ('' if unknown)."""
    git = ["git", "-C", str(Path(__file__).resolve().parent.parent)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    commit = head.stdout.strip()
    return f"{commit} + uncommitted changes in src/" if dirty.stdout.strip() else commit


def machine() -> Machine:
    """The CPU model, core count, torch threads and the versions that matter."""
    import torch

    import kinkgrad
    from kinkgrad import _native

    rev = _source_revision()
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 1,
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        kinkgrad=(f"{kinkgrad.__version__} (git {rev})" if rev else kinkgrad.__version__)
        + ("" if _native.available() else ", without its compiled passes"),
        python=platform.python_version(),
        platform=platform.platform(),
    )


def _check_row(module: str, item: object) -> Row:
    if not isinstance(item, Mapping):
        raise TypeError(f"{module}.run() must return a list of dicts, got an item {item!r}")
    missing = {"name", "ratio", "target", "detail"} - set(item)
    if missing:
        raise TypeError(f"{module}.run() returned a row without {sorted(missing)}: {item!r}")
    name, ratio, target, detail = item["name"], item["ratio"], item["target"], item["detail"]
    if not isinstance(name, str) or not isinstance(detail, str):
        raise TypeError(f"{module}.run(): name and detail must be str in {item!r}")
    if not isinstance(ratio, (int, float)) or not isinstance(target, (int, float, type(None))):
        raise TypeError(f"{module}.run(): ratio must be a number and target a number or None in {item!r}")
    return Row(module, name, float(ratio), math.nan if target is None else float(target), detail)


def run_module(module: str, quick: bool) -> ModuleRun:
    """Import ``benchmarks.<module>`` and run it; a failure becomes one ``ERROR`` row, never a crash."""
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    t0 = time.perf_counter()
    summary = ""
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
        summary = (mod.__doc__ or "").strip().split("\n", 1)[0]
        items = mod.run(quick)
        if not isinstance(items, list):
            raise TypeError(f"{module}.run() must return a list, got {type(items).__name__}")
        rows = tuple(_check_row(module, item) for item in items)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        rows = (Row(module, "(module)", math.nan, math.nan, "", error=f"{type(exc).__name__}: {exc}"),)
    return ModuleRun(module, summary, rows, quick, started, time.perf_counter() - t0, machine())


def _fmt(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "-"


def render_table(rows: Iterable[Row]) -> str:
    """A plain-text table for the terminal."""
    header = ("benchmark", "ratio", "target", "result", "detail")
    out = [header]
    for r in rows:
        out.append((f"{r.module}:{r.name}", _fmt(r.ratio), _fmt(r.target), r.verdict, r.error or r.detail))
    widths = [max(len(line[i]) for line in out) for i in range(len(header) - 1)] + [0]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section(run: ModuleRun) -> str:
    mode = "quick (`--quick`: fewer cases and repeats)" if run.quick else "full"
    lines = [
        f"<!-- {run.module}:begin -->",
        f"## {run.module}",
        "",
        *([run.summary, ""] if run.summary else []),
        f"- date: {run.started.isoformat()} ({mode}, {run.seconds:.0f} s)",
        f"- machine: {run.machine.describe()}",
        "",
        "| benchmark | ratio | target | result | detail |",
        "|---|---:|---:|---|---|",
    ]
    for r in run.rows:
        detail = _md_cell(r.error or r.detail)
        lines.append(f"| {_md_cell(r.name)} | {_fmt(r.ratio)} | {_fmt(r.target)} | {r.verdict} | {detail} |")
    lines.append(f"<!-- {run.module}:end -->")
    return "\n".join(lines)


_HEADER = """\
# Benchmark results

Written by `make bench` (`python -m benchmarks`); do not edit by hand. Each ratio is
kinkgrad / its plain-PyTorch baseline, both measured side by side in the same run, and a row
passes when `ratio <= target`. Timing rows use one torch thread unless the machine line says
otherwise (`--threads`): on a small shared machine, a parallel region waits for its slowest thread.

How the numbers are taken (`benchmarks/_timing.py`):

- **Time**: the two arms are interleaved (one call of each per round, the order alternating every
  round, garbage collection paused) after warm-up calls of both, and each arm's **median** is taken;
  `ratio = median(kinkgrad) / median(PyTorch)`. The detail column gives both medians and the
  interquartile range of the per-round ratios, a direct read of how noisy the machine was.
- **Memory** (`peak_tensor_bytes`): `tracemalloc` does not see PyTorch's CPU tensors, and a
  process's peak RSS is dominated by the interpreter, the torch libraries and allocator caching.
  Instead, every allocation and free through PyTorch's CPU allocator during one training step is
  recorded with `torch.profiler(profile_memory=True)`, in time order, and the highest running total
  is the step's **peak tensor memory**: activations, saved tensors, masks, gradients and temporaries
  allocated during the step. Parameters, the batch and other memory live before the step are not
  counted, which makes the ratio stricter than a whole-process one. kinkgrad's scratch buffers
  (kink masks, and its relu rule's gradients), which live outside that allocator, are
  emptied before the step, and each of their mappings and unmappings during it is merged by time into
  that running total (a buffer counts while mapped, also while it waits in its pool for the next step).
"""

_SECTION = re.compile(r"<!-- (?P<module>[\w.]+):begin -->\n.*?<!-- (?P=module):end -->", re.DOTALL)


def write_results(runs: Sequence[ModuleRun], path: Path = RESULTS_PATH) -> None:
    """Rewrite ``path`` atomically: the sections of ``runs`` replace theirs, other sections are kept."""
    sections: dict[str, str] = {}
    if path.exists():
        for match in _SECTION.finditer(path.read_text()):
            sections[match["module"]] = match.group(0)
    for run in runs:
        sections[run.module] = _section(run)
    text = _HEADER + "".join(f"\n{sections[m]}\n" for m in sorted(sections))
    fd, tmp = tempfile.mkstemp(prefix=".RESULTS.", suffix=".md", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
