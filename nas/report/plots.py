"""Plots drawn from records (matplotlib; PNG files unless the path names another format).

Each function takes plain data — a search's :class:`~nas.report.record.RunRecord`, or lists and
dicts from a benchmark record — and a path, so the same record can be re-plotted without
re-measuring: :func:`pareto_plot` and :func:`hypervolume_plot` of a search run,
:func:`parity_plot` (predicted against measured) and :func:`staircase_plot` (latency against a
stage's width) of the benchmarks. Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nas.objectives import columns
from nas.pareto import pareto_mask
from nas.report.record import HV_REFERENCE, RunRecord, complete_trials, hypervolume_series, run_record
from nas.report.text import fmt_num
from search_spaces.atomic import write_atomic

__all__ = ["hypervolume_plot", "parity_plot", "pareto_plot", "staircase_plot"]


def _plt():
    """pyplot, on the Agg backend unless a session (a notebook) already chose one: every plot
    here is written to a file and closed, so an interactive backend is left alone."""
    import os
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> Path:
    """Lay out, write ``fig`` at ``path`` atomically (parents created), close it and return the file
    written.

    The format follows the suffix (``.png``, ``.svg``, ``.pdf``, …); a path without one gets
    ``.png``. A directory is refused: name the file.
    """
    path = Path(path)
    if path.is_dir():
        plt.close(fig)
        raise ValueError(f"{path} is a directory; give the plot's file name, e.g. {path / 'plot.png'}")
    if not path.suffix:
        path = path.with_suffix(".png")
    try:
        fig.tight_layout()
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format=path.suffix[1:]))
    finally:
        plt.close(fig)
    return path


def parity_plot(panels: Sequence[dict], path: str | Path, *, title: str = "") -> Path:
    """Predicted vs measured, one panel per entry of ``panels``.

    Each panel: ``{"title", "unit", "measured": [...], "series": {label: predicted list}}``;
    the diagonal and the ±10 % band are drawn.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        measured = list(panel["measured"])
        lo, hi = min(measured), max(measured)
        for label, predicted in panel["series"].items():
            ax.scatter(measured, predicted, s=14, alpha=0.75, label=label)
            lo, hi = min(lo, min(predicted)), max(hi, max(predicted))
        pad = 0.05 * (hi - lo or 1.0)
        xs = [lo - pad, hi + pad]
        ax.plot(xs, xs, color="black", lw=1)
        ax.fill_between(xs, [0.9 * v for v in xs], [1.1 * v for v in xs], color="grey", alpha=0.2, label="±10 %")
        ax.set_xlim(*xs)
        ax.set_ylim(*xs)
        unit = panel.get("unit", "")
        ax.set_xlabel(f"measured {unit}")
        ax.set_ylabel(f"predicted {unit}")
        ax.set_title(panel.get("title", ""))
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def staircase_plot(widths: Sequence[int], measured_ms: Sequence[float], macs: Sequence[float],
                   predicted_ms: Sequence[float] | None, path: str | Path, *, title: str = "",
                   waves: Sequence[float] | None = None) -> Path:
    """Latency (measured, predicted) and MACs against one stage's width; kernel waves if given."""
    plt = _plt()
    n = 2 if waves is not None else 1
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 4.2 * n), squeeze=False, sharex=True)
    ax = axes[0][0]
    ax.plot(widths, measured_ms, "o-", label="measured latency")
    if predicted_ms is not None:
        ax.plot(widths, predicted_ms, "s--", label="predicted latency")
    ax.set_ylabel("latency (ms)")
    ax2 = ax.twinx()
    ax2.plot(widths, [m / 1e6 for m in macs], color="grey", alpha=0.6, label="MACs (millions)")
    ax2.set_ylabel("MACs (millions)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left")
    ax.set_title(title)
    if waves is not None:
        axes[1][0].step(widths, waves, where="mid", label="kernel waves (sum)")
        axes[1][0].set_ylabel("waves")
        axes[1][0].legend(fontsize=8)
    axes[-1][0].set_xlabel("stage width (channels)")
    return _save(plt, fig, path)


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
    cost (a cross, with the p10–p90 latency range as a bar). Vertical bars: ± one binomial standard
    error of the inherited accuracy (Pareto-optimal trials and picks). A dot with a horizontal
    error bar: the pick's prediction restated at the machine's speed read just before it was
    measured, with its prediction interval (``predicted_now`` in ``picks.json``) — where the
    measurement should fall. Accuracy is always plotted,
    even when it is not one of the study's objectives.
    """
    record = run_record(record)
    plt = _plt()
    panels = [("pred_latency_ms", "latency_ms", "latency_ms", "predicted latency (ms)", "ms"),
              ("pred_peak_mem_mb", "peak_mem_mb", "memory_mb", "predicted peak memory (MB)", "MB")]
    picks = record.picks["picks"]
    colors = _budget_colors(len(picks))
    fig, axes = plt.subplots(1, 2, figsize=(14.0, 5.0), squeeze=False)
    for ax, (col, metric, limit_key, xlabel, unit) in zip(axes[0], panels):
        done = complete_trials(record.trials, ["val_acc", col])
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
        if "val_acc_se" in front.columns:  # ± one binomial standard error on the validation images
            fse = 100.0 * front["val_acc_se"].to_numpy(dtype=float)
            ok = np.isfinite(fse)
            ax.errorbar(fx[ok], facc[ok], yerr=fse[ok], fmt="none", ecolor="tab:blue", elinewidth=0.8, alpha=0.6,
                        capsize=2, zorder=3, label="± 1 standard error")
        order = _front_2d(fx, facc)
        if len(order) > 1:
            ax.step(fx[order], facc[order], where="post", color="tab:blue", lw=1.2, alpha=0.8, zorder=2)
        for i, (pick, color) in enumerate(zip(picks, colors)):
            limit = (pick.get("budget") or {}).get(limit_key)
            if limit is not None:
                ax.axvline(limit, color=color, ls="--", lw=1.2, label=f"B{i + 1}: ≤ {fmt_num(limit)} {unit}")
                span.append(float(limit))
            predicted, measured = pick.get("predicted"), pick.get("measured")
            if not predicted or predicted.get(metric) is None or predicted.get("val_acc") is None:
                continue
            px, py = float(predicted[metric]), 100.0 * float(predicted["val_acc"])
            ax.scatter([px], [py], marker="*", s=260, color=color, edgecolors="black", linewidths=0.7, zorder=5,
                       label=f"B{i + 1} pick ({pick['status']})")
            if predicted.get("val_acc_se") is not None:
                ax.errorbar([px], [py], yerr=[100.0 * float(predicted["val_acc_se"])], fmt="none", ecolor=color,
                            elinewidth=1.2, capsize=4, zorder=5)
            now = pick.get("predicted_now") or {}
            stem = metric.removesuffix("_ms").removesuffix("_mb")
            unit_key = metric[len(stem):]
            low, high = now.get(f"{stem}_low{unit_key}"), now.get(f"{stem}_high{unit_key}")
            if low is not None and high is not None and now.get(metric) is not None:
                # the prediction at the speed read before measuring, with its interval
                nx = float(now[metric])
                ax.errorbar([nx], [py], xerr=[[max(nx - float(low), 0.0)], [max(float(high) - nx, 0.0)]], fmt="o",
                            ms=4, color=color, ecolor=color, elinewidth=2.0, capsize=5, alpha=0.7, zorder=4,
                            label=f"B{i + 1} predicted now, {100.0 * float(now['level']):.0f} % interval")
                span += [float(low), float(high)]
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
                 f"picks marked ★ predicted, ✕ measured, ● predicted at the speed of the measurement with its "
                 f"interval")
    return _save(plt, fig, path)


def hypervolume_plot(record: RunRecord | str | Path, path: str | Path) -> Path:
    """Hypervolume of the feasible COMPLETE trials against trial number.

    Objectives as minimisation (``1 − val_acc``, latency, memory; the study's objectives only),
    normalised with lower/upper = min/max over all COMPLETE trials, reference point 1.1 in every
    coordinate: :func:`hypervolume_series`.
    """
    record = run_record(record)
    objectives = record.objectives
    series = hypervolume_series(record.trials, objectives)
    numbers = complete_trials(record.trials, columns(objectives))["number"].to_numpy(dtype=float)
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
    return _save(plt, fig, path)
