"""Error measures of a cost predictor against measurements (relative errors: costs span decades)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import kendalltau

__all__ = ["interval_coverage", "kendall_tau", "prediction_metrics", "rmspe", "within_pct"]


def _arrays(predicted: Sequence[float], measured: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    if p.shape != m.shape or p.ndim != 1 or p.size == 0:
        raise ValueError(f"need two equally long, non-empty 1-D sequences, got shapes {p.shape} and {m.shape}")
    if not np.all(m > 0):
        raise ValueError("measured values must be positive (relative errors divide by them)")
    return p, m


def rmspe(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Root mean squared percentage error, in percent: ``100·sqrt(mean(((p − m)/m)²))``."""
    p, m = _arrays(predicted, measured)
    return float(100.0 * np.sqrt(np.mean(((p - m) / m) ** 2)))


def within_pct(predicted: Sequence[float], measured: Sequence[float], pct: float) -> float:
    """Fraction of predictions with ``|p − m| / m ≤ pct/100``."""
    p, m = _arrays(predicted, measured)
    return float(np.mean(np.abs(p - m) / m <= pct / 100.0 + 1e-12))


def kendall_tau(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Kendall's τ-b between predicted and measured values (NaN if either is constant)."""
    p, m = _arrays(predicted, measured)
    if p.size < 2:
        return math.nan
    return float(kendalltau(p, m).statistic)


def prediction_metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """``rmspe``, ``within_5pct``, ``within_10pct``, ``kendall_tau`` and ``n_test``."""
    return {
        "rmspe": rmspe(predicted, measured),
        "within_5pct": within_pct(predicted, measured, 5.0),
        "within_10pct": within_pct(predicted, measured, 10.0),
        "kendall_tau": kendall_tau(predicted, measured),
        "n_test": len(measured),
    }


def interval_coverage(low: Sequence[float], high: Sequence[float], measured: Sequence[float]) -> float:
    """Share of ``measured`` values inside their interval ``[low, high]`` (ends included)."""
    lo, hi, m = (np.asarray(v, dtype=float) for v in (low, high, measured))
    if not (lo.shape == hi.shape == m.shape) or m.ndim != 1 or len(m) == 0:
        raise ValueError(f"interval_coverage needs three equally long non-empty sequences, got lengths "
                         f"{lo.size}, {hi.size}, {m.size}")
    if np.any(lo > hi):
        raise ValueError("interval_coverage: some interval has low > high")
    return float(np.mean((lo <= m) & (m <= hi)))
