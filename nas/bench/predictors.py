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
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from nas.profiling import ProfileRunConfig, collect_profiles
from nas.report import parity_plot
from nas.rundir import write_json
from predictors import COST_MODELS
from predictors.predictor import Predictor, library_versions
from predictors.table import TARGETS
from profilers import device_fingerprint
from search_spaces.layers import check_positive_int

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
    targets: tuple[str, ...] = tuple(TARGETS)  # what to predict

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
        ProfileRunConfig(space=self.space, n=self.n_train, device=self.device, threads=self.threads)  # validates


def run_predictor_bench(config: PredictorBenchConfig, *, out: str | Path, progress: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = Path(out)
    fp = device_fingerprint(config.device, threads=config.threads)  # a device not here is said before out exists
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"space": config.space, "device": config.device, "device_name": fp.name,
                              "fingerprint": fp.to_dict(), "fingerprint_id": fp.fingerprint_id, "batch_sizes": {}}
    train_path, test_path = out / "profiles_train.csv", out / "profiles_test.csv"
    for b in config.batch_sizes:
        train_cfg = ProfileRunConfig(space=config.space, n=config.n_train, device=config.device, batch_size=b,
                                     seed=config.seed, threads=config.threads)
        test_cfg = ProfileRunConfig(space=config.space, n=config.n_test, device=config.device, batch_size=b,
                                    seed=config.test_seed, threads=config.threads, adaptive_fraction=0.0)
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
        for target in config.targets:
            default = Predictor(target=target, model="auto", seed=config.seed).fit(train)
            default.save(out / f"predictor-b{b}-{target}")
            results = {}
            series = {}
            measured = list(default.measured(test))
            for name in COST_MODELS:
                pred = default if name == default.model_name else Predictor(target=target, model=name,
                                                                               seed=config.seed).fit(train)
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
            results["default_beats_flops"] = bool(results[default.model_name]["rmspe"] < results["flops"]["rmspe"])
            per_target[target] = results
            unit = "ms" if target == "latency" else "MB"
            panels.append({"title": f"{target} (b={b})", "unit": unit, "measured": measured, "series": series})
        plot = parity_plot(panels, out / f"parity-b{b}.png",
                           title=f"{config.space} on {fp.name}: held-out architectures")
        per_target["profiling_minutes_train"] = train_minutes
        per_target["profiling_minutes_test"] = test_minutes
        per_target["parity_plot"] = str(plot)
        record["batch_sizes"][str(b)] = per_target
    record["config"] = asdict(config)
    record["versions"] = library_versions()
    record["minutes"] = (time.perf_counter() - t0) / 60.0
    write_json(out / "predictors.json", record)
    return record
