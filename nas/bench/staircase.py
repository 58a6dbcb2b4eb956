"""Benchmark ``nas bench staircase``: latency against one stage's width, beside FLOPs.

Starting from the space's reference architecture (the middle choice in every dimension), the
width of one stage is swept from 8 upward in steps of 8 — beyond the space's own choices if
asked — and each network is measured on the device (median of stable repeats, the best of
``repeats`` measurements taken in interleaved sweeps). MACs grow smoothly with the width; on a
GPU latency climbs in steps as kernels' grids spill into a new wave of thread blocks (the
tail effect, see DESIGN.md), and the per-kernel records give the number of waves at each
width. A latency predictor (given, or fitted on a fresh profile set of the space) is asked for
the same widths. On a CPU the sweep runs the same way and shows what it shows.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from nas.profiling import ProfileRunConfig, collect_profiles, reference_arch
from nas.report import staircase_plot
from nas.rundir import write_json
from predictors.features import arch_features
from predictors.metrics import prediction_metrics
from predictors.predictor import Predictor
from profilers import backend_for, device_fingerprint, profile
from search_spaces.arch import ArchConfig, StageArch
from search_spaces.layers import check_positive_int
from search_spaces.space import create_space

__all__ = ["StaircaseBenchConfig", "run_staircase_bench"]


@dataclass(frozen=True)
class StaircaseBenchConfig:
    space: str = "cifar10-m"  # search space
    device: str = "cpu"  # cpu or cuda[:N]
    batch_size: int = 32  # batch size measured
    stage: int = 2  # the stage whose width is swept
    max_width: int | None = None  # sweep to this width (default: the stage's largest)
    repeats: int = 3  # interleaved sweeps; the fastest is kept
    predictor: str | None = None  # latency predictor artifact (default: fit one on --n-train profiles)
    n_train: int = 60  # profiles for the fitted predictor
    seed: int = 0  # seed of the profiled architectures
    threads: int | None = None  # CPU threads (default: torch's setting)
    force: bool = False  # use a predictor fitted on another device

    def __post_init__(self) -> None:
        space = create_space(self.space)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("repeats", self.repeats)
        check_positive_int("n_train", self.n_train)
        if isinstance(self.stage, bool) or not isinstance(self.stage, int) or not 0 <= self.stage < space.n_stages:
            raise ValueError(f"stage must be in 0..{space.n_stages - 1} for space {space.name!r}, got {self.stage!r}")
        if self.max_width is not None:
            check_positive_int("max_width", self.max_width)
            if self.max_width % 8 or self.max_width < 16:
                raise ValueError(f"max_width must be a multiple of 8 and at least 16, got {self.max_width}")
        ProfileRunConfig(space=self.space, n=self.n_train, device=self.device, threads=self.threads)


def run_staircase_bench(config: StaircaseBenchConfig, *, out: str | Path, progress: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = Path(out)
    space = create_space(config.space)
    fp = device_fingerprint(config.device, threads=config.threads)  # a device not here is said before out exists
    top = config.max_width or max(space.width_choices[config.stage])
    widths = list(range(8, top + 1, 8))
    wide = replace(space, width_choices=tuple(
        tuple(sorted(set(ws) | set(widths))) if i == config.stage else ws for i, ws in enumerate(space.width_choices)))
    base = reference_arch(space)
    archs = [ArchConfig(space=space.name, stages=tuple(
        StageArch(width=w, blocks=s.blocks) if i == config.stage else s for i, s in enumerate(base.stages)))
        for w in widths]

    if config.predictor:
        predictor = Predictor.load(config.predictor, fingerprint=fp.to_dict(), force=config.force)
        if predictor.target != "latency":
            raise ValueError(f"{config.predictor} predicts {predictor.target}, not latency")
        if predictor.space != config.space:
            raise ValueError(f"{config.predictor} was fitted on space {predictor.space!r}, not {config.space!r}; "
                             f"give --space {predictor.space} or a predictor fitted on {config.space}")
        if config.batch_size not in predictor.batch_sizes:
            raise ValueError(f"{config.predictor} was fitted on batch sizes {predictor.batch_sizes}, not "
                             f"{config.batch_size}")
        out.mkdir(parents=True, exist_ok=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
        table = collect_profiles(ProfileRunConfig(space=space.name, n=config.n_train, device=config.device,
                                                  batch_size=config.batch_size, seed=config.seed,
                                                  threads=config.threads), out / "profiles.csv", progress=progress)
        predictor = Predictor(target="latency", seed=config.seed).fit(table)
        predictor.save(out / "predictor-latency")

    kernels = backend_for(config.device).records_kernels  # per-kernel waves where the device has them
    samples: list[list[float]] = [[] for _ in widths]
    waves: list[float | None] = [None] * len(widths)
    bar = tqdm(total=config.repeats * len(widths), desc="staircase", unit="run", disable=not progress)
    for r in range(config.repeats):  # interleaved sweeps: drift hits every width alike
        for i, arch in enumerate(archs):
            rec = profile(arch, space=wide, device=config.device, batch_size=config.batch_size,
                          threads=config.threads, with_ops=(r == 0 and kernels))
            samples[i].append(rec.latency.median_ms)
            if r == 0 and rec.kernels:
                waves[i] = float(sum(k.waves for k in rec.kernels))
            bar.update(1)
    bar.close()
    measured = [float(np.min(s)) for s in samples]
    macs = [arch_features(a, config.batch_size, space=wide)["macs"] for a in archs]
    predicted = [float(v) for v in predictor.predict(archs, config.batch_size, space=wide)]
    flat_or_down = sum(1 for a, b in zip(measured, measured[1:]) if b <= a * 1.01)
    plot = staircase_plot(widths, measured, macs, predicted, out / "staircase.png",
                          title=f"{space.name} stage {config.stage} width sweep, batch {config.batch_size}, {fp.name}",
                          waves=waves if all(w is not None for w in waves) else None)
    record = {
        "space": space.name, "stage": config.stage, "batch_size": config.batch_size, "device": fp.kind,
        "device_name": fp.name, "fingerprint_id": fp.fingerprint_id,
        "rows": [{"width": w, "latency_ms": m, "latency_samples_ms": s, "macs": c, "predicted_ms": p,
                  "kernel_waves": wv} for w, m, s, c, p, wv in zip(widths, measured, samples, macs, predicted, waves)],
        "spearman_latency_vs_macs": float(spearmanr(measured, macs).statistic),
        "flat_or_down_steps": flat_or_down,
        "predicted_vs_measured": prediction_metrics(predicted, measured),
        "predictor": {"model": predictor.model_name, "normalization": predictor.normalization,
                      "source": config.predictor or str(out / "predictor-latency")},
        "widths_outside_space": [w for w in widths if w not in space.width_choices[config.stage]],
        "plot": str(plot),
        "config": asdict(config),
        "minutes": (time.perf_counter() - t0) / 60.0,
    }
    write_json(out / "staircase.json", record)
    return record
