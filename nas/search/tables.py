"""The study as tables: ``trials.csv`` (one row per trial) and ``pareto.csv`` (its front)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from nas.objectives import columns, directions
from nas.pareto import pareto_mask
from nas.rundir import PARETO, TRIALS, write_table
from nas.search.study import SCORE_ATTR, SURPLUS_ATTR, WORKER_ATTR, budget_constraint
from search_spaces.arch import ArchConfig

__all__ = ["pareto_frame", "trial_columns", "trials_frame", "write_tables"]


# The prediction intervals of a search with a confidence level (empty otherwise).
INTERVAL_COLUMNS = ("pred_latency_lo_ms", "pred_latency_hi_ms", "pred_peak_mem_lo_mb", "pred_peak_mem_hi_mb")


def trials_frame(study: optuna.Study, n_budgets: int) -> pd.DataFrame:
    """One row per trial (``trials.csv``): state, scores, constraint, feasibility and architecture."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs.get(SCORE_ATTR, {})
        arch = ArchConfig.from_json(ua["arch_json"]) if "arch_json" in ua else None
        feas = ua.get("feasible_budgets") or [None] * n_budgets
        constraint = budget_constraint(t) if t.state == TrialState.COMPLETE else None
        row = {"number": t.number, "state": t.state.name,
               "val_acc": ua.get("val_acc"), "val_acc_se": ua.get("val_acc_se"), "val_loss": ua.get("val_loss"),
               "pred_latency_ms": ua.get("pred_latency_ms"),
               "pred_peak_mem_mb": ua.get("pred_peak_mem_mb"),
               **{c: ua.get(c) for c in INTERVAL_COLUMNS}, "constraint": constraint,
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
    return (["number", "state", "val_acc", "val_acc_se", "val_loss", "pred_latency_ms", "pred_peak_mem_mb",
             *INTERVAL_COLUMNS, "constraint", "feasible"]
            + [f"feasible_b{i}" for i in range(n_budgets)]
            + ["worker", "surplus", "arch_id", "n_quadratic", "n_blocks", "depths", "widths", "arch_json", "duration_s",
               "datetime_complete"])



def pareto_frame(trials: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The Pareto-optimal COMPLETE trials over ``objectives`` (``pareto.csv``), one row per
    architecture, sorted by predicted latency."""
    done = trials[trials["state"] == "COMPLETE"].drop_duplicates("arch_id").reset_index(drop=True)
    if len(done) == 0:
        return done
    values = done[columns(objectives)].to_numpy(dtype=float)
    front = done[pareto_mask(values, directions(objectives))]
    return front.sort_values(["pred_latency_ms", "pred_peak_mem_mb"], kind="stable").reset_index(drop=True)


def write_tables(run_dir: Path, trials: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """``trials.csv`` and ``pareto.csv`` of a run, each written atomically; returns the Pareto frame."""
    pareto = pareto_frame(trials, objectives)
    write_table(run_dir / TRIALS, trials)  # a kill never leaves half a table
    write_table(run_dir / PARETO, pareto)
    return pareto
