"""Redraw a run's figures and report from its files (what ``kinkgrad plot DIR`` does)."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kinkgrad.runner._experiment import Claim
from kinkgrad.runner._figures import draw_figures
from kinkgrad.runner._folder import RUN, read_json, write_json
from kinkgrad.runner._report import build_report, default_summary, write_report
from kinkgrad.runner._results import RunResults, load_run


@dataclass(frozen=True)
class Rendered:
    """What rendering a run folder produced.

    Attributes:
        folder: the run folder.
        figures: figure name to PNG path.
        report_md: the Markdown report.
        report_html: the self-contained HTML report.
        claims: the claims table, as the experiment's hook returned it.
        problems: figure, ``claims`` or ``summary`` to the traceback of a hook that raised.
    """

    folder: Path
    figures: Mapping[str, Path]
    report_md: Path
    report_html: Path
    claims: tuple[Claim, ...]
    problems: Mapping[str, str]


def render_run(run: RunResults | str | Path) -> Rendered:
    """Draw the figures and write the report of a run folder, reading only its files.

    Hooks that raise do not stop the rest: their tracebacks go into the report and ``Rendered.problems``.
    """
    if not isinstance(run, RunResults):
        run = load_run(run)
    figures, problems = draw_figures(run)
    claims: tuple[Claim, ...] = ()
    if run.experiment.claims is not None:
        try:
            claims = tuple(run.experiment.claims(run))
        except Exception:
            problems["claims"] = traceback.format_exc()
    try:
        if run.experiment.summary is not None:
            summaries = {"summary": run.experiment.summary(run)}
        else:
            summaries = default_summary(run)
    except Exception:
        problems["summary"] = traceback.format_exc()
        summaries = {}
    content = build_report(run, figures, problems, claims, summaries)
    md_path, html_path = write_report(run, content)
    meta = read_json(run.folder / RUN)
    meta["render_problems"] = sorted(problems)  # a rerun of the sweep renders again until none are left
    write_json(run.folder / RUN, meta)
    return Rendered(run.folder, figures, md_path, html_path, claims, problems)
