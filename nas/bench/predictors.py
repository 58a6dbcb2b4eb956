"""Benchmark ``nas bench predictors``: how well each cost model predicts held-out architectures.

For each batch size: profile a training set (``n_train`` architectures, spread + adaptive,
seed ``seed``) and a held-out set (``n_test``, spread over the space with seed ``test_seed``,
excluding every training architecture) on the device, pass by pass in alternation so both sets
span the same stretch of time; fit every cost model on the training set
and evaluate it on the held-out set; the default model is the one :class:`Predictor` picks by
cross-validation *on the training set only*. Latency predictors are reference-normalised (see
:class:`predictors.Predictor`): ``within_10pct`` etc. compare with held-out latencies brought
to the training run's reference speed, and ``*_raw`` with the raw medians. The record gives, per batch size, target
(``latency``, ``memory``, ``train_memory``) and model: ``rmspe``, ``within_5pct``,
``within_10pct``, ``kendall_tau``, ``n_train``, ``n_test``, ``profiling_minutes``; parity plots
(predicted vs measured) are written as PNG next to the tables.

**As a user sees them** (``user_view``, the default models): after the profiling, every held-out
architecture is measured once more the way a search measures a pick — the machine's speed read
first (:func:`nas.profiling.read_speed`: the reference architecture timed alone), then the
architecture timed alone — and its prediction is stated in milliseconds at that speed
(``predicted × factor``) and compared with that measurement's own median: ``within_5pct``,
``within_10pct``, ``kendall_tau``, and the empirical coverage of the 80, 90 and 95 % prediction
intervals (``coverage``), for latency and memory; every architecture's figures, with its 90 %
interval, are a row of ``user_view_bB.csv``. Nothing of the training run's reference
normalises the held-out figure here; the speed's drift between reading and measurement counts
as error, as it does for a user.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.profiling import ProfileRunConfig, collect_profiles, read_speed
from nas.report import parity_plot
from nas.rundir import write_json
from predictors import COST_MODELS
from predictors.metrics import interval_coverage, prediction_metrics
from predictors.predictor import Predictor, library_versions
from predictors.table import TARGETS, read_profiles, rows_for
from profilers import LatencySettings, Target, device_fingerprint, profile
from search_spaces.arch import ArchConfig
from search_spaces.layers import check_positive_int
from search_spaces.space import create_space

__all__ = ["PredictorBenchConfig", "run_predictor_bench"]


@dataclass(frozen=True)
class PredictorBenchConfig:
    space: str = "digits-s"  # search space
    device: str = "cpu"  # cpu or cuda[:N]
    batch_sizes: tuple[int, ...] = (1,)  # batch sizes profiled and predicted
    n_train: int = 150  # architectures profiled to fit on
    n_test: int = 50  # held-out architectures profiled to test on
    seed: int = 0  # seed of the training set and the models
    test_seed: int = 1  # seed of the held-out set
    threads: int | None = None  # CPU threads (default: torch's setting)
    runtime: str = "torch"  # the runtime deployed with: torch (eager), torchscript or onnxruntime
    targets: tuple[str, ...] = tuple(TARGETS)  # what to predict
    user_view: bool = True  # score the default models as a user sees them: every held-out architecture measured
    # again after a speed reading, timed alone, with interval coverage (--no-user-view skips it)

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))
        if not self.batch_sizes:
            raise ValueError("batch_sizes must name at least one batch size")
        for b in self.batch_sizes:
            check_positive_int("batch_size", b)
        check_positive_int("n_train", self.n_train)
        check_positive_int("n_test", self.n_test)
        if self.n_train < 10:
            raise ValueError(f"n_train must be at least 10 to fit and cross-validate, got {self.n_train}")
        if self.seed == self.test_seed:
            raise ValueError(f"test_seed must differ from seed (both {self.seed}): the held-out set needs its own draw")
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown or not self.targets:
            raise ValueError(f"unknown targets {unknown}; valid: {', '.join(TARGETS)}")
        ProfileRunConfig(space=self.space, n=self.n_train, device=self.device, threads=self.threads,
                         runtime=self.runtime)  # validates


def run_predictor_bench(config: PredictorBenchConfig, *, out: str | Path, progress: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = Path(out)
    # a device or runtime not here is said before out exists
    fp = device_fingerprint(config.device, threads=config.threads, runtime=config.runtime)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"space": config.space, "device": config.device, "runtime": config.runtime,
                              "device_name": fp.name,
                              "fingerprint": fp.to_dict(), "fingerprint_id": fp.fingerprint_id, "batch_sizes": {}}
    train_path, test_path = out / "profiles_train.csv", out / "profiles_test.csv"
    for b in config.batch_sizes:
        train_cfg = ProfileRunConfig(space=config.space, n=config.n_train, device=config.device, batch_size=b,
                                     seed=config.seed, threads=config.threads, runtime=config.runtime)
        test_cfg = ProfileRunConfig(space=config.space, n=config.n_test, device=config.device, batch_size=b,
                                    seed=config.test_seed, threads=config.threads, adaptive_fraction=0.0,
                                    runtime=config.runtime)
        # Pass k of the training set, then pass k of the held-out set, and so on: both sets are
        # measured across the same stretch of time, so a drift of the machine's speed between
        # "training time" and "test time" is not mistaken for prediction error. Extra passes
        # (for architectures whose passes disagree) come with the last round.
        train_minutes = test_minutes = 0.0
        for k in range(1, train_cfg.passes + 1):
            last = k == train_cfg.passes
            train = collect_profiles(replace(train_cfg, passes=k, max_passes=train_cfg.max_passes if last else k),
                                     train_path, progress=progress)
            train_minutes += train.attrs.get("minutes", 0.0)
            test = collect_profiles(replace(test_cfg, passes=k, max_passes=test_cfg.max_passes if last else k),
                                    test_path, exclude=set(train["arch_id"]), progress=progress)
            test_minutes += test.attrs.get("minutes", 0.0)
        per_target: dict[str, Any] = {}
        panels = []
        defaults: dict[str, Predictor] = {}
        # every pass of the training set, in the order measured: the speed drift the intervals include
        train_rows = rows_for(read_profiles(train_path), fingerprint_id=fp.fingerprint_id, batch_sizes=[b],
                              space=config.space)
        for target in config.targets:
            default = Predictor(target=target, model="auto", seed=config.seed).fit(train_rows)
            defaults[target] = default
            default.save(out / f"predictor-b{b}-{target}")
            results = {}
            series = {}
            measured = list(default.measured(test))
            for name in COST_MODELS:
                pred = default if name == default.model_name else Predictor(target=target, model=name,
                                                                               seed=config.seed).fit(train_rows)
                predicted = pred.predict_table(test)
                metrics = pred.evaluate(test)
                metrics.update(profiling_minutes=train_minutes)
                results[name] = metrics
                if name in (default.model_name, "flops"):
                    series[f"{name}{' (default)' if name == default.model_name else ''}"] = list(predicted)
            results["default"] = default.model_name
            results["normalization"] = default.normalization
            if default.normalization == "reference":
                results["ref_baseline_ms"] = default.ref_baseline_ms
            results["cv_rmspe"] = default.cv_scores
            # at the training run's reference speed (no drift in the interval): the residuals' own calibration
            results["coverage_normalised"] = _coverage(default, default.predict_table(test), measured, drift=False)
            results["default_beats_flops"] = bool(results[default.model_name]["rmspe"] < results["flops"]["rmspe"])
            per_target[target] = results
            unit = "ms" if target == "latency" else "MB"
            panels.append({"title": f"{target} (b={b})", "unit": unit, "measured": measured, "series": series})
        plot = parity_plot(panels, out / f"parity-b{b}.png",
                           title=f"{config.space} on {fp.name}: held-out architectures")
        per_target["profiling_minutes_train"] = train_minutes
        per_target["profiling_minutes_test"] = test_minutes
        if config.user_view and "latency" in defaults and "memory" in defaults:
            t_user = time.perf_counter()
            view = user_view(config, b, defaults["latency"], defaults["memory"], test, out=out, progress=progress)
            per_target["latency"]["user_view"] = view["latency"]
            per_target["memory"]["user_view"] = view["memory"]
            per_target["user_view_minutes"] = (time.perf_counter() - t_user) / 60.0
        per_target["parity_plot"] = str(plot)
        record["batch_sizes"][str(b)] = per_target
    record["config"] = asdict(config)
    record["versions"] = library_versions()
    record["minutes"] = (time.perf_counter() - t0) / 60.0
    write_json(out / "predictors.json", record)
    return record


COVERAGE_LEVELS = (0.8, 0.9, 0.95)


def _coverage(pred: Predictor, predicted, measured, factor=None, *, drift: bool = True) -> dict[str, float]:
    """Empirical coverage of ``pred``'s intervals at each level of :data:`COVERAGE_LEVELS`: the share
    of ``measured`` inside ``predicted`` × the interval's bounds (× the speed ``factor`` per row;
    ``drift=False``: intervals without the speed's drift)."""
    predicted = np.asarray(predicted, dtype=float) * (1.0 if factor is None else np.asarray(factor, dtype=float))
    out = {}
    for level in COVERAGE_LEVELS:
        lo, hi = pred.log_bounds(level, with_drift=drift)
        out[f"{100 * level:.0f}"] = interval_coverage(predicted * np.exp(lo), predicted * np.exp(hi), measured)
    return out


# A held-out architecture timed alone, as a search measures a pick (profilers.profile's defaults).
USER_LATENCY = LatencySettings()


def user_view(config: PredictorBenchConfig, batch_size: int, latency: Predictor, memory: Predictor, test, *,
              out: Path, progress: bool = True) -> dict[str, Any]:
    """Measure every held-out architecture of ``test`` as a search measures a pick — the speed
    read (the reference timed alone), then the architecture timed alone, in a seeded shuffled
    order — and score the predictions stated at that speed against the measurement's own median
    (see the module docstring). Each architecture's figures go to ``OUT/user_view_bB.csv``."""
    from tqdm.auto import tqdm

    space = create_space(config.space)
    target = Target(device=config.device, runtime=config.runtime, threads=config.threads, batch_size=batch_size)
    archs = [ArchConfig.from_json(text) for text in test["arch_json"]]
    order = list(range(len(archs)))
    random.Random(config.test_seed).shuffle(order)
    factor = np.ones(len(archs))
    lat_ms, mem_mb = np.zeros(len(archs)), np.zeros(len(archs))
    for i in tqdm(order, desc=f"user view b{batch_size}", unit="arch", disable=not progress):
        factor[i] = read_speed(space, target, latency).factor
        rec = profile(archs[i], device=config.device, batch_size=batch_size, threads=config.threads,
                      latency=USER_LATENCY, with_ops=False, runtime=config.runtime, space=space)
        lat_ms[i], mem_mb[i] = rec.latency.median_ms, rec.peak_infer_mem_mb
    pred_lat = latency.predict(archs, batch_size)
    pred_mem = memory.predict(archs, batch_size)
    lo90, hi90 = latency.log_bounds(0.9)
    mlo90, mhi90 = memory.log_bounds(0.9)
    pd.DataFrame({"arch_id": [a.arch_id for a in archs], "speed_factor": factor, "latency_ms": lat_ms,
                  "predicted_latency_ms": pred_lat * factor, "latency_low90_ms": pred_lat * factor * np.exp(lo90),
                  "latency_high90_ms": pred_lat * factor * np.exp(hi90), "peak_mem_mb": mem_mb,
                  "predicted_peak_mem_mb": pred_mem, "peak_mem_low90_mb": pred_mem * np.exp(mlo90),
                  "peak_mem_high90_mb": pred_mem * np.exp(mhi90)}).to_csv(out / f"user_view_b{batch_size}.csv",
                                                                         index=False)
    lat = {**prediction_metrics(pred_lat * factor, lat_ms), "coverage": _coverage(latency, pred_lat, lat_ms, factor),
           "speed_factor_median": float(np.median(factor)), "speed_factor_min": float(factor.min()),
           "speed_factor_max": float(factor.max())}
    mem = {**prediction_metrics(pred_mem, mem_mb), "coverage": _coverage(memory, pred_mem, mem_mb)}
    return {"latency": lat, "memory": mem}
