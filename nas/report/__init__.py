"""Stage *report*: a finished search rendered from its run directory alone — records, plots, HTML
and Markdown.

Owns :func:`read_run` and its :class:`RunRecord` with the hypervolume history
(:mod:`nas.report.record`); what the report says, render-independent (:mod:`nas.report.text`);
the plots of search runs and benchmarks (:mod:`nas.report.plots`); the HTML and Markdown pages
(:mod:`nas.report.html`, :mod:`nas.report.markdown`) and :func:`write_report`
(:mod:`nas.report.write`).

May import: ``nas.objectives``, ``nas.pareto``, ``nas.rundir``, ``search_spaces``, matplotlib,
pandas, numpy.
"""

from nas.report.plots import hypervolume_plot, pareto_plot, parity_plot, staircase_plot
from nas.report.record import HV_REFERENCE, RunRecord, hypervolume_series, read_run
from nas.report.text import arch_html, arch_markdown
from nas.report.write import REPORT_FILES, write_report

__all__ = ["HV_REFERENCE", "REPORT_FILES", "RunRecord", "arch_html", "arch_markdown", "hypervolume_plot",
           "hypervolume_series", "parity_plot", "pareto_plot", "read_run", "staircase_plot", "write_report"]
