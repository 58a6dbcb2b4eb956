"""Helper worker processes of ``--workers N``: each joins the run's study and runs trials.

The helpers are spawned (fresh interpreters: no torch threads or locks inherited), each with its
own sampler seed; they stop with the main process — terminated on Ctrl-C or a failure of the
main one, and a helper whose main process died stops after its current batch. Picks, exports
and the report stay with the main process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import optuna
import torch

from nas.data import load_dataset
from nas.profiling import read_speed
from nas.search.budgets import Budget
from nas.search.config import SearchConfig
from nas.search.phases import obtain_predictors, obtain_supernet, scoring
from nas.search.samplers import create_sampler
from nas.search.storage import StorageUnavailable
from nas.search.study import open_study, run_trials, study_speed
from profilers import device_fingerprint

__all__ = ["is_storage_error", "join_workers", "search_worker", "start_workers", "stop_workers"]


def is_storage_error(err: BaseException) -> bool:
    if isinstance(err, (StorageUnavailable, optuna.exceptions.StorageInternalError)):
        return True
    module = type(err).__module__ or ""
    return module.startswith(("sqlalchemy", "psycopg2"))


def start_workers(cfg: SearchConfig, out: Path, storage: str, budgets: list[Budget], split_seed: int) -> list:
    """``cfg.workers - 1`` helper processes joining the study (each with its own sampler seed)."""
    import multiprocessing as mp

    if cfg.workers <= 1:
        return []
    ctx = mp.get_context("spawn")  # a fresh interpreter: no torch threads or locks inherited
    procs = []
    for i in range(1, cfg.workers):
        wcfg = replace(cfg, storage=storage, resume=False, join=True, workers=1, seed=cfg.seed + 1000 * i,
                       out=str(out))
        p = ctx.Process(target=search_worker, args=(wcfg, budgets, split_seed),
                        name=f"nas-search-worker-{i}")
        p.start()
        procs.append(p)
    return procs


def join_workers(procs: list) -> None:
    for p in procs:
        p.join()
    bad = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"search worker(s) failed: {', '.join(bad)}; the study keeps their completed trials")


def stop_workers(procs: list) -> None:
    """Stop helper processes (the main one was interrupted or failed): their unfinished trials are
    failed as stale by whoever resumes the study; what they told is kept."""
    for p in procs:  # on Ctrl-C they were interrupted too: let them fail their batch first
        p.join(timeout=5)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=10)


def search_worker(cfg: SearchConfig, budgets: list[Budget], data_seed: int) -> int:
    """A helper process of ``--workers N``: score trials of the run's study until it is full.

    It loads the run's supernet and predictors, joins the study (same problem record) with its
    own sampler seed, and runs trials; picks, exports and the report stay with the main process.
    It stops after its current batch once the main process is gone, and quietly on Ctrl-C.
    """
    main_pid = os.getppid()

    def main_alive(_told: int) -> None:
        if os.getppid() != main_pid:  # re-parented: the main nas-search process died
            print(f"search worker {os.getpid()}: the main nas-search process is gone; stopping (the study keeps "
                  f"the trials told)", file=sys.stderr)
            raise SystemExit(1)

    try:
        return _search_worker(cfg, budgets, data_seed, main_alive)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the main process says what to do
        raise SystemExit(130) from None


def _search_worker(cfg: SearchConfig, budgets: list[Budget], data_seed: int, on_batch) -> int:
    out = Path(cfg.out)
    torch.set_num_threads(1)
    fp = device_fingerprint(cfg.device, threads=cfg.threads, runtime=cfg.runtime)
    supernet = obtain_supernet(cfg, out, progress=False)
    preds = obtain_predictors(cfg, out, fp.to_dict(), progress=False)
    splits = load_dataset(cfg.dataset, seed=data_seed, data_dir=cfg.data_dir,
                          **cfg.data_options)  # the main process's split
    scorer, problem = scoring(cfg, supernet, preds, splits.val, budgets, fp.fingerprint_id)
    study = open_study(storage=cfg.storage, study_name=cfg.study_name, problem=problem,
                       sampler=create_sampler(cfg.sampler, seed=cfg.seed, population_size=cfg.population_size),
                       resume=False, join=True)
    # the main process recorded the speed the study states latency at before starting the helpers
    scorer.latency_scale = study_speed(study, lambda: read_speed(supernet.space, cfg.target,
                                                                 preds["latency"]).to_dict())["factor"]
    return run_trials(study, space=supernet.space, score=scorer.score, budgets=budgets,
                      objectives=cfg.objectives, n_trials=cfg.trials, batch=min(cfg.population_size, 16),
                      progress=False, on_batch=on_batch)

