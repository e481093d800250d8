"""The run report: claims table, numeric summary, figures, settings and environment, in Markdown and HTML.

Both pages are built from the same content; the HTML page embeds its figures as base64 PNG, so it is a
single self-contained file to attach or e-mail.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinkgrad.runner._config import config_to_dict
from kinkgrad.runner._experiment import Claim
from kinkgrad.runner._folder import ENV, REPORT_HTML, REPORT_MD, RESULTS, atomic_write, read_json
from kinkgrad.runner._results import RunResults

if TYPE_CHECKING:
    import pandas as pd

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b;line-height:1.45}
table{border-collapse:collapse;margin:0.6rem 0 1.2rem;font-size:0.92rem}
th,td{border:1px solid #ccc;padding:0.25rem 0.6rem;text-align:left;vertical-align:top}
th{background:#f2f2f2} td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #ddd} code{background:#f5f5f5;padding:0 0.2rem}
.reproduced{color:#176d2a;font-weight:600} .not-reproduced{color:#a11;font-weight:600}
.different{color:#9a5b00;font-weight:600} pre{background:#f8f8f8;padding:0.5rem;overflow-x:auto}
"""


@dataclass(frozen=True)
class Table:
    """A titled table of already formatted cells."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def format_value(value: Any) -> str:
    """Numbers with 4 significant digits, everything else as text.

    Example:
        >>> format_value(0.123456), format_value(3), format_value(float("nan")), format_value(True)
        ('0.1235', '3', 'nan', 'True')
    """
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        value = float(value)
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def frame_table(title: str, frame: pd.DataFrame, max_rows: int = 60) -> Table:
    """A DataFrame as a report table (at most ``max_rows`` rows; a last row says how many were left out)."""
    columns = tuple(str(c) for c in frame.columns)
    rows = [tuple(format_value(v) for v in row) for row in frame.head(max_rows).itertuples(index=False)]
    if len(frame) > max_rows:
        rows.append((f"... {len(frame) - max_rows} more rows in the CSV", *([""] * (len(columns) - 1))))
    return Table(title, columns, tuple(rows))


def _is_key_column(frame: pd.DataFrame, column: str) -> bool:
    import pandas as pd

    series = frame[column]
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def default_summary(run: RunResults) -> dict[str, pd.DataFrame]:
    """Per table: the final value of each numeric column per unit, as mean ± std over seeds, per setting.

    Rows are grouped by the sweep axes and by text columns (such as a ``layer`` column); boolean columns
    count as numbers (their mean is a fraction).
    """
    import pandas as pd

    out: dict[str, pd.DataFrame] = {}
    for name, frame in run.tables.items():
        if frame.empty or "seed" not in frame.columns:
            continue
        unset = [c for c in frame.columns if c not in run.axes and frame[c].isna().all()]
        frame = frame.drop(columns=unset)  # e.g. an optional text field that was never set
        keys = [c for c in frame.columns if c != "seed" and (c in run.axes or _is_key_column(frame, c))]
        values = [c for c in frame.columns if c != "seed" and c not in keys]
        if not values:
            continue
        last = frame.groupby([*keys, "seed"], dropna=False, sort=False).tail(1)
        numeric = last[values].astype(float)
        groups = numeric.groupby([last[k] for k in keys], dropna=False, sort=False) if keys else None
        mean = groups.mean() if groups is not None else numeric.mean().to_frame().T
        std = groups.std(ddof=1) if groups is not None else numeric.std(ddof=1).to_frame().T
        count = last.groupby(keys, dropna=False, sort=False).size() if keys else pd.Series([len(last)])
        summary = pd.DataFrame(index=mean.index)
        summary["seeds"] = count.to_numpy()
        for column in values:
            summary[column] = [
                format_value(m)
                if (len(last) < 2 or math.isnan(s))
                else f"{format_value(m)} ± {format_value(s)}"
                for m, s in zip(mean[column], std[column])
            ]
        out[name] = summary.reset_index() if keys else summary.reset_index(drop=True)
    return out


@dataclass(frozen=True)
class ReportContent:
    """Everything a report shows, independent of Markdown or HTML."""

    title: str
    facts: tuple[tuple[str, str], ...]
    claims: tuple[Claim, ...]
    tables: tuple[Table, ...]
    figures: Mapping[str, Path]
    problems: Mapping[str, str]
    settings: Table
    environment: Table


def build_report(
    run: RunResults,
    figures: Mapping[str, Path],
    problems: Mapping[str, str],
    claims: Sequence[Claim],
    summaries: Mapping[str, pd.DataFrame],
) -> ReportContent:
    """Collect the report's content from the run's files and the hooks' outputs."""
    spec = run.spec
    n_settings = len(spec.settings())
    swept = dict(spec.sweep)
    setting_rows = []
    flat = _flatten(config_to_dict(spec.config))
    for key, value in flat.items():
        shown = (
            ", ".join(format_value(v) for v in swept[key]) + " (swept)"
            if key in swept
            else format_value(value)
        )
        setting_rows.append((key, shown))
    env_path = run.folder / ENV
    env = read_json(env_path) if env_path.is_file() else {}
    facts = (
        ("Experiment", spec.experiment.name),
        ("Folder", str(run.folder)),
        ("Units", f"{n_settings * len(spec.seeds)} ({n_settings} settings × {len(spec.seeds)} seeds)"),
        ("Seeds", ", ".join(map(str, spec.seeds))),
        ("Compute time", f"{format_value(float(run.meta.get('compute_seconds', 'nan')))} s (sum over units)"),
        (
            "Tables",
            ", ".join(f"{RESULTS}/{name}.csv ({len(frame)} rows)" for name, frame in run.tables.items()),
        ),
        ("Created", str(run.meta.get("created", "?"))),
        ("kinkgrad", str(run.meta.get("kinkgrad", "?"))),
    )
    title = spec.experiment.name + (f": {spec.experiment.description}" if spec.experiment.description else "")
    return ReportContent(
        title=title,
        facts=facts,
        claims=tuple(claims),
        tables=tuple(frame_table(name, frame) for name, frame in summaries.items()),
        figures=figures,
        problems=problems,
        settings=Table("Settings", ("setting", "value"), tuple(setting_rows)),
        environment=Table("Environment", ("key", "value"), tuple((k, str(v)) for k, v in env.items())),
    )


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = tuple(value) if isinstance(value, list) else value
    return out


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _claim_rows(claims: Sequence[Claim]) -> list[tuple[str, str, str, str]]:
    return [(c.statement, c.expected, c.ours, c.verdict) for c in claims]


def render_markdown(content: ReportContent) -> str:
    """The report as Markdown (figures linked relative to the run folder)."""
    lines = [f"# {content.title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in content.facts] + [""]
    if content.claims:
        lines += ["## Claims", ""] + _md_table(
            ("claim", "published", "ours", "verdict"), _claim_rows(content.claims)
        )
    if content.tables:
        lines += ["## Numeric summary", ""]
        for table in content.tables:
            lines += [f"### {table.title}", ""] + _md_table(table.columns, table.rows)
    if content.figures:
        lines += ["## Figures", ""]
        for name, path in content.figures.items():
            lines += [f"### {name}", "", f"![{name}]({path.parent.name}/{path.name})", ""]
    if content.problems:
        lines += ["## Problems", ""]
        for name, text in content.problems.items():
            lines += [f"### {name}", "", "```", text.rstrip(), "```", ""]
    for table in (content.settings, content.environment):
        lines += [f"## {table.title}", ""] + _md_table(table.columns, table.rows)
    return "\n".join(lines).rstrip() + "\n"


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        numeric = text.replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).isdigit()
        attr = ' class="num"' if numeric else ""
        return f"<td{attr}>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(content: ReportContent) -> str:
    """The report as one self-contained HTML page (figures embedded as base64 PNG)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(content.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(content.title)}</h1><ul>",
        *(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in content.facts),
        "</ul>",
    ]
    if content.claims:
        rows = "".join(
            f"<tr><td>{e(c.statement)}</td><td>{e(c.expected)}</td><td>{e(c.ours)}</td>"
            f'<td class="{c.verdict.replace(" ", "-")}">{e(c.verdict)}</td></tr>'
            for c in content.claims
        )
        parts += [
            "<h2>Claims</h2><table><thead><tr><th>claim</th><th>published</th><th>ours</th><th>verdict</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
        ]
    if content.tables:
        parts.append("<h2>Numeric summary</h2>")
        for table in content.tables:
            parts += [f"<h3>{e(table.title)}</h3>", _html_table(table.columns, table.rows)]
    if content.figures:
        parts.append("<h2>Figures</h2>")
        for name, path in content.figures.items():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts += [f"<h3>{e(name)}</h3>", f'<img alt="{e(name)}" src="data:image/png;base64,{data}">']
    if content.problems:
        parts.append("<h2>Problems</h2>")
        for name, text in content.problems.items():
            parts += [f"<h3>{e(name)}</h3>", f"<pre>{e(text)}</pre>"]
    for table in (content.settings, content.environment):
        parts += [f"<h2>{e(table.title)}</h2>", _html_table(table.columns, table.rows)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(run: RunResults, content: ReportContent) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into the run folder; returns their paths."""
    md_path, html_path = run.folder / REPORT_MD, run.folder / REPORT_HTML
    atomic_write(md_path, render_markdown(content))
    atomic_write(html_path, render_html(content))
    return md_path, html_path
