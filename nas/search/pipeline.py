"""``nas-search``: from a dataset, a device and hardware budgets to measured, exported picks.

Phases, each resumable from what the run directory already holds (``--resume``,
:mod:`nas.search.resume`):

1.–3. **Supernet, predictors, budgets** (:mod:`nas.search.phases`).
4. **Study** (``study.journal``, ``trials.csv``, ``pareto.csv``): an Optuna multi-objective study
   (:mod:`nas.search.study`) scored by the supernet's inherited accuracy and the predictors
   (:mod:`nas.search.scoring`), the budgets as its constraint, in the run's own journal file by
   default (:mod:`nas.search.journal`, :mod:`nas.search.storage`). ``workers`` > 1 starts helper
   processes on the same study (:mod:`nas.search.workers`); ``join`` adds this process to a
   study another worker created in a
   shared ``storage`` (PostgreSQL across machines). A database that fails mid-search raises
   :class:`nas.search.storage.StorageUnavailable`; everything told before is kept. ``resume``
   continues the storage and study name that ``config.json`` records unless others are given.
5. **Picks** (``picks.json``, :mod:`nas.search.picks`): per budget, candidates measured on the
   device until one meets it.
6. **Exports** (``exports/<arch_id>/``, :mod:`nas.export`) of each pick, with weights taken
   from the supernet and its test accuracy on the model card.
7. **Report** (``pareto.png``, ``hypervolume.png``, ``report.html``, ``report.md``,
   :mod:`nas.report`), rebuilt from the files alone by ``nas report`` (:func:`rebuild_report`).

``summary.json`` records this session's phase times, the run's sessions and trial counts, and whether
every budget was met. Every record is written through :mod:`nas.rundir`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from tqdm.auto import tqdm

from nas.data import DatasetSplits, load_dataset
from nas.export import export_model
from nas.profiling import read_speed
from nas.report import write_report
from nas.rundir import CONFIG, PICKS, SUMMARY, TRIALS, default_run_dir, read_run_config, write_json
from nas.search.budgets import Budget
from nas.search.config import SearchConfig, SearchResult
from nas.search.noise import accuracy_spread, compare_to_cheaper, noise_statement
from nas.search.phases import data_seed, load_predictors, obtain_predictors, obtain_supernet, scoring, search_budgets
from nas.search.picks import Measurer, pick, smallest_record
from nas.search.resume import (
    check_run_dir,
    default_storage,
    own_study_file,
    read_search_record,
    require_study_file,
    resumed_data_seed,
    sessions,
    stored_storage,
    with_recorded_settings,
)
from nas.search.samplers import create_sampler
from nas.search.scoring import ArchScorer
from nas.search.storage import StorageUnavailable, create_storage, describe_storage, file_storage_path
from nas.search.study import open_study, run_trials, study_speed
from nas.search.tables import trials_frame, write_tables
from nas.search.workers import is_storage_error, join_workers, start_workers, stop_workers
from nas.train import check_data, set_seed
from predictors.predictor import Predictor
from profilers import DeviceFingerprint, device_fingerprint
from search_spaces.arch import ArchConfig
from search_spaces.space import create_space

__all__ = ["rebuild_report", "run_search"]


@dataclass
class _Session:
    """One session of a search: its resolved settings, run directory and what it has measured."""

    cfg: SearchConfig
    out: Path
    fingerprint: DeviceFingerprint
    storage: str
    split_seed: int
    record: dict[str, Any]  # what config.json records
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase

    def timed(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds


def run_search(config: SearchConfig, *, progress: bool = True) -> SearchResult:
    """Run (or resume) a search; see the module docstring. Raises nothing for infeasible
    budgets: they are in ``result.infeasible`` (the CLI exits 2 for them)."""
    t_start = time.perf_counter()
    session, supernet, preds, splits = _start(config, progress)
    t = time.perf_counter()
    if supernet is None:
        supernet = obtain_supernet(session.cfg, session.out, progress)
    session.timed("supernet_s", time.perf_counter() - t)
    t = time.perf_counter()
    if preds is None:
        preds = obtain_predictors(session.cfg, session.out, session.fingerprint.to_dict(), progress)
    session.timed("predictors_s", time.perf_counter() - t)
    budgets = search_budgets(session.cfg, preds)

    t = time.perf_counter()
    scorer, trials, ran = _study(session, supernet, preds, splits, budgets, progress)
    session.timed("search_s", time.perf_counter() - t)
    pareto = write_tables(session.out, trials, session.cfg.objectives)

    t = time.perf_counter()
    measure = Measurer(session.cfg, supernet, splits.test, preds=preds, study_scale=scorer.latency_scale)
    smallest = smallest_record(trials, supernet, scorer, measure)
    picks = [pick(b, i, trials, measure, smallest, session.cfg.measure_candidates,
                  accuracy_metric=session.cfg.accuracy_metric)
             for i, b in enumerate(tqdm(budgets, desc="measure picks", unit="budget", disable=not progress))]
    for p in picks:
        p["vs_cheaper"] = compare_to_cheaper(p, pareto, scorer.n_val)
    session.timed("measure_s", time.perf_counter() - t)

    t = time.perf_counter()
    _export_picks(session, supernet, splits, picks)
    session.timed("export_s", time.perf_counter() - t)
    write_json(session.out / PICKS, {"picks": picks, "smallest": smallest}, default=str)
    summary = _summary(session, trials, ran, scorer, pareto, picks, minutes=(time.perf_counter() - t_start) / 60.0)
    spread = accuracy_spread(trials, scorer.n_val)
    summary["accuracy_noise"] = {**spread, "statement": noise_statement(spread)}
    write_json(session.out / SUMMARY, summary, default=str)
    report = write_report(session.out)
    return SearchResult(run_dir=session.out, budgets=budgets, picks=picks, summary=summary, report=report)


def _start(config: SearchConfig, progress: bool):
    """Resolve the settings (a resume's from its record), check every input — the reused supernet
    and predictors, the data, the storage — and only then make the run directory and write
    ``config.json``: a typo leaves nothing behind. Returns the session and what was reused."""
    recorded = read_search_record(Path(config.out)) if config.resume else None  # resume needs out
    cfg = with_recorded_settings(config, recorded).resolved()
    out = Path(cfg.out) if cfg.out is not None else default_run_dir("search", cfg.space)
    check_run_dir(cfg, out, recorded)
    set_seed(cfg.seed)
    fp = device_fingerprint(cfg.device, threads=cfg.threads, runtime=cfg.runtime)
    storage = cfg.storage or default_storage(cfg, out)
    t = time.perf_counter()
    supernet = obtain_supernet(cfg, out, progress) if cfg.supernet is not None else None
    split_seed = resumed_data_seed(cfg, recorded, out) if recorded is not None else data_seed(cfg)
    splits = load_dataset(cfg.dataset, seed=split_seed, data_dir=cfg.data_dir, **cfg.data_options)
    check_data(create_space(cfg.space), splits)
    supernet_s = time.perf_counter() - t
    preds = load_predictors(Path(cfg.predictors), cfg, fp.to_dict()) if cfg.predictors is not None else None
    if file_storage_path(storage) is None:
        create_storage(storage)  # a database server: unreachable is said now, not after the long phases
    elif cfg.resume and cfg.storage is not None:  # the study began: its file must be there
        require_study_file(storage, out)
    record = {**cfg.to_dict(), "target": cfg.target.to_dict(), "run_dir": str(out), "device_name": fp.name,
              "fingerprint_id": fp.fingerprint_id,
              "data_seed": split_seed, "sessions": sessions(recorded) + 1}
    if not cfg.resume:  # a resumed run's record is rewritten only once its study accepted the resume
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG, record, default=str)
    session = _Session(cfg=cfg, out=out, fingerprint=fp, storage=storage, split_seed=split_seed,
                       record=record)
    session.timed("supernet_s", supernet_s)
    return session, supernet, preds, splits


def _study(session: _Session, supernet, preds: dict[str, Predictor], splits: DatasetSplits, budgets: list[Budget],
           progress: bool) -> tuple[ArchScorer, Any, int]:
    """Phase 4: open (or resume, or join) the study, record it in ``config.json``, run its trials
    here and in the helper workers; returns the scorer, the trials table and the trials told here."""
    cfg, out, storage = session.cfg, session.out, session.storage
    scorer, problem = scoring(cfg, supernet, preds, splits.val, budgets, session.fingerprint.fingerprint_id)
    helpers: list = []
    try:
        study = open_study(storage=storage, study_name=cfg.study_name, problem=problem,
                           sampler=create_sampler(cfg.sampler, seed=cfg.seed, population_size=cfg.population_size),
                           resume=cfg.resume, join=cfg.join, create_on_resume=cfg.storage is None)
        speed = study_speed(study, lambda: read_speed(supernet.space, cfg.target, preds["latency"]).to_dict())
        scorer.latency_scale = speed["factor"]  # every session and worker states latency at the study's speed
        session.record["speed_at_start"] = speed
        write_json(out / CONFIG, {**session.record, "storage": storage,
                                  "storage_in_run_dir": own_study_file(storage, out),
                                  "budgets": [b.to_dict() for b in budgets], "objectives": list(cfg.objectives)},
                   default=str)
        helpers = start_workers(cfg, out, storage, budgets, session.split_seed)
        ran = run_trials(study, space=supernet.space, score=scorer.score, budgets=budgets,
                         objectives=cfg.objectives, n_trials=cfg.trials, batch=min(cfg.population_size, 16),
                         progress=progress)
        join_workers(helpers)
        return scorer, trials_frame(study, len(budgets)), ran
    except BaseException as err:  # Ctrl-C or a failure: the helpers stop with the main process
        stop_workers(helpers)
        if isinstance(err, Exception) and is_storage_error(err):
            raise StorageUnavailable(
                f"the study storage {describe_storage(storage)} failed during the search ({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); the trials told so far are kept "
                f"in it: once it is back, continue with --resume (or --join)") from None
        raise


def _export_picks(session: _Session, supernet, splits: DatasetSplits, picks: list[dict[str, Any]]) -> None:
    """Phase 6: export every pick not exported yet, its measured figures on the model card."""
    cfg = session.cfg
    for p in picks:
        if p["arch_id"] is None or (session.out / p["export_dir"]).exists():
            continue
        arch = ArchConfig.from_dict(p["arch"])
        card = {"test_acc": p["measured"]["test_acc"], "val_acc": p["predicted"]["val_acc"],
                "latency_ms": p["measured"]["latency_ms"], "predicted_latency_ms": p["predicted"]["latency_ms"],
                "peak_mem_mb": p["measured"]["peak_mem_mb"],
                "predicted_peak_mem_mb": p["predicted"]["peak_mem_mb"], "device": session.fingerprint.name,
                "batch_size": cfg.batch_size, "budget": p["budget"]["label"], "dataset": cfg.dataset,
                "input": splits.input_spec()}
        if splits.license:
            card["data_license"] = splits.license
        export_model(supernet.extract(arch).eval(), arch, session.out / p["export_dir"], formats=cfg.formats,
                     card=card)


def _summary(session: _Session, trials, ran: int, scorer: ArchScorer, pareto, picks: list[dict[str, Any]], *,
             minutes: float) -> dict[str, Any]:
    """``summary.json``: this session's phase times and trial counts, the run's sessions, the budgets met."""
    search_s = session.phases["search_s"]
    return {"phases": session.phases, "trials_completed": int((trials["state"] == "COMPLETE").sum()),
            "trials_this_session": ran,
            "trials_failed": int(((trials["state"] == "FAIL") & ~trials["surplus"].astype(bool)).sum()),
            "trials_surplus": int(trials["surplus"].astype(bool).sum()),
            "trials_per_s": ran / search_s if ran and search_s > 0 else None,
            "accuracy_evaluations": scorer.evaluations, "pareto_size": len(pareto),
            "all_budgets_met": all(p["status"] == "met" for p in picks),
            "infeasible_budgets": [p["budget"]["label"] for p in picks if p["status"] == "infeasible"],
            "minutes": minutes,
            "sessions": session.record["sessions"]}  # this run's sessions so far, this one included


def rebuild_report(run_dir: str | Path) -> dict[str, Path]:
    """``nas report``: re-read the study from its storage into ``trials.csv`` / ``pareto.csv`` and
    render the report again — no supernet needed. When the storage cannot be reached but the run
    directory holds ``trials.csv``, the report is rendered from the tables already there, with a
    warning that they may lack the trials told since they were written."""
    run_dir = Path(run_dir)
    stored = read_run_config(run_dir)
    try:
        if stored["storage"] is None:
            raise KeyError("storage")
        name, objectives, n_budgets = stored["study_name"], stored["objectives"], len(stored["budgets"])
    except KeyError as err:
        raise ValueError(f"{run_dir / CONFIG} lacks {err}; was the search stopped before its study "
                         f"started?") from None
    storage = stored_storage(stored, run_dir)
    require_study_file(storage, run_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=create_storage(storage))
        trials = trials_frame(study, n_budgets)
    except KeyError:
        raise ValueError(f"study {name!r} not found in {describe_storage(storage)}") from None
    except Exception as err:
        if not is_storage_error(err) or not (run_dir / TRIALS).is_file():
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warnings.warn(f"the study storage cannot be read ({first}); the report is rendered from the "
                      f"trials.csv and pareto.csv already in {run_dir}, which lack any trial told after "
                      f"they were written", stacklevel=2)
        return write_report(run_dir)
    write_tables(run_dir, trials, objectives)
    return write_report(run_dir)

