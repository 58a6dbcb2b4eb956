"""One measurement of a profiling run: an architecture timed interleaved with the space's fixed
reference architecture, retried while the machine is too noisy (see :mod:`nas.profiling.collect`,
points 4 and 5)."""

from __future__ import annotations

from dataclasses import replace

import torch

from nas.profiling.config import ProfileRunConfig
from profilers import Deployed, LatencySettings, ProfileRecord, Target, backend_for, create_runtime, profile
from search_spaces.arch import ArchConfig, BlockArch, StageArch
from search_spaces.networks import QuadraNet
from search_spaces.space import SearchSpace

__all__ = ["PAIRED_LATENCY", "deploy_reference", "measure_arch", "reference_arch"]


def _spread(record: ProfileRecord) -> float:
    lat = record.latency
    return (lat.p90_ms - lat.p10_ms) / lat.median_ms


# Paired sampling (4.): 10 pairs at least (rounds of 5), after 3 warm-up pairs lasting at least
# 20 ms — the ratio to the reference settles in far fewer calls than a latency timed alone, and at
# large batch sizes each pair costs tens of milliseconds. (The tenth of a second of warm-up used
# before was half of a digits-s measurement's 0.2 s; nas bench predictors found no loss from 20 ms.)
PAIRED_LATENCY = LatencySettings(warmup=3, warmup_seconds=0.02, min_repeats=10)


def measure_arch(arch: ArchConfig, config: ProfileRunConfig, *, latency: LatencySettings = PAIRED_LATENCY,
                 reference: torch.nn.Module | ArchConfig | Deployed | None = None,
                 with_memory: bool = True) -> ProfileRecord:
    """Profile ``arch`` (timed interleaved with ``reference`` when given); retry a noisy
    measurement up to ``config.retries`` times, keep the tightest. ``with_memory=False``: the
    latency only (:func:`profilers.profile`), for a repeat pass."""
    def ok(rec: ProfileRecord) -> bool:
        return rec.latency.stable and (rec.ref_latency is not None or _spread(rec) <= config.max_spread)

    best = None
    for _ in range(config.retries + 1):
        rec = profile(arch, device=config.device, batch_size=config.batch_size, threads=config.threads,
                      latency=latency, with_ops=config.records_ops, reference=reference,
                      runtime=config.runtime, with_memory=with_memory)
        if best is None or (not ok(rec), _spread(rec)) < (not ok(best), _spread(best)):
            best = rec
        if ok(best):
            return best
    if best.ref_latency is not None:
        note = f"ratio to the reference unsettled after {config.retries + 1} tries"
    else:
        unsettled = "" if best.latency.stable else ", median unsettled"
        note = (f"latency spread (p90-p10)/median {_spread(best):.2f}{unsettled} "
                f"after {config.retries + 1} tries")
    return replace(best, suspect="; ".join(filter(None, [best.suspect, note])))


def reference_arch(space: SearchSpace) -> ArchConfig:
    """The fixed reference architecture of a space: the middle choice in every dimension."""
    mid = lambda choices: choices[len(choices) // 2]  # noqa: E731
    block = BlockArch(kernel_size=mid(space.kernel_choices), mlp_ratio=mid(space.mlp_ratio_choices),
                      order=mid(space.order_choices))
    return ArchConfig(space=space.name, stages=tuple(StageArch(width=mid(ws), blocks=(block,) * mid(ds))
                                                     for ds, ws in zip(space.depth_choices, space.width_choices)))



def deploy_reference(space: SearchSpace, target: Target) -> Deployed:
    """The space's reference architecture deployed for ``target`` (its runtime, device and
    threads), built once for every measurement that times it."""
    rt = create_runtime(target.runtime)
    backend = backend_for(target.device)
    model = QuadraNet(space.to_net_config(reference_arch(space)))
    with backend.threads(target.threads):
        return rt.deploy(model.eval(), input_shape=space.input_shape, device=backend.device,
                         threads=backend.threads_in_use())
