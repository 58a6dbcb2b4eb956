"""Plots drawn from benchmark records (matplotlib; PNG files unless the path names another format).

Each function takes plain data (lists, dicts from a record) and a path, so the same record can
be re-plotted without re-measuring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["parity_plot", "staircase_plot"]


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
    """Lay out, write ``fig`` at ``path`` (parents created), close it and return the file written.

    The format follows the suffix (``.png``, ``.svg``, ``.pdf``, …); a path without one gets
    ``.png``. A directory is refused: name the file.
    """
    path = Path(path)
    if path.is_dir():
        plt.close(fig)
        raise ValueError(f"{path} is a directory; give the plot's file name, e.g. {path / 'plot.png'}")
    if not path.suffix:
        path = path.with_suffix(".png")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
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
