"""Stage *search*: ``nas-search``, the main job — from a supernet and predictors to measured picks.

Owns the search's settings (:class:`SearchConfig`, :mod:`nas.search.config`), resuming a run
(:mod:`nas.search.resume`), the phases before the study — supernet, predictors, budgets
(:mod:`nas.search.phases`, :mod:`nas.search.budgets`) — scoring architectures
(:mod:`nas.search.scoring`), the Optuna study: its parameters, samplers, storage, trial loop and
tables (:mod:`~nas.search.params`, :mod:`~nas.search.samplers`, :mod:`~nas.search.storage`,
:mod:`~nas.search.study`, :mod:`~nas.search.tables`), helper workers (:mod:`nas.search.workers`),
the picks measured on the device (:mod:`nas.search.picks`) and the pipeline that runs them all
and rebuilds a report (:func:`run_search`, :func:`rebuild_report`, :mod:`nas.search.pipeline`).

May import: ``nas.data``, ``nas.train``, ``nas.profiling``, ``nas.export``, ``nas.report``,
``nas.objectives``, ``nas.pareto``, ``nas.rundir``, ``predictors``, ``profilers``,
``search_spaces``, optuna.
"""

from nas.search.budgets import Budget, auto_budgets, budgets_from_lists, constraint_value
from nas.search.config import SearchConfig, SearchResult
from nas.search.phases import data_seed, obtain_predictors, obtain_supernet, search_budgets
from nas.search.pipeline import rebuild_report, run_search
from nas.search.samplers import SAMPLERS, create_sampler
from nas.search.scoring import ArchScore, ArchScorer
from nas.search.storage import StorageUnavailable, create_storage
from nas.search.study import open_study, problem_record, run_trials
from nas.search.tables import pareto_frame, trials_frame
from nas.search.workers import search_worker

__all__ = [
    "SAMPLERS", "ArchScore", "ArchScorer", "Budget", "SearchConfig", "SearchResult", "StorageUnavailable",
    "auto_budgets", "budgets_from_lists", "constraint_value", "create_sampler", "create_storage", "data_seed",
    "obtain_predictors", "obtain_supernet", "open_study", "pareto_frame", "problem_record", "rebuild_report",
    "run_search", "run_trials", "search_budgets", "search_worker", "trials_frame",
]
