"""The search's objectives: one table that the study, the tables, the report and the scorer read.

An :class:`Objective` says, for one thing a search can optimise, its user-facing ``name``
(``--objectives accuracy,latency``), its ``value`` name (the study's objective and what
``config.json`` records: ``val_acc``, ``latency_ms``, ``peak_mem_mb``), the ``trials.csv``
``column`` holding each trial's (predicted) value — also the metric name the Optuna study records
(:meth:`optuna.Study.set_metric_names`, what optuna-dashboard shows) — its ``direction``, ``unit``
and ``label``, and the attribute of :class:`nas.search.scoring.ArchScore` it is scored by
(``score``). :data:`OBJECTIVES` (name → objective, in canonical order) is the only list of them.

Pure data: no optuna, no torch, so every stage can read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["OBJECTIVES", "Objective", "by_value", "columns", "directions", "metric_names", "minimization",
           "parse_objectives", "register_objective"]


@dataclass(frozen=True)
class Objective:
    """One objective of the search (see the module docstring)."""

    name: str  # user-facing: accuracy
    value: str  # the study's value name: val_acc
    column: str  # trials.csv column of the (predicted) value: val_acc, pred_latency_ms
    direction: str  # "maximize" | "minimize"
    unit: str  # "" for a fraction, "ms", "MB"
    label: str  # for plots and reports
    score: str  # the ArchScore attribute it is scored by
    default: bool = True  # among the objectives of a search that names none

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"objective {self.name!r}: direction must be 'maximize' or 'minimize', "
                             f"got {self.direction!r}")


OBJECTIVES: dict[str, Objective] = {}


def register_objective(objective: Objective) -> Objective:
    """Add ``objective`` to :data:`OBJECTIVES` (its name and value name must be new)."""
    if objective.name in OBJECTIVES or any(o.value == objective.value for o in OBJECTIVES.values()):
        raise ValueError(f"objective {objective.name!r} ({objective.value}) is already registered")
    OBJECTIVES[objective.name] = objective
    return objective


register_objective(Objective(name="accuracy", value="val_acc", column="val_acc", direction="maximize", unit="",
                             label="validation accuracy (inherited weights)", score="val_acc"))
register_objective(Objective(name="latency", value="latency_ms", column="pred_latency_ms", direction="minimize",
                             unit="ms", label="predicted latency (ms)", score="latency_ms"))
register_objective(Objective(name="memory", value="peak_mem_mb", column="pred_peak_mem_mb", direction="minimize",
                             unit="MB", label="predicted peak memory (MB)", score="peak_mem_mb"))
register_objective(Objective(name="loss", value="val_loss", column="val_loss", direction="minimize", unit="",
                             label="validation loss (inherited weights)", score="val_loss", default=False))


def by_value(value: str) -> Objective:
    """The objective whose value name is ``value`` (``val_acc``, …); unknown names raise, listing them."""
    for objective in OBJECTIVES.values():
        if objective.value == value:
            return objective
    raise ValueError(f"unknown objective {value!r}; valid: {', '.join(o.value for o in OBJECTIVES.values())}")


def parse_objectives(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"accuracy,latency"`` or a list (user names or value names) → value names in canonical
    order (default: every objective marked ``default``: accuracy, latency, memory)."""
    if value is None:
        names = [n for n, o in OBJECTIVES.items() if o.default]
    else:
        by_value_name = {o.value: o.name for o in OBJECTIVES.values()}
        names = [by_value_name.get(v.strip(), v.strip())
                 for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise ValueError(f"unknown objective {unknown[0]!r}; valid: {', '.join(OBJECTIVES)}")
    if len(set(names)) < 2:
        raise ValueError(f"a multi-objective search needs at least two distinct objectives of "
                         f"{', '.join(OBJECTIVES)}; got {names}")
    return tuple(o.value for name, o in OBJECTIVES.items() if name in names)


def directions(values: Sequence[str]) -> list[str]:
    """The study's directions for objective value names."""
    return [by_value(v).direction for v in values]


def columns(values: Sequence[str]) -> list[str]:
    """The ``trials.csv`` columns of objective value names."""
    return [by_value(v).column for v in values]


def metric_names(values: Sequence[str]) -> list[str]:
    """The metric names the study records for its objectives (its ``trials.csv`` columns)."""
    return columns(values)


def minimization(values: Sequence[str], table) -> np.ndarray:
    """``(n, m)`` minimisation values of a trials table's objective columns: a maximised objective
    (a fraction in [0, 1], accuracy) as ``1 − value``, a minimised one as it is."""
    cols = []
    for v in values:
        objective = by_value(v)
        x = table[objective.column].to_numpy(dtype=float)
        cols.append(1.0 - x if objective.direction == "maximize" else x)
    return np.stack(cols, axis=1) if cols else np.zeros((len(table), 0))
