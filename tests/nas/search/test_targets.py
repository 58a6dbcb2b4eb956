"""A search for a deployment target: the runtime, the speed of the moment, and budgets met at a
stated confidence (``nas-search --runtime … --confidence …``).

References: the intervals recomputed from the predictor's own bounds; feasibility recomputed
from the upper ends; the speed factor recomputed from a reading; a real quick search in ONNX
Runtime whose picks are re-measured by hand in ONNX Runtime."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from nas.cli import main
from nas.profiling import SpeedReading, read_speed, reference_arch
from nas.profiling import speed as speed_module
from nas.search import SearchConfig, run_search
from nas.search.budgets import Budget
from nas.search.picks import pick
from nas.search.scoring import ArchScore, ArchScorer
from nas.search.study import SCORE_ATTR, budget_constraint, run_trials, study_speed
from predictors import Predictor
from predictors.predictor import PredictionInterval
from profilers import Target, TimingStats, profile
from search_spaces.arch import ArchConfig
from search_spaces.space import create_space
from support.profiles import profile_table, sample_archs


@pytest.mark.parametrize("kwargs, match", [
    ({"confidence": 1.0}, "confidence must be a number strictly between 0 and 1"),
    ({"confidence": 0}, "confidence must be a number strictly between 0 and 1"),
    ({"confidence": True}, "confidence must be a number strictly between 0 and 1"),
    ({"runtime": "tflite"}, "runtime must be one of torch, torchscript, onnxruntime, got 'tflite'"),
])
def test_search_config_refuses_bad_runtimes_and_confidence_levels(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SearchConfig(**kwargs)


def test_search_config_carries_its_target():
    cfg = SearchConfig(runtime="onnxruntime", threads=1, batch_size=4, confidence=0.9)
    assert cfg.target == Target(device="cpu", runtime="onnxruntime", threads=1, batch_size=4)
    assert cfg.interval_level == 0.9 and SearchConfig().interval_level == 0.9


class _Interval:  # a predictor stand-in: point 1.0 (latency) / 2.0 (memory), a fixed ±20 % / ±10 % interval
    def __init__(self, target, space):
        self.target, self.space, self.batch_sizes = target, space.name, (1,)
        self.value, self.width = (1.0, 0.2) if target == "latency" else (2.0, 0.1)

    def predict(self, archs, batch_size, level=None):
        point = np.full(len(archs), self.value)
        if level is None:
            return point
        return PredictionInterval(point, point * (1 - self.width), point * (1 + self.width), level)


def _scorer(tiny_space, **kw):
    from search_spaces.elastic import QuadraSupernet

    space = tiny_space()
    torch.manual_seed(0)
    x = torch.randn(12, *space.input_shape)
    y = torch.randint(0, space.num_classes, (12,))
    scorer = ArchScorer(supernet=QuadraSupernet(space).eval(), val_data=TensorDataset(x, y),
                        latency=_Interval("latency", space), memory=_Interval("memory", space), batch_size=1, **kw)
    return scorer, space


def test_scorer_states_latency_at_the_study_speed_with_intervals_of_its_level(tiny_space):
    scorer, space = _scorer(tiny_space, confidence=0.9, latency_scale=1.5)
    (s,) = scorer.score([space.sample(random.Random(0))])
    assert (s.latency_ms, s.latency_lo_ms, s.latency_hi_ms) == pytest.approx((1.5, 1.2, 1.8))
    assert (s.peak_mem_mb, s.peak_mem_lo_mb, s.peak_mem_hi_mb) == pytest.approx((2.0, 1.8, 2.2))
    assert (s.budget_latency_ms, s.budget_peak_mem_mb) == pytest.approx((1.8, 2.2))
    plain, _ = _scorer(tiny_space, latency_scale=0.5)
    (p,) = plain.score([space.sample(random.Random(0))])
    assert p.latency_ms == 0.5 and math.isnan(p.latency_hi_ms) and p.budget_latency_ms == 0.5
    with pytest.raises(ValueError, match="level must be a number strictly between 0 and 1"):
        _scorer(tiny_space, confidence=1.2)
    bad, _ = _scorer(tiny_space, latency_scale=0.0)
    with pytest.raises(ValueError, match="latency_scale must be a positive finite number"):
        bad.score([space.sample(random.Random(0))])


def test_with_a_confidence_level_a_trial_meets_a_budget_only_by_its_upper_ends(tiny_space):
    space = tiny_space()

    def score(archs):
        return [ArchScore(arch=a, val_acc=0.5, latency_ms=1.0, peak_mem_mb=2.0, latency_lo_ms=0.8,
                          latency_hi_ms=1.3, peak_mem_lo_mb=1.9, peak_mem_hi_mb=2.1) for a in archs]

    budgets = [Budget(latency_ms=1.2), Budget(latency_ms=1.4, memory_mb=2.2)]
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    run_trials(study, space=space, score=score, budgets=budgets, objectives=("val_acc", "latency_ms", "peak_mem_mb"),
               n_trials=3, progress=False)
    for t in study.trials:
        ua = t.user_attrs[SCORE_ATTR]
        assert ua["feasible_budgets"] == [False, True]  # 1.3 ms > 1.2 ms although the point 1.0 ms meets it
        assert (ua["pred_latency_lo_ms"], ua["pred_latency_hi_ms"]) == (0.8, 1.3)
        assert budget_constraint(t) == pytest.approx(-1.0 + max(1.3 / 1.4, 2.1 / 2.2))
        assert t.values[1] == 1.0  # the objective is the point prediction


def test_picks_with_a_confidence_level_rescale_the_upper_ends_after_a_miss():
    space = create_space("digits-s")
    archs = space.spread(4, key=lambda a: sum(a.widths), seed=0)
    rows = [{"number": i, "state": "COMPLETE", "val_acc": 0.5 + 0.1 * i, "pred_latency_ms": 1.0,
             "pred_latency_hi_ms": 1.0 + 0.1 * i, "pred_peak_mem_mb": 1.0, "pred_peak_mem_hi_mb": 1.0,
             "feasible_b0": True, "arch_id": a.arch_id, "arch_json": a.to_json()} for i, a in enumerate(archs)]
    by_id = {r["arch_id"]: r for r in rows}
    seen = []

    def measure(arch):
        seen.append(arch.arch_id)
        return {"latency_ms": 1.25 * by_id[arch.arch_id]["pred_latency_hi_ms"], "peak_mem_mb": 1.0, "test_acc": 0.5}

    result = pick(Budget(latency_ms=1.4), 0, pd.DataFrame(rows), measure, {}, n_candidates=3)
    # the most accurate (upper end 1.3 → 1.625 measured) misses; its upper end × 1.25 is the new scale:
    # trial 1 (1.1 × 1.25 = 1.375 ≤ 1.4) is next and meets it (1.375 measured)
    assert seen == [archs[3].arch_id, archs[1].arch_id]
    assert result["status"] == "met" and result["trial_number"] == 1
    assert result["predicted"]["latency_hi_ms"] == pytest.approx(1.1)


def _latency_predictor():
    archs = sample_archs("digits-s", 20, seed=4)
    table = profile_table(archs, batch_sizes=(1,), seed=2)
    table["ref_arch_id"] = "ref"
    table["ref_latency_ms"] = 2.0
    return Predictor(target="latency", model="linear").fit(table)


def test_read_speed_states_the_reference_now_against_the_training_run(monkeypatch):
    pred = _latency_predictor()
    space = create_space("digits-s")
    pred.ref_arch_id = reference_arch(space).arch_id
    def timed(fn, device, **kw):  # the reference runs once; its median is 3 ms
        fn()
        return TimingStats(3.0, 2.9, 3.1, 15)

    monkeypatch.setattr(speed_module, "measure_latency", timed)
    reading = read_speed(space, Target(threads=1), pred)
    assert isinstance(reading, SpeedReading)
    assert (reading.ref_latency_ms, reading.baseline_ms, reading.factor) == (3.0, 2.0, 1.5)
    assert set(reading.to_dict()) == {"ref_arch_id", "ref_latency_ms", "baseline_ms", "factor", "measured_at"}


def test_read_speed_refuses_a_memory_predictor_or_another_reference():
    space = create_space("digits-s")
    pred = _latency_predictor()
    with pytest.raises(ValueError, match="normalised by reference ref, but space 'digits-s'"):
        read_speed(space, Target(), pred)
    mem = Predictor(target="memory", model="linear").fit(profile_table(sample_archs("digits-s", 10, seed=1),
                                                                       batch_sizes=(1,)))
    with pytest.raises(ValueError, match="the speed is read for a latency predictor, not a memory one"):
        read_speed(space, Target(), mem)


def test_a_study_keeps_the_speed_it_began_at():
    study = optuna.create_study()
    calls = []
    first = study_speed(study, lambda: calls.append(1) or {"factor": 1.2, "ref_latency_ms": 2.4})
    again = study_speed(study, lambda: calls.append(1) or {"factor": 0.7})
    assert first == again == {"factor": 1.2, "ref_latency_ms": 2.4} and calls == [1]


# ---- end to end: a quick search deployed in ONNX Runtime, budgets met at 90 % ---------------------

SMALL = dict(quick=True, trials=24, population_size=8, supernet_epochs=1, profile_n=10, measure_candidates=2)


@pytest.fixture(scope="module")
def ort_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ort") / "run"
    cfg = SearchConfig(out=str(out), runtime="onnxruntime", threads=1, confidence=0.9,
                       latency_budgets_ms=(0.5,), memory_budgets_mb=(3.0,), **SMALL)
    return run_search(cfg, progress=False)


@pytest.mark.slow
def test_an_onnxruntime_search_profiles_predicts_and_measures_in_onnxruntime(ort_run):
    out = ort_run.run_dir
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["runtime"] == "onnxruntime" and cfg["confidence"] == 0.9
    assert cfg["target"] == Target(runtime="onnxruntime", threads=1).to_dict()
    assert cfg["speed_at_start"]["factor"] > 0
    profiles = pd.read_csv(out / "profiles.csv")
    assert all(json.loads(fp)["runtime"] == "onnxruntime" for fp in profiles["fingerprint"])
    assert Predictor.load(out / "predictors" / "latency").target_record["runtime"] == "onnxruntime"
    trials = pd.read_csv(out / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    assert (done["pred_latency_lo_ms"] < done["pred_latency_ms"]).all()
    assert (done["pred_latency_ms"] < done["pred_latency_hi_ms"]).all()
    assert list(done["feasible_b0"]) == [bool(h <= 0.5 and m <= 3.0) for h, m in
                                         zip(done["pred_latency_hi_ms"], done["pred_peak_mem_hi_mb"])]
    picks = json.loads((out / "picks.json").read_text())["picks"]
    (p,) = picks
    assert p["status"] == "met", p["message"]
    assert p["measured"]["runtime"] == "onnxruntime"
    now = p["predicted_now"]
    assert now["level"] == 0.9 and now["latency_low_ms"] < now["latency_ms"] < now["latency_high_ms"]
    assert now["speed_factor"] == p["speed"]["factor"] > 0
    assert now["latency_in_interval"] == (now["latency_low_ms"] <= p["measured"]["latency_ms"]
                                          <= now["latency_high_ms"])
    arch = ArchConfig.from_dict(p["arch"])
    # the pick's network measured again by hand in ONNX Runtime: ONNX Runtime's memory count, to the byte
    from nas.train import load_supernet

    supernet, _ = load_supernet(out / "supernet")
    again = profile(supernet.extract(arch).eval(), runtime="onnxruntime", threads=1, with_ops=False)
    assert again.peak_infer_mem_mb == pytest.approx(p["measured"]["peak_mem_mb"], rel=1e-9)
    report = (out / "report.md").read_text()
    assert "latency now, 90 % interval" in report and "onnxruntime, 1 thread(s)" in report
    assert "upper end of each trial's 90 % prediction interval" in report


@pytest.mark.slow
def test_resuming_an_onnxruntime_search_in_another_runtime_is_refused(ort_run, capsys):
    code = main(["search", "--out", str(ort_run.run_dir), "--resume", "--runtime", "torch", "--threads", "1",
                 "--confidence", "0.9", "--latency-budget-ms", "0.5", "--memory-budget-mb", "3"])
    assert code == 2
    assert "run with runtime='onnxruntime', not 'torch'" in capsys.readouterr().err
