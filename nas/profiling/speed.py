"""The machine's speed now: the space's reference architecture timed, and predictions stated at it.

A latency predictor fitted on a ``nas profile`` table predicts latency at the speed the
profiling run saw (the reference architecture's median over that run, ``ref_baseline_ms``). A
shared machine is faster or slower at another moment, by tens of percent. :func:`read_speed`
times the reference architecture alone, on the target (its runtime, device, threads, batch
size), and returns a :class:`SpeedReading` whose ``factor`` (now over then) states a prediction
in milliseconds at the speed of this moment: ``predicted × factor``. The search reads it at its
start (the study's predictions) and before each pick's measurement (``picks.json``), and
``nas bench predictors`` before each held-out measurement it scores as a user would see it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from nas.profiling.measure import deploy_reference, reference_arch
from predictors.predictor import Predictor
from profilers import LatencySettings, Target, backend_for, measure_latency
from search_spaces.space import SearchSpace

__all__ = ["SPEED_LATENCY", "SpeedReading", "read_speed"]

# The reference timed alone until its median settles to 1 %, as a profile measurement is.
SPEED_LATENCY = LatencySettings(warmup=3, warmup_seconds=0.1, min_repeats=15)


@dataclass(frozen=True)
class SpeedReading:
    """The reference architecture's latency now, against the predictor's training run."""

    ref_arch_id: str
    ref_latency_ms: float  # timed now
    baseline_ms: float  # the training run's median (what predictions are stated at)
    factor: float  # ref_latency_ms / baseline_ms: multiply a prediction by it
    measured_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_speed(space: SearchSpace, target: Target, predictor: Predictor, *,
               latency: LatencySettings = SPEED_LATENCY) -> SpeedReading:
    """Time ``space``'s reference architecture on ``target`` and compare with ``predictor``'s
    training run. A predictor that is not reference-normalised gets factor 1 (its predictions
    are raw milliseconds already), the reference still timed and recorded."""
    if predictor.target != "latency":
        raise ValueError(f"the speed is read for a latency predictor, not a {predictor.target} one")
    ref = reference_arch(space)
    if predictor.normalization == "reference" and predictor.ref_arch_id not in (None, ref.arch_id):
        raise ValueError(f"the latency predictor is normalised by reference {predictor.ref_arch_id}, but space "
                         f"{space.name!r}'s reference architecture is {ref.arch_id}")
    deployed = deploy_reference(space, target)
    backend = backend_for(target.device)
    x = torch.randn((target.batch_size, *space.input_shape), generator=torch.Generator().manual_seed(0))
    with backend.threads(target.threads):
        stats = measure_latency(deployed.infer_fn(x.to(backend.device)), backend.device, **asdict(latency))
    factor = predictor.speed_factor(stats.median_ms, target.batch_size)
    baseline = stats.median_ms / factor
    return SpeedReading(ref_arch_id=ref.arch_id, ref_latency_ms=stats.median_ms, baseline_ms=baseline, factor=factor,
                        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
