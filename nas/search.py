"""``nas-search``: from a dataset, a device and hardware budgets to measured, exported picks.

Phases, each resumable from what the run directory already holds (``--resume``):

1. **Supernet** (``supernet/``): trained with the sandwich rule (:mod:`nas.supernet_train`),
   or reused from ``--supernet DIR``. Validation and test images come from the supernet's own
   train/val/test split (a reused one's seed, recorded as ``data_seed``), so no image it was
   trained on selects or tests an architecture.
2. **Predictors** (``profiles.csv``, ``predictors/{latency,memory}/``): architectures of the
   space profiled on the target device at the deployment batch size
   (:func:`nas.profiling.collect_profiles`) and latency / memory predictors fitted on them —
   or reused from ``--predictors DIR`` when they were fitted on this device and batch size.
3. **Budgets**: the user's, or — none given — two automatic ones at the 25th and 50th
   percentile of the profiled architectures' latency and memory.
4. **Study** (``study.db``, ``trials.csv``, ``pareto.csv``): an Optuna multi-objective study
   (:mod:`nas.study`) scored by the supernet's inherited accuracy and the predictors
   (:mod:`nas.scoring`), the budgets as its constraint. ``workers`` > 1 starts helper
   processes on the same study (a journal file by default, :mod:`nas.storage`); ``join``
   adds this process to a study another worker created in a shared ``storage`` (PostgreSQL
   across machines). A database that fails mid-search raises
   :class:`nas.storage.StorageUnavailable`; everything told before is kept. ``resume``
   continues the storage and study name that ``config.json`` records unless others are given.
5. **Picks** (``picks.json``): per budget, the most accurate trial predicted to meet it is
   **measured** on the device; if the measurement misses the budget, the predictions of the
   remaining candidates are scaled by the underestimate the miss revealed and the most accurate
   one that still fits is measured next (up to ``measure_candidates``). The pick is the first
   that meets the budget — or, if none does, the one that misses by least, with the miss in
   the record. When no trial is predicted to meet a budget, the predictors may overestimate:
   the trials predicted to miss it by least and the space's smallest architecture are measured,
   and the most accurate that meets it when measured is the pick (``predicted_to_meet`` false).
   A budget none of them meets is infeasible, reported with the smallest latency and memory
   found.
6. **Exports** (``exports/<arch_id>/``, :mod:`nas.export`) of each pick, with weights taken
   from the supernet and its test accuracy on the model card.
7. **Report** (``pareto.png``, ``hypervolume.png``, ``report.html``, ``report.md``,
   :mod:`nas.report`), rebuilt from the files alone by ``nas report``.

``summary.json`` records this session's phase times, the run's sessions and trial counts, and whether
every budget was met.
"""

from __future__ import annotations

import json
import numbers
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import optuna
import torch
from tqdm.auto import tqdm

from nas.budgets import Budget, auto_budgets, budgets_from_lists
from nas.data import dataset_names, default_dataset, load_dataset
from nas.export import EXPORT_FORMATS, export_model, parse_formats
from nas.profiling import ProfileRunConfig, collect_profiles
from nas.report import write_report
from nas.run_dir import check_new_run_dir, read_run_config, write_text_atomic
from nas.scoring import ArchScorer
from nas.storage import StorageUnavailable, check_storage_url, create_storage, describe_storage, file_storage_path
from nas.study import (SAMPLERS, check_population, create_sampler, open_study, pareto_frame, parse_objectives,
                       problem_record, run_trials, trials_frame)
from nas.supernet_train import SupernetConfig, check_data, evaluate_arch, finished_supernet, load_supernet
from nas.train import TrainConfig, check_device, set_seed
from predictors.models import COST_FLOOR
from predictors.predictor import MAX_SEED, Predictor
from predictors.table import aggregate_profiles, read_profiles, rows_for
from profilers.fingerprint import device_fingerprint
from profilers.profile import profile
from search_spaces.arch import ArchConfig
from search_spaces.layers import check_positive_int
from search_spaces.space import create_space

__all__ = [
    "SearchConfig", "SearchResult", "data_seed", "obtain_predictors", "obtain_supernet", "rebuild_report", "run_search",
    "search_budgets", "search_worker",
]


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``nas-search`` needs; ``None`` fields take the defaults of ``quick`` or not."""

    space: str = "digits-s"
    dataset: str | None = None  # None: the space's own dataset
    data_dir: str | None = None
    device: str = "cpu"
    batch_size: int = 1  # deployment batch size: latency and memory are predicted and measured at it
    latency_budgets_ms: tuple[float, ...] = ()
    memory_budgets_mb: tuple[float, ...] = ()
    objectives: tuple[str, ...] = ("accuracy", "latency", "memory")  # or value names (val_acc, …)
    trials: int | None = None
    sampler: str = "nsga2"
    population_size: int | None = None
    storage: str | None = None  # None: the recorded one on resume, else SQLite in the run dir (journal: workers > 1)
    study_name: str | None = None
    resume: bool = False
    join: bool = False  # add this process to an existing study of the same problem (another worker's)
    workers: int = 1  # processes running trials on this machine (the main one included)
    seed: int = 0
    out: str | None = None
    quick: bool = False
    supernet: str | None = None  # reuse this trained supernet run directory
    supernet_epochs: int | None = None
    predictors: str | None = None  # reuse these predictor artifacts (latency/, memory/)
    force: bool = False  # use predictors fitted on another device
    profile_n: int | None = None
    profile_passes: int | None = None
    threads: int | None = None
    formats: tuple[str, ...] = EXPORT_FORMATS
    measure_candidates: int = 3

    def __post_init__(self) -> None:
        create_space(self.space)  # unknown space: error listing the valid ones
        if self.dataset is not None and self.dataset not in dataset_names():
            raise ValueError(f"unknown dataset {self.dataset!r}; valid: {', '.join(dataset_names())}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        check_device(self.device)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("measure_candidates", self.measure_candidates)
        check_positive_int("workers", self.workers)
        for name in ("trials", "population_size", "supernet_epochs", "profile_n", "profile_passes", "threads"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if self.population_size is not None:
            check_population(self.sampler, self.population_size)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        top = self.seed + 1000 * (self.workers - 1)  # the helpers' sampler seeds
        if top > MAX_SEED:
            raise ValueError(f"seed must be at most {MAX_SEED - 1000 * (self.workers - 1)} with {self.workers} "
                             f"worker(s) (samplers and predictors take seeds up to 2**32 - 1), got {self.seed}")
        object.__setattr__(self, "objectives", parse_objectives(self.objectives))
        object.__setattr__(self, "formats", parse_formats(self.formats))
        for name in ("resume", "join", "quick", "force"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("latency_budgets_ms", "memory_budgets_mb"):
            value = getattr(self, name)
            if value is None:
                value = ()
            elif isinstance(value, numbers.Real) and not isinstance(value, bool):
                value = (value,)  # one budget
            elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise TypeError(f"{name} must be a number or a sequence of numbers (one per budget), "
                                f"got {value!r}")
            object.__setattr__(self, name, tuple(value))
        self.budgets()  # validates the limits and their pairing
        if self.storage is not None:
            check_storage_url(self.storage)
        if self.resume and self.join:
            raise ValueError("give --resume (continue this run directory's study) or --join (add a worker to a "
                             "shared study), not both")
        if self.resume and self.out is None:
            raise ValueError("--resume needs --out: the run directory to continue")
        if self.profile_n is not None and self.profile_n < 8:
            raise ValueError(f"profile_n must be at least 8 to fit predictors, got {self.profile_n}")

    def budgets(self) -> list[Budget]:
        return budgets_from_lists(self.latency_budgets_ms, self.memory_budgets_mb)

    def resolved(self) -> "SearchConfig":
        """The config with every default filled in (what ``config.json`` records)."""
        q = self.quick
        trials = self.trials or (60 if q else 300)
        return replace(
            self, dataset=self.dataset or default_dataset(self.space), trials=trials,
            population_size=self.population_size or (12 if q else 16),
            supernet_epochs=self.supernet_epochs or (3 if q else 30),
            profile_n=self.profile_n or (16 if q else 80), profile_passes=self.profile_passes or (1 if q else 3),
            threads=self.threads or (torch.get_num_threads() if self.device == "cpu" else None),
            study_name=self.study_name or f"nas-search-{self.space}",
            supernet=None if self.supernet is None else str(Path(self.supernet).resolve()),
            predictors=None if self.predictors is None else str(Path(self.predictors).resolve()),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    run_dir: Path
    budgets: list[Budget]
    picks: list[dict[str, Any]]
    summary: dict[str, Any]
    report: dict[str, Path] = field(default_factory=dict)

    @property
    def infeasible(self) -> list[dict[str, Any]]:
        return [p for p in self.picks if p["status"] == "infeasible"]


def _json_write(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def _run_dir(cfg: SearchConfig) -> Path:
    if cfg.out is None:
        return Path("results") / f"search-{cfg.space}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.out)


_OWN_STUDY_FILES = {"sqlite:///": "study.db", "journal:///": "study.journal"}


def _own_study_file(storage: str, run_dir: Path) -> bool:
    """Whether ``storage`` is the run directory's own study file (``study.db`` / ``study.journal``)."""
    return any(storage == f"{scheme}{(run_dir / name).resolve()}" for scheme, name in _OWN_STUDY_FILES.items())


def stored_storage(stored: dict[str, Any], run_dir: Path) -> str | None:
    """The study storage a run directory's ``config.json`` records (``None`` before its study began).

    A run's own study file (``storage_in_run_dir``) is read from ``run_dir`` wherever the
    directory now lies: a moved or copied run goes on with its own study, never the original's.
    A recorded file storage that no longer exists but has a namesake in ``run_dir`` is read there.
    """
    url = stored.get("storage")
    if not isinstance(url, str):
        return None
    recorded = file_storage_path(url)
    if recorded is not None:
        here = run_dir / recorded.name
        if stored.get("storage_in_run_dir") or (not recorded.exists() and here.is_file()):
            return f"{check_storage_url(url)}{here.resolve()}"
    return url


def _with_recorded_settings(config: SearchConfig, stored: dict[str, Any] | None) -> SearchConfig:
    """On ``--resume``, settings not given default to what the run directory recorded (``stored``):
    the study's storage and name (a run started with ``--workers``, ``--storage`` or
    ``--study-name`` resumes its own study, not a new empty one), the reused ``--supernet`` /
    ``--predictors`` (its trials were scored with them) and ``--data-dir``."""
    if stored is None:
        return config
    return replace(config, storage=config.storage or stored_storage(stored, Path(config.out)),
                   study_name=config.study_name or stored.get("study_name"),
                   supernet=config.supernet or stored.get("supernet"),
                   predictors=config.predictors or stored.get("predictors"),
                   data_dir=config.data_dir or stored.get("data_dir"))


def _read_search_record(out: Path) -> dict[str, Any]:
    stored = read_run_config(out)
    if "space" not in stored or "trials" not in stored or not isinstance(stored.get("supernet"), (str, type(None))):
        raise ValueError(f"--resume refused: {out / 'config.json'} is not the record of a nas-search run")
    return stored


def _require_study_file(storage: str, run_dir: Path) -> None:
    """A study file that should exist and does not is said, not created empty."""
    path = file_storage_path(storage)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"the study file {path} of {run_dir} does not exist; was it moved or deleted?")


def _same_path(a: str | None, b: str | None) -> bool:
    return a == b or (a is not None and b is not None and Path(a).resolve() == Path(b).resolve())


def _prepare(cfg: SearchConfig, out: Path, stored: dict[str, Any] | None) -> None:
    """Refuse a resume whose settings differ from the run's record ``stored``, or a new run in an
    occupied directory; creates nothing (the run directory is made once every input is checked)."""
    if stored is not None:
        for key in ("space", "dataset", "device", "batch_size", "seed"):
            if stored.get(key) != getattr(cfg, key):
                raise ValueError(f"--resume refused: {out} was run with {key}={stored.get(key)!r}, not "
                                 f"{getattr(cfg, key)!r}; resume with the same {key} or use a new --out")
        for key in ("supernet", "predictors"):  # the trials so far were scored with these
            if not _same_path(stored.get(key), getattr(cfg, key)):
                recorded = stored.get(key) or f"its own {key} (in {out / key})"
                raise ValueError(f"--resume refused: {out} was scored with {recorded}, not --{key} "
                                 f"{getattr(cfg, key)}; resume without --{key} or use a new --out")
        return
    check_new_run_dir(out, hint="pass --resume to continue that search, or choose another --out")


# --- phase 1: supernet -------------------------------------------------------------------------
def obtain_supernet(cfg: SearchConfig, out: Path, progress: bool):
    """Phase 1 (``cfg`` resolved): the reused, finished or resumed-and-trained supernet."""
    if cfg.supernet is not None:
        supernet, run_config = load_supernet(cfg.supernet)
        if supernet.space.name != cfg.space or run_config.get("dataset") != cfg.dataset:
            raise ValueError(f"--supernet {cfg.supernet} was trained for space {supernet.space.name!r} on "
                             f"{run_config.get('dataset')!r}, not {cfg.space!r} on {cfg.dataset!r}")
        return supernet
    recipe = TrainConfig(epochs=cfg.supernet_epochs, seed=cfg.seed, device=cfg.device)
    return finished_supernet(space=cfg.space, dataset=cfg.dataset, config=SupernetConfig(train=recipe),
                             out=out / "supernet", data_dir=cfg.data_dir, progress=progress)


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


def _resumed_data_seed(cfg: SearchConfig, recorded: dict[str, Any], out: Path) -> int:
    """The split a resumed run goes on scoring with: the one its trials so far were scored on."""
    if "data_seed" not in recorded:  # recorded before data_seed existed: its trials used the --seed split
        return cfg.seed
    seed = data_seed(cfg)
    if recorded["data_seed"] != seed:
        raise ValueError(f"--resume refused: {out} scored its trials on the data split of seed "
                         f"{recorded['data_seed']}, but its supernet {cfg.supernet} now records seed {seed} "
                         f"(retrained?); resume with the supernet it was run with or use a new --out")
    return seed


def _sessions(recorded: dict[str, Any] | None) -> int:
    """How many sessions a run had before this one (0 for a new run)."""
    if recorded is None:
        return 0
    n = recorded.get("sessions", 1)
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1


# --- phase 2: predictors -----------------------------------------------------------------------
def _load_predictors(directory: Path, cfg: SearchConfig, fingerprint: dict[str, Any]) -> dict[str, Predictor]:
    preds = {}
    for target in ("latency", "memory"):
        d = directory / target
        if not (d / "predictor.json").is_file():
            raise FileNotFoundError(f"{directory} holds no {target} predictor ({directory / target}/predictor.json); "
                                    f"`nas predictors fit --out {directory}` writes one")
        pred = Predictor.load(d, fingerprint=fingerprint, force=cfg.force)
        if pred.space != cfg.space:
            raise ValueError(f"{d} predicts space {pred.space!r}, not {cfg.space!r}")
        if cfg.batch_size not in pred.batch_sizes:
            raise ValueError(f"{d} was fitted on batch sizes {pred.batch_sizes}, not the deployment batch size "
                             f"{cfg.batch_size}; profile batch size {cfg.batch_size} or drop --predictors")
        preds[target] = pred
    return preds


def obtain_predictors(cfg: SearchConfig, out: Path, fingerprint: dict[str, Any],
                      progress: bool) -> dict[str, Predictor]:
    """Phase 2 (``cfg`` resolved): reused, stored, or profiled-and-fitted latency and memory predictors."""
    if cfg.predictors is not None:
        return _load_predictors(Path(cfg.predictors), cfg, fingerprint)
    pred_dir = out / "predictors"
    if all((pred_dir / t / "predictor.json").is_file() for t in ("latency", "memory")):
        return _load_predictors(pred_dir, cfg, fingerprint)
    run = ProfileRunConfig(space=cfg.space, n=cfg.profile_n, device=cfg.device, batch_size=cfg.batch_size,
                           seed=cfg.seed, threads=cfg.threads, passes=cfg.profile_passes,
                           max_passes=max(cfg.profile_passes, 5 if cfg.profile_passes > 1 else 1))
    table = collect_profiles(run, out / "profiles.csv", progress=progress)
    folds = 5 if len(table) >= 25 else 4
    rows = rows_for(read_profiles(out / "profiles.csv"), fingerprint_id=table["fingerprint_id"].iloc[0],
                    batch_sizes=[cfg.batch_size], space=cfg.space)  # every pass, as the predictors fit them
    preds = {}
    for target in ("latency", "memory"):
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


# --- phase 4: study, with helper worker processes ---------------------------------------------
def _default_storage(cfg: SearchConfig, out: Path) -> str:
    # Several processes share a journal file (append-only, file locks) more safely than SQLite.
    if cfg.workers > 1:
        return f"journal:///{(out / 'study.journal').resolve()}"
    return f"sqlite:///{(out / 'study.db').resolve()}"


def _is_storage_error(err: BaseException) -> bool:
    if isinstance(err, (StorageUnavailable, optuna.exceptions.StorageInternalError)):
        return True
    module = type(err).__module__ or ""
    return module.startswith(("sqlalchemy", "psycopg2"))


def _start_workers(cfg: SearchConfig, out: Path, storage: str, budgets: list[Budget], split_seed: int) -> list:
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


def _join_workers(procs: list) -> None:
    for p in procs:
        p.join()
    bad = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"search worker(s) failed: {', '.join(bad)}; the study keeps their completed trials")


def _stop_workers(procs: list) -> None:
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
    fp = device_fingerprint(cfg.device, threads=cfg.threads)
    supernet = obtain_supernet(cfg, out, progress=False)
    preds = obtain_predictors(cfg, out, fp.to_dict(), progress=False)
    splits = load_dataset(cfg.dataset, seed=data_seed, data_dir=cfg.data_dir)  # the main process's split
    scorer, problem = _scoring(cfg, supernet, preds, splits.val, budgets, fp.fingerprint_id)
    study = open_study(storage=cfg.storage, study_name=cfg.study_name, problem=problem,
                       sampler=create_sampler(cfg.sampler, seed=cfg.seed, population_size=cfg.population_size),
                       resume=False, join=True)
    return run_trials(study, space=supernet.space, score=scorer.score, budgets=budgets,
                      objectives=cfg.objectives, n_trials=cfg.trials, batch=min(cfg.population_size, 16),
                      progress=False, on_batch=on_batch)


def _scoring(cfg: SearchConfig, supernet, preds: dict[str, Predictor], val_data, budgets: list[Budget],
             fingerprint_id: str) -> tuple[ArchScorer, dict[str, Any]]:
    """The scorer of trials and the problem record of the study (main process and helpers alike)."""
    scorer = ArchScorer(supernet=supernet, val_data=val_data, latency=preds["latency"], memory=preds["memory"],
                        batch_size=cfg.batch_size, device=cfg.device)
    problem = problem_record(space=cfg.space, objectives=cfg.objectives, batch_size=cfg.batch_size,
                             budgets=budgets, dataset=cfg.dataset, fingerprint_id=fingerprint_id)
    return scorer, problem


# --- phase 5: picks ------------------------------------------------------------------------------
class _Measurer:
    """Measures picks on the device (cached per architecture) and their test accuracy."""

    def __init__(self, cfg: SearchConfig, supernet, test_data) -> None:
        self.cfg, self.supernet, self.test_data = cfg, supernet, test_data
        self.cache: dict[str, dict[str, float]] = {}

    def __call__(self, arch: ArchConfig) -> dict[str, float]:
        if arch.arch_id not in self.cache:
            model = self.supernet.extract(arch).eval()
            rec = profile(model, device=self.cfg.device, batch_size=self.cfg.batch_size, threads=self.cfg.threads,
                          with_ops=False, seed=self.cfg.seed)
            _, test_acc = evaluate_arch(self.supernet, arch, self.test_data, device=self.cfg.device)
            self.cache[arch.arch_id] = {
                "test_acc": test_acc, "latency_ms": rec.latency.median_ms, "latency_p10_ms": rec.latency.p10_ms,
                "latency_p90_ms": rec.latency.p90_ms, "peak_mem_mb": rec.peak_infer_mem_mb,
                "suspect": rec.suspect}
        return self.cache[arch.arch_id]


def _predicted(row) -> dict[str, float]:
    return {"val_acc": float(row.val_acc), "latency_ms": float(row.pred_latency_ms),
            "peak_mem_mb": float(row.pred_peak_mem_mb)}


def _picked(budget: Budget, arch: ArchConfig, measured: dict[str, Any], *, trial_number: int | None,
            predicted: dict[str, float], predicted_to_meet: bool, message: str, n_measured: int) -> dict[str, Any]:
    """The record of a budget's pick (``picks.json``): met when its measurement meets the budget."""
    overshoot = budget.overshoot(measured["latency_ms"], measured["peak_mem_mb"])
    met = budget.meets(measured["latency_ms"], measured["peak_mem_mb"])
    return {"budget": budget.to_dict(), "status": "met" if met else "missed", "predicted_to_meet": predicted_to_meet,
            "message": message, "arch_id": arch.arch_id, "arch": arch.to_dict(), "describe": arch.describe(),
            "trial_number": trial_number, "predicted": predicted, "measured": measured,
            "excess_pct": {k: None if v is None else 100.0 * v for k, v in overshoot.items()},
            "candidates_measured": n_measured, "export_dir": f"exports/{arch.arch_id}"}


def _smallest_pick(budget: Budget, smallest: dict[str, Any], measure: _Measurer, *, why: str,
                   n_measured: int) -> dict[str, Any] | None:
    """The space's smallest architecture as the pick, if its measurement meets ``budget``."""
    if smallest.get("min_arch") is None:
        return None
    arch = ArchConfig.from_dict(smallest["min_arch"])
    m = measure(arch)  # measured already: cached
    if not budget.meets(m["latency_ms"], m["peak_mem_mb"]):
        return None
    predicted = smallest["min_arch_predicted"]
    return _picked(budget, arch, m, trial_number=None, predicted=predicted,
                   predicted_to_meet=budget.meets(predicted["latency_ms"], predicted["peak_mem_mb"]),
                   message=f"meets {budget.label} when measured: the space's smallest architecture ({why})",
                   n_measured=n_measured + 1)


def _infeasible(budget: Budget, smallest: dict[str, Any], n_measured: int) -> dict[str, Any]:
    msg = (f"no architecture the search found meets {budget.label}; the smallest achievable is "
           f"{smallest['pred_latency_ms']:.4g} ms and {smallest['pred_peak_mem_mb']:.4g} MB (predicted)")
    if smallest.get("measured_latency_ms") is not None:
        msg += (f", {smallest['measured_latency_ms']:.4g} ms and {smallest['measured_peak_mem_mb']:.4g} MB "
                f"measured for the smallest architecture of the space")
    return {"budget": budget.to_dict(), "status": "infeasible", "message": msg, "arch_id": None, "arch": None,
            "trial_number": None, "predicted": None, "measured": None, "excess_pct": None,
            "candidates_measured": n_measured, "export_dir": None}


def _pick(budget: Budget, index: int, trials, measure: _Measurer, smallest: dict[str, Any],
          n_candidates: int) -> dict[str, Any]:
    done = trials[(trials["state"] == "COMPLETE") & (trials[f"feasible_b{index}"] == True)]  # noqa: E712
    if len(done) == 0:
        return _pick_unpredicted(budget, trials, measure, smallest, n_candidates)
    ranked = done.sort_values(["val_acc", "pred_latency_ms", "pred_peak_mem_mb"], ascending=[False, True, True])
    candidates = list(ranked.drop_duplicates("arch_id").itertuples())
    tried = []
    scale = {"latency": 1.0, "memory": 1.0}  # measured / predicted, the worst seen on a miss
    while candidates and len(tried) < n_candidates:
        # the most accurate candidate that still meets the budget once its predictions are
        # scaled by the underestimate the misses so far revealed (none: the next in line)
        row = next((r for r in candidates if budget.meets(r.pred_latency_ms * scale["latency"],
                                                          r.pred_peak_mem_mb * scale["memory"])), candidates[0])
        candidates.remove(row)
        arch = ArchConfig.from_json(row.arch_json)
        m = measure(arch)
        tried.append((row, arch, m))
        if budget.meets(m["latency_ms"], m["peak_mem_mb"]):
            break
        for name, got, pred in (("latency", m["latency_ms"], row.pred_latency_ms),
                                ("memory", m["peak_mem_mb"], row.pred_peak_mem_mb)):
            if pred > COST_FLOOR:  # a clamped prediction says nothing about the predictor's scale
                scale[name] = max(scale[name], got / pred)
    row, arch, m = tried[-1]
    if budget.meets(m["latency_ms"], m["peak_mem_mb"]):  # the loop stops at the first that meets it
        return _picked(budget, arch, m, trial_number=int(row.number), predicted=_predicted(row),
                       predicted_to_meet=True, message=f"meets {budget.label} when measured",
                       n_measured=len(tried))
    fallback = _smallest_pick(budget, smallest, measure, n_measured=len(tried),
                              why=f"the {len(tried)} candidate(s) predicted to meet it miss it when measured")
    if fallback is not None:
        return fallback
    row, arch, m = min(tried, key=lambda t: budget.excess(t[2]["latency_ms"], t[2]["peak_mem_mb"]))
    missed = _picked(budget, arch, m, trial_number=int(row.number), predicted=_predicted(row),
                     predicted_to_meet=True, message="", n_measured=len(tried))
    over = ", ".join(f"{k} by {v:.1f} %" for k, v in missed["excess_pct"].items() if v is not None and v > 0)
    missed["message"] = (f"predicted to meet {budget.label} but misses it when measured ({over}); "
                         f"{len(tried)} candidate(s) measured")
    return missed


def _pick_unpredicted(budget: Budget, trials, measure: _Measurer, smallest: dict[str, Any],
                      n_candidates: int) -> dict[str, Any]:
    """No trial is predicted to meet ``budget``, yet the predictors may overestimate. If the space's
    smallest architecture (measured already) misses it too, it is infeasible. Else the
    ``n_candidates`` trials predicted to miss it by least are measured as well, and the most
    accurate of them and the smallest that meets it when measured is the pick."""
    measured_min = (smallest.get("measured_latency_ms"), smallest.get("measured_peak_mem_mb"))
    if None not in measured_min and not budget.meets(*measured_min):
        return _infeasible(budget, smallest, n_measured=1)
    done = trials[trials["state"] == "COMPLETE"]
    excess = [budget.excess(lat, mem) for lat, mem in zip(done["pred_latency_ms"], done["pred_peak_mem_mb"])]
    near = (done.assign(_excess=excess).sort_values(["_excess", "val_acc"], ascending=[True, False])
            .drop_duplicates("arch_id").head(n_candidates))
    tried = [(ArchConfig.from_json(row.arch_json), int(row.number), _predicted(row)) for row in near.itertuples()]
    if smallest.get("min_arch") is not None and smallest["min_arch_id"] not in set(near["arch_id"]):
        tried.append((ArchConfig.from_dict(smallest["min_arch"]), None, smallest["min_arch_predicted"]))
    measured = [(arch, measure(arch), number, predicted) for arch, number, predicted in tried]
    met = [t for t in measured if budget.meets(t[1]["latency_ms"], t[1]["peak_mem_mb"])]
    if not met:
        return _infeasible(budget, smallest, n_measured=len(measured))
    arch, m, number, predicted = max(met, key=lambda t: (t[3]["val_acc"], -t[1]["latency_ms"]))
    return _picked(budget, arch, m, trial_number=number, predicted=predicted, predicted_to_meet=False,
                   message=(f"meets {budget.label} when measured, although no trial was predicted to (the "
                            f"predictors overestimate here); {len(measured)} candidate(s) measured"),
                   n_measured=len(measured))


def _smallest(trials, supernet, scorer: ArchScorer, measure: _Measurer) -> dict[str, Any]:
    done = trials[trials["state"] == "COMPLETE"]
    min_arch = supernet.space.min_arch()
    s = scorer.score([min_arch])[0]
    m = measure(min_arch)
    return {"pred_latency_ms": float(min(done["pred_latency_ms"].min(), s.latency_ms)),
            "pred_peak_mem_mb": float(min(done["pred_peak_mem_mb"].min(), s.peak_mem_mb)),
            "measured_latency_ms": m["latency_ms"], "measured_peak_mem_mb": m["peak_mem_mb"],
            "min_arch_id": min_arch.arch_id, "min_arch": min_arch.to_dict(),
            "min_arch_predicted": {"val_acc": float(s.val_acc), "latency_ms": float(s.latency_ms),
                                   "peak_mem_mb": float(s.peak_mem_mb)}}


def run_search(config: SearchConfig, *, progress: bool = True) -> SearchResult:
    """Run (or resume) a search; see the module docstring. Raises nothing for infeasible
    budgets: they are in ``result.infeasible`` (the CLI exits 2 for them)."""
    t_start = time.perf_counter()
    recorded = _read_search_record(Path(config.out)) if config.resume else None  # resume needs out
    cfg = _with_recorded_settings(config, recorded).resolved()
    out = _run_dir(cfg)
    _prepare(cfg, out, recorded)
    set_seed(cfg.seed)
    fp = device_fingerprint(cfg.device, threads=cfg.threads)
    phases: dict[str, float] = {}
    storage = cfg.storage or _default_storage(cfg, out)

    # Every input is checked before the run directory is written: a typo leaves nothing behind.
    t = time.perf_counter()
    supernet = obtain_supernet(cfg, out, progress) if cfg.supernet is not None else None
    split_seed = _resumed_data_seed(cfg, recorded, out) if recorded is not None else data_seed(cfg)
    splits = load_dataset(cfg.dataset, seed=split_seed, data_dir=cfg.data_dir)
    check_data(create_space(cfg.space), splits)
    phases["supernet_s"] = time.perf_counter() - t
    preds = _load_predictors(Path(cfg.predictors), cfg, fp.to_dict()) if cfg.predictors is not None else None
    if file_storage_path(storage) is None:
        create_storage(storage)  # a database server: unreachable is said now, not after the long phases
    elif cfg.resume and cfg.storage is not None:  # the study began: its file must be there
        _require_study_file(storage, out)
    stored = {**cfg.to_dict(), "run_dir": str(out), "device_name": fp.name, "fingerprint_id": fp.fingerprint_id,
              "data_seed": split_seed, "sessions": _sessions(recorded) + 1}
    if not cfg.resume:  # a resumed run's record is rewritten only once its study accepted the resume
        out.mkdir(parents=True, exist_ok=True)
        _json_write(out / "config.json", stored)

    t = time.perf_counter()
    if supernet is None:
        supernet = obtain_supernet(cfg, out, progress)
    phases["supernet_s"] += time.perf_counter() - t

    t = time.perf_counter()
    if preds is None:
        preds = obtain_predictors(cfg, out, fp.to_dict(), progress)
    phases["predictors_s"] = time.perf_counter() - t
    budgets = search_budgets(cfg, preds)

    t = time.perf_counter()
    scorer, problem = _scoring(cfg, supernet, preds, splits.val, budgets, fp.fingerprint_id)
    helpers: list = []
    try:
        study = open_study(storage=storage, study_name=cfg.study_name, problem=problem,
                           sampler=create_sampler(cfg.sampler, seed=cfg.seed, population_size=cfg.population_size),
                           resume=cfg.resume, join=cfg.join, create_on_resume=cfg.storage is None)
        _json_write(out / "config.json", {**stored, "storage": storage,
                                          "storage_in_run_dir": _own_study_file(storage, out),
                                          "budgets": [b.to_dict() for b in budgets],
                                          "objectives": list(cfg.objectives)})
        helpers = _start_workers(cfg, out, storage, budgets, split_seed)
        ran = run_trials(study, space=supernet.space, score=scorer.score, budgets=budgets,
                         objectives=cfg.objectives, n_trials=cfg.trials, batch=min(cfg.population_size, 16),
                         progress=progress)
        _join_workers(helpers)
        trials = trials_frame(study, len(budgets))
    except BaseException as err:  # Ctrl-C or a failure: the helpers stop with the main process
        _stop_workers(helpers)
        if not isinstance(err, Exception):
            raise
        if _is_storage_error(err):
            raise StorageUnavailable(
                f"the study storage {describe_storage(storage)} failed during the search ({type(err).__name__}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); the trials told so far are kept "
                f"in it: once it is back, continue with --resume (or --join)") from None
        raise
    phases["search_s"] = time.perf_counter() - t
    pareto = _write_tables(out, trials, cfg.objectives)

    t = time.perf_counter()
    measure = _Measurer(cfg, supernet, splits.test)
    smallest = _smallest(trials, supernet, scorer, measure)
    picks = [_pick(b, i, trials, measure, smallest, cfg.measure_candidates)
             for i, b in enumerate(tqdm(budgets, desc="measure picks", unit="budget", disable=not progress))]
    phases["measure_s"] = time.perf_counter() - t

    t = time.perf_counter()
    for p in picks:
        if p["arch_id"] is None or (out / p["export_dir"]).exists():
            continue
        arch = ArchConfig.from_dict(p["arch"])
        card = {"test_acc": p["measured"]["test_acc"], "val_acc": p["predicted"]["val_acc"],
                "latency_ms": p["measured"]["latency_ms"], "predicted_latency_ms": p["predicted"]["latency_ms"],
                "peak_mem_mb": p["measured"]["peak_mem_mb"],
                "predicted_peak_mem_mb": p["predicted"]["peak_mem_mb"], "device": fp.name,
                "batch_size": cfg.batch_size, "budget": p["budget"]["label"], "dataset": cfg.dataset,
                "input": splits.input_spec()}
        export_model(supernet.extract(arch).eval(), arch, out / p["export_dir"], formats=cfg.formats, card=card)
    phases["export_s"] = time.perf_counter() - t
    _json_write(out / "picks.json", {"picks": picks, "smallest": smallest})

    n_done = int((trials["state"] == "COMPLETE").sum())
    summary = {"phases": phases, "trials_completed": n_done, "trials_this_session": ran,
               "trials_failed": int(((trials["state"] == "FAIL") & ~trials["surplus"].astype(bool)).sum()),
               "trials_surplus": int(trials["surplus"].astype(bool).sum()),
               "trials_per_s": ran / phases["search_s"] if ran and phases["search_s"] > 0 else None,
               "accuracy_evaluations": scorer.evaluations, "pareto_size": len(pareto),
               "all_budgets_met": all(p["status"] == "met" for p in picks),
               "infeasible_budgets": [p["budget"]["label"] for p in picks if p["status"] == "infeasible"],
               "minutes": (time.perf_counter() - t_start) / 60.0}
    summary["sessions"] = stored["sessions"]  # this run's sessions so far, this one included
    _json_write(out / "summary.json", summary)
    report = write_report(out)
    return SearchResult(run_dir=out, budgets=budgets, picks=picks, summary=summary, report=report)


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
        raise ValueError(f"{run_dir / 'config.json'} lacks {err}; was the search stopped before its study "
                         f"started?") from None
    storage = stored_storage(stored, run_dir)
    _require_study_file(storage, run_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=create_storage(storage))
        trials = trials_frame(study, n_budgets)
    except KeyError:
        raise ValueError(f"study {name!r} not found in {describe_storage(storage)}") from None
    except Exception as err:
        if not _is_storage_error(err) or not (run_dir / "trials.csv").is_file():
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warnings.warn(f"the study storage cannot be read ({first}); the report is rendered from the "
                      f"trials.csv and pareto.csv already in {run_dir}, which lack any trial told after "
                      f"they were written", stacklevel=2)
        return write_report(run_dir)
    _write_tables(run_dir, trials, objectives)
    return write_report(run_dir)


def _write_tables(run_dir: Path, trials, objectives: Sequence[str]):
    """``trials.csv`` and ``pareto.csv`` of a run; returns the Pareto frame."""
    pareto = pareto_frame(trials, objectives)
    write_text_atomic(run_dir / "trials.csv", trials.to_csv(index=False))  # a kill never leaves half a table
    write_text_atomic(run_dir / "pareto.csv", pareto.to_csv(index=False))
    return pareto
