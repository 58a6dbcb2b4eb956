"""The Optuna study of a search: its problem record, opening or resuming it, and its trial loop.

Objectives come from :data:`nas.objectives.OBJECTIVES` (``val_acc`` maximised, ``latency_ms``
and ``peak_mem_mb`` minimised); the study records their metric names (the ``trials.csv``
columns, :meth:`optuna.Study.set_metric_names`) so that tools reading the storage —
optuna-dashboard — name them. The hardware budgets enter as one constraint per trial
(:func:`nas.search.budgets.constraint_value`), which NSGA-II and TPE use to prefer feasible
trials (random sampling ignores it). It is written as the list-valued ``constraints`` system
attribute — the format of Optuna before 5.0, which Optuna 5 still reads (as the constraint
``"0"``) and the only one optuna-dashboard reads — rather than with ``Trial.set_constraint``
(``constraints:budgets``): Optuna 5 merges both formats, so writing both would count the
constraint twice, and the dashboard would show no feasibility with the named one alone.

The study stores what problem it solves (objectives, space, batch size, budgets) in its user
attributes; resuming it with a different problem is refused (:func:`open_study`). Trials are
asked and told in batches (:func:`run_trials`), so the predictors score a whole batch at once;
the parameters are :mod:`nas.search.params`, the samplers :mod:`nas.search.samplers`.
"""

from __future__ import annotations

import bisect
import datetime
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from nas.objectives import directions, metric_names
from nas.search.budgets import Budget, constraint_value
from nas.search.journal import sync_storage
from nas.search.params import arch_from_params, arch_params
from nas.search.samplers import restore_sampler_state, save_sampler_state
from nas.search.scoring import ArchScore
from nas.search.storage import GRACE_PERIOD_S, create_storage, describe_storage, worker_alive, worker_id
from search_spaces.arch import ArchConfig
from search_spaces.layers import check_positive_int
from search_spaces.space import SearchSpace

__all__ = ["CONSTRAINT_KEYS", "SCORE_ATTR", "SURPLUS_ATTR", "UNNAMED_GRACE_S", "WORKER_ATTR", "budget_constraint",
           "fail_stale_trials", "open_study", "problem_record", "run_trials", "study_speed"]

_META_KEY = "quadranas_problem"
SPEED_KEY = "quadranas_speed"  # the reference's latency when the study began (nas.profiling.speed)
SCORE_ATTR = "quadranas"  # the trial's architecture and scores
WORKER_ATTR = "worker"  # HOST:PID:START of the process that asked the trial
SURPLUS_ATTR = "surplus"  # asked by a worker after others had already taken the last trials
UNNAMED_GRACE_S = 5.0  # a RUNNING trial without a worker name older than this was asked by a killed process
CONSTRAINTS_ATTR = "constraints"  # the list-valued system attribute Optuna's samplers and optuna-dashboard read
CONSTRAINT_KEYS = ("0", "budgets")  # how Optuna names it when read back (``budgets``: studies of earlier versions)


def problem_record(*, space: str, objectives: Sequence[str], batch_size: int, budgets: Sequence[Budget],
                   dataset: str, fingerprint_id: str, confidence: float | None = None) -> dict[str, Any]:
    """What a study optimises; stored with it so a resume can be checked against it. The target's
    device, runtime and threads are in ``fingerprint_id``; ``confidence`` is recorded only when
    set (a study of an earlier version has none)."""
    record = {"space": space, "objectives": list(objectives), "batch_size": batch_size, "dataset": dataset,
              "budgets": [{"latency_ms": b.latency_ms, "memory_mb": b.memory_mb} for b in budgets],
              "fingerprint_id": fingerprint_id}
    if confidence is not None:
        record["confidence"] = confidence
    return record


def study_speed(study: optuna.Study, read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The machine's speed the study's latency predictions are stated at: recorded with the study
    when it began (``read()`` then, a :class:`nas.profiling.SpeedReading` as a dict), so that every
    session and worker scores at the same speed and its trials stay comparable."""
    stored = study.user_attrs.get(SPEED_KEY)
    if isinstance(stored, dict) and isinstance(stored.get("factor"), (int, float)):
        return stored
    reading = read()
    study.set_user_attr(SPEED_KEY, reading)
    return reading


def open_study(*, storage: str | optuna.storages.BaseStorage | None, study_name: str, problem: dict[str, Any],
               sampler: optuna.samplers.BaseSampler, resume: bool, join: bool = False,
               create_on_resume: bool = False) -> optuna.Study:
    """Create the study, or load it (``resume`` / ``join``) after checking it solves the same problem.

    An existing study is refused unless ``resume`` (continue a stopped run) or ``join`` (another
    worker of the same search created it) is set — its trials would otherwise silently mix with
    a new run's. A loaded study whose stored objectives, space, batch size, budgets, dataset or
    device differ is refused naming the differences. Trials left RUNNING by dead workers are
    marked FAIL (:func:`fail_stale_trials`) so their share of trials is asked again, and the
    sampler's random state stored with the study is restored (:func:`restore_sampler_state`).
    ``create_on_resume`` lets a resume create the study (a run killed before its study began:
    the run directory's own storage, not a shared one).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shown = describe_storage(storage)
    storage = create_storage(storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    exists = study_name in names
    if exists and not (resume or join):
        raise FileExistsError(f"study {study_name!r} already exists in {shown}; pass --resume to continue it, "
                              f"--join to add workers to it, or choose another --study-name / --out")
    if resume and not exists and not create_on_resume:
        raise ValueError(f"--resume: no study {study_name!r} in {shown}"
                         + (f"; it holds {', '.join(names)}" if names else "; it holds no study"))
    if not exists:
        try:
            study = optuna.create_study(storage=storage, study_name=study_name, sampler=sampler,
                                        directions=directions(problem["objectives"]))
            study.set_user_attr(_META_KEY, problem)
            _name_metrics(study, problem["objectives"])
            return study
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it just now
            if not join:
                raise
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    stored = study.user_attrs.get(_META_KEY)
    for _ in range(50):  # a joining worker may see the study a moment before its problem record
        if stored is not None or not join:
            break
        time.sleep(0.1)
        stored = optuna.load_study(study_name=study_name, storage=storage).user_attrs.get(_META_KEY)
    if stored is None:
        raise ValueError(f"study {study_name!r} in {shown} was not created by nas-search (no problem record); "
                         f"refusing to use it")
    diffs = [f"{k}: stored {stored.get(k)!r}, now {problem[k]!r}" for k in problem if stored.get(k) != problem[k]]
    if diffs:
        verb = "--resume" if resume else "--join"
        raise ValueError(f"{verb} refused: study {study_name!r} was created for a different problem ("
                         + "; ".join(diffs) + "). Use the same settings or start a new study")
    if study.metric_names is None:  # a study created before its metrics were named
        _name_metrics(study, problem["objectives"])
    fail_stale_trials(study)
    restore_sampler_state(study)
    return study


def _name_metrics(study: optuna.Study, objectives: Sequence[str]) -> None:
    """Record the objectives' metric names with the study (what optuna-dashboard shows)."""
    with warnings.catch_warnings():  # "experimental" in Optuna 5; its storage format is what the dashboard reads
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(metric_names(objectives))


def fail_stale_trials(study: optuna.Study) -> int:
    """Mark FAIL the RUNNING trials whose worker is gone; returns how many.

    A trial records its worker (``HOST:PID:START``) right after it is asked. On this host a
    worker is gone when its process is; a worker on another host is presumed gone once its trial
    is older than the grace period (a batch is scored in well under a second); a trial killed
    before it could record its worker is presumed dead after ``UNNAMED_GRACE_S``. In an in-memory study no
    other process can run trials, so every RUNNING trial found there is a leftover. Storages
    with heartbeats (PostgreSQL) also fail trials whose heartbeat went stale.
    """
    if isinstance(study._storage, optuna.storages.RDBStorage) and study._storage.is_heartbeat_enabled():
        optuna.storages.fail_stale_trials(study)
    now = datetime.datetime.now()
    private = isinstance(study._storage, optuna.storages.InMemoryStorage)  # no other process can use it
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER_ATTR)
        alive = worker_alive(worker) if worker else (False if private else None)
        # a live worker names itself milliseconds after asking: a nameless trial is soon known dead
        grace_s = GRACE_PERIOD_S if worker else UNNAMED_GRACE_S
        old = t.datetime_start is not None and (now - t.datetime_start).total_seconds() > grace_s
        if alive is False or (alive is None and old):
            try:
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except RuntimeError:  # finished or failed by someone else meanwhile
                continue
            n += 1
    return n



def run_trials(study: optuna.Study, *, space: SearchSpace, score: Callable[[list[ArchConfig]], list[ArchScore]],
               budgets: Sequence[Budget], objectives: Sequence[str], n_trials: int, batch: int = 16,
               progress: bool = True, on_batch: Callable[[int], None] | None = None) -> int:
    """Run trials until the study holds ``n_trials`` COMPLETE ones; returns how many this call told.

    Each round asks at most ``batch`` trials — no more than the study still lacks, counting the
    trials other workers are running — scores their architectures in one call and tells the
    results. Every trial records its worker when asked and, when told, its architecture, all
    three scores and per-budget feasibility in one user attribute (``SCORE_ATTR``) and its
    budget constraint. Several workers (processes, machines) may run this on one shared study:
    a trial whose number comes after ``n_trials`` live ones (two workers asked at once) is
    failed unscored as surplus, so the study ends with exactly ``n_trials`` COMPLETE trials; a
    worker with nothing left to ask waits for the others, failing the trials of dead ones.
    """
    check_positive_int("n_trials", n_trials)
    check_positive_int("batch", batch)
    params = arch_params(space)
    dists = {name: optuna.distributions.CategoricalDistribution(list(choices)) for name, choices in params}
    shared = not isinstance(study._storage, optuna.storages.InMemoryStorage)
    me = worker_id()
    bar = tqdm(total=n_trials, desc="search", unit="trial", disable=not progress)  # set from the study each round
    told = 0
    try:
        while True:
            states = [t.state for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                                  TrialState.RUNNING))]
            n_complete = states.count(TrialState.COMPLETE)
            bar.n = min(n_complete, n_trials)
            bar.refresh()
            if n_complete >= n_trials:
                break
            k = min(batch, n_trials - len(states))
            if k <= 0:  # the rest is running elsewhere: wait, failing trials of dead workers
                if fail_stale_trials(study) == 0:
                    time.sleep(0.2)
                continue
            trials = []
            for _ in range(k):  # each named as soon as asked: a nameless trial is soon presumed dead
                trial = study.ask(dists)
                if not shared or _still_running(trial.set_user_attr, WORKER_ATTR, me):
                    trials.append(trial)
            if shared:
                trials = _drop_surplus(study, trials, n_trials)
                if not trials:
                    continue
            told += _score_and_tell(study, trials, space, score, budgets, objectives)
            if shared:
                save_sampler_state(study)
            sync_storage(study._storage)  # the batch durable on disk (a journal file syncs once per batch)
            if on_batch is not None:
                on_batch(told)
    finally:
        bar.close()
        sync_storage(study._storage)
    return told


def _still_running(update: Callable[..., Any], *args: Any) -> bool:
    """Run one update of a trial; False if another worker failed the trial meanwhile (it took
    this worker for dead: a machine so loaded that naming or scoring outlasted a grace period)."""
    try:
        update(*args)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def _set_constraint(trial: optuna.Trial, value: float) -> None:
    """The trial's budget constraint, as the list-valued system attribute that Optuna's samplers and
    optuna-dashboard both read (see the module docstring); one storage write."""
    if math.isnan(value):  # as Trial.set_constraint refuses it: no sampler can order a NaN
        raise ValueError(f"a budget constraint must be a number, got {value!r}")
    trial.storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_ATTR, [float(value)])


def budget_constraint(trial: optuna.trial.FrozenTrial) -> float | None:
    """The budget constraint a trial recorded (``None`` before it was scored)."""
    constraints = trial.constraints
    return next((float(constraints[k]) for k in CONSTRAINT_KEYS if k in constraints), None)


def _drop_surplus(study: optuna.Study, trials: list[optuna.Trial], n_trials: int) -> list[optuna.Trial]:
    """Fail (unscored) the trials numbered after ``n_trials`` live ones; keep the rest."""
    live = sorted(t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                              TrialState.RUNNING)))
    keep = []
    for trial in trials:
        if bisect.bisect_left(live, trial.number) >= n_trials:
            if _still_running(trial.set_user_attr, SURPLUS_ATTR, True):
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        else:
            keep.append(trial)
    return keep


def _score_and_tell(study: optuna.Study, trials: list[optuna.Trial], space: SearchSpace,
                    score: Callable[[list[ArchConfig]], list[ArchScore]], budgets: Sequence[Budget],
                    objectives: Sequence[str]) -> int:
    k = len(trials)
    archs = [arch_from_params(space, t.params) for t in trials]
    t0 = time.perf_counter()
    try:
        scores = score(archs)
        if len(scores) != k:
            raise RuntimeError(f"the score function returned {len(scores)} scores for {k} architectures")
    except BaseException:
        for trial in trials:  # nothing is left RUNNING by a failed batch
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    per_trial_s = (time.perf_counter() - t0) / k
    told = 0
    for trial, s in zip(trials, scores):
        # One user attribute per trial: each is a storage write (a transaction on SQLite). A
        # trial another worker failed meanwhile is left failed: its architecture is asked again.
        lat, mem = s.budget_latency_ms, s.budget_peak_mem_mb  # with a confidence level: the intervals' upper ends
        record = {"arch_id": s.arch.arch_id, "arch_json": s.arch.to_json(), "val_acc": s.val_acc,
                  "val_acc_se": s.val_acc_se, "val_loss": s.val_loss, "pred_latency_ms": s.latency_ms,
                  "pred_peak_mem_mb": s.peak_mem_mb,
                  "feasible_budgets": [b.meets(lat, mem) for b in budgets], "score_s": per_trial_s}
        if math.isfinite(s.latency_hi_ms):
            record.update(pred_latency_lo_ms=s.latency_lo_ms, pred_latency_hi_ms=s.latency_hi_ms,
                          pred_peak_mem_lo_mb=s.peak_mem_lo_mb, pred_peak_mem_hi_mb=s.peak_mem_hi_mb)
        if not _still_running(trial.set_user_attr, SCORE_ATTR, record):
            continue
        if not _still_running(_set_constraint, trial, constraint_value(budgets, lat, mem)):
            continue
        try:
            frozen = study.tell(trial, [s.objective(o) for o in objectives], skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        told += frozen.state == TrialState.COMPLETE
    return told

