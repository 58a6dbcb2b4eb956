"""Wall-clock timing of a callable on a device, and robust summaries of repeated samples.

CUDA work is timed with CUDA events after synchronising; CPU work with ``perf_counter``.
Summaries use the median and the 10th/90th percentiles because shared machines are noisy.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

__all__ = ["TimingStats", "summarize", "synchronize", "time_once_ms"]


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once_ms(fn: Callable[[], object], device: torch.device | str) -> float:
    """Milliseconds one call of ``fn`` takes on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return float(start.elapsed_time(end))
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


@dataclass(frozen=True)
class TimingStats:
    """Median and spread of repeated timings, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default method).
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_ms: Sequence[float]) -> TimingStats:
    """Median, p10 and p90 of ``samples_ms``."""
    if not samples_ms:
        raise ValueError("summarize needs at least one timing sample")
    values = sorted(float(v) for v in samples_ms)
    return TimingStats(
        median_ms=statistics.median(values),
        p10_ms=_percentile(values, 0.10),
        p90_ms=_percentile(values, 0.90),
        repeats=len(values),
    )
