"""Wall-clock timing of a callable on a device, and robust summaries of repeated samples.

CUDA work is timed with CUDA events after synchronising, CPU work with ``perf_counter``: the
device's profiler backend (:mod:`profilers.backend`) times one call.
Summaries use the median and the 10th/90th percentiles because shared machines are noisy.
"""

from __future__ import annotations

import math
import numbers
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from profilers.backend import backend_for

__all__ = ["MAX_PAIR_BLOCK", "PAIR_BLOCK_MS", "TimingStats", "check_timing_settings", "measure_latency",
           "measure_latency_paired", "pair_block", "summarize", "synchronize", "time_once_ms"]


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    backend_for(device).synchronize()


def time_once_ms(fn: Callable[[], object], device: torch.device | str) -> float:
    """Milliseconds one call of ``fn`` takes on ``device`` (CUDA events on a GPU, ``perf_counter``
    on a CPU: the device's profiler backend)."""
    return backend_for(device).time_once_ms(fn)


@dataclass(frozen=True)
class TimingStats:
    """Median and spread of repeated timings, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    stable: bool = True  # False: the repeat cap was hit before the median settled


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


def check_timing_settings(*, warmup: int, warmup_seconds: float, min_repeats: int, max_repeats: int,
                          rel_tol: float, max_seconds: float) -> dict[str, int | float]:
    """Validate the latency-sampling settings; return them as plain ``int`` / ``float``.

    The one place their rules are written (:func:`measure_latency`, :func:`measure_latency_paired`
    and :class:`profilers.profile.LatencySettings` all call it). Counts are integers (NumPy
    integers too, not bools); every seconds setting and ``rel_tol`` must be a finite number —
    an infinite ``warmup_seconds`` would warm up for ever. Errors are ``ValueError`` naming the
    setting, what it was and what is valid.
    """
    counts = {}
    for name, value in (("warmup", warmup), ("min_repeats", min_repeats), ("max_repeats", max_repeats)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        counts[name] = int(value)
    if counts["min_repeats"] < 1 or counts["max_repeats"] < counts["min_repeats"]:
        raise ValueError(f"need 1 <= min_repeats <= max_repeats, got {min_repeats!r} and {max_repeats!r}")
    reals = {}
    for name, value, positive, unit in (("warmup_seconds", warmup_seconds, False, " of seconds"),
                                        ("max_seconds", max_seconds, True, " of seconds"),
                                        ("rel_tol", rel_tol, True, "")):
        finite = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
        if not finite or value < 0 or (positive and value == 0):
            raise ValueError(f"{name} must be a finite number{unit} {'> 0' if positive else '>= 0'}, got {value!r}")
        reals[name] = float(value)
    return {**counts, **reals}


# Paired timing switches between the callables in blocks lasting about this long, so that each
# runs with its own working set warm in the caches as it does when called back to back.
PAIR_BLOCK_MS = 2.0
MAX_PAIR_BLOCK = 16


def pair_block(call_ms: float, block_ms: float | None = None) -> int:
    """Calls per turn of paired timing for callables taking ``call_ms``: 1 (call by call) from a
    millisecond up, else enough calls to last :data:`PAIR_BLOCK_MS` (2 to :data:`MAX_PAIR_BLOCK`)
    plus one untimed call after each switch. With ``block_ms``, blocks of about that long for
    callables of any duration (2 to :data:`MAX_PAIR_BLOCK` timed calls, plus the untimed one)."""
    if block_ms is None:
        if call_ms >= 1.0:
            return 1
        block_ms = PAIR_BLOCK_MS
    return min(MAX_PAIR_BLOCK, max(2, math.ceil(block_ms / max(call_ms, 1e-3)))) + 1


def _sample_until_stable(fns: Sequence[Callable[[], object]], device: torch.device | str,
                         estimate: Callable[[list[list[float]]], float], *, warmup: int, warmup_seconds: float,
                         min_repeats: int, max_repeats: int, rel_tol: float, max_seconds: float,
                         block_ms: float | None = None) -> list[TimingStats]:
    """Warm up, then time every callable of ``fns`` once per step until ``estimate`` settles.

    Each step times the callables back to back, in alternating order (so neither always runs
    after the other), giving one sample each. With several callables whose calls are short
    (under a millisecond), each one's turn is a block of calls (:func:`pair_block`) whose first
    call is untimed and whose sample is the median of the rest: called one by one in
    alternation, a small network finds its weights and activations evicted from the caches by
    the other's and runs up to ~10 % slower than it does called back to back — as a deployed
    network is, and as a latency timed alone is. ``block_ms`` sets blocks of about that long
    whatever a call takes (:func:`pair_block`). Returns the summaries, one per callable.
    """
    settings = check_timing_settings(warmup=warmup, warmup_seconds=warmup_seconds, min_repeats=min_repeats,
                                     max_repeats=max_repeats, rel_tol=rel_tol, max_seconds=max_seconds)
    warmup, warmup_seconds = settings["warmup"], settings["warmup_seconds"]
    min_repeats, max_repeats = settings["min_repeats"], settings["max_repeats"]
    rel_tol, max_seconds = settings["rel_tol"], settings["max_seconds"]
    if block_ms is not None and (isinstance(block_ms, bool) or not isinstance(block_ms, (int, float))
                                 or not math.isfinite(block_ms) or block_ms <= 0):
        raise ValueError(f"block_ms must be a positive number of milliseconds or None, got {block_ms!r}")
    t_warm = time.perf_counter()
    done = 0
    while done < warmup or time.perf_counter() - t_warm < warmup_seconds:
        for fn in fns:
            fn()
        done += 1
        synchronize(device)
    # the warm-up's rounds tell how long a call takes (no warm-up: call by call)
    round_ms = (time.perf_counter() - t_warm) * 1e3 / (done * len(fns)) if done else math.inf
    block = pair_block(round_ms, block_ms) if len(fns) > 1 else 1
    chunk = max(2, min_repeats // 2)
    samples: list[list[float]] = [[] for _ in fns]
    previous = None
    t_start = time.perf_counter()
    step = 0
    while True:
        for _ in range(min(chunk, max_repeats - len(samples[0]))):
            order = range(len(fns)) if step % 2 == 0 else reversed(range(len(fns)))
            for i in order:
                if block > 1:
                    fns[i]()  # untimed: the cold call after the switch
                    synchronize(device)
                    samples[i].append(statistics.median([time_once_ms(fns[i], device) for _ in range(block - 1)]))
                else:
                    samples[i].append(time_once_ms(fns[i], device))
            step += 1
        current = estimate(samples)
        if len(samples[0]) >= min_repeats and previous is not None and abs(current - previous) <= rel_tol * previous:
            return [summarize(s) for s in samples]
        if len(samples[0]) >= max_repeats or time.perf_counter() - t_start > max_seconds:
            stats = [summarize(s) for s in samples]
            return [TimingStats(s.median_ms, s.p10_ms, s.p90_ms, s.repeats, stable=False) for s in stats]
        previous = current


def measure_latency(
    fn: Callable[[], object],
    device: torch.device | str,
    *,
    warmup: int = 5,
    warmup_seconds: float = 0.2,
    min_repeats: int = 15,
    max_repeats: int = 200,
    rel_tol: float = 0.01,
    max_seconds: float = 5.0,
) -> TimingStats:
    """Time ``fn`` until its median is stable.

    After ``warmup`` untimed calls (more while ``warmup_seconds`` have not passed), samples are
    taken in rounds of ``min_repeats // 2`` (at least 2); once there are ``min_repeats``
    samples, timing stops as soon as one round moves the running median by at most ``rel_tol``
    (relative). It also stops at ``max_repeats`` samples or
    after ``max_seconds`` of timing; then ``stable`` is False.
    """
    (stats,) = _sample_until_stable([fn], device, lambda s: statistics.median(s[0]), warmup=warmup,
                                    warmup_seconds=warmup_seconds, min_repeats=min_repeats,
                                    max_repeats=max_repeats, rel_tol=rel_tol, max_seconds=max_seconds)
    return stats


def measure_latency_paired(
    fn: Callable[[], object],
    reference: Callable[[], object],
    device: torch.device | str,
    *,
    warmup: int = 5,
    warmup_seconds: float = 0.2,
    min_repeats: int = 15,
    max_repeats: int = 200,
    rel_tol: float = 0.01,
    max_seconds: float = 5.0,
    block_ms: float | None = None,
) -> tuple[TimingStats, TimingStats]:
    """Time ``fn`` and ``reference`` interleaved; returns (fn's stats, reference's).

    On a shared machine the speed moves by tens of percent between one second and the next, so
    two latencies measured one after the other disagree by that much; calls interleaved one by
    one see the same machine, and the ratio of their medians is steady to about a percent (the
    reason profile tables carry ``ref_latency_ms``). Calls under a millisecond alternate in short
    blocks instead (about 2 ms each, the first call after each switch untimed; a sample is the
    block's median, :func:`pair_block`), so each runs with its caches warm as it does alone;
    ``block_ms`` asks for blocks of about that long whatever a call takes (two runtimes with
    thread pools of their own: see :mod:`nas.bench.runtimes`). The settings are
    :func:`measure_latency`'s, with ``max_repeats`` counting pairs and the stopping rule applied
    to the ratio of medians.
    """
    stats = _sample_until_stable([fn, reference], device,
                                 lambda s: statistics.median(s[0]) / statistics.median(s[1]), warmup=warmup,
                                 warmup_seconds=warmup_seconds, min_repeats=min_repeats,
                                 max_repeats=max_repeats, rel_tol=rel_tol, max_seconds=max_seconds,
                                 block_ms=block_ms)
    return stats[0], stats[1]
