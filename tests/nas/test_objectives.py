"""Tests for nas.objectives: the one table of the search's objectives and what reads it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from nas.objectives import (
    OBJECTIVES,
    Objective,
    by_value,
    columns,
    directions,
    metric_names,
    minimization,
    register_objective,
)
from nas.report.record import hypervolume_series
from nas.search.scoring import ArchScore
from nas.search.tables import trial_columns


def test_every_objective_is_scored_and_tabled():
    score_fields = {f.name for f in dataclasses.fields(ArchScore)}
    for objective in OBJECTIVES.values():
        assert objective.score in score_fields  # the scorer gives it
        assert objective.column in trial_columns(2)  # trials.csv holds it
        assert by_value(objective.value) is objective
    assert list(OBJECTIVES) == ["accuracy", "latency", "memory", "loss"]
    assert [n for n, o in OBJECTIVES.items() if o.default] == ["accuracy", "latency", "memory"]


def test_lookups_follow_the_table():
    values = ["val_acc", "peak_mem_mb"]
    assert directions(values) == ["maximize", "minimize"]
    assert columns(values) == metric_names(values) == ["val_acc", "pred_peak_mem_mb"]
    with pytest.raises(ValueError, match="unknown objective 'acc'; valid: val_acc, latency_ms, peak_mem_mb"):
        by_value("acc")


def test_minimization_turns_accuracy_into_error_and_keeps_costs():
    table = pd.DataFrame({"val_acc": [0.9, 0.5], "pred_latency_ms": [2.0, 1.0], "pred_peak_mem_mb": [3.0, 4.0]})
    np.testing.assert_array_equal(minimization(["val_acc", "latency_ms"], table), [[1.0 - 0.9, 2.0], [1.0 - 0.5, 1.0]])


def test_a_registered_objective_must_be_new_and_valid():
    with pytest.raises(ValueError, match="'accuracy' .val_acc. is already registered"):
        register_objective(OBJECTIVES["accuracy"])
    with pytest.raises(ValueError, match="direction must be 'maximize' or 'minimize', got 'up'"):
        Objective(name="x", value="x", column="x", direction="up", unit="", label="x", score="x")


def test_the_report_normalises_objectives_from_the_table():
    trials = pd.DataFrame({"number": [0, 1], "state": ["COMPLETE", "COMPLETE"], "val_acc": [0.5, 0.9],
                           "pred_latency_ms": [1.0, 2.0], "pred_peak_mem_mb": [1.0, 1.0], "feasible": [True, True]})
    series = hypervolume_series(trials, ["val_acc", "latency_ms"])
    # normalised: trial 0 at (1, 0), trial 1 at (0, 1); reference 1.1: 0.1 * 1.1, then + 1.1 * 0.1 - 0.1 * 0.1
    np.testing.assert_allclose(series, [0.11, 0.21], atol=1e-12)
