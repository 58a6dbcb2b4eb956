"""What a search is asked to do: :class:`SearchConfig` (plain data, validated when built, every
default resolved by :meth:`SearchConfig.resolved` into what ``config.json`` records) and the
:class:`SearchResult` it returns."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nas.data import check_data_options, dataset_names
from nas.data.task import check_space_name, resolve_task
from nas.export import parse_formats
from nas.objectives import parse_objectives
from nas.search.budgets import Budget, budgets_from_lists
from nas.search.samplers import SAMPLERS, check_population
from nas.search.scoring import ACCURACY_METRICS
from nas.search.storage import check_storage_url
from predictors.predictor import MAX_SEED
from profilers import Target, backend_for, check_device, check_runtime
from search_spaces.layers import check_positive_int

__all__ = ["SearchConfig", "SearchResult"]


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``nas-search`` needs; ``None`` fields take the defaults of ``quick`` or not."""

    space: str = "digits-s"  # search space, or a template (s, m, l) fitted to --dataset (see `nas space list`)
    dataset: str | None = None  # dataset (default: the space's own; see `nas datasets`)
    data_dir: str | None = None  # the dataset's folder or file (cifar10, imagefolder, csv, npz)
    data_options: dict[str, Any] = field(default_factory=dict)  # the file sources' options (nas.data.DataOptions)
    accuracy_metric: str = "acc"  # what the search maximises: acc (inherited validation accuracy) or loss
    # (minus the validation loss: finer-grained when accuracy saturates)
    device: str = "cpu"  # target device: cpu or cuda[:N]
    runtime: str = "torch"  # the runtime deployed with: torch (eager), torchscript or onnxruntime; latency and memory
    # are profiled, predicted and measured in it, on the files nas export writes
    batch_size: int = 1  # deployment batch size: latency and memory are predicted and measured at it
    latency_budgets_ms: tuple[float, ...] = ()  # latency limit in ms (one result per budget pair)
    memory_budgets_mb: tuple[float, ...] = ()  # peak inference memory limit in MB
    # (paired in order with latency budgets)
    objectives: tuple[str, ...] | None = None  # comma-separated objectives, user or value names
    # (default: accuracy,latency,memory)
    trials: int | None = None  # completed trials in the study (default 300; quick 60)
    sampler: str = "nsga2"  # the study's sampler (see nas.search.samplers.SAMPLERS)
    population_size: int | None = None  # NSGA-II population (default 16; quick 12)
    storage: str | None = None  # Optuna storage: sqlite:///PATH, journal:///PATH or postgresql://USER@HOST/DB
    # (default: the recorded one on resume, else the journal file study.journal in the run directory)
    study_name: str | None = None  # default: nas-search-SPACE
    resume: bool = False  # continue the search in --out
    join: bool = False  # join the study of the same name in --storage if another worker created it (multi-machine)
    workers: int = 1  # processes running trials on this machine, the main one included
    # (>1 uses a journal file by default)
    seed: int = 0  # seed of the sampler, the supernet, the profiled architectures and the data split
    out: str | None = None  # run directory (default: results/search-SPACE-TIME)
    quick: bool = False  # small settings for a first look (about a minute on a CPU)
    supernet: str | None = None  # reuse this trained supernet run directory
    supernet_epochs: int | None = None  # supernet training epochs (default 30; quick 3)
    predictors: str | None = None  # reuse predictor artifacts from this directory (its latency/ and memory/)
    force: bool = False  # use predictors fitted on another device
    profile_n: int | None = None  # architectures to profile (default 80; quick 16)
    profile_passes: int | None = None  # passes per architecture (default 3; quick 1)
    threads: int | None = None  # CPU threads for measuring (default: torch's setting)
    formats: tuple[str, ...] | None = None  # export formats of the picks, comma-separated (default: all)
    measure_candidates: int = 3  # per budget, measure up to this many candidates until one meets the budget
    confidence: float | None = None  # a trial meets a budget only when the upper end of its prediction interval of
    # this level does (e.g. 0.9); default: the point prediction must meet it

    def __post_init__(self) -> None:
        check_space_name(self.space)  # unknown space: error listing the valid ones
        check_data_options(self.data_options)
        if self.accuracy_metric not in ACCURACY_METRICS:
            raise ValueError(f"accuracy_metric must be one of {', '.join(ACCURACY_METRICS)}, "
                             f"got {self.accuracy_metric!r}")
        if self.dataset is not None and self.dataset not in dataset_names():
            raise ValueError(f"unknown dataset {self.dataset!r}; valid: {', '.join(dataset_names())}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; valid: {', '.join(SAMPLERS)}")
        check_device(self.device)
        check_runtime(self.runtime)
        if self.confidence is not None:
            if isinstance(self.confidence, bool) or not isinstance(self.confidence, numbers.Real) or \
                    not 0.0 < float(self.confidence) < 1.0:
                raise ValueError(f"confidence must be a number strictly between 0 and 1 (0.9: the upper end of a "
                                 f"90 % interval must meet the budget), got {self.confidence!r}")
            object.__setattr__(self, "confidence", float(self.confidence))
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
        objectives = parse_objectives(self.objectives)
        if self.accuracy_metric == "loss" and not {ACCURACY_METRICS["acc"], ACCURACY_METRICS["loss"]} & set(objectives):
            raise ValueError(f"--accuracy-metric loss scores the accuracy objective by validation loss, but the "
                             f"objectives {', '.join(objectives)} have none; add accuracy to --objectives")
        if self.accuracy_metric == "loss":  # the accuracy objective is scored by the validation loss instead
            objectives = tuple(ACCURACY_METRICS["loss"] if o == ACCURACY_METRICS["acc"] else o for o in objectives)
        object.__setattr__(self, "objectives", objectives)
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

    @property
    def target(self) -> Target:
        """The deployment target: device, runtime, threads, batch size."""
        return Target(device=self.device, runtime=self.runtime, threads=self.threads, batch_size=self.batch_size)

    @property
    def interval_level(self) -> float:
        """The level of the intervals picks record: ``confidence``, or 0.9 without it."""
        return self.confidence if self.confidence is not None else 0.9

    def budgets(self) -> list[Budget]:
        return budgets_from_lists(self.latency_budgets_ms, self.memory_budgets_mb)

    def resolved(self) -> SearchConfig:
        """The config with every default filled in (what ``config.json`` records)."""
        q = self.quick
        trials = self.trials or (60 if q else 300)
        task = resolve_task(self.space, self.dataset, data_dir=self.data_dir, data_options=self.data_options)
        return replace(
            self, space=task.space, dataset=task.dataset, data_options=task.data_options, trials=trials,
            population_size=self.population_size or (12 if q else 16),
            supernet_epochs=self.supernet_epochs or (3 if q else 30),
            profile_n=self.profile_n or (16 if q else 80), profile_passes=self.profile_passes or (1 if q else 3),
            threads=self.threads or backend_for(self.device).threads_in_use(),
            study_name=self.study_name or f"nas-search-{task.space}",
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
