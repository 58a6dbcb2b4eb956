"""The report as one self-contained HTML page: images embedded as base64 data URIs, no external
CSS or JS."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from nas.report.record import RunRecord
from nas.report.text import (
    BUDGET_HEAD,
    PARETO_TABLE_ROWS,
    arch_html,
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

__all__ = ["report_html"]


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;
padding:0 16px;color:#1d1d1f}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;margin:6px 0 10px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}
img{max-width:100%}.status{padding:6px 10px;border-radius:4px;margin:6px 0}
.met{background:#e6f4ea}.missed{background:#fff4e0}.infeasible{background:#fde8e8}
.note{color:#555;font-size:12px}
"""


def _html_table(head: list[str] | None, rows: list, *, cls: str = "") -> str:
    esc = html.escape
    out = [f'<table class="{esc(cls)}">' if cls else "<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells = []
        for j, cell in enumerate(row):
            tag = "th" if head is None and j == 0 else "td"
            cells.append(f"<{tag}>{esc(str(cell))}</{tag}>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _pick_html(i: int, pick: dict[str, Any], smallest: dict[str, Any] | None) -> str:
    esc = html.escape
    budget = pick.get("budget") or {}
    status = pick["status"]
    word, sentence = status_sentence(pick, smallest)
    parts = [f'<section class="budget" id="budget-{i + 1}">',
             f"<h3>Budget {i + 1}: {esc(budget_label(budget))} "
             f"<span class=\"note\">({esc(fmt_text(budget.get('source')))})</span></h3>",
             f'<p class="status {esc(status)}"><b>{esc(word)}:</b> {esc(sentence)}</p>']
    if pick.get("message"):
        parts.append(f'<p class="note">search: {esc(str(pick["message"]))}</p>')
    parts.append(_html_table(BUDGET_HEAD, budget_rows(pick),
                             cls="budget-table"))
    facts = pick_facts(pick, text=lambda v: esc(fmt_text(v)), code=lambda v: f"<code>{esc(str(v))}</code>")
    if facts:
        parts.append(f"<p>{' · '.join(facts)}</p>")
    if pick.get("arch"):
        parts.append(arch_html(pick["arch"]))
    parts.append("</section>")
    return "\n".join(parts)


def report_html(record: RunRecord, pareto_png: Path, hv_png: Path) -> str:
    esc = html.escape
    cfg = record.config
    title = f"QuadraNAS search report: {fmt_text(cfg.get('study_name') or record.run_dir.name)}"
    smallest = record.picks.get("smallest")
    body = [f"<h1>{esc(title)}</h1>",
            f'<p class="note">run directory {esc(str(record.run_dir))}; regenerate with '
            f"<code>nas.report.write_report</code> (reads only the files in the run directory).</p>",
            "<h2>Run</h2>", _html_table(None, run_rows(record))]
    timing = timing_rows(record.summary)
    if timing:
        body += ["<h3>Time</h3>", _html_table(None, timing)]
    body.append("<h2>Budgets and picks</h2>")
    if not record.picks["picks"]:
        body.append("<p>No budgets were given.</p>")
    body += [_pick_html(i, pick, smallest) for i, pick in enumerate(record.picks["picks"])]
    body += ["<h2>Pareto front</h2>",
             f'<img alt="accuracy against predicted latency and memory" src="{_data_uri(pareto_png)}">',
             f'<img alt="hypervolume history" src="{_data_uri(hv_png)}">']
    head, rows, total = pareto_rows(record)
    body.append(f"<p>{min(total, PARETO_TABLE_ROWS)} of {total} Pareto-optimal trials, by validation accuracy "
                f"(predicted latency and memory; accuracy with inherited supernet weights).</p>")
    body.append(_html_table(head, rows, cls="pareto-table"))
    body += ["<h2>Settings</h2>", _html_table(["setting", "value"], setting_rows(cfg))]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")

