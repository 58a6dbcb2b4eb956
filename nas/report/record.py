"""A finished search's run directory as one plain record, and the hypervolume history of its trials.

Compute into a record, render separately: everything in :mod:`nas.report` reads only the files
``nas-search`` left in the run directory, so a report can be rebuilt (restyled, after a bug fix)
without the supernet, the predictors or the Optuna study::

    config.json   the run's settings: space, dataset, device, batch size, sampler, objectives, budgets
    trials.csv    one row per trial (predicted val_acc, pred_latency_ms, pred_peak_mem_mb, feasible…)
    pareto.csv    the Pareto-optimal COMPLETE trials (same columns)
    picks.json    one pick per budget: predicted and measured figures, status met/missed/infeasible
    summary.json  optional: phase timings

:func:`read_run` loads them (through :mod:`nas.rundir`) into a :class:`RunRecord`.
Hypervolume (Zitzler & Thiele, PPSN 1998) is computed by :mod:`nas.pareto`; see
:func:`hypervolume_series` for the normalisation and reference point used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.objectives import OBJECTIVES, columns, minimization
from nas.pareto import hypervolume_history, normalize
from nas.rundir import (
    CONFIG,
    PARETO,
    PICKS,
    SEARCH_WRITER,
    SUMMARY,
    TRIALS,
    corrupt_record,
    read_record_json,
    read_record_table,
)

__all__ = ["HV_REFERENCE", "STATUSES", "RunRecord", "complete_trials", "hypervolume_series", "read_run", "run_record"]

HV_REFERENCE = 1.1  # reference point, every coordinate, on the [0, 1]-normalised objectives
_TRIAL_COLUMNS = ("number", "state", "val_acc", "pred_latency_ms", "pred_peak_mem_mb", "feasible", "arch_id")
_PARETO_COLUMNS = ("number", "val_acc", "pred_latency_ms", "pred_peak_mem_mb", "arch_id")
_TEXT_COLUMNS = ("state", "arch_id", "depths", "widths", "arch_json")
_NUMERIC_COLUMNS = ("number", "val_acc", "val_acc_se", "val_loss", "pred_latency_ms", "pred_peak_mem_mb", "constraint",
                    "n_quadratic",
                    "n_blocks", "duration_s")
STATUSES = ("met", "missed", "infeasible")


# ---------------------------------------------------------------------------- the record


@dataclass
class RunRecord:
    """Everything one search left on disk, as plain data."""

    config: dict[str, Any]
    trials: pd.DataFrame  # one row per trial; bool columns feasible, feasible_b0…
    pareto: pd.DataFrame  # the Pareto-optimal COMPLETE trials
    picks: dict[str, Any]  # {"picks": [one per budget], "smallest": {…}}
    summary: dict[str, Any] | None  # phase timings, when summary.json exists
    run_dir: Path

    @property
    def objectives(self) -> list[str]:
        return list(self.config["objectives"])

    @property
    def budgets(self) -> list[dict[str, Any]]:
        return list(self.config.get("budgets") or [])


def _as_bool(series: pd.Series) -> pd.Series:
    """True/False, "True"/"false", 1/0 → bool; empty → False."""
    if series.dtype == bool:
        return series
    text = series.map(lambda v: str(v).strip().lower() if not (isinstance(v, float) and math.isnan(v)) else "")
    return text.isin(("true", "1", "1.0", "yes"))


def _read_table(path: Path, required_columns: tuple[str, ...]) -> pd.DataFrame:
    table = read_record_table(path, required_columns=required_columns, text_columns=_TEXT_COLUMNS)
    for col in _NUMERIC_COLUMNS:
        if col in table.columns:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    for col in table.columns:
        if col == "feasible" or col.startswith("feasible_b"):
            table[col] = _as_bool(table[col])
    if "state" in table.columns:
        table["state"] = table["state"].fillna("").astype(str).str.strip().str.upper()
    return table


def read_run(run_dir: str | Path) -> RunRecord:
    """Load a run directory's ``config.json``, ``trials.csv``, ``pareto.csv``, ``picks.json`` and
    (optional) ``summary.json``. A missing file raises ``FileNotFoundError``, a corrupt one
    ``ValueError``; both name the file and say that ``nas-search`` writes it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist; `{SEARCH_WRITER}` creates it (--out)")

    config_path = run_dir / CONFIG
    config = read_record_json(config_path)
    if not isinstance(config, dict):
        raise corrupt_record(config_path, f"expected a JSON object, got {type(config).__name__}")
    if "objectives" not in config and any((run_dir / f).exists() for f in ("supernet.safetensors", "checkpoint.pt")):
        raise ValueError(f"{run_dir} is a supernet run directory (`nas train-supernet`), not a `{SEARCH_WRITER}` run")
    objectives = config.get("objectives")
    values = [o.value for o in OBJECTIVES.values()]  # read now: an objective registered later counts
    if not isinstance(objectives, list) or not objectives:
        raise corrupt_record(config_path, f"'objectives' must be a non-empty list drawn from {', '.join(values)}")
    unknown = [o for o in objectives if o not in values]
    if unknown:
        raise corrupt_record(config_path, f"unknown objective(s) {', '.join(map(str, unknown))}; "
                                    f"valid: {', '.join(values)}")
    budgets = config.get("budgets") or []
    if not isinstance(budgets, list) or not all(isinstance(b, dict) for b in budgets):
        raise corrupt_record(config_path, "'budgets' must be a list of objects")

    trials = _read_table(run_dir / TRIALS, _TRIAL_COLUMNS)
    pareto = _read_table(run_dir / PARETO, _PARETO_COLUMNS)

    picks_path = run_dir / PICKS
    picks = read_record_json(picks_path)
    if not isinstance(picks, dict) or not isinstance(picks.get("picks"), list):
        raise corrupt_record(picks_path, "expected an object with a 'picks' list")
    if len(picks["picks"]) != len(budgets):
        raise corrupt_record(picks_path, f"{len(picks['picks'])} picks for {len(budgets)} budgets in config.json; "
                                   f"there is one pick per budget")
    for i, pick in enumerate(picks["picks"]):
        if not isinstance(pick, dict) or pick.get("status") not in STATUSES:
            status = pick.get("status") if isinstance(pick, dict) else pick
            raise corrupt_record(picks_path, f"picks[{i}].status must be one of {', '.join(STATUSES)}, got {status!r}")

    summary_path = run_dir / SUMMARY
    summary = read_record_json(summary_path, required=False)
    if summary is not None and not isinstance(summary, dict):
        raise corrupt_record(summary_path, f"expected a JSON object, got {type(summary).__name__}")
    return RunRecord(config=config, trials=trials, pareto=pareto, picks=picks, summary=summary, run_dir=run_dir)


def run_record(record: RunRecord | str | Path) -> RunRecord:
    return record if isinstance(record, RunRecord) else read_run(record)


# ---------------------------------------------------------------------------- hypervolume


def complete_trials(trials: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """COMPLETE trials with finite values in ``columns``, in trial-number order."""
    done = trials[trials["state"] == "COMPLETE"]
    finite = np.isfinite(done[columns].to_numpy(dtype=float)).all(axis=1) if len(done) else np.zeros(0, bool)
    return done[finite].sort_values("number", kind="stable")


def hypervolume_series(trials: pd.DataFrame, objectives: list[str]) -> np.ndarray:
    """Hypervolume after each COMPLETE trial (in trial-number order) of the feasible ones so far.

    Objectives go to minimisation (``1 − val_acc``, ``pred_latency_ms``, ``pred_peak_mem_mb``, only
    those among the study's ``objectives``), are normalised to [0, 1] with lower/upper = the
    min/max over *all* COMPLETE trials (feasible or not), and the reference point is 1.1 in every
    coordinate. Infeasible trials (``feasible`` False) add nothing. Non-decreasing; one value per
    COMPLETE trial with finite metrics.
    """
    values = [o.value for o in OBJECTIVES.values()]
    unknown = [o for o in objectives if o not in values]
    if not objectives or unknown:
        raise ValueError(f"objectives must be a non-empty list drawn from {', '.join(values)}, "
                         f"got {list(objectives)!r}")
    done = complete_trials(trials, columns(objectives))
    if done.empty:
        return np.zeros(0)
    points = minimization(list(objectives), done)
    scaled = normalize(points, points.min(axis=0), points.max(axis=0))
    reference = np.full(len(objectives), HV_REFERENCE)
    return hypervolume_history(scaled, reference, feasible=done["feasible"].to_numpy(dtype=bool))

