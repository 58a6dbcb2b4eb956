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

import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
import pandas as pd
from optuna.trial import TrialState
from tqdm.auto import tqdm

from nas.budgets import Budget, constraint_value
from nas.pareto import pareto_mask
from nas.scoring import ArchScore
from search_spaces.arch import ArchConfig, ArchError, BlockArch, StageArch
from search_spaces.layers import check_positive_int
from search_spaces.space import SearchSpace

__all__ = [
    "OBJECTIVES", "SAMPLERS", "arch_from_params", "arch_params", "create_sampler", "open_study", "parse_objectives",
    "pareto_frame", "problem_record", "run_trials", "trials_frame",
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


def create_sampler(name: str, *, seed: int, population_size: int = 50) -> optuna.samplers.BaseSampler:
    """``nsga2`` (default; NSGA-II), ``tpe`` (multi-objective TPE) or ``random``."""
    check_positive_int("population_size", population_size)
    if name == "nsga2":
        if population_size < 2:
            raise ValueError(f"NSGA-II needs a population of at least 2, got {population_size}")
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
               sampler: optuna.samplers.BaseSampler, resume: bool) -> optuna.Study:
    """Create the study, or with ``resume`` load it after checking it solves the same problem.

    An existing study without ``resume`` is refused (its trials would silently mix with a new
    run's); a resumed study whose stored objectives, space, batch size, budgets, dataset or
    device differ is refused naming the differences. Trials left RUNNING by a killed run are
    marked FAIL so their budget of trials is asked again.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _prepare_sqlite(storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)] if storage is not None else []
    exists = study_name in names
    if exists and not resume:
        raise FileExistsError(f"study {study_name!r} already exists in {_describe_storage(storage)}; pass --resume "
                              f"to continue it, or choose another --study-name / --out")
    if resume and not exists:
        raise ValueError(f"--resume: no study {study_name!r} in {_describe_storage(storage)}"
                         + (f"; it holds {', '.join(names)}" if names else "; it holds no study"))
    if exists:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        stored = study.user_attrs.get(_META_KEY)
        if stored is None:
            raise ValueError(f"study {study_name!r} was not created by nas-search (no problem record); "
                             f"refusing to resume it")
        diffs = [f"{k}: stored {stored.get(k)!r}, now {problem[k]!r}" for k in problem if stored.get(k) != problem[k]]
        if diffs:
            raise ValueError(f"--resume refused: study {study_name!r} was created for a different problem ("
                             + "; ".join(diffs) + "). Resume with the same settings or start a new study")
        _fail_stale(study)
        return study
    study = optuna.create_study(storage=storage, study_name=study_name, sampler=sampler,
                                directions=directions(problem["objectives"]))
    study.set_user_attr(_META_KEY, problem)
    return study


def _prepare_sqlite(storage: Any) -> None:
    """A SQLite study file is put in write-ahead-log mode (persistent in the file): one sync per
    commit instead of several, and readers (``nas report``) do not block the writer."""
    if not (isinstance(storage, str) and storage.startswith("sqlite:///")):
        return
    path = Path(storage[len("sqlite:///"):])
    if str(path) in ("", ":memory:"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _describe_storage(storage: Any) -> str:
    return storage if isinstance(storage, str) else type(storage).__name__


def _fail_stale(study: optuna.Study) -> int:
    """Mark RUNNING trials (left by a killed process) FAIL; returns how many."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        n += 1
    return n


def completed(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def run_trials(study: optuna.Study, *, space: SearchSpace, score: Callable[[list[ArchConfig]], list[ArchScore]],
               budgets: Sequence[Budget], objectives: Sequence[str], n_trials: int, batch: int = 16,
               progress: bool = True, on_batch: Callable[[int], None] | None = None) -> int:
    """Run trials until the study holds ``n_trials`` COMPLETE ones; returns how many ran now.

    Each round asks ``batch`` trials, scores their architectures in one call and tells the
    results; every trial records its architecture, all three scores and per-budget feasibility
    in one user attribute (``SCORE_ATTR``), and its budget constraint.
    """
    check_positive_int("n_trials", n_trials)
    check_positive_int("batch", batch)
    params = arch_params(space)
    dists = {name: optuna.distributions.CategoricalDistribution(list(choices)) for name, choices in params}
    done_before = completed(study)
    bar = tqdm(total=n_trials, initial=min(done_before, n_trials), desc="search", unit="trial", disable=not progress)
    ran = 0
    try:
        while completed(study) < n_trials:
            k = min(batch, n_trials - completed(study))
            trials = [study.ask(dists) for _ in range(k)]
            archs = [arch_from_params(space, t.params) for t in trials]
            t0 = time.perf_counter()
            try:
                scores = score(archs)
                if len(scores) != k:
                    raise RuntimeError(f"the score function returned {len(scores)} scores for {k} architectures")
            except BaseException:
                for trial in trials:  # nothing is left RUNNING by a failed batch
                    study.tell(trial, state=TrialState.FAIL)
                raise
            per_trial_s = (time.perf_counter() - t0) / k
            for trial, s in zip(trials, scores):
                # One user attribute per trial: each is a storage write (a transaction on SQLite).
                trial.set_user_attr(SCORE_ATTR, {
                    "arch_id": s.arch.arch_id, "arch_json": s.arch.to_json(), "val_acc": s.val_acc,
                    "pred_latency_ms": s.latency_ms, "pred_peak_mem_mb": s.peak_mem_mb,
                    "feasible_budgets": [b.meets(s.latency_ms, s.peak_mem_mb) for b in budgets],
                    "score_s": per_trial_s})
                trial.set_constraint("budgets", constraint_value(budgets, s.latency_ms, s.peak_mem_mb))
                study.tell(trial, [s.objective(o) for o in objectives])
            ran += k
            bar.update(k)
            if on_batch is not None:
                on_batch(ran)
    finally:
        bar.close()
    return ran


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
        row.update({"arch_id": ua.get("arch_id"), "n_quadratic": arch.n_quadratic if arch else None,
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
            + ["arch_id", "n_quadratic", "n_blocks", "depths", "widths", "arch_json", "duration_s",
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
