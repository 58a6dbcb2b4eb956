"""The Optuna side of the search: parameters, samplers, the study and its trial loop.

An architecture is proposed through one categorical parameter per dimension of the space —
``s{i}.depth``, ``s{i}.width`` and, for every block slot up to the stage's largest depth,
``s{i}.b{j}.kernel`` / ``.mlp`` / ``.order``. The parameter set is the same for every trial (a
slot beyond a stage's depth is sampled and ignored), which is what NSGA-II's crossover needs.

Objectives are chosen from :data:`OBJECTIVES` (``val_acc`` maximised, ``latency_ms`` and
``peak_mem_mb`` minimised). The hardware budgets enter as one constraint per trial
(``Trial.set_constraint``, Optuna 5; :func:`nas.budgets.constraint_value`), which NSGA-II and
TPE use to prefer feasible trials; random sampling ignores it.

The study stores what problem it solves (objectives, space, batch size, budgets) in its user
attributes; resuming it with a different problem is refused (:func:`open_study`). Trials are
asked and told in batches (:func:`run_trials`), so the predictors score a whole batch at once.
"""

from __future__ import annotations

import bisect
import datetime
import time
from typing import Any, Callable, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from tqdm.auto import tqdm

from nas.budgets import Budget, constraint_value
from nas.pareto import pareto_mask
from nas.scoring import ArchScore
from nas.storage import GRACE_PERIOD_S, create_storage, describe_storage, worker_alive, worker_id
from search_spaces.arch import ArchConfig, ArchError, BlockArch, StageArch
from search_spaces.layers import check_positive_int
from search_spaces.space import SearchSpace

__all__ = [
    "OBJECTIVES", "SAMPLERS", "arch_from_params", "arch_params", "check_population", "create_sampler", "open_study",
    "parse_objectives", "pareto_frame", "problem_record", "run_trials", "trials_frame",
]

# User-facing name → (value name, direction).
OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": ("val_acc", "maximize"),
    "latency": ("latency_ms", "minimize"),
    "memory": ("peak_mem_mb", "minimize"),
}
SAMPLERS = ("nsga2", "tpe", "random")
_META_KEY = "quadranas_problem"
SCORE_ATTR = "quadranas"  # the trial's architecture and scores
WORKER_ATTR = "worker"  # HOST:PID:START of the process that asked the trial
SURPLUS_ATTR = "surplus"  # asked by a worker after others had already taken the last trials
SAMPLER_STATE_ATTR = "quadranas_sampler_state"
UNNAMED_GRACE_S = 5.0  # a RUNNING trial without a worker name older than this was asked by a killed process


def parse_objectives(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"accuracy,latency"`` or a list (user names or value names) → value names in canonical
    order (default: all three)."""
    if value is None:
        names = list(OBJECTIVES)
    else:
        by_value = {v: k for k, (v, _) in OBJECTIVES.items()}
        names = [by_value.get(v.strip(), v.strip())
                 for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise ValueError(f"unknown objective {unknown[0]!r}; valid: {', '.join(OBJECTIVES)}")
    if len(set(names)) < 2:
        raise ValueError(f"a multi-objective search needs at least two distinct objectives of "
                         f"{', '.join(OBJECTIVES)}; got {names}")
    return tuple(OBJECTIVES[n][0] for n in OBJECTIVES if n in names)


def directions(objectives: Sequence[str]) -> list[str]:
    by_value = {v: d for v, d in OBJECTIVES.values()}
    return [by_value[o] for o in objectives]


def arch_params(space: SearchSpace) -> list[tuple[str, tuple[int, ...]]]:
    """The study's parameters: (name, choices) for every dimension and block slot of ``space``."""
    params: list[tuple[str, tuple[int, ...]]] = []
    for i, (ds, ws) in enumerate(zip(space.depth_choices, space.width_choices)):
        params += [(f"s{i}.depth", tuple(ds)), (f"s{i}.width", tuple(ws))]
        for j in range(max(ds)):
            params += [(f"s{i}.b{j}.kernel", tuple(space.kernel_choices)),
                       (f"s{i}.b{j}.mlp", tuple(space.mlp_ratio_choices)),
                       (f"s{i}.b{j}.order", tuple(space.order_choices))]
    return params


def arch_from_params(space: SearchSpace, params: dict[str, Any]) -> ArchConfig:
    """The architecture a trial's parameters describe (block slots beyond the depth ignored)."""
    stages = []
    for i in range(space.n_stages):
        depth = params[f"s{i}.depth"]
        if depth not in space.depth_choices[i]:
            raise ArchError(f"stages[{i}].blocks", f"depth {depth!r} not in allowed {space.depth_choices[i]}")
        blocks = []
        for j in range(depth):
            try:
                blocks.append(BlockArch(kernel_size=params[f"s{i}.b{j}.kernel"], mlp_ratio=params[f"s{i}.b{j}.mlp"],
                                        order=params[f"s{i}.b{j}.order"]))
            except ArchError as err:
                raise ArchError(f"stages[{i}].blocks[{j}].{err.field}", err.detail) from None
        try:
            stages.append(StageArch(width=params[f"s{i}.width"], blocks=tuple(blocks)))
        except ArchError as err:
            raise ArchError(f"stages[{i}].{err.field}", err.detail) from None
    return space.validate(ArchConfig(space=space.name, stages=tuple(stages)))


def check_population(sampler: str, population_size: int) -> None:
    """A positive population size; NSGA-II needs at least 2 (it breeds pairs)."""
    check_positive_int("population_size", population_size)
    if sampler == "nsga2" and population_size < 2:
        raise ValueError(f"NSGA-II needs a population of at least 2 (--population-size), got {population_size}")


def create_sampler(name: str, *, seed: int, population_size: int = 50) -> optuna.samplers.BaseSampler:
    """``nsga2`` (default; NSGA-II), ``tpe`` (multi-objective TPE) or ``random``."""
    check_population(name, population_size)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population_size, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(20, population_size))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")


def problem_record(*, space: str, objectives: Sequence[str], batch_size: int, budgets: Sequence[Budget],
                   dataset: str, fingerprint_id: str) -> dict[str, Any]:
    """What a study optimises; stored with it so a resume can be checked against it."""
    return {"space": space, "objectives": list(objectives), "batch_size": batch_size, "dataset": dataset,
            "budgets": [{"latency_ms": b.latency_ms, "memory_mb": b.memory_mb} for b in budgets],
            "fingerprint_id": fingerprint_id}


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
    fail_stale_trials(study)
    restore_sampler_state(study)
    return study


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


def save_sampler_state(study: optuna.Study) -> None:
    """Store the sampler's random state with the study (Optuna keeps populations in the trials
    but not the RNG), so a resumed NSGA-II continues instead of replaying its first proposals."""
    state = {}
    for name, rng in _sampler_rngs(study.sampler).items():
        kind, keys, pos, has_gauss, cached = rng.get_state()
        state[name] = [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)]
    study.set_user_attr(SAMPLER_STATE_ATTR, {"sampler": type(study.sampler).__name__, "rngs": state})


def restore_sampler_state(study: optuna.Study) -> bool:
    """Restore the state :func:`save_sampler_state` stored, if it is of this sampler's type."""
    stored = study.user_attrs.get(SAMPLER_STATE_ATTR)
    if not stored or stored.get("sampler") != type(study.sampler).__name__:
        return False
    rngs = _sampler_rngs(study.sampler)
    for name, (kind, keys, pos, has_gauss, cached) in stored["rngs"].items():
        if name in rngs:
            rngs[name].set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    return True


def _sampler_rngs(sampler: optuna.samplers.BaseSampler) -> dict[str, np.random.RandomState]:
    """The numpy generators of an Optuna sampler and of the random sampler inside it."""
    out = {}
    for name, owner in (("sampler", sampler), ("random_sampler", getattr(sampler, "_random_sampler", None))):
        lazy = getattr(owner, "_rng", None)
        if lazy is not None and hasattr(lazy, "rng"):
            out[name] = lazy.rng
    return out


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
            if on_batch is not None:
                on_batch(told)
    finally:
        bar.close()
    return told


def _still_running(update: Callable[..., Any], *args: Any) -> bool:
    """Run one update of a trial; False if another worker failed the trial meanwhile (it took
    this worker for dead: a machine so loaded that naming or scoring outlasted a grace period)."""
    try:
        update(*args)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


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
        if not _still_running(trial.set_user_attr, SCORE_ATTR, {
                "arch_id": s.arch.arch_id, "arch_json": s.arch.to_json(), "val_acc": s.val_acc,
                "pred_latency_ms": s.latency_ms, "pred_peak_mem_mb": s.peak_mem_mb,
                "feasible_budgets": [b.meets(s.latency_ms, s.peak_mem_mb) for b in budgets],
                "score_s": per_trial_s}):
            continue
        if not _still_running(trial.set_constraint, "budgets", constraint_value(budgets, s.latency_ms,
                                                                                s.peak_mem_mb)):
            continue
        try:
            frozen = study.tell(trial, [s.objective(o) for o in objectives], skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        told += frozen.state == TrialState.COMPLETE
    return told


def trials_frame(study: optuna.Study, n_budgets: int) -> pd.DataFrame:
    """One row per trial (``trials.csv``): state, scores, constraint, feasibility and architecture."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs.get(SCORE_ATTR, {})
        arch = ArchConfig.from_json(ua["arch_json"]) if "arch_json" in ua else None
        feas = ua.get("feasible_budgets") or [None] * n_budgets
        constraint = t.constraints.get("budgets") if t.state == TrialState.COMPLETE else None
        row = {"number": t.number, "state": t.state.name,
               "val_acc": ua.get("val_acc"), "pred_latency_ms": ua.get("pred_latency_ms"),
               "pred_peak_mem_mb": ua.get("pred_peak_mem_mb"), "constraint": constraint,
               "feasible": None if constraint is None else bool(constraint <= 0)}
        row.update({f"feasible_b{i}": feas[i] if i < len(feas) else None for i in range(n_budgets)})
        row.update({"worker": t.user_attrs.get(WORKER_ATTR), "surplus": bool(t.user_attrs.get(SURPLUS_ATTR, False)),
                    "arch_id": ua.get("arch_id"), "n_quadratic": arch.n_quadratic if arch else None,
                    "n_blocks": sum(arch.depths) if arch else None,
                    "depths": "-".join(map(str, arch.depths)) if arch else None,
                    "widths": "-".join(map(str, arch.widths)) if arch else None,
                    "arch_json": ua.get("arch_json"),
                    "duration_s": (t.datetime_complete - t.datetime_start).total_seconds()
                    if t.datetime_complete and t.datetime_start else None,
                    "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None})
        rows.append(row)
    return pd.DataFrame(rows, columns=trial_columns(n_budgets))


def trial_columns(n_budgets: int) -> list[str]:
    """The columns of ``trials.csv`` (also those of an empty study's table)."""
    return (["number", "state", "val_acc", "pred_latency_ms", "pred_peak_mem_mb", "constraint", "feasible"]
            + [f"feasible_b{i}" for i in range(n_budgets)]
            + ["worker", "surplus", "arch_id", "n_quadratic", "n_blocks", "depths", "widths", "arch_json", "duration_s",
               "datetime_complete"])


VALUE_COLUMNS = {"val_acc": "val_acc", "latency_ms": "pred_latency_ms", "peak_mem_mb": "pred_peak_mem_mb"}


def pareto_frame(trials: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The Pareto-optimal COMPLETE trials over ``objectives`` (``pareto.csv``), one row per
    architecture, sorted by predicted latency."""
    done = trials[trials["state"] == "COMPLETE"].drop_duplicates("arch_id").reset_index(drop=True)
    if len(done) == 0:
        return done
    values = done[[VALUE_COLUMNS[o] for o in objectives]].to_numpy(dtype=float)
    front = done[pareto_mask(values, directions(objectives))]
    return front.sort_values(["pred_latency_ms", "pred_peak_mem_mb"], kind="stable").reset_index(drop=True)
