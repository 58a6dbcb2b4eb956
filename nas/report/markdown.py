"""The report as Markdown (``report.md``), beside the PNG plots it links."""

from __future__ import annotations

import html
from typing import Any

from nas.report.record import RunRecord
from nas.report.text import (
    BUDGET_HEAD,
    PARETO_TABLE_ROWS,
    arch_markdown,
    budget_label,
    budget_rows,
    fmt_text,
    pareto_rows,
    pick_facts,
    run_rows,
    setting_rows,
    status_sentence,
    timing_rows,
)

__all__ = ["report_md"]


def _md(value: Any) -> str:
    """Table-cell text: HTML-escaped (Markdown passes raw HTML through), pipes and newlines escaped."""
    return html.escape(str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def _md_table(head: list[str], rows: list) -> str:
    lines = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report_md(record: RunRecord, pareto_name: str, hv_name: str) -> str:
    cfg = record.config
    smallest = record.picks.get("smallest")
    out = [f"# QuadraNAS search report: {_md(fmt_text(cfg.get('study_name') or record.run_dir.name))}", "",
           "## Run", "", _md_table(["", ""], run_rows(record)), ""]
    timing = timing_rows(record.summary)
    if timing:
        out += ["### Time", "", _md_table(["phase", "time"], timing), ""]
    out += ["## Budgets and picks", ""]
    if not record.picks["picks"]:
        out += ["No budgets were given.", ""]
    for i, pick in enumerate(record.picks["picks"]):
        budget = pick.get("budget") or {}
        out += [f"### Budget {i + 1}: {_md(budget_label(budget))} ({_md(fmt_text(budget.get('source')))})", "",
                "**{}:** {}".format(*(_md(t) for t in status_sentence(pick, smallest))), ""]
        if pick.get("message"):
            out += [f"search: {_md(pick['message'])}", ""]
        out += [_md_table(BUDGET_HEAD, budget_rows(pick)), ""]
        facts = pick_facts(pick, text=_md, code=lambda v: f"`{v}`")
        if facts:
            out += [" · ".join(facts), ""]
        if pick.get("arch"):
            out += ["```", arch_markdown(pick["arch"]), "```", ""]
    head, rows, total = pareto_rows(record)
    out += ["## Pareto front", "", f"![accuracy against predicted latency and memory]({pareto_name})", "",
            f"![hypervolume history]({hv_name})", "",
            f"{min(total, PARETO_TABLE_ROWS)} of {total} Pareto-optimal trials, by validation accuracy.", "",
            _md_table(head, rows), "",
            "## Settings", "", _md_table(["setting", "value"], setting_rows(cfg)), ""]
    return "\n".join(out)

