"""``write_report``: a run directory rendered into ``pareto.png``, ``hypervolume.png``,
``report.html`` and ``report.md``."""

from __future__ import annotations

from pathlib import Path

from nas.report.html import report_html
from nas.report.markdown import report_md
from nas.report.plots import hypervolume_plot, pareto_plot
from nas.report.record import read_run
from nas.rundir import write_text

__all__ = ["REPORT_FILES", "write_report"]

REPORT_FILES = ("pareto.png", "hypervolume.png", "report.html", "report.md")


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Render ``run_dir`` into ``pareto.png``, ``hypervolume.png``, ``report.html`` and ``report.md``.

    Reads only the run directory's files (:func:`read_run`); overwrites earlier report files, each
    written atomically. Returns
    ``{"pareto_png", "hypervolume_png", "html", "markdown"}`` → paths.
    """
    record = read_run(run_dir)
    out = record.run_dir
    pareto_png = pareto_plot(record, out / "pareto.png")
    hv_png = hypervolume_plot(record, out / "hypervolume.png")
    html_path = write_text(out / "report.html", report_html(record, pareto_png, hv_png))
    md_path = write_text(out / "report.md", report_md(record, pareto_png.name, hv_png.name))
    return {"pareto_png": pareto_png, "hypervolume_png": hv_png, "html": html_path, "markdown": md_path}
