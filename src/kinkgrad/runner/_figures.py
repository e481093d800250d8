"""Draw an experiment's figures from a run's result files and save them as PNG.

Figure functions take :class:`~kinkgrad.runner.RunResults` and return a ``matplotlib.figure.Figure``.
Build it with ``matplotlib.figure.Figure()`` (no pyplot, no global state); the runner saves it with the Agg
renderer. A failing figure does not stop the others: its traceback is returned.
"""

from __future__ import annotations

import io
import sys
import traceback
from pathlib import Path

from kinkgrad.runner._folder import FIGURES, atomic_write
from kinkgrad.runner._results import RunResults

DPI = 120


def draw_figures(run: RunResults) -> tuple[dict[str, Path], dict[str, str]]:
    """Draw every figure of the run's experiment into ``figures/NAME.png``.

    Returns:
        ``(paths, errors)``: figure name to PNG path for those drawn, figure name to traceback for those
        whose function raised (their old PNG is removed, so no stale figure survives).
    """
    out = run.folder / FIGURES
    paths: dict[str, Path] = {}
    errors: dict[str, str] = {}
    for name, draw in run.experiment.figures.items():
        path = out / f"{name}.png"
        figure = None
        try:
            figure = draw(run)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
            atomic_write(path, buffer.getvalue())
            paths[name] = path
        except Exception:
            errors[name] = traceback.format_exc()
            path.unlink(missing_ok=True)
        finally:
            if figure is not None and "matplotlib.pyplot" in sys.modules:
                sys.modules["matplotlib.pyplot"].close(figure)
    return paths, errors
