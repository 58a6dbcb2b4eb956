"""``nas bench search``: does the default sampler beat random sampling, and how fast is a trial?

The problem is the search's own: inherited accuracy from a trained supernet and predicted
latency / memory at batch 1, with the automatic budgets (25th / 50th percentile of the profiled
architectures) as the constraint. For each of ``seeds`` seeds a study of ``trials`` trials is
run with the default sampler and with random sampling, in alternation, all with in-memory
storage.

**Hypervolume** is that of the feasible trials (meeting some budget) in the minimisation space
(1 − accuracy, latency, memory), normalised with the minimum and maximum of every objective
over all trials of all studies, reference point 1.1 in every coordinate — one reference for
every study. The record gives the medians over seeds and ``hv_ratio`` = median default /
median random.

**Trials per second** (default sampler, in-memory storage) include the supernet's accuracy
evaluation: each study starts with an empty accuracy cache, so every new architecture costs a
supernet forward over the validation split. ``trials_per_s_own_storage`` runs one study as the
search does, on the run's own study file (:func:`nas.search.resume.default_storage`: a journal
file, :mod:`nas.search.journal`), also from an empty cache; ``trials_per_s_sqlite`` runs it on a
SQLite file (the storage of earlier versions). ``trials_per_s_cached`` and
``trials_per_s_own_storage_cached`` repeat one study with the cache already holding its
architectures (sampler, predictors and storage only), in memory and on the run's study file.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from nas.data import load_dataset
from nas.objectives import columns, directions, parse_objectives
from nas.pareto import hypervolume, normalize, to_minimization
from nas.rundir import write_json
from nas.search import SearchConfig, data_seed, obtain_predictors, obtain_supernet, search_budgets
from nas.search.resume import default_storage
from nas.search.samplers import SAMPLERS, check_population, create_sampler
from nas.search.scoring import ArchScorer
from nas.search.study import open_study, problem_record, run_trials
from nas.search.tables import trials_frame
from nas.train import check_data
from profilers import device_fingerprint
from search_spaces.layers import check_positive_int
from search_spaces.space import create_space

__all__ = ["SearchBenchConfig", "run_search_bench", "study_hypervolumes"]


@dataclass(frozen=True)
class SearchBenchConfig:
    space: str = "digits-s"  # search space
    trials: int = 300  # trials per study
    seeds: int = 5  # studies per sampler (medians reported)
    sampler: str = "nsga2"  # the default sampler to compare with random
    population_size: int = 16  # NSGA-II population (the search's default)
    supernet: str | None = None  # trained supernet run directory (default: train one)
    predictors: str | None = None  # predictor artifacts (default: profile and fit)
    force: bool = False  # use predictors fitted on another device
    supernet_epochs: int = 30  # supernet training epochs
    profile_n: int = 60  # architectures profiled for the predictors
    seed: int = 0  # seed of the first study of each sampler
    data_dir: str | None = None  # dataset directory (CIFAR-10 for cifar10-m)

    def __post_init__(self) -> None:
        check_positive_int("trials", self.trials)
        check_positive_int("seeds", self.seeds)
        if self.sampler not in SAMPLERS or self.sampler == "random":
            raise ValueError(f"the sampler to compare with random must be one of "
                             f"{', '.join(s for s in SAMPLERS if s != 'random')}, got {self.sampler!r}")
        check_population(self.sampler, self.population_size)


def study_hypervolumes(frames: dict[str, Any], objectives: tuple[str, ...]) -> dict[str, float]:
    """Hypervolume of each study's feasible trials with one shared normalisation (see module doc)."""
    cols = columns(objectives)
    dirs = directions(objectives)
    done = {k: f[f["state"] == "COMPLETE"] for k, f in frames.items()}
    all_points = to_minimization(np.concatenate([d[cols].to_numpy(float) for d in done.values()]), dirs)
    lower, upper = all_points.min(axis=0), all_points.max(axis=0)
    out = {}
    for key, d in done.items():
        feas = d[d["feasible"] == True]  # noqa: E712
        pts = normalize(to_minimization(feas[cols].to_numpy(float), dirs), lower, upper) if len(feas) else \
            np.zeros((0, len(cols)))
        out[key] = hypervolume(pts, np.full(len(cols), 1.1))
    return out


def _one_study(scorer, space, budgets, objectives, problem, sampler: str, seed: int, trials: int,
               population: int, storage=None) -> tuple[Any, float]:
    study = open_study(storage=storage, study_name=f"bench-{sampler}-{seed}", problem=problem,
                       sampler=create_sampler(sampler, seed=seed, population_size=population), resume=False)
    t0 = time.perf_counter()
    run_trials(study, space=space, score=scorer.score, budgets=budgets, objectives=objectives, n_trials=trials,
               batch=min(population, 16), progress=False)
    return study, trials / (time.perf_counter() - t0)


def run_search_bench(config: SearchBenchConfig, *, out: str | Path, progress: bool = True) -> dict[str, Any]:
    t_start = time.perf_counter()
    out = Path(out)
    cfg = SearchConfig(space=config.space, supernet=config.supernet, predictors=config.predictors,
                       force=config.force, supernet_epochs=config.supernet_epochs, profile_n=config.profile_n,
                       profile_passes=1, seed=config.seed, out=str(out), data_dir=config.data_dir).resolved()
    splits = load_dataset(cfg.dataset, seed=data_seed(cfg), data_dir=cfg.data_dir,
                          **cfg.data_options)  # the supernet's split
    check_data(create_space(cfg.space), splits)  # bad data: said before out is made
    out.mkdir(parents=True, exist_ok=True)
    fp = device_fingerprint(cfg.device, threads=cfg.threads)
    reused = cfg.predictors is not None  # reused predictors are checked before a supernet trains
    preds = obtain_predictors(cfg, out, fp.to_dict(), progress) if reused else None
    supernet = obtain_supernet(cfg, out, progress)
    if preds is None:
        preds = obtain_predictors(cfg, out, fp.to_dict(), progress)
    budgets = search_budgets(cfg, preds)
    objectives = parse_objectives(None)
    problem = problem_record(space=cfg.space, objectives=objectives, batch_size=cfg.batch_size, budgets=budgets,
                             dataset=cfg.dataset, fingerprint_id=fp.fingerprint_id)

    def scorer() -> ArchScorer:
        return ArchScorer(supernet=supernet, val_data=splits.val, latency=preds["latency"], memory=preds["memory"],
                          batch_size=cfg.batch_size)

    frames, speed = {}, {config.sampler: [], "random": []}
    cached_scorer = None
    for k in range(config.seeds):
        for sampler in (config.sampler, "random"):
            sc = scorer()
            study, per_s = _one_study(sc, supernet.space, budgets, objectives, problem, sampler, config.seed + k,
                                      config.trials, config.population_size)
            frames[f"{sampler}:{k}"] = trials_frame(study, len(budgets))
            speed[sampler].append(per_s)
            if sampler == config.sampler and cached_scorer is None:
                cached_scorer = sc
            if progress:
                print(f"  {sampler} seed {config.seed + k}: {per_s:.1f} trials/s", file=sys.stderr, flush=True)
    hv = study_hypervolumes(frames, objectives)
    hv_default = statistics.median(hv[f"{config.sampler}:{k}"] for k in range(config.seeds))
    hv_random = statistics.median(hv[f"random:{k}"] for k in range(config.seeds))
    _, per_s_cached = _one_study(cached_scorer, supernet.space, budgets, objectives, problem, config.sampler,
                                 config.seed, config.trials, config.population_size)
    with tempfile.TemporaryDirectory() as tmp:
        own = default_storage(cfg, Path(tmp) / "own")
        _, per_s_own = _one_study(scorer(), supernet.space, budgets, objectives, problem, config.sampler,
                                  config.seed, config.trials, config.population_size, storage=own)
        _, per_s_own_cached = _one_study(cached_scorer, supernet.space, budgets, objectives, problem,
                                         config.sampler, config.seed, config.trials, config.population_size,
                                         storage=default_storage(cfg, Path(tmp) / "own-cached"))
        _, per_s_sqlite = _one_study(scorer(), supernet.space, budgets, objectives, problem, config.sampler,
                                     config.seed, config.trials, config.population_size,
                                     storage=f"sqlite:///{Path(tmp) / 'bench.db'}")
    record = {
        "hypervolume_default": hv_default, "hypervolume_random": hv_random,
        "hv_ratio": hv_default / hv_random if hv_random > 0 else float("inf"),
        "trials_per_s": statistics.median(speed[config.sampler]),
        "trials_per_s_random": statistics.median(speed["random"]),
        "trials_per_s_cached": per_s_cached, "trials_per_s_own_storage": per_s_own,
        "trials_per_s_own_storage_cached": per_s_own_cached, "own_storage": own.split("://", 1)[0],
        "trials_per_s_sqlite": per_s_sqlite,
        "accuracy": "inherited supernet accuracy evaluated per new architecture (cache empty at each study start)",
        "hypervolumes": hv,
        "feasible_fraction": {k: float((f["feasible"] == True).mean()) for k, f in frames.items()},  # noqa: E712
        "budgets": [b.to_dict() for b in budgets],
        "minutes": (time.perf_counter() - t_start) / 60.0,
        "config": {**asdict(config), "device": cfg.device, "device_name": fp.name, "optuna": optuna.__version__},
    }
    write_json(out / "search_bench.json", record)
    return record
