"""A finished search's run directory rendered as plots and a report (HTML and Markdown).

Compute into a record, render separately: everything here reads only the files ``nas-search``
left in the run directory, so a report can be rebuilt (restyled, after a bug fix) without the
supernet, the predictors or the Optuna study::

    config.json   the run's settings: space, dataset, device, batch size, sampler, objectives, budgets
    trials.csv    one row per trial (predicted val_acc, pred_latency_ms, pred_peak_mem_mb, feasible…)
    pareto.csv    the Pareto-optimal COMPLETE trials (same columns)
    picks.json    one pick per budget: predicted and measured figures, status met/missed/infeasible
    summary.json  optional: phase timings

:func:`read_run` loads them into a :class:`RunRecord`; :func:`pareto_plot`,
:func:`hypervolume_plot`, :func:`arch_html` / :func:`arch_markdown` draw from it, and
:func:`write_report` writes ``pareto.png``, ``hypervolume.png``, ``report.html`` (self-contained:
images embedded as base64 data URIs, no external CSS or JS) and ``report.md``.

Hypervolume (Zitzler & Thiele, PPSN 1998) is computed by :mod:`nas.pareto`; see
:func:`hypervolume_series` for the normalisation and reference point used here.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from nas.pareto import hypervolume_history, normalize, pareto_mask
from nas.plots import _plt, _save
from nas.run_dir import write_text_atomic
from search_spaces.arch import ArchConfig

__all__ = [
    "OBJECTIVE_COLUMNS",
    "REPORT_FILES",
    "RunRecord",
    "arch_html",
    "arch_markdown",
    "hypervolume_plot",
    "hypervolume_series",
    "pareto_plot",
    "read_run",
    "write_report",
]

WRITER = "nas-search"
# Study objective name -> trials.csv column holding its (predicted) value.
OBJECTIVE_COLUMNS = {"val_acc": "val_acc", "latency_ms": "pred_latency_ms", "peak_mem_mb": "pred_peak_mem_mb"}
REPORT_FILES = ("pareto.png", "hypervolume.png", "report.html", "report.md")
HV_REFERENCE = 1.1  # reference point, every coordinate, on the [0, 1]-normalised objectives
PARETO_TABLE_ROWS = 20  # rows of the Pareto table shown in the report

_TRIAL_COLUMNS = ("number", "state", "val_acc", "pred_latency_ms", "pred_peak_mem_mb", "feasible", "arch_id")
_PARETO_COLUMNS = ("number", "val_acc", "pred_latency_ms", "pred_peak_mem_mb", "arch_id")
_TEXT_COLUMNS = ("state", "arch_id", "depths", "widths", "arch_json")
_STATUSES = ("met", "missed", "infeasible")
_SUSPECT = "the latency measurement was flagged suspect (noisy machine): re-measure before relying on it"
_BUDGET_HEAD = ["", "budget", "predicted", "measured", "excess (+ over)"]


# ---------------------------------------------------------------------------- the record


@dataclass
class RunRecord:
    """Everything one search left on disk, as plain data."""

    config: dict[str, Any]
    trials: pd.DataFrame  # one row per trial; bool columns feasible, feasible_b0…
    pareto: pd.DataFrame  # the Pareto-optimal COMPLETE trials
    picks: dict[str, Any]  # {"picks": [one per budget], "smallest": {…}}
    summary: dict[str, Any] | None  # phase timings, when summary.json exists
    run_dir: Path

    @property
    def objectives(self) -> list[str]:
        return list(self.config["objectives"])

    @property
    def budgets(self) -> list[dict[str, Any]]:
        return list(self.config.get("budgets") or [])


def _missing(path: Path) -> FileNotFoundError:
    if path.name in ("picks.json", "pareto.csv", "trials.csv") and (path.parent / "config.json").is_file():
        return FileNotFoundError(f"{path.name} not found in run directory {path.parent}: the search there has not "
                                 f"finished (stopped or still running); finish it with `{WRITER} --out "
                                 f"{path.parent} --resume`, then report")
    return FileNotFoundError(f"{path.name} not found in run directory {path.parent}: it is written by "
                             f"`{WRITER}`; point at the directory a finished search wrote (--out)")


def _corrupt(path: Path, detail: str) -> ValueError:
    return ValueError(f"{path.name} in run directory {path.parent} is not readable ({detail}); it is written "
                      f"by `{WRITER}`: re-run the search or restore the file")


def _read_json(path: Path, *, required: bool = True) -> Any:
    if not path.is_file():
        if required:
            raise _missing(path)
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _corrupt(path, f"not valid JSON: {err}") from None


def _as_bool(series: pd.Series) -> pd.Series:
    """True/False, "True"/"false", 1/0 → bool; empty → False."""
    if series.dtype == bool:
        return series
    text = series.map(lambda v: str(v).strip().lower() if not (isinstance(v, float) and math.isnan(v)) else "")
    return text.isin(("true", "1", "1.0", "yes"))


def _read_table(path: Path, required_columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise _missing(path)
    try:
        table = pd.read_csv(path, dtype={c: str for c in _TEXT_COLUMNS})
    except pd.errors.EmptyDataError:
        raise _corrupt(path, "the file is empty, not even a header") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise _corrupt(path, f"not a valid CSV table: {err}") from None
    missing = [c for c in required_columns if c not in table.columns]
    if missing:
        raise _corrupt(path, f"missing column(s) {', '.join(missing)}; columns found: {', '.join(table.columns)}")
    for col in ("number", "val_acc", "pred_latency_ms", "pred_peak_mem_mb", "constraint", "n_quadratic",
                "n_blocks", "duration_s"):
        if col in table.columns:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    for col in table.columns:
        if col == "feasible" or col.startswith("feasible_b"):
            table[col] = _as_bool(table[col])
    if "state" in table.columns:
        table["state"] = table["state"].fillna("").astype(str).str.strip().str.upper()
    return table


def read_run(run_dir: str | Path) -> RunRecord:
    """Load a run directory's ``config.json``, ``trials.csv``, ``pareto.csv``, ``picks.json`` and
    (optional) ``summary.json``. A missing file raises ``FileNotFoundError``, a corrupt one
    ``ValueError``; both name the file and say that ``nas-search`` writes it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist; `{WRITER}` creates it (--out)")

    config_path = run_dir / "config.json"
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise _corrupt(config_path, f"expected a JSON object, got {type(config).__name__}")
    if "objectives" not in config and any((run_dir / f).exists() for f in ("supernet.safetensors", "checkpoint.pt")):
        raise ValueError(f"{run_dir} is a supernet run directory (`nas train-supernet`), not a `{WRITER}` run")
    objectives = config.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise _corrupt(config_path, f"'objectives' must be a non-empty list drawn from {', '.join(OBJECTIVE_COLUMNS)}")
    unknown = [o for o in objectives if o not in OBJECTIVE_COLUMNS]
    if unknown:
        raise _corrupt(config_path, f"unknown objective(s) {', '.join(map(str, unknown))}; "
                                    f"valid: {', '.join(OBJECTIVE_COLUMNS)}")
    budgets = config.get("budgets") or []
    if not isinstance(budgets, list) or not all(isinstance(b, dict) for b in budgets):
        raise _corrupt(config_path, "'budgets' must be a list of objects")

    trials = _read_table(run_dir / "trials.csv", _TRIAL_COLUMNS)
    pareto = _read_table(run_dir / "pareto.csv", _PARETO_COLUMNS)

    picks_path = run_dir / "picks.json"
    picks = _read_json(picks_path)
    if not isinstance(picks, dict) or not isinstance(picks.get("picks"), list):
        raise _corrupt(picks_path, "expected an object with a 'picks' list")
    if len(picks["picks"]) != len(budgets):
        raise _corrupt(picks_path, f"{len(picks['picks'])} picks for {len(budgets)} budgets in config.json; "
                                   f"there is one pick per budget")
    for i, pick in enumerate(picks["picks"]):
        if not isinstance(pick, dict) or pick.get("status") not in _STATUSES:
            status = pick.get("status") if isinstance(pick, dict) else pick
            raise _corrupt(picks_path, f"picks[{i}].status must be one of {', '.join(_STATUSES)}, got {status!r}")

    summary_path = run_dir / "summary.json"
    summary = _read_json(summary_path, required=False)
    if summary is not None and not isinstance(summary, dict):
        raise _corrupt(summary_path, f"expected a JSON object, got {type(summary).__name__}")
    return RunRecord(config=config, trials=trials, pareto=pareto, picks=picks, summary=summary, run_dir=run_dir)


def _record(record: RunRecord | str | Path) -> RunRecord:
    return record if isinstance(record, RunRecord) else read_run(record)


# ---------------------------------------------------------------------------- hypervolume


def _complete(trials: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """COMPLETE trials with finite values in ``columns``, in trial-number order."""
    done = trials[trials["state"] == "COMPLETE"]
    finite = np.isfinite(done[columns].to_numpy(dtype=float)).all(axis=1) if len(done) else np.zeros(0, bool)
    return done[finite].sort_values("number", kind="stable")


def _minimization(trials: pd.DataFrame, objectives: list[str]) -> np.ndarray:
    """(n, m) minimisation values: 1 − val_acc, pred_latency_ms, pred_peak_mem_mb (study's objectives)."""
    cols = []
    for name in objectives:
        values = trials[OBJECTIVE_COLUMNS[name]].to_numpy(dtype=float)
        cols.append(1.0 - values if name == "val_acc" else values)
    return np.stack(cols, axis=1) if cols else np.zeros((len(trials), 0))


def hypervolume_series(trials: pd.DataFrame, objectives: list[str]) -> np.ndarray:
    """Hypervolume after each COMPLETE trial (in trial-number order) of the feasible ones so far.

    Objectives go to minimisation (``1 − val_acc``, ``pred_latency_ms``, ``pred_peak_mem_mb``, only
    those among the study's ``objectives``), are normalised to [0, 1] with lower/upper = the
    min/max over *all* COMPLETE trials (feasible or not), and the reference point is 1.1 in every
    coordinate. Infeasible trials (``feasible`` False) add nothing. Non-decreasing; one value per
    COMPLETE trial with finite metrics.
    """
    unknown = [o for o in objectives if o not in OBJECTIVE_COLUMNS]
    if not objectives or unknown:
        raise ValueError(f"objectives must be a non-empty list drawn from {', '.join(OBJECTIVE_COLUMNS)}, "
                         f"got {list(objectives)!r}")
    done = _complete(trials, [OBJECTIVE_COLUMNS[o] for o in objectives])
    if done.empty:
        return np.zeros(0)
    points = _minimization(done, list(objectives))
    scaled = normalize(points, points.min(axis=0), points.max(axis=0))
    reference = np.full(len(objectives), HV_REFERENCE)
    return hypervolume_history(scaled, reference, feasible=done["feasible"].to_numpy(dtype=bool))


# ---------------------------------------------------------------------------- plots


def _tmp_path(path: Path) -> Path:
    """A hidden sibling of ``path`` unique to this process and thread, same suffix (matplotlib reads
    the format from it); created with ordinary permissions, unlike ``tempfile.mkstemp``."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")


def _save_atomic(plt, fig, path: str | Path) -> Path:
    """``plots._save`` to a temporary file beside ``path``, then ``os.replace`` it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        _save(plt, fig, tmp)
        os.replace(tmp, path)
    except BaseException:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _budget_colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap((i + 1) % 10) for i in range(n)]  # skip tab10's blue, used for the front


def _front_2d(x: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices, by increasing x, of the points non-dominated in (min x, max acc)."""
    if len(x) == 0:
        return np.zeros(0, dtype=int)
    keep = np.flatnonzero(pareto_mask(np.stack([x, acc], axis=1), ("minimize", "maximize")))
    return keep[np.argsort(x[keep], kind="stable")]


def pareto_plot(record: RunRecord | str | Path, path: str | Path) -> Path:
    """Validation accuracy (%) against predicted latency (ms) and predicted peak memory (MB).

    Grey dots: feasible COMPLETE trials; hollow light grey: infeasible ones; blue: the
    Pareto-optimal trials of ``pareto.csv`` (optimal over the study's objectives), the ones
    non-dominated in each panel's own two axes joined by a step line. Dashed vertical lines: the
    budget limits. Stars: each budget's pick at its predicted cost; an arrow runs to the measured
    cost (a cross, with the p10–p90 latency range as a bar). Accuracy is always plotted, even when
    it is not one of the study's objectives.
    """
    record = _record(record)
    plt = _plt()
    panels = [("pred_latency_ms", "latency_ms", "latency_ms", "predicted latency (ms)", "ms"),
              ("pred_peak_mem_mb", "peak_mem_mb", "memory_mb", "predicted peak memory (MB)", "MB")]
    picks = record.picks["picks"]
    colors = _budget_colors(len(picks))
    fig, axes = plt.subplots(1, 2, figsize=(14.0, 5.0), squeeze=False)
    for ax, (col, metric, limit_key, xlabel, unit) in zip(axes[0], panels):
        done = _complete(record.trials, ["val_acc", col])
        feasible = done["feasible"].to_numpy(dtype=bool)
        x = done[col].to_numpy(dtype=float)
        acc = 100.0 * done["val_acc"].to_numpy(dtype=float)
        ax.scatter(x[feasible], acc[feasible], s=12, color="0.45", alpha=0.7, label="feasible trial")
        ax.scatter(x[~feasible], acc[~feasible], s=14, facecolors="none", edgecolors="0.75", linewidths=0.8,
                   label="infeasible trial")
        span = list(x)  # what the x axis must show: trials, limits, picks (not the p10–p90 bars)
        front = record.pareto
        front = front[np.isfinite(front[[col, "val_acc"]].to_numpy(dtype=float)).all(axis=1)]
        fx = front[col].to_numpy(dtype=float)
        facc = 100.0 * front["val_acc"].to_numpy(dtype=float)
        ax.scatter(fx, facc, s=30, color="tab:blue", zorder=3, label="Pareto-optimal")
        order = _front_2d(fx, facc)
        if len(order) > 1:
            ax.step(fx[order], facc[order], where="post", color="tab:blue", lw=1.2, alpha=0.8, zorder=2)
        for i, (pick, color) in enumerate(zip(picks, colors)):
            limit = (pick.get("budget") or {}).get(limit_key)
            if limit is not None:
                ax.axvline(limit, color=color, ls="--", lw=1.2, label=f"B{i + 1}: ≤ {_num(limit)} {unit}")
                span.append(float(limit))
            predicted, measured = pick.get("predicted"), pick.get("measured")
            if not predicted or predicted.get(metric) is None or predicted.get("val_acc") is None:
                continue
            px, py = float(predicted[metric]), 100.0 * float(predicted["val_acc"])
            ax.scatter([px], [py], marker="*", s=260, color=color, edgecolors="black", linewidths=0.7, zorder=5,
                       label=f"B{i + 1} pick ({pick['status']})")
            if measured and measured.get(metric) is not None:
                mx = float(measured[metric])
                span += [px, mx]
                ax.annotate("", xy=(mx, py), xytext=(px, py), zorder=4,
                            arrowprops={"arrowstyle": "->", "color": color, "lw": 1.5})
                ax.scatter([mx], [py], marker="X", s=60, color=color, edgecolors="black", linewidths=0.5, zorder=5,
                           label=f"B{i + 1} measured")
                lo, hi = measured.get("latency_p10_ms"), measured.get("latency_p90_ms")
                if metric == "latency_ms" and lo is not None and hi is not None:
                    ax.errorbar([mx], [py], xerr=[[max(mx - lo, 0.0)], [max(hi - mx, 0.0)]], fmt="none",
                                ecolor=color, elinewidth=1.0, capsize=3, zorder=4)
        if span:  # a p10–p90 bar stretched by a burst of machine load must not squash the trials
            lo, hi = min(span), max(span)
            pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 1.0
            ax.set_xlim(lo - pad, hi + pad)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation accuracy, inherited weights (%)")
        ax.grid(alpha=0.3)
        if done.empty:
            ax.text(0.5, 0.5, "no completed trials", ha="center", va="center", transform=ax.transAxes)
    handles, labels = axes[0][0].get_legend_handles_labels()
    h2, l2 = axes[0][1].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for h, lab in zip(h2, l2):
        seen.setdefault(lab, h)
    axes[0][1].legend(seen.values(), seen.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      borderaxespad=0.0)
    fig.suptitle(f"{record.config.get('space', '?')} on {record.config.get('dataset', '?')}, "
                 f"{record.config.get('device', '?')} batch {record.config.get('batch_size', '?')}: "
                 f"picks marked ★ predicted, ✕ measured")
    return _save_atomic(plt, fig, path)


def hypervolume_plot(record: RunRecord | str | Path, path: str | Path) -> Path:
    """Hypervolume of the feasible COMPLETE trials against trial number.

    Objectives as minimisation (``1 − val_acc``, latency, memory; the study's objectives only),
    normalised with lower/upper = min/max over all COMPLETE trials, reference point 1.1 in every
    coordinate: :func:`hypervolume_series`.
    """
    record = _record(record)
    objectives = record.objectives
    series = hypervolume_series(record.trials, objectives)
    numbers = _complete(record.trials, [OBJECTIVE_COLUMNS[o] for o in objectives])["number"].to_numpy(dtype=float)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    if len(series):
        ax.step(numbers, series, where="post", color="tab:blue")
    else:
        ax.text(0.5, 0.5, "no completed trials", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"hypervolume (normalised, ref {HV_REFERENCE})")
    ax.set_title(f"feasible hypervolume over {', '.join(objectives)}")
    ax.grid(alpha=0.3)
    return _save_atomic(plt, fig, path)


# ---------------------------------------------------------------------------- architecture drawings

_Q_STYLE = "background:#f4a261;border:2px solid #b5541b;"
_L_STYLE = "background:#dfe7f0;border:2px solid #8aa1b8;"
_BOX = ("display:inline-block;margin:2px 3px;padding:3px 7px;border-radius:4px;"
        "font:12px/1.3 monospace;color:#111;")


def _pick_facts(pick: dict[str, Any], *, text: Callable[[Any], str], code: Callable[[Any], str]) -> list[str]:
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


def _num(value: Any, digits: int = 4) -> str:
    """A latency or memory figure: 4 significant digits; missing → an em dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{float(value):.{digits}g}"


def _pct(value: Any) -> str:
    """An accuracy in [0, 1] as a percentage with two decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{100.0 * float(value):.2f} %"


def _excess(value: Any) -> str:
    """``excess_pct`` (already in percent; positive = over budget) with its sign."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{float(value):+.1f} %"


def _limit(value: Any, unit: str) -> str:
    return "no limit" if value is None else f"≤ {_num(value)} {unit}"


def _budget_label(budget: dict[str, Any]) -> str:
    if budget.get("label"):
        return str(budget["label"])
    parts = []
    if budget.get("latency_ms") is not None:
        parts.append(f"latency ≤ {_num(budget['latency_ms'])} ms")
    if budget.get("memory_mb") is not None:
        parts.append(f"memory ≤ {_num(budget['memory_mb'])} MB")
    return ", ".join(parts) or "no limit"


def _smallest_text(smallest: dict[str, Any] | None) -> str:
    smallest = smallest or {}
    text = (f"the smallest achievable is {_num(smallest.get('pred_latency_ms'))} ms and "
            f"{_num(smallest.get('pred_peak_mem_mb'))} MB (predicted")
    if smallest.get("measured_latency_ms") is not None or smallest.get("measured_peak_mem_mb") is not None:
        text += (f"; measured {_num(smallest.get('measured_latency_ms'))} ms and "
                 f"{_num(smallest.get('measured_peak_mem_mb'))} MB")
    return text + ")"


def _status_sentence(pick: dict[str, Any], smallest: dict[str, Any] | None) -> tuple[str, str]:
    """("Met" | "Missed" | "Infeasible", one sentence a reader can act on)."""
    status = pick["status"]
    arch_id = pick.get("arch_id") or "—"
    measured = pick.get("measured") or {}
    trial = f" (trial {pick['trial_number']})" if pick.get("trial_number") is not None else ""
    if status == "infeasible":
        return "Infeasible", f"no architecture meets this budget; {_smallest_text(smallest)}."
    if status == "met":
        if measured:
            unpredicted = (" No trial was predicted to meet it: the predictors overestimate here."
                           if pick.get("predicted_to_meet") is False else "")
            return "Met", (f"{arch_id}{trial} meets this budget as measured: {_num(measured.get('latency_ms'))} ms "
                           f"and {_num(measured.get('peak_mem_mb'))} MB.{unpredicted}")
        return "Met", f"{arch_id}{trial} meets this budget as predicted (not measured)."
    excess = pick.get("excess_pct") or {}
    over = [f"{name} {_excess(excess.get(name))}" for name in ("latency", "memory")
            if excess.get(name) is not None and excess[name] > 0]
    n = pick.get("candidates_measured")
    tried = f" after measuring {n} candidate{'s' if n != 1 else ''}" if n is not None else ""
    return "Missed", (f"{arch_id}{trial} was predicted to meet this budget but measured over it"
            f"{' (' + ', '.join(over) + ')' if over else ''}; it is the closest candidate found{tried}.")


def _budget_rows(pick: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(quantity, budget limit, predicted, measured, excess) rows of a budget table."""
    budget = pick.get("budget") or {}
    pred = pick.get("predicted") or {}
    meas = pick.get("measured") or {}
    excess = pick.get("excess_pct") or {}
    latency = _num(meas.get("latency_ms"))
    if meas.get("latency_p10_ms") is not None and meas.get("latency_p90_ms") is not None:
        latency += f" (p10–p90 {_num(meas['latency_p10_ms'])}–{_num(meas['latency_p90_ms'])})"
    return [
        ("accuracy (val acc predicted / test acc measured)", "—", _pct(pred.get("val_acc")),
         _pct(meas.get("test_acc")), "—"),
        ("latency (ms)", _limit(budget.get("latency_ms"), "ms"), _num(pred.get("latency_ms")), latency,
         _excess(excess.get("latency"))),
        ("peak memory (MB)", _limit(budget.get("memory_mb"), "MB"), _num(pred.get("peak_mem_mb")),
         _num(meas.get("peak_mem_mb")), _excess(excess.get("memory"))),
    ]


def _run_rows(record: RunRecord) -> list[tuple[str, str]]:
    cfg = record.config
    states = record.trials["state"].value_counts()
    others = ", ".join(f"{int(n)} {s.lower() or 'unknown'}" for s, n in states.items() if s not in ("COMPLETE", "FAIL"))
    done = record.trials[record.trials["state"] == "COMPLETE"]
    rows = [
        ("search space", _text(cfg.get("space"))),
        ("dataset", _text(cfg.get("dataset"))),
        ("device", f"{_text(cfg.get('device'))} ({_text(cfg.get('device_name'))})"),
        ("batch size", _text(cfg.get("batch_size"))),
        ("sampler", f"{_text(cfg.get('sampler'))}, seed {_text(cfg.get('seed'))}"),
        ("objectives", ", ".join(record.objectives)),
        ("trials requested", _text(cfg.get("trials"))),
        ("trials completed", str(int(states.get("COMPLETE", 0)))),
        ("trials failed", str(int(states.get("FAIL", 0)))),
    ]
    if others:
        rows.append(("other trials", others))
    rows += [
        ("feasible (meet some budget)", str(int(done["feasible"].sum()))),
        ("Pareto-optimal", str(len(record.pareto))),
    ]
    return rows


def _timing_rows(summary: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not summary:
        return []
    rows = []
    for name, seconds in (summary.get("phases") or {}).items():
        label = name[:-2] if isinstance(name, str) and name.endswith("_s") else str(name)
        shown = f"{_num(seconds)} s" if isinstance(seconds, (int, float)) else _text(seconds)
        rows.append((label.replace("_", " "), shown))
    if summary.get("trials_per_s") is not None:
        rows.append(("trials per second", _num(summary["trials_per_s"])))
    for key, value in summary.items():
        if key not in ("phases", "trials_per_s"):
            shown = _num(value) if isinstance(value, float) else _text(value)
            rows.append((str(key).replace("_", " "), shown))
    return rows


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _setting_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in config.items():
        if key == "budgets" and isinstance(value, list):
            text = "; ".join(_budget_label(b) if isinstance(b, dict) else _text(b) for b in value) or "none"
        elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            text = ", ".join(map(str, value))
        else:
            text = _text(value)
        rows.append((str(key), text))
    return rows


def _pareto_rows(record: RunRecord) -> tuple[list[str], list[list[str]], int]:
    head = ["trial", "arch_id", "val acc", "latency (ms)", "peak memory (MB)", "quadratic / blocks", "depths",
            "widths", "feasible"]
    front = record.pareto.sort_values(["val_acc", "pred_latency_ms"], ascending=[False, True], kind="stable")
    rows = []
    for _, r in front.head(PARETO_TABLE_ROWS).iterrows():
        def get(col):
            v = r.get(col)
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        nq, nb = get("n_quadratic"), get("n_blocks")
        rows.append([
            _text(int(r["number"]) if get("number") is not None else None), _text(get("arch_id")),
            _pct(get("val_acc")), _num(get("pred_latency_ms")), _num(get("pred_peak_mem_mb")),
            f"{int(nq)} / {int(nb)}" if nq is not None and nb is not None else "—",
            _text(get("depths")), _text(get("widths")),
            ("yes" if bool(r["feasible"]) else "no") if "feasible" in r.index else "—",
        ])
    return head, rows, len(front)


# ---------------------------------------------------------------------------- HTML

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
    word, sentence = _status_sentence(pick, smallest)
    parts = [f'<section class="budget" id="budget-{i + 1}">',
             f"<h3>Budget {i + 1}: {esc(_budget_label(budget))} "
             f"<span class=\"note\">({esc(_text(budget.get('source')))})</span></h3>",
             f'<p class="status {esc(status)}"><b>{esc(word)}:</b> {esc(sentence)}</p>']
    if pick.get("message"):
        parts.append(f'<p class="note">search: {esc(str(pick["message"]))}</p>')
    parts.append(_html_table(_BUDGET_HEAD, _budget_rows(pick),
                             cls="budget-table"))
    facts = _pick_facts(pick, text=lambda v: esc(_text(v)), code=lambda v: f"<code>{esc(str(v))}</code>")
    if facts:
        parts.append(f"<p>{' · '.join(facts)}</p>")
    if pick.get("arch"):
        parts.append(arch_html(pick["arch"]))
    parts.append("</section>")
    return "\n".join(parts)


def _report_html(record: RunRecord, pareto_png: Path, hv_png: Path) -> str:
    esc = html.escape
    cfg = record.config
    title = f"QuadraNAS search report: {_text(cfg.get('study_name') or record.run_dir.name)}"
    smallest = record.picks.get("smallest")
    body = [f"<h1>{esc(title)}</h1>",
            f'<p class="note">run directory {esc(str(record.run_dir))}; regenerate with '
            f"<code>nas.report.write_report</code> (reads only the files in the run directory).</p>",
            "<h2>Run</h2>", _html_table(None, _run_rows(record))]
    timing = _timing_rows(record.summary)
    if timing:
        body += ["<h3>Time</h3>", _html_table(None, timing)]
    body.append("<h2>Budgets and picks</h2>")
    if not record.picks["picks"]:
        body.append("<p>No budgets were given.</p>")
    body += [_pick_html(i, pick, smallest) for i, pick in enumerate(record.picks["picks"])]
    body += ["<h2>Pareto front</h2>",
             f'<img alt="accuracy against predicted latency and memory" src="{_data_uri(pareto_png)}">',
             f'<img alt="hypervolume history" src="{_data_uri(hv_png)}">']
    head, rows, total = _pareto_rows(record)
    body.append(f"<p>{min(total, PARETO_TABLE_ROWS)} of {total} Pareto-optimal trials, by validation accuracy "
                f"(predicted latency and memory; accuracy with inherited supernet weights).</p>")
    body.append(_html_table(head, rows, cls="pareto-table"))
    body += ["<h2>Settings</h2>", _html_table(["setting", "value"], _setting_rows(cfg))]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------------------- Markdown


def _md(value: Any) -> str:
    """Table-cell text: HTML-escaped (Markdown passes raw HTML through), pipes and newlines escaped."""
    return html.escape(str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def _md_table(head: list[str], rows: list) -> str:
    lines = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _report_md(record: RunRecord, pareto_name: str, hv_name: str) -> str:
    cfg = record.config
    smallest = record.picks.get("smallest")
    out = [f"# QuadraNAS search report: {_md(_text(cfg.get('study_name') or record.run_dir.name))}", "",
           "## Run", "", _md_table(["", ""], _run_rows(record)), ""]
    timing = _timing_rows(record.summary)
    if timing:
        out += ["### Time", "", _md_table(["phase", "time"], timing), ""]
    out += ["## Budgets and picks", ""]
    if not record.picks["picks"]:
        out += ["No budgets were given.", ""]
    for i, pick in enumerate(record.picks["picks"]):
        budget = pick.get("budget") or {}
        out += [f"### Budget {i + 1}: {_md(_budget_label(budget))} ({_md(_text(budget.get('source')))})", "",
                "**{}:** {}".format(*(_md(t) for t in _status_sentence(pick, smallest))), ""]
        if pick.get("message"):
            out += [f"search: {_md(pick['message'])}", ""]
        out += [_md_table(_BUDGET_HEAD, _budget_rows(pick)), ""]
        facts = _pick_facts(pick, text=_md, code=lambda v: f"`{v}`")
        if facts:
            out += [" · ".join(facts), ""]
        if pick.get("arch"):
            out += ["```", arch_markdown(pick["arch"]), "```", ""]
    head, rows, total = _pareto_rows(record)
    out += ["## Pareto front", "", f"![accuracy against predicted latency and memory]({pareto_name})", "",
            f"![hypervolume history]({hv_name})", "",
            f"{min(total, PARETO_TABLE_ROWS)} of {total} Pareto-optimal trials, by validation accuracy.", "",
            _md_table(head, rows), "",
            "## Settings", "", _md_table(["setting", "value"], _setting_rows(cfg)), ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- writing


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Render ``run_dir`` into ``pareto.png``, ``hypervolume.png``, ``report.html`` and ``report.md``.

    Reads only the run directory's files (:func:`read_run`); overwrites earlier report files, each
    written to a temporary file and moved into place with ``os.replace``. Returns
    ``{"pareto_png", "hypervolume_png", "html", "markdown"}`` → paths.
    """
    record = read_run(run_dir)
    out = record.run_dir
    pareto_png = pareto_plot(record, out / "pareto.png")
    hv_png = hypervolume_plot(record, out / "hypervolume.png")
    report_html = write_text_atomic(out / "report.html", _report_html(record, pareto_png, hv_png))
    report_md = write_text_atomic(out / "report.md", _report_md(record, pareto_png.name, hv_png.name))
    return {"pareto_png": pareto_png, "hypervolume_png": hv_png, "html": report_html, "markdown": report_md}
