"""The phases before the study: the supernet, the predictors and the budgets.

1. **Supernet** (``supernet/``): trained with the sandwich rule (:mod:`nas.train.supernet`), or
   reused from ``--supernet DIR``. Validation and test images come from the supernet's own
   train/val/test split (a reused one's seed, :func:`data_seed`), so no image it was trained on
   selects or tests an architecture.
2. **Predictors** (``profiles.csv``, ``predictors/{latency,memory}/``): architectures of the
   space profiled on the target (device, runtime, threads) at the deployment batch size
   (:func:`nas.profiling.collect_profiles`) and latency / memory predictors fitted on them — or
   reused from ``--predictors DIR`` when they were fitted for this target and batch size.
3. **Budgets**: the user's, or — none given — two automatic ones at the 25th and 50th
   percentile of the profiled architectures' latency and memory.

:func:`scoring` builds the study's scorer and problem record from them (main process and helper
workers alike).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.profiling import DEFAULT_TARGETS, ProfileRunConfig, collect_profiles
from nas.rundir import read_run_config
from nas.search.budgets import Budget, auto_budgets
from nas.search.config import SearchConfig
from nas.search.scoring import ArchScorer
from nas.search.study import problem_record
from nas.train import SupernetConfig, TrainConfig, finished_supernet, load_supernet
from predictors.predictor import Predictor
from predictors.table import aggregate_profiles, read_profiles, rows_for

__all__ = ["data_seed", "load_predictors", "obtain_predictors", "obtain_supernet", "scoring", "search_budgets"]


def obtain_supernet(cfg: SearchConfig, out: Path, progress: bool):
    """Phase 1 (``cfg`` resolved): the reused, finished or resumed-and-trained supernet."""
    if cfg.supernet is not None:
        supernet, run_config = load_supernet(cfg.supernet)
        if supernet.space.name != cfg.space or run_config.get("dataset") != cfg.dataset:
            raise ValueError(f"--supernet {cfg.supernet} was trained for space {supernet.space.name!r} on "
                             f"{run_config.get('dataset')!r}, not {cfg.space!r} on {cfg.dataset!r}")
        trained_with = dict(run_config.get("data_options") or {})
        if trained_with != dict(cfg.data_options):
            raise ValueError(f"--supernet {cfg.supernet} was trained with data options {trained_with or 'none'}, not "
                             f"{dict(cfg.data_options) or 'none'}: pass the same --image-size, --channels, …")
        return supernet
    recipe = TrainConfig(epochs=cfg.supernet_epochs, seed=cfg.seed, device=cfg.device)
    return finished_supernet(space=cfg.space, dataset=cfg.dataset, config=SupernetConfig(train=recipe),
                             out=out / "supernet", data_dir=cfg.data_dir, data_options=cfg.data_options,
                             progress=progress)


def data_seed(cfg: SearchConfig) -> int:
    """The seed of the run's train/val/test split: a reused supernet's own (``--supernet``), so
    that no image it was trained on selects or tests an architecture; else the run's ``seed``
    (its supernet is trained on that split)."""
    if cfg.supernet is None:
        return cfg.seed
    path = Path(cfg.supernet) / "config.json"
    seed = read_run_config(cfg.supernet, kind="nas train-supernet").get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{path} records no data split seed ('seed': a non-negative integer), got {seed!r}")
    return seed



def load_predictors(directory: Path, cfg: SearchConfig, fingerprint: dict[str, Any]) -> dict[str, Predictor]:
    preds = {}
    for target in DEFAULT_TARGETS:
        d = directory / target
        if not (d / "predictor.json").is_file():
            raise FileNotFoundError(f"{directory} holds no {target} predictor ({directory / target}/predictor.json); "
                                    f"`nas predictors fit --out {directory}` writes one")
        pred = Predictor.load(d, fingerprint=fingerprint, force=cfg.force)
        if pred.space != cfg.space:
            raise ValueError(f"{d} predicts space {pred.space!r}, not {cfg.space!r}")
        if cfg.confidence is not None and len(pred.residual_log) < 2:
            raise ValueError(f"{d} records no cross-validated residuals, so --confidence {cfg.confidence:g} cannot "
                             f"state an interval from it (saved before intervals existed); rebuild it with "
                             f"`nas predictors refit {d}`, or drop --confidence")
        if cfg.batch_size not in pred.batch_sizes:
            raise ValueError(f"{d} was fitted on batch sizes {pred.batch_sizes}, not the deployment batch size "
                             f"{cfg.batch_size}; profile batch size {cfg.batch_size} or drop --predictors")
        preds[target] = pred
    return preds


def obtain_predictors(cfg: SearchConfig, out: Path, fingerprint: dict[str, Any],
                      progress: bool) -> dict[str, Predictor]:
    """Phase 2 (``cfg`` resolved): reused, stored, or profiled-and-fitted latency and memory predictors."""
    if cfg.predictors is not None:
        return load_predictors(Path(cfg.predictors), cfg, fingerprint)
    pred_dir = out / "predictors"
    if all((pred_dir / t / "predictor.json").is_file() for t in DEFAULT_TARGETS):
        return load_predictors(pred_dir, cfg, fingerprint)
    run = ProfileRunConfig(space=cfg.space, n=cfg.profile_n, device=cfg.device, batch_size=cfg.batch_size,
                           seed=cfg.seed, threads=cfg.threads, runtime=cfg.runtime, passes=cfg.profile_passes,
                           max_passes=max(cfg.profile_passes, 5 if cfg.profile_passes > 1 else 1))
    table = collect_profiles(run, out / "profiles.csv", progress=progress)
    folds = 5 if len(table) >= 25 else 4
    rows = rows_for(read_profiles(out / "profiles.csv"), fingerprint_id=table["fingerprint_id"].iloc[0],
                    batch_sizes=[cfg.batch_size], space=cfg.space)  # every pass, as the predictors fit them
    preds = {}
    for target in DEFAULT_TARGETS:
        preds[target] = Predictor(target=target, seed=cfg.seed, folds=folds).fit(rows)
        preds[target].save(pred_dir / target)
    return preds


def search_budgets(cfg: SearchConfig, preds: dict[str, Predictor]) -> list[Budget]:
    """Phase 3: the user's budgets, or automatic ones from the predictors' profiled architectures."""
    budgets = cfg.budgets()
    if budgets:
        return budgets
    table = aggregate_profiles(preds["latency"].table)
    table = table[table["batch_size"].astype(int) == cfg.batch_size]
    mem = aggregate_profiles(preds["memory"].table)
    mem = mem[mem["batch_size"].astype(int) == cfg.batch_size]
    return auto_budgets(table["latency_ms"].to_numpy(float), mem["peak_infer_mem_mb"].to_numpy(float))


def scoring(cfg: SearchConfig, supernet, preds: dict[str, Predictor], val_data, budgets: list[Budget],
             fingerprint_id: str) -> tuple[ArchScorer, dict[str, Any]]:
    """The scorer of trials and the problem record of the study (main process and helpers alike)."""
    scorer = ArchScorer(supernet=supernet, val_data=val_data, latency=preds["latency"], memory=preds["memory"],
                        batch_size=cfg.batch_size, device=cfg.device, confidence=cfg.confidence)
    problem = problem_record(space=cfg.space, objectives=cfg.objectives, batch_size=cfg.batch_size,
                             budgets=budgets, dataset=cfg.dataset, fingerprint_id=fingerprint_id,
                             confidence=cfg.confidence)
    return scorer, problem
