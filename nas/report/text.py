"""What a report says, independent of how it is rendered: figures formatted, the status sentence
of a budget's pick, the rows of every table, and the chosen architecture drawn as stages and
blocks (HTML fragment or text). :mod:`nas.report.html` and :mod:`nas.report.markdown` render
these."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from typing import Any

from nas.report.record import RunRecord
from search_spaces.arch import ArchConfig

__all__ = ["BUDGET_HEAD", "PARETO_TABLE_ROWS", "arch_html", "arch_markdown", "budget_label", "budget_rows", "fmt_num",
           "fmt_text", "pareto_rows", "pick_facts", "run_rows", "setting_rows", "status_sentence", "timing_rows"]

PARETO_TABLE_ROWS = 20  # rows of the Pareto table shown in the report
_SUSPECT = "the latency measurement was flagged suspect (noisy machine): re-measure before relying on it"
BUDGET_HEAD = ["", "budget", "predicted", "measured", "excess (+ over)"]


# ---------------------------------------------------------------------------- architecture drawings

_Q_STYLE = "background:#f4a261;border:2px solid #b5541b;"
_L_STYLE = "background:#dfe7f0;border:2px solid #8aa1b8;"
_BOX = ("display:inline-block;margin:2px 3px;padding:3px 7px;border-radius:4px;"
        "font:12px/1.3 monospace;color:#111;")


def pick_facts(pick: dict[str, Any], *, text: Callable[[Any], str], code: Callable[[Any], str]) -> list[str]:
    """The one-line facts under a budget's table, rendered by ``text`` / ``code`` (HTML or Markdown)."""
    facts = []
    if pick.get("arch_id"):
        facts.append(f"architecture {code(pick['arch_id'])}")
    if pick.get("trial_number") is not None:
        facts.append(f"trial {text(pick['trial_number'])}")
    if pick.get("candidates_measured") is not None:
        facts.append(f"{text(pick['candidates_measured'])} candidate(s) measured")
    if pick.get("export_dir"):
        facts.append(f"exported to {code(pick['export_dir'])}")
    se = (pick.get("predicted") or {}).get("val_acc_se")
    if se is not None:
        facts.append(text(f"inherited validation accuracy ± {100 * se:.2f} points (standard error)"))
    cheaper = pick.get("vs_cheaper")
    if cheaper:
        verdict = "distinguishable from" if cheaper["distinguishable"] else "not distinguishable from"
        facts.append(text(f"accuracy {verdict} the next cheaper Pareto-optimal architecture's") + " "
                     + code(cheaper["arch_id"])
                     + text(f" ({cheaper['diff_points']:+.2f} points, z = {cheaper['z']:.2f})"))
    if (pick.get("measured") or {}).get("suspect"):
        facts.append(text(_SUSPECT))
    return facts


def arch_html(arch_dict: dict[str, Any]) -> str:
    """The architecture as an HTML fragment (inline CSS only): one row per stage with its width,
    one box per block labelled ``k{kernel} r{mlp_ratio}`` and ``Q`` (quadratic, order 2, orange,
    ``data-order="2"``) or ``L`` (first-order, order 1, grey-blue, ``data-order="1"``)."""
    arch = ArchConfig.from_dict(arch_dict)
    esc = html.escape
    rows = []
    for i, stage in enumerate(arch.stages):
        boxes = []
        for block in stage.blocks:
            quad = block.is_quadratic
            kind = "quadratic" if quad else "first-order"
            boxes.append(
                f'<span class="qn-block" data-order="{block.order}" title="{kind} block" '
                f'style="{_BOX}{_Q_STYLE if quad else _L_STYLE}">k{block.kernel_size} r{block.mlp_ratio} '
                f'<b>{"Q" if quad else "L"}</b></span>')
        rows.append(
            f'<div class="qn-stage" style="margin:3px 0;">'
            f'<span style="display:inline-block;width:9.5em;font:12px monospace;">stage {i + 1} (w={stage.width})'
            f'</span>{"".join(boxes)}</div>')
    legend = (f'<div style="font:11px sans-serif;color:#555;margin-top:4px;">'
              f'<span style="{_BOX}{_Q_STYLE}">Q</span> quadratic block (order 2) '
              f'<span style="{_BOX}{_L_STYLE}">L</span> first-order block (order 1); '
              f'k = mixer kernel, r = MLP ratio. {esc(arch.space)}, {arch.n_quadratic} of '
              f'{sum(arch.depths)} blocks quadratic, id {esc(arch.arch_id)}</div>')
    return f'<div class="qn-arch" style="padding:6px 0;">{"".join(rows)}{legend}</div>'


def arch_markdown(arch_dict: dict[str, Any]) -> str:
    """The architecture as text, one line per stage, e.g. ``stage 2 (w=48): [5r3 Q] [3r2 L]``
    (``Q`` quadratic block, ``L`` first-order; ``5r3`` = kernel 5, MLP ratio 3)."""
    arch = ArchConfig.from_dict(arch_dict)
    lines = []
    for i, stage in enumerate(arch.stages):
        blocks = " ".join(f"[{b.kernel_size}r{b.mlp_ratio} {'Q' if b.is_quadratic else 'L'}]" for b in stage.blocks)
        lines.append(f"stage {i + 1} (w={stage.width}): {blocks}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- formatting


def fmt_num(value: Any, digits: int = 4) -> str:
    """A latency or memory figure: 4 significant digits; missing → an em dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{float(value):.{digits}g}"


def fmt_pct(value: Any) -> str:
    """An accuracy in [0, 1] as a percentage with two decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{100.0 * float(value):.2f} %"


def fmt_excess(value: Any) -> str:
    """``excess_pct`` (already in percent; positive = over budget) with its sign."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{float(value):+.1f} %"


def fmt_limit(value: Any, unit: str) -> str:
    return "no limit" if value is None else f"≤ {fmt_num(value)} {unit}"


def budget_label(budget: dict[str, Any]) -> str:
    if budget.get("label"):
        return str(budget["label"])
    parts = []
    if budget.get("latency_ms") is not None:
        parts.append(f"latency ≤ {fmt_num(budget['latency_ms'])} ms")
    if budget.get("memory_mb") is not None:
        parts.append(f"memory ≤ {fmt_num(budget['memory_mb'])} MB")
    return ", ".join(parts) or "no limit"


def smallest_text(smallest: dict[str, Any] | None) -> str:
    smallest = smallest or {}
    text = (f"the smallest achievable is {fmt_num(smallest.get('pred_latency_ms'))} ms and "
            f"{fmt_num(smallest.get('pred_peak_mem_mb'))} MB (predicted")
    if smallest.get("measured_latency_ms") is not None or smallest.get("measured_peak_mem_mb") is not None:
        text += (f"; measured {fmt_num(smallest.get('measured_latency_ms'))} ms and "
                 f"{fmt_num(smallest.get('measured_peak_mem_mb'))} MB")
    return text + ")"


def status_sentence(pick: dict[str, Any], smallest: dict[str, Any] | None) -> tuple[str, str]:
    """("Met" | "Missed" | "Infeasible", one sentence a reader can act on)."""
    status = pick["status"]
    arch_id = pick.get("arch_id") or "—"
    measured = pick.get("measured") or {}
    trial = f" (trial {pick['trial_number']})" if pick.get("trial_number") is not None else ""
    if status == "infeasible":
        return "Infeasible", f"no architecture meets this budget; {smallest_text(smallest)}."
    if status == "met":
        if measured:
            unpredicted = (" No trial was predicted to meet it: the predictors overestimate here."
                           if pick.get("predicted_to_meet") is False else "")
            return "Met", (f"{arch_id}{trial} meets this budget as measured: {fmt_num(measured.get('latency_ms'))} ms "
                           f"and {fmt_num(measured.get('peak_mem_mb'))} MB.{unpredicted}")
        return "Met", f"{arch_id}{trial} meets this budget as predicted (not measured)."
    excess = pick.get("excess_pct") or {}
    over = [f"{name} {fmt_excess(excess.get(name))}" for name in ("latency", "memory")
            if excess.get(name) is not None and excess[name] > 0]
    n = pick.get("candidates_measured")
    tried = f" after measuring {n} candidate{'s' if n != 1 else ''}" if n is not None else ""
    return "Missed", (f"{arch_id}{trial} was predicted to meet this budget but measured over it"
            f"{' (' + ', '.join(over) + ')' if over else ''}; it is the closest candidate found{tried}.")


def budget_rows(pick: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(quantity, budget limit, predicted, measured, excess) rows of a budget table."""
    budget = pick.get("budget") or {}
    pred = pick.get("predicted") or {}
    meas = pick.get("measured") or {}
    excess = pick.get("excess_pct") or {}
    latency = fmt_num(meas.get("latency_ms"))
    if meas.get("latency_p10_ms") is not None and meas.get("latency_p90_ms") is not None:
        latency += f" (p10–p90 {fmt_num(meas['latency_p10_ms'])}–{fmt_num(meas['latency_p90_ms'])})"
    rows = [
        ("accuracy (val acc predicted / test acc measured)", "—", fmt_pct(pred.get("val_acc")),
         fmt_pct(meas.get("test_acc")), "—"),
        ("latency (ms)", fmt_limit(budget.get("latency_ms"), "ms"), fmt_num(pred.get("latency_ms")), latency,
         fmt_excess(excess.get("latency"))),
        ("peak memory (MB)", fmt_limit(budget.get("memory_mb"), "MB"), fmt_num(pred.get("peak_mem_mb")),
         fmt_num(meas.get("peak_mem_mb")), fmt_excess(excess.get("memory"))),
    ]
    now = pick.get("predicted_now") or {}
    if now.get("latency_ms") is not None:  # the predictions at the speed read just before measuring
        level = now.get("level")
        factor = f"speed ×{fmt_num(now.get('speed_factor'))}"
        if level is not None and now.get("latency_low_ms") is not None:
            share = f"{100.0 * float(level):.0f} %"
            rows.append((f"latency now, {share} interval (ms; {factor})", "—",
                         f"{fmt_num(now['latency_ms'])} [{fmt_num(now['latency_low_ms'])}–"
                         f"{fmt_num(now['latency_high_ms'])}]", latency,
                         "inside" if now.get("latency_in_interval") else "outside"))
            rows.append((f"peak memory, {share} interval (MB)", "—",
                         f"{fmt_num(now['peak_mem_mb'])} [{fmt_num(now['peak_mem_low_mb'])}–"
                         f"{fmt_num(now['peak_mem_high_mb'])}]", fmt_num(meas.get("peak_mem_mb")),
                         "inside" if now.get("peak_mem_in_interval") else "outside"))
        else:
            rows.append((f"latency now (ms; {factor})", "—", fmt_num(now["latency_ms"]), latency, "—"))
    return rows


def run_rows(record: RunRecord) -> list[tuple[str, str]]:
    cfg = record.config
    states = record.trials["state"].value_counts()
    others = ", ".join(f"{int(n)} {s.lower() or 'unknown'}" for s, n in states.items() if s not in ("COMPLETE", "FAIL"))
    done = record.trials[record.trials["state"] == "COMPLETE"]
    rows = [
        ("search space", fmt_text(cfg.get("space"))),
        ("dataset", fmt_text(cfg.get("dataset"))),
        ("device", f"{fmt_text(cfg.get('device'))} ({fmt_text(cfg.get('device_name'))})"),
        ("batch size", fmt_text(cfg.get("batch_size"))),
        ("runtime", f"{fmt_text(cfg.get('runtime', 'torch'))}, {fmt_text(cfg.get('threads'))} thread(s)"),
        ("sampler", f"{fmt_text(cfg.get('sampler'))}, seed {fmt_text(cfg.get('seed'))}"),
        ("objectives", ", ".join(record.objectives)),
        ("budgets checked against", "the point predictions" if cfg.get("confidence") is None else
         f"the upper end of each trial's {100.0 * float(cfg['confidence']):.0f} % prediction interval"),
        ("trials requested", fmt_text(cfg.get("trials"))),
        ("trials completed", str(int(states.get("COMPLETE", 0)))),
        ("trials failed", str(int(states.get("FAIL", 0)))),
    ]
    if others:
        rows.append(("other trials", others))
    rows += [
        ("feasible (meet some budget)", str(int(done["feasible"].sum()))),
        ("Pareto-optimal", str(len(record.pareto))),
    ]
    noise = (record.summary or {}).get("accuracy_noise")
    if isinstance(noise, dict) and noise.get("statement"):
        rows.append(("accuracy noise", str(noise["statement"])))
    return rows


def timing_rows(summary: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not summary:
        return []
    rows = []
    for name, seconds in (summary.get("phases") or {}).items():
        label = name[:-2] if isinstance(name, str) and name.endswith("_s") else str(name)
        shown = f"{fmt_num(seconds)} s" if isinstance(seconds, (int, float)) else fmt_text(seconds)
        rows.append((label.replace("_", " "), shown))
    if summary.get("trials_per_s") is not None:
        rows.append(("trials per second", fmt_num(summary["trials_per_s"])))
    for key, value in summary.items():
        if key not in ("phases", "trials_per_s", "accuracy_noise"):
            shown = fmt_num(value) if isinstance(value, float) else fmt_text(value)
            rows.append((str(key).replace("_", " "), shown))
    return rows


def fmt_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def setting_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in config.items():
        if key == "budgets" and isinstance(value, list):
            text = "; ".join(budget_label(b) if isinstance(b, dict) else fmt_text(b) for b in value) or "none"
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            text = ", ".join(map(str, value))
        else:
            text = fmt_text(value)
        rows.append((str(key), text))
    return rows


def pareto_rows(record: RunRecord) -> tuple[list[str], list[list[str]], int]:
    head = ["trial", "arch_id", "val acc", "latency (ms)", "peak memory (MB)", "quadratic / blocks", "depths",
            "widths", "feasible"]
    front = record.pareto.sort_values(["val_acc", "pred_latency_ms"], ascending=[False, True], kind="stable")
    rows = []
    for _, r in front.head(PARETO_TABLE_ROWS).iterrows():
        def get(col, r=r):
            v = r.get(col)
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        nq, nb = get("n_quadratic"), get("n_blocks")
        rows.append([
            fmt_text(int(r["number"]) if get("number") is not None else None), fmt_text(get("arch_id")),
            fmt_pct(get("val_acc")), fmt_num(get("pred_latency_ms")), fmt_num(get("pred_peak_mem_mb")),
            f"{int(nq)} / {int(nb)}" if nq is not None and nb is not None else "—",
            fmt_text(get("depths")), fmt_text(get("widths")),
            ("yes" if bool(r["feasible"]) else "no") if "feasible" in r.index else "—",
        ])
    return head, rows, len(front)

