"""Prediction intervals (split-conformal on out-of-fold residuals, with the speed's drift) and
the speed factor of :class:`predictors.Predictor`.

References: order statistics picked by hand from known residuals; the out-of-fold residuals
recomputed with the predictor's own folds; empirical coverage on a large held-out synthetic
table whose noise is known; the drift recomputed from the raw rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from predictors import Predictor
from predictors.costmodel import create_cost_model
from predictors.metrics import interval_coverage
from predictors.predictor import PredictionInterval, conformal_log_bounds, speed_drift_log
from search_spaces.arch import ArchConfig
from support.profiles import profile_table, sample_archs

SPACE = "digits-s"


def test_conformal_bounds_are_the_corrected_order_statistics():
    r = np.arange(19, 0, -1, dtype=float)  # 19 residuals 1 … 19, unsorted
    # level 0.9: alpha/2 = 0.05; high: the ceil(20 * 0.95) = 19th smallest; low: the floor(20 * 0.05) = 1st
    assert conformal_log_bounds(r, None, 0.9) == (1.0, 19.0)
    # level 0.5: the ceil(20 * 0.75) = 15th and the floor(20 * 0.25) = 5th smallest
    assert conformal_log_bounds(r, None, 0.5) == (5.0, 15.0)
    # level 0.99: ceil(20 * 0.995) = 20 > 19: the largest (and the smallest below)
    assert conformal_log_bounds(r, None, 0.99) == (1.0, 19.0)


def test_conformal_bounds_convolve_the_drift_with_the_residuals():
    r = np.zeros(99)
    drift = np.linspace(-0.1, 0.1, 21)
    lo, hi = conformal_log_bounds(r, drift, 0.8)
    scores = np.sort((r[:, None] + drift[None, :]).ravel())  # 99 × 21 scores
    m = len(scores)
    assert hi == scores[math.ceil(90 * m / 99) - 1]  # ceil(100 · 0.9) = 90th of 99: that share of the scores
    assert lo == scores[math.floor(10 * m / 99) - 1]  # floor(100 · 0.1) = 10th
    assert -0.1 < lo < 0 < hi < 0.1
    with pytest.raises(ValueError, match="no residuals"):
        conformal_log_bounds(np.zeros(0), None, 0.9)


@pytest.fixture(scope="module")
def noisy():
    train = profile_table(sample_archs(SPACE, 120, seed=0), batch_sizes=(1,), noise=0.05, seed=0)
    held = profile_table(sample_archs(SPACE, 400, seed=10_000), batch_sizes=(1,), noise=0.05, seed=1)
    pred = Predictor(target="latency", model="linear", seed=0).fit(train)
    return pred, train, held


def test_residuals_are_the_chosen_models_out_of_fold_log_ratios(noisy):
    pred, train, _ = noisy
    samples, y = pred._table_samples(pred.table), pred._target_values(pred.table)
    order = np.random.default_rng(pred.seed).permutation(len(samples))
    oof = np.empty(len(samples))
    for k, test in enumerate(np.array_split(order, pred.folds)):
        fit = np.concatenate([f for j, f in enumerate(np.array_split(order, pred.folds)) if j != k])
        oof[test] = create_cost_model("linear", seed=0).fit(samples.subset(fit), y[fit]).predict(samples.subset(test))
    assert np.allclose(pred.residual_log, np.log(y / oof))
    assert len(pred.drift_log) == 0  # no reference column: latencies as measured, no speed stated


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
def test_intervals_cover_held_out_architectures_at_their_level(noisy, level):
    pred, _, held = noisy
    iv = pred.predict_table(held)  # point predictions for the rows
    archs = [ArchConfig.from_json(t) for t in held["arch_json"]]
    interval = pred.predict(archs, 1, level=level)
    assert isinstance(interval, PredictionInterval) and interval.level == level
    assert np.allclose(interval.median, iv)
    assert np.all(interval.low < interval.median) and np.all(interval.median < interval.high)
    lo, hi = pred.log_bounds(level)
    assert np.allclose(interval.low, iv * math.exp(lo)) and np.allclose(interval.high, iv * math.exp(hi))
    coverage = interval_coverage(interval.low, interval.high, held["latency_ms"])
    assert level - 0.07 <= coverage <= min(1.0, level + 0.06)  # 400 held-out rows: ± ~3 standard errors


def test_a_wider_level_gives_a_wider_interval_and_scaling_scales_all_three(noisy):
    pred, _, held = noisy
    arch = ArchConfig.from_json(held["arch_json"].iloc[0])
    a, b = pred.predict([arch], 1, level=0.8), pred.predict([arch], 1, level=0.95)
    assert b.low[0] <= a.low[0] < a.high[0] <= b.high[0]
    s = a.scaled(2.0)
    assert (s.median[0], s.low[0], s.high[0]) == (2 * a.median[0], 2 * a.low[0], 2 * a.high[0])


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, True, "0.9", float("nan")])
def test_bad_levels_are_refused(noisy, level):
    pred, _, held = noisy
    with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
        pred.log_bounds(level)


def _with_reference(table: pd.DataFrame, speeds) -> pd.DataFrame:
    """Rows as `nas profile` writes them: a reference timed beside each, the machine's speed moving."""
    table = table.copy()
    table["ref_arch_id"] = "ref"
    table["ref_latency_ms"] = 2.0 * np.asarray(speeds)
    table["latency_ms"] = table["latency_ms"] * np.asarray(speeds)
    return table


def test_a_normalised_latency_predictor_draws_its_drift_from_consecutive_rows_and_keeps_it(tmp_path):
    archs = sample_archs(SPACE, 40, seed=3)
    speeds = 1.0 + 0.05 * np.sin(np.arange(40))
    table = _with_reference(profile_table(archs, batch_sizes=(1,), noise=0.01, seed=2), speeds)
    pred = Predictor(target="latency", model="linear").fit(table)
    assert pred.normalization == "reference"
    assert np.allclose(pred.drift_log, np.diff(np.log(2.0 * speeds)))
    assert np.allclose(speed_drift_log(table), pred.drift_log)
    lo, hi = pred.log_bounds(0.9)
    lo0, hi0 = pred.log_bounds(0.9, with_drift=False)
    assert lo < lo0 < 0 < hi0 < hi  # the drift widens the interval
    pred.save(tmp_path / "p")
    loaded = Predictor.load(tmp_path / "p")
    assert np.array_equal(loaded.residual_log, pred.residual_log) and np.array_equal(loaded.drift_log, pred.drift_log)
    assert loaded.log_bounds(0.9) == (lo, hi)
    refit = Predictor.refit(tmp_path / "p")  # train.csv holds one row per architecture: the drift is carried over
    assert np.array_equal(refit.drift_log, pred.drift_log)
    meta = json.loads((tmp_path / "p" / "predictor.json").read_text())
    assert meta["interval"]["method"].startswith("split-conformal") and meta["target_record"]["runtime"] == "torch"


def test_speed_factor_states_predictions_at_the_speed_of_a_reference_reading():
    archs = sample_archs(SPACE, 20, seed=4)
    table = _with_reference(profile_table(archs, batch_sizes=(1,), seed=2), np.ones(20))
    pred = Predictor(target="latency", model="linear").fit(table)
    assert pred.ref_baseline_ms == {1: 2.0}
    assert pred.speed_factor(3.0, 1) == 1.5
    with pytest.raises(ValueError, match=r"no reference speed for batch size 8; this predictor has \[1\]"):
        pred.speed_factor(3.0, 8)
    with pytest.raises(ValueError, match="ref_latency_ms must be a positive number of ms"):
        pred.speed_factor(0.0, 1)
    plain = Predictor(target="latency", model="linear", normalize="none").fit(table)
    assert plain.speed_factor(3.0, 1) == 1.0  # raw milliseconds: nothing to restate


def test_an_artifact_without_residuals_says_to_refit(noisy, tmp_path):
    pred, _, _ = noisy
    pred.save(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "predictor.json").read_text())
    del meta["interval"]  # as an artifact saved before intervals were recorded
    (tmp_path / "p" / "predictor.json").write_text(json.dumps(meta))
    old = Predictor.load(tmp_path / "p")
    with pytest.raises(ValueError, match="no cross-validated residuals .* refit it: nas predictors refit DIR"):
        old.predict([ArchConfig.from_json(pred.table["arch_json"].iloc[0])], 1, level=0.9)
    assert old.predict([], 1).shape == (0,)  # point predictions still work


@pytest.mark.parametrize("bad", [{"residual_log": "x"}, {"residual_log": [1.0, None]}, {"drift_log": [float("inf")]},
                                 "nope"])
def test_corrupted_interval_metadata_is_refused(noisy, tmp_path, bad):
    pred, _, _ = noisy
    pred.save(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "predictor.json").read_text())
    meta["interval"] = bad if not isinstance(bad, dict) else {**meta["interval"], **bad}
    (tmp_path / "p" / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="interval"):
        Predictor.load(tmp_path / "p")


def test_interval_coverage_counts_the_ends_and_refuses_bad_input():
    assert interval_coverage([0, 1], [1, 2], [1, 3]) == 0.5
    with pytest.raises(ValueError, match="equally long"):
        interval_coverage([0], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="low > high"):
        interval_coverage([2], [1], [1])
