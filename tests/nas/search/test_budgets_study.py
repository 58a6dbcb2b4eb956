"""Tests for nas.search.budgets, .study, .params, .samplers, .tables and .scoring, and nas.objectives:
hardware budgets, the Optuna study and the
architecture scorer.

References are written out here: relative overshoots computed by hand, quantiles interpolated
by hand, the study's parameter names built from the space's choices, a brute-force
non-dominated filter over the finished trials, and a FAKE score function (a closed form of the
architecture) in place of the supernet and predictors, so every stored value can be checked
exactly. The scorer is checked against the plain supernet forward and the extracted subnet on
labels constructed so the accuracy is known in advance. No training, no profiling: predictors
are fitted (linear, two folds) on the synthetic profile table of ``tests/test_predictors.py``.
"""

from __future__ import annotations

import copy
import json
import math
import random
import socket
import subprocess
import sys

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch.utils.data import TensorDataset

from nas.objectives import parse_objectives
from nas.search.budgets import Budget, auto_budgets, budgets_from_lists, constraint_value
from nas.search.params import arch_from_params, arch_params
from nas.search.samplers import create_sampler
from nas.search.scoring import ArchScore, ArchScorer
from nas.search.storage import create_storage, worker_id
from nas.search.study import SCORE_ATTR, WORKER_ATTR, open_study, problem_record, run_trials
from nas.search.tables import pareto_frame, trials_frame
from predictors.predictor import Predictor
from search_spaces.arch import ArchConfig, ArchError, BlockArch, StageArch
from search_spaces.elastic import QuadraSupernet
from search_spaces.space import create_space, space_names

optuna.logging.set_verbosity(optuna.logging.WARNING)

ALL_OBJECTIVES = ("val_acc", "latency_ms", "peak_mem_mb")
META_KEY = "quadranas_problem"  # where open_study keeps the problem record

# Budgets used with the fake scores (digits-s: Σ widths / 100 ∈ [0.8, 2.4] ms, Σ depths ∈ [4, 9] MB).
LAT1, LAT2, MEM2 = 1.2, 2.0, 6.0
BUDGETS = (Budget(latency_ms=LAT1), Budget(latency_ms=LAT2, memory_mb=MEM2))


def _ref_constraint(lat: float, mem: float) -> float:
    """min over BUDGETS of the largest relative overshoot, written out."""
    return min(lat / LAT1 - 1.0, max(lat / LAT2 - 1.0, mem / MEM2 - 1.0))


def _ref_feasible(lat: float, mem: float) -> list[bool]:
    return [lat <= LAT1, lat <= LAT2 and mem <= MEM2]


# ---- fake scores ----------------------------------------------------------------------------

def _fake_values(arch: ArchConfig) -> dict[str, float]:
    return {"val_acc": 1.0 - 1.0 / (1.0 + arch.n_quadratic),
            "latency_ms": sum(arch.widths) / 100.0,
            "peak_mem_mb": float(sum(arch.depths))}


class FakeScore:
    """Deterministic closed-form scores; records the batch sizes it was called with."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, archs: list[ArchConfig]) -> list[ArchScore]:
        self.calls.append(len(archs))
        return [ArchScore(arch=a, **_fake_values(a)) for a in archs]


def _problem(**changes) -> dict:
    kw = dict(space="digits-s", objectives=("val_acc", "latency_ms"), batch_size=1, budgets=[Budget(latency_ms=2.0)],
              dataset="digits", fingerprint_id="fp0")
    kw.update(changes)
    return problem_record(**kw)


@pytest.fixture(params=["memory", "sqlite", "journal"])
def storage_factory(request, tmp_path):
    """A callable giving the same storage each call: one InMemoryStorage object, a SQLite URL, or
    the journal file (the run's default) opened anew."""
    if request.param == "memory":
        store = optuna.storages.InMemoryStorage()
        return lambda: store
    if request.param == "journal":  # a new storage object on the file each call, as another process opens it
        return lambda: create_storage(f"journal:///{tmp_path / 'study.journal'}")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    return lambda: url


def _new_study(storage, *, objectives=ALL_OBJECTIVES, budgets=BUDGETS, name="s", sampler=None):
    problem = _problem(objectives=objectives, budgets=budgets)
    return open_study(storage=storage, study_name=name, problem=problem,
                      sampler=sampler or optuna.samplers.RandomSampler(seed=0), resume=False)


# ============================================================================ Budget

@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), -float("inf"), True, False, "2", [1.0]])
@pytest.mark.parametrize("kwarg,name", [("latency_ms", "latency_budget_ms"), ("memory_mb", "memory_budget_mb")])
def test_budget_rejects_bad_limits(kwarg, name, bad):
    with pytest.raises(ValueError, match=name):
        Budget(**{kwarg: bad})


def test_budget_accepts_positive_limits_as_float():
    b = Budget(latency_ms=2, memory_mb=40.5)
    assert (b.latency_ms, b.memory_mb) == (2.0, 40.5)
    assert isinstance(b.latency_ms, float)
    assert Budget().latency_ms is None and Budget().memory_mb is None
    with pytest.raises(ValueError, match="source"):
        Budget(latency_ms=1.0, source="guess")


@pytest.mark.parametrize("budget,lat,mem,expected", [
    # latency only: memory is ignored however large
    (Budget(latency_ms=2.0), 2.5, 1e9, 0.25),
    (Budget(latency_ms=2.0), 1.5, 1e9, -0.25),
    # memory only: latency ignored
    (Budget(memory_mb=40.0), 100.0, 50.0, 0.25),
    (Budget(memory_mb=40.0), 100.0, 30.0, -0.25),
    # both: the larger of the two overshoots
    (Budget(latency_ms=2.0, memory_mb=40.0), 2.2, 60.0, 0.5),   # max(0.1, 0.5)
    (Budget(latency_ms=2.0, memory_mb=40.0), 3.0, 44.0, 0.5),   # max(0.5, 0.1)
    (Budget(latency_ms=2.0, memory_mb=40.0), 1.0, 30.0, -0.25),  # max(-0.5, -0.25)
    (Budget(latency_ms=2.0, memory_mb=40.0), 1.0, 60.0, 0.5),   # one over is enough
    # none: always met
    (Budget(), 5.0, 500.0, -1.0),
])
def test_budget_excess_by_hand(budget, lat, mem, expected):
    assert budget.excess(lat, mem) == pytest.approx(expected, abs=1e-12)
    assert budget.meets(lat, mem) == (expected <= 0)


def test_budget_meets_at_the_exact_limit():
    b = Budget(latency_ms=0.3, memory_mb=40.0)
    assert b.meets(0.3, 40.0)
    assert b.excess(0.3, 40.0) == 0.0
    assert not b.meets(0.3 * (1 + 1e-9), 40.0)
    assert not b.meets(0.3, 40.0 * (1 + 1e-9))
    assert Budget(latency_ms=2.0).meets(2.0, 1e12)


@pytest.mark.parametrize("lat,mem", [(float("nan"), 10.0), (1.0, float("nan")), (float("nan"), float("nan"))])
def test_budget_nan_measurement_does_not_meet(lat, mem):
    b = Budget(latency_ms=2.0, memory_mb=40.0)
    try:
        met = b.meets(lat, mem)
    except ValueError:
        return  # refusing a NaN is also acceptable
    assert not met


@pytest.mark.parametrize("budget,label", [
    (Budget(latency_ms=2.0, memory_mb=40.0), "latency ≤ 2 ms, memory ≤ 40 MB"),
    (Budget(latency_ms=1.23456), "latency ≤ 1.235 ms"),
    (Budget(memory_mb=12.5), "memory ≤ 12.5 MB"),
    (Budget(), "no limit"),
])
def test_budget_label(budget, label):
    assert budget.label == label


@pytest.mark.parametrize("budget", [Budget(latency_ms=2.0, memory_mb=40.0), Budget(latency_ms=0.1),
                                    Budget(memory_mb=7.25, source="auto"), Budget()])
def test_budget_dict_round_trip(budget):
    d = budget.to_dict()
    assert d == {"latency_ms": budget.latency_ms, "memory_mb": budget.memory_mb, "source": budget.source,
                 "label": budget.label}
    assert Budget.from_dict(d) == budget
    assert Budget.from_dict(json.loads(json.dumps(d))) == budget


# ============================================================================ budgets_from_lists

def test_budgets_from_lists_pairs_in_order():
    assert budgets_from_lists([1.0, 2.0], [10.0, 20.0]) == [Budget(latency_ms=1.0, memory_mb=10.0),
                                                            Budget(latency_ms=2.0, memory_mb=20.0)]


def test_budgets_from_lists_broadcasts_a_single_value():
    assert budgets_from_lists([1.0, 2.0, 3.0], [40.0]) == [Budget(latency_ms=x, memory_mb=40.0)
                                                           for x in (1.0, 2.0, 3.0)]
    assert budgets_from_lists([5.0], [10.0, 20.0]) == [Budget(latency_ms=5.0, memory_mb=m) for m in (10.0, 20.0)]
    assert budgets_from_lists([5.0], [10.0]) == [Budget(latency_ms=5.0, memory_mb=10.0)]


def test_budgets_from_lists_one_kind_only():
    assert budgets_from_lists([1.0, 2.0], None) == [Budget(latency_ms=1.0), Budget(latency_ms=2.0)]
    assert budgets_from_lists([], [30.0]) == [Budget(memory_mb=30.0)]
    assert budgets_from_lists(None, [30.0, 40.0]) == [Budget(memory_mb=30.0), Budget(memory_mb=40.0)]


def test_budgets_from_lists_nothing():
    assert budgets_from_lists(None, None) == []
    assert budgets_from_lists([], []) == []
    assert budgets_from_lists((), None) == []


def test_budgets_from_lists_unpairable_counts():
    with pytest.raises(ValueError, match="cannot be paired") as err:
        budgets_from_lists([1.0, 2.0], [10.0, 20.0, 30.0])
    assert "2 latency" in str(err.value) and "3 memory" in str(err.value)


def test_budgets_from_lists_validates_values():
    with pytest.raises(ValueError, match="memory_budget_mb"):
        budgets_from_lists([1.0], [-5.0])


# ============================================================================ auto_budgets

def test_auto_budgets_are_quantiles():
    lat = [8.0, 1.0, 4.0, 2.0]  # sorted 1, 2, 4, 8
    mem = [10.0, 40.0, 20.0, 30.0]  # sorted 10, 20, 30, 40
    budgets = auto_budgets(lat, mem)
    # linear interpolation at position q·(n − 1): q=0.25 → 0.75, q=0.5 → 1.5
    assert [(b.latency_ms, b.memory_mb) for b in budgets] == [
        (pytest.approx(1.0 + 0.75 * (2.0 - 1.0)), pytest.approx(10.0 + 0.75 * 10.0)),
        (pytest.approx(2.0 + 0.5 * (4.0 - 2.0)), pytest.approx(20.0 + 0.5 * 10.0)),
    ]
    for b, q in zip(budgets, (0.25, 0.5)):
        assert b.latency_ms == pytest.approx(float(np.quantile(lat, q)))
        assert b.memory_mb == pytest.approx(float(np.quantile(mem, q)))
        assert b.source == "auto"


def test_auto_budgets_custom_quantiles_and_numpy_input():
    budgets = auto_budgets(np.array([3.0]), np.array([7.0]), quantiles=(0.9,))
    assert budgets == [Budget(latency_ms=3.0, memory_mb=7.0, source="auto")]


@pytest.mark.parametrize("lat,mem", [([], [1.0]), ([1.0], []), ([], [])])
def test_auto_budgets_empty(lat, mem):
    with pytest.raises(ValueError, match="at least one"):
        auto_budgets(lat, mem)


# ============================================================================ constraint_value

@pytest.mark.parametrize("lat,mem,expected", [
    (3.0, 20.0, 0.5),     # b0: 3/2 − 1 = 0.5; b1: max(3/4 − 1, 20/10 − 1) = 1.0
    (3.0, 5.0, -0.25),    # b1: max(−0.25, −0.5)
    (5.0, 5.0, 0.25),     # b0: 1.5; b1: max(0.25, −0.5)
    (1.0, 100.0, -0.5),   # b0 met (memory unlimited)
    (4.0, 10.0, 0.0),     # b1 met exactly
])
def test_constraint_value_by_hand(lat, mem, expected):
    budgets = [Budget(latency_ms=2.0), Budget(latency_ms=4.0, memory_mb=10.0)]
    value = constraint_value(budgets, lat, mem)
    assert value == pytest.approx(expected, abs=1e-12)
    assert (value <= 0) == any(b.meets(lat, mem) for b in budgets)


def test_constraint_value_sign_matches_any_budget_met():
    rng = random.Random(0)
    for _ in range(200):
        lat, mem = rng.uniform(0.5, 3.0), rng.uniform(3.0, 10.0)
        value = constraint_value(BUDGETS, lat, mem)
        assert value == pytest.approx(_ref_constraint(lat, mem), abs=1e-12)
        assert (value <= 0) == any(_ref_feasible(lat, mem))


def test_constraint_value_without_budgets_is_feasible():
    assert constraint_value([], 1e6, 1e6) < 0


# ============================================================================ parse_objectives

@pytest.mark.parametrize("value,expected", [
    (None, ("val_acc", "latency_ms", "peak_mem_mb")),
    ("latency,accuracy", ("val_acc", "latency_ms")),
    (" memory , latency ", ("latency_ms", "peak_mem_mb")),
    ("memory,latency,accuracy", ("val_acc", "latency_ms", "peak_mem_mb")),
    (["peak_mem_mb", "val_acc"], ("val_acc", "peak_mem_mb")),
    (("latency_ms", "accuracy"), ("val_acc", "latency_ms")),
])
def test_parse_objectives(value, expected):
    assert parse_objectives(value) == expected


def test_parse_objectives_unknown_lists_valid():
    with pytest.raises(ValueError, match="unknown objective 'speed'") as err:
        parse_objectives("speed,accuracy")
    assert "accuracy, latency, memory" in str(err.value)


@pytest.mark.parametrize("value", ["accuracy", "latency,latency", "latency,latency_ms", ["val_acc"], "", []])
def test_parse_objectives_needs_two_distinct(value):
    with pytest.raises(ValueError, match="at least two distinct"):
        parse_objectives(value)


# ============================================================================ arch_params / arch_from_params

def _expected_params(space) -> dict[str, tuple[int, ...]]:
    out = {}
    for i in range(space.n_stages):
        out[f"s{i}.depth"] = space.depth_choices[i]
        out[f"s{i}.width"] = space.width_choices[i]
        for j in range(max(space.depth_choices[i])):
            out[f"s{i}.b{j}.kernel"] = space.kernel_choices
            out[f"s{i}.b{j}.mlp"] = space.mlp_ratio_choices
            out[f"s{i}.b{j}.order"] = space.order_choices
    return out


def _params_of(space, arch: ArchConfig, rng: random.Random) -> dict[str, int]:
    """The trial parameters describing ``arch``; slots beyond a stage's depth get any valid choice."""
    params = {}
    for i, stage in enumerate(arch.stages):
        params[f"s{i}.depth"] = stage.depth
        params[f"s{i}.width"] = stage.width
        for j in range(max(space.depth_choices[i])):
            if j < stage.depth:
                b = stage.blocks[j]
                k, r, o = b.kernel_size, b.mlp_ratio, b.order
            else:
                k, r, o = (rng.choice(space.kernel_choices), rng.choice(space.mlp_ratio_choices),
                           rng.choice(space.order_choices))
            params.update({f"s{i}.b{j}.kernel": k, f"s{i}.b{j}.mlp": r, f"s{i}.b{j}.order": o})
    return params


@pytest.mark.parametrize("name", space_names())
def test_arch_params_cover_every_dimension(name):
    space = create_space(name)
    params = arch_params(space)
    names = [n for n, _ in params]
    assert len(names) == len(set(names))
    assert {n: tuple(c) for n, c in params} == _expected_params(space)


@pytest.mark.parametrize("name", space_names())
def test_arch_from_params_round_trip(name):
    space = create_space(name)
    rng = random.Random(1234)
    for i in range(50):
        arch = space.sample(random.Random(i))
        back = arch_from_params(space, _params_of(space, arch, rng))
        assert back == arch
        assert back.arch_id == arch.arch_id
    assert arch_from_params(space, _params_of(space, space.max_arch(), rng)) == space.max_arch()
    assert arch_from_params(space, _params_of(space, space.min_arch(), rng)) == space.min_arch()


def _digits_params(**changes) -> dict[str, int]:
    space = create_space("digits-s")
    params = _params_of(space, space.max_arch(), random.Random(0))
    params.update(changes)
    return params


@pytest.mark.parametrize("changes,field", [
    ({"s1.width": 12}, "stages[1].width"),
    ({"s3.width": 256}, "stages[3].width"),
    ({"s2.b0.kernel": 9}, "stages[2].blocks[0].kernel_size"),
    ({"s0.b1.mlp": 8}, "stages[0].blocks[1].mlp_ratio"),
    ({"s0.b0.order": 3}, "stages[0].blocks[0].order"),
    ({"s0.depth": 3}, "stages[0].blocks"),
    ({"s0.depth": 0}, "stages[0].blocks"),
])
def test_arch_from_params_out_of_space(changes, field):
    space = create_space("digits-s")
    with pytest.raises(ArchError) as err:
        arch_from_params(space, _digits_params(**changes))
    assert err.value.field == field


def test_arch_from_params_ignores_slots_beyond_depth():
    space = create_space("digits-s")
    params = _digits_params(**{"s0.depth": 1, "s0.b1.kernel": 9})  # slot b1 is unused at depth 1
    arch = arch_from_params(space, params)
    assert arch.depths[0] == 1
    assert arch.stages[0].blocks[0].kernel_size == params["s0.b0.kernel"]


# ============================================================================ create_sampler

@pytest.mark.parametrize("name,cls", [("nsga2", optuna.samplers.NSGAIISampler), ("tpe", optuna.samplers.TPESampler),
                                      ("random", optuna.samplers.RandomSampler)])
def test_create_sampler_types(name, cls):
    assert type(create_sampler(name, seed=0, population_size=4)) is cls


def test_create_sampler_unknown():
    with pytest.raises(ValueError, match="nsga2, tpe, random"):
        create_sampler("cmaes", seed=0)


@pytest.mark.parametrize("size", [1, 0, -3])
def test_create_sampler_population(size):
    with pytest.raises(ValueError, match="population"):
        create_sampler("nsga2", seed=0, population_size=size)


def test_create_sampler_is_seeded():
    dist = {"x": optuna.distributions.CategoricalDistribution(list(range(100)))}
    draws = []
    for _ in range(2):
        study = optuna.create_study(sampler=create_sampler("random", seed=7))
        draws.append([study.ask(dist).params["x"] for _ in range(10)])
    assert draws[0] == draws[1]


# ============================================================================ open_study

def test_open_study_creates_with_record(storage_factory):
    problem = _problem()
    study = open_study(storage=storage_factory(), study_name="s", problem=problem,
                       sampler=optuna.samplers.RandomSampler(seed=0), resume=False)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert study.user_attrs[META_KEY] == problem
    three = _new_study(storage_factory(), name="t")
    assert three.directions == [optuna.study.StudyDirection.MAXIMIZE] + [optuna.study.StudyDirection.MINIMIZE] * 2


def test_open_study_twice_without_resume(storage_factory):
    _new_study(storage_factory())
    with pytest.raises(FileExistsError, match="--resume"):
        _new_study(storage_factory())


def test_open_study_resume_missing(storage_factory):
    with pytest.raises(ValueError, match="no study 'nope'"):
        open_study(storage=storage_factory(), study_name="nope", problem=_problem(),
                   sampler=optuna.samplers.RandomSampler(), resume=True)
    _new_study(storage_factory(), name="other")
    with pytest.raises(ValueError, match="holds other"):
        open_study(storage=storage_factory(), study_name="nope", problem=_problem(),
                   sampler=optuna.samplers.RandomSampler(), resume=True)


def test_open_study_resume_without_storage():
    with pytest.raises(ValueError, match="no study"):
        open_study(storage=None, study_name="s", problem=_problem(), sampler=optuna.samplers.RandomSampler(),
                   resume=True)


def _states(study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_open_study_resume_same_problem(storage_factory):
    problem = _problem()
    study = open_study(storage=storage_factory(), study_name="s", problem=problem,
                       sampler=optuna.samplers.RandomSampler(seed=0), resume=False)
    study.tell(study.ask(), [0.5, 1.0])
    resumed = open_study(storage=storage_factory(), study_name="s", problem=_problem(),
                         sampler=optuna.samplers.TPESampler(seed=1), resume=True)
    assert _states(resumed) == ["COMPLETE"]
    assert resumed.trials[0].values == [0.5, 1.0]
    assert isinstance(resumed.sampler, optuna.samplers.TPESampler)  # the sampler is not part of the problem


@pytest.mark.parametrize("key,change", [
    ("objectives", {"objectives": ("val_acc", "peak_mem_mb")}),
    ("space", {"space": "cifar10-m"}),
    ("batch_size", {"batch_size": 8}),
    ("budgets", {"budgets": [Budget(latency_ms=3.0)]}),
    ("budgets", {"budgets": [Budget(latency_ms=2.0), Budget(memory_mb=10.0)]}),
    ("dataset", {"dataset": "cifar10"}),
    ("fingerprint_id", {"fingerprint_id": "fp1"}),
])
def test_open_study_resume_refuses_other_problem(storage_factory, key, change):
    study = open_study(storage=storage_factory(), study_name="s", problem=_problem(),
                       sampler=optuna.samplers.RandomSampler(seed=0), resume=False)
    study.tell(study.ask(), [0.5, 1.0])
    study.ask()  # left RUNNING: a refused resume must not mark it FAIL
    before = _states(study)
    with pytest.raises(ValueError, match="--resume refused") as err:
        open_study(storage=storage_factory(), study_name="s", problem=_problem(**change),
                   sampler=optuna.samplers.RandomSampler(), resume=True)
    message = str(err.value)
    assert f"{key}:" in message
    others = {"objectives", "space", "batch_size", "budgets", "dataset", "fingerprint_id"} - {key}
    assert not any(f"{k}:" in message for k in others), message
    after = optuna.load_study(study_name="s", storage=storage_factory())
    assert _states(after) == before == ["COMPLETE", "RUNNING"]
    assert after.user_attrs[META_KEY] == _problem()


def test_open_study_resume_refuses_foreign_study(storage_factory):
    optuna.create_study(storage=storage_factory(), study_name="plain", directions=["maximize", "minimize"])
    with pytest.raises(ValueError, match="no problem record"):
        open_study(storage=storage_factory(), study_name="plain", problem=_problem(),
                   sampler=optuna.samplers.RandomSampler(), resume=True)


def test_open_study_resume_fails_stale_running_trials(storage_factory):
    study = open_study(storage=storage_factory(), study_name="s", problem=_problem(),
                       sampler=optuna.samplers.RandomSampler(seed=0), resume=False)
    study.tell(study.ask(), [0.5, 1.0])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a worker of this host that has exited
    study.ask().set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{dead.pid}:1")
    study.ask().set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{dead.pid}:1")
    study.ask().set_user_attr(WORKER_ATTR, worker_id())  # this process: alive
    study.ask().set_user_attr(WORKER_ATTR, "elsewhere:1:1")  # another host, young: presumed alive
    assert _states(study) == ["COMPLETE"] + ["RUNNING"] * 4
    resumed = open_study(storage=storage_factory(), study_name="s", problem=_problem(),
                         sampler=optuna.samplers.RandomSampler(), resume=True)
    assert _states(resumed) == ["COMPLETE", "FAIL", "FAIL", "RUNNING", "RUNNING"]
    assert resumed.trials[0].values == [0.5, 1.0]


# ============================================================================ run_trials

def _check_trial(trial, space, objectives, budgets=BUDGETS):
    ua = trial.user_attrs[SCORE_ATTR]
    arch = ArchConfig.from_json(ua["arch_json"])
    assert arch == arch_from_params(space, trial.params)
    assert ua["arch_id"] == arch.arch_id
    ref = _fake_values(arch)
    assert (ua["val_acc"], ua["pred_latency_ms"], ua["pred_peak_mem_mb"]) == (
        ref["val_acc"], ref["latency_ms"], ref["peak_mem_mb"])
    assert trial.values == [ref[o] for o in objectives]
    lat, mem = ref["latency_ms"], ref["peak_mem_mb"]
    # one constraint (Optuna names the list-valued attribute's entry "0"): samplers count it once
    assert list(trial.constraints) == ["0"]
    assert trial.constraints["0"] == pytest.approx(_ref_constraint(lat, mem), abs=1e-12)
    assert trial.constraints["0"] == constraint_value(budgets, lat, mem)
    assert ua["feasible_budgets"] == _ref_feasible(lat, mem)


def test_run_trials_runs_and_tops_up():
    space = create_space("digits-s")
    study = _new_study(optuna.storages.InMemoryStorage())
    score, seen = FakeScore(), []
    ran = run_trials(study, space=space, score=score, budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=12,
                     batch=5, progress=False, on_batch=seen.append)
    assert ran == 12
    assert score.calls == [5, 5, 2]
    assert seen == [5, 10, 12]
    assert _states(study) == ["COMPLETE"] * 12
    ran = run_trials(study, space=space, score=score, budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=20,
                     batch=5, progress=False)
    assert ran == 8
    assert score.calls == [5, 5, 2, 5, 3]
    assert _states(study) == ["COMPLETE"] * 20
    for n in (20, 10):  # already there: nothing runs
        assert run_trials(study, space=space, score=score, budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=n,
                          progress=False) == 0
    assert score.calls == [5, 5, 2, 5, 3]
    for t in study.trials:
        _check_trial(t, space, ALL_OBJECTIVES)
    feas = [any(t.user_attrs[SCORE_ATTR]["feasible_budgets"]) for t in study.trials]
    assert any(feas) and not all(feas)  # the budgets split the sampled architectures


def test_run_trials_batch_not_dividing():
    space = create_space("digits-s")
    study = _new_study(optuna.storages.InMemoryStorage())
    score = FakeScore()
    assert run_trials(study, space=space, score=score, budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=20,
                      batch=7, progress=False) == 20
    assert score.calls == [7, 7, 6]
    assert len(study.trials) == 20 and _states(study) == ["COMPLETE"] * 20


def test_run_trials_objective_subset_order():
    space = create_space("digits-s")
    objectives = parse_objectives("memory,accuracy")
    study = _new_study(optuna.storages.InMemoryStorage(), objectives=objectives)
    run_trials(study, space=space, score=FakeScore(), budgets=BUDGETS, objectives=objectives, n_trials=6,
               progress=False)
    assert objectives == ("val_acc", "peak_mem_mb")
    for t in study.trials:
        _check_trial(t, space, objectives)


def test_run_trials_sqlite(tmp_path):
    space = create_space("digits-s")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = _new_study(url)
    run_trials(study, space=space, score=FakeScore(), budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=5,
               batch=3, progress=False)
    reloaded = optuna.load_study(study_name="s", storage=url)
    assert _states(reloaded) == ["COMPLETE"] * 5
    for t in reloaded.trials:
        _check_trial(t, space, ALL_OBJECTIVES)


@pytest.mark.parametrize("when", ["before it is named", "while it is scored"])
def test_run_trials_survives_another_worker_failing_its_trial(tmp_path, monkeypatch, when):
    """On a loaded machine another worker may take this one for dead and fail a trial it holds
    (a nameless trial after UNNAMED_GRACE_S, a stale heartbeat): the worker went down with
    UpdateFinishedTrialError. It now leaves that trial failed and asks another."""
    space = create_space("digits-s")
    study = _new_study(f"sqlite:///{tmp_path / 'study.db'}")  # shared storage: trials are named
    reaped = []

    def reap(trial_id):
        if not reaped:
            reaped.append(trial_id)
            study._storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)

    if when == "before it is named":
        ask = study.ask

        def ask_then_reap(*args, **kwargs):
            trial = ask(*args, **kwargs)
            reap(trial._trial_id)
            return trial
        monkeypatch.setattr(study, "ask", ask_then_reap)
        score = FakeScore()
    else:
        fake = FakeScore()

        def score(archs):
            running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            reap(running[0]._trial_id)
            return fake(archs)
    told = run_trials(study, space=space, score=score, budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=5,
                      batch=3, progress=False)
    assert told == 5 and len(reaped) == 1
    assert sorted(_states(study)) == ["COMPLETE"] * 5 + ["FAIL"]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed[0]._trial_id == reaped[0] and SCORE_ATTR not in failed[0].user_attrs
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            _check_trial(t, space, ALL_OBJECTIVES)


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_run_trials_with_constrained_samplers(sampler):
    space = create_space("digits-s")
    study = _new_study(optuna.storages.InMemoryStorage(), sampler=create_sampler(sampler, seed=0, population_size=4))
    assert run_trials(study, space=space, score=FakeScore(), budgets=BUDGETS, objectives=ALL_OBJECTIVES,
                      n_trials=10, batch=4, progress=False) == 10
    assert _states(study) == ["COMPLETE"] * 10
    for t in study.trials:
        _check_trial(t, space, ALL_OBJECTIVES)


def test_run_trials_after_resume_replaces_stale_trials():
    space = create_space("digits-s")
    store = optuna.storages.InMemoryStorage()
    study = _new_study(store)
    run_trials(study, space=space, score=FakeScore(), budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=4,
               progress=False)
    study.ask()  # a killed run's trial
    resumed = open_study(storage=store, study_name="s", problem=_problem(objectives=ALL_OBJECTIVES, budgets=BUDGETS),
                         sampler=optuna.samplers.RandomSampler(seed=1), resume=True)
    assert run_trials(resumed, space=space, score=FakeScore(), budgets=BUDGETS, objectives=ALL_OBJECTIVES,
                      n_trials=7, progress=False) == 3
    assert _states(resumed) == ["COMPLETE"] * 4 + ["FAIL"] + ["COMPLETE"] * 3


@pytest.mark.parametrize("kw", [{"n_trials": 0}, {"n_trials": 5, "batch": 0}])
def test_run_trials_rejects_bad_counts(kw):
    study = _new_study(optuna.storages.InMemoryStorage())
    with pytest.raises(ValueError, match="n_trials|batch"):
        run_trials(study, space=create_space("digits-s"), score=FakeScore(), budgets=BUDGETS,
                   objectives=ALL_OBJECTIVES, progress=False, **kw)


# ============================================================================ trials_frame / pareto_frame

TRIAL_COLUMNS = ["number", "state", "val_acc", "val_acc_se", "val_loss", "pred_latency_ms", "pred_peak_mem_mb",
                 "pred_latency_lo_ms", "pred_latency_hi_ms", "pred_peak_mem_lo_mb", "pred_peak_mem_hi_mb",
                 "constraint", "feasible", "feasible_b0", "feasible_b1", "worker", "surplus", "arch_id", "n_quadratic",
                 "n_blocks", "depths", "widths", "arch_json", "duration_s", "datetime_complete"]


def _brute_front(study, objectives) -> dict[str, tuple[float, ...]]:
    """arch_id → values of the non-dominated COMPLETE trials (first trial per arch), by a double loop."""
    points: dict[str, tuple[float, ...]] = {}
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        arch = ArchConfig.from_json(t.user_attrs[SCORE_ATTR]["arch_json"])
        ref = _fake_values(arch)
        # minimisation form: accuracy negated
        points.setdefault(arch.arch_id, tuple(-ref[o] if o == "val_acc" else ref[o] for o in objectives))
    front = {}
    for a, p in points.items():
        dominated = any(all(x <= y for x, y in zip(q, p)) and any(x < y for x, y in zip(q, p))
                        for b, q in points.items() if b != a)
        if not dominated:
            front[a] = p
    return front


@pytest.fixture(scope="module")
def searched_study():
    """30 random trials, two Pareto-optimal architectures enqueued twice each (duplicates), one FAIL trial."""
    space = create_space("digits-s")
    study = _new_study(optuna.storages.InMemoryStorage())
    score = FakeScore()
    run_trials(study, space=space, score=score, budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=30, batch=8,
               progress=False)
    rng = random.Random(5)
    # most accurate (every block quadratic, depths at their maximum) at the smallest widths; and min_arch
    best = ArchConfig(space=space.name, stages=tuple(
        StageArch(width=min(ws), blocks=tuple(BlockArch(kernel_size=3, mlp_ratio=2, order=2) for _ in range(max(ds))))
        for ds, ws in zip(space.depth_choices, space.width_choices)))
    for arch in (best, best, space.min_arch(), space.min_arch()):
        study.enqueue_trial(_params_of(space, arch, rng))
    run_trials(study, space=space, score=score, budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=34, batch=4,
               progress=False)
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)
    return study, failed.number, best, space.min_arch()


def test_trials_frame_columns_and_rows(searched_study):
    study, failed, _, _ = searched_study
    frame = trials_frame(study, n_budgets=2)
    assert list(frame.columns) == TRIAL_COLUMNS
    assert list(frame["number"]) == list(range(35))
    done = frame[frame["state"] == "COMPLETE"]
    assert len(done) == 34
    for _, row in done.iterrows():
        arch = ArchConfig.from_json(row["arch_json"])
        ref = _fake_values(arch)
        assert (row["val_acc"], row["pred_latency_ms"], row["pred_peak_mem_mb"]) == (
            ref["val_acc"], ref["latency_ms"], ref["peak_mem_mb"])
        assert row["constraint"] == pytest.approx(_ref_constraint(ref["latency_ms"], ref["peak_mem_mb"]), abs=1e-12)
        assert row["feasible"] == (row["constraint"] <= 0)
        assert [row["feasible_b0"], row["feasible_b1"]] == _ref_feasible(ref["latency_ms"], ref["peak_mem_mb"])
        assert row["arch_id"] == arch.arch_id
        assert row["n_quadratic"] == arch.n_quadratic
        assert row["n_blocks"] == sum(arch.depths)
        assert row["depths"] == "-".join(str(d) for d in arch.depths)
        assert row["widths"] == "-".join(str(w) for w in arch.widths)
        assert row["duration_s"] >= 0


def test_trials_frame_fail_trial(searched_study):
    study, failed, _, _ = searched_study
    frame = trials_frame(study, n_budgets=2)
    row = frame[frame["number"] == failed].iloc[0]
    assert row["state"] == "FAIL"
    for col in ("val_acc", "pred_latency_ms", "pred_peak_mem_mb", "constraint", "feasible", "feasible_b0",
                "feasible_b1", "arch_id", "n_quadratic", "arch_json"):
        assert row[col] is None or (isinstance(row[col], float) and math.isnan(row[col])), (col, row[col])


@pytest.mark.parametrize("objectives", [ALL_OBJECTIVES, ("val_acc", "latency_ms"), ("latency_ms", "peak_mem_mb")])
def test_pareto_frame_matches_brute_force(searched_study, objectives):
    study, failed, best, smallest = searched_study
    frame = trials_frame(study, n_budgets=2)
    front = pareto_frame(frame, objectives)
    expected = _brute_front(study, objectives)
    assert list(front.columns) == TRIAL_COLUMNS
    assert sorted(front["arch_id"]) == sorted(expected)  # one row per architecture
    assert (front["state"] == "COMPLETE").all()
    assert failed not in set(front["number"])
    lat = front["pred_latency_ms"].to_numpy()
    assert (np.diff(lat) >= 0).all()
    for _, row in front.iterrows():
        first = frame[(frame["arch_id"] == row["arch_id"]) & (frame["state"] == "COMPLETE")]["number"].min()
        assert row["number"] == first  # the first trial of a duplicated architecture is kept
    if "val_acc" in objectives:  # the only accuracy 0.9 at the smallest latency
        assert best.arch_id in set(front["arch_id"])
    if "peak_mem_mb" in objectives:  # smallest memory; under (val_acc, latency_ms) ``best`` dominates it
        assert smallest.arch_id in set(front["arch_id"])
    else:
        assert smallest.arch_id not in set(front["arch_id"])


def test_pareto_frame_all_failed():
    study = _new_study(optuna.storages.InMemoryStorage())
    study.tell(study.ask(), state=TrialState.FAIL)
    frame = trials_frame(study, n_budgets=2)
    assert list(frame["state"]) == ["FAIL"]
    assert len(pareto_frame(frame, ALL_OBJECTIVES)) == 0


def test_trials_frame_empty_study():
    study = _new_study(optuna.storages.InMemoryStorage())
    frame = trials_frame(study, n_budgets=2)
    assert list(frame.columns) == TRIAL_COLUMNS
    assert len(pareto_frame(frame, ALL_OBJECTIVES)) == 0


# ============================================================================ ArchScorer

N_VAL = 40
N_RIGHT = 30  # the first N_RIGHT labels are arch A's predictions, the rest are wrong by construction


@pytest.fixture(scope="module")
def scoring_setup(sample_archs, profile_table):
    space = create_space("digits-s")
    torch.manual_seed(0)
    supernet = QuadraSupernet(space)
    with torch.no_grad():  # layer scale 0.5 instead of 1e-6, so block choices change the logits
        for name, p in supernet.named_parameters():
            if "gamma" in name:
                p.fill_(0.5)
    supernet.eval()
    x = torch.randn(N_VAL, *space.input_shape, generator=torch.Generator().manual_seed(1))  # (B, 1, 8, 8)
    arch_a = space.max_arch()
    with torch.no_grad():
        pred_a = supernet.extract(arch_a).eval()(x).argmax(dim=-1)
    y = pred_a.clone()
    y[N_RIGHT:] = (pred_a[N_RIGHT:] + 1) % space.num_classes
    table = profile_table(sample_archs("digits-s", 10, seed=0), (1, 8))
    latency = Predictor(target="latency", model="linear", folds=2).fit(table)
    memory = Predictor(target="memory", model="linear", folds=2).fit(table)
    others = [space.min_arch(), space.sample(random.Random(3)), space.sample(random.Random(4))]
    return dict(space=space, supernet=supernet, data=TensorDataset(x, y), latency=latency, memory=memory,
                arch_a=arch_a, others=others)


def _scorer(s, **kw) -> ArchScorer:
    args = dict(supernet=s["supernet"], val_data=s["data"], latency=s["latency"], memory=s["memory"], batch_size=1,
                eval_batch_size=16)  # 40 = 16 + 16 + 8: several chunks
    args.update(kw)
    return ArchScorer(**args)


def _manual_accuracy(supernet, arch, x, y) -> float:
    supernet.set_active(arch)
    with torch.no_grad():
        pred = supernet(x).argmax(dim=-1)
    return int((pred == y).sum()) / len(y)


def test_scorer_accuracy_matches_manual(scoring_setup):
    s = scoring_setup
    scorer = _scorer(s)
    x, y = s["data"].tensors
    assert scorer.accuracy(s["arch_a"]) == N_RIGHT / N_VAL  # 0.75 by construction
    accs = []
    for arch in s["others"]:
        acc = scorer.accuracy(arch)
        assert acc == _manual_accuracy(s["supernet"], arch, x, y)
        with torch.no_grad():
            ref = int((s["supernet"].extract(arch).eval()(x).argmax(-1) == y).sum()) / N_VAL
        assert acc == ref
        accs.append(acc)
    assert len(set(accs + [0.75])) > 1  # the architectures are told apart


def test_scorer_caches_by_arch_id(scoring_setup):
    s = scoring_setup
    scorer = _scorer(s)
    a, b = s["arch_a"], s["others"][0]
    assert scorer.evaluations == 0
    first = scorer.accuracy(a)
    assert scorer.evaluations == 1
    head = s["supernet"].head
    saved = head.bias.detach().clone()
    try:
        with torch.no_grad():
            head.bias[0] += 1e6  # a fresh evaluation now predicts class 0 everywhere
        assert scorer.accuracy(a) == first  # cached: not re-evaluated
        assert scorer.accuracy(ArchConfig.from_json(a.to_json())) == first  # an equal copy hits the cache
        assert scorer.evaluations == 1
        y = s["data"].tensors[1]
        assert scorer.accuracy(b) == int((y == 0).sum()) / N_VAL  # a miss does evaluate
        assert scorer.evaluations == 2
        scorer.score([a, b, a, b])
        assert scorer.evaluations == 2
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)


def _sharing_prefixes(space, base, n=12, seed=5):
    """Architectures that share 1 … n_stages − 1 leading stages with ``base`` (and each other)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        other = space.sample(rng)
        k = rng.randrange(1, len(base.stages))
        stages = base.stages[:k] + other.stages[k:]
        out.append(space.validate(ArchConfig(space=space.name, stages=stages)))
    return out


def test_prefix_cache_gives_the_numbers_of_whole_forwards(scoring_setup):
    s = scoring_setup
    archs = [s["arch_a"], *_sharing_prefixes(s["space"], s["arch_a"]), *s["others"],
             *_sharing_prefixes(s["space"], s["others"][1], seed=6)]
    cached, whole = _scorer(s), _scorer(s, prefix_cache_mb=0)
    for arch in archs:
        assert cached.evaluate(arch) == whole.evaluate(arch)  # accuracy and loss, bit for bit
    x, y = s["data"].tensors
    for arch in archs[:6]:  # and the supernet's own forward of the active architecture
        assert cached.accuracy(arch) == _manual_accuracy(s["supernet"], arch, x, y)
    assert whole.stages_reused == 0 and not whole._prefix
    assert cached.stages_reused > 0  # the prefixes were shared, and reused
    n_stages = sum(len(a.stages) for a in {a.arch_id: a for a in archs}.values()) * len(cached._chunks)
    assert cached.stages_run + cached.stages_reused == whole.stages_run == n_stages


def test_prefix_cache_stays_within_its_bound(scoring_setup):
    s = scoring_setup
    archs = _sharing_prefixes(s["space"], s["arch_a"], n=20, seed=7)
    cap_mb = 0.05
    scorer = _scorer(s, prefix_cache_mb=cap_mb)
    for arch in archs:
        scorer.evaluate(arch)
        assert scorer._prefix_bytes <= cap_mb * 2**20
        assert scorer._prefix_bytes == sum(t.numel() * t.element_size() for t in scorer._prefix.values())
    assert scorer._prefix  # something fitted


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "256"])
def test_scorer_refuses_a_bad_prefix_cache_size(scoring_setup, bad):
    with pytest.raises(ValueError, match="prefix_cache_mb must be a non-negative number"):
        _scorer(scoring_setup, prefix_cache_mb=bad)


def test_scorer_score_uses_predictors(scoring_setup):
    s = scoring_setup
    archs = [s["arch_a"], *s["others"]]
    for batch_size in (1, 8):
        scorer = _scorer(s, batch_size=batch_size)
        scores = scorer.score(archs)
        lat = s["latency"].predict(archs, batch_size)
        mem = s["memory"].predict(archs, batch_size)
        assert [sc.arch for sc in scores] == archs
        assert [sc.latency_ms for sc in scores] == [float(v) for v in lat]
        assert [sc.peak_mem_mb for sc in scores] == [float(v) for v in mem]
        assert [sc.val_acc for sc in scores] == [scorer.accuracy(a) for a in archs]
        assert scores[0].val_acc == N_RIGHT / N_VAL
        assert scores[1].objective("latency_ms") == float(lat[1])
        assert scores[1].objective("peak_mem_mb") == float(mem[1])
    assert _scorer(s).score([]) == []
    lat1, lat8 = s["latency"].predict(archs[:1], 1)[0], s["latency"].predict(archs[:1], 8)[0]
    assert lat1 != lat8  # the batch size reaches the predictor


def test_scorer_rejects_swapped_predictors(scoring_setup):
    s = scoring_setup
    with pytest.raises(ValueError, match="memory predictor has target 'latency'"):
        _scorer(s, memory=s["latency"])
    with pytest.raises(ValueError, match="latency predictor has target 'memory'"):
        _scorer(s, latency=s["memory"])


def test_scorer_rejects_unfitted_batch_size(scoring_setup):
    s = scoring_setup
    with pytest.raises(ValueError, match=r"batch sizes \[1, 8\], not 4"):
        _scorer(s, batch_size=4)


def test_scorer_rejects_other_space(scoring_setup):
    s = scoring_setup
    other = copy.copy(s["latency"])
    other.space = "cifar10-m"
    with pytest.raises(ValueError, match="cifar10-m"):
        _scorer(s, latency=other)


def test_scorer_rejects_empty_validation(scoring_setup):
    s = scoring_setup
    empty = TensorDataset(torch.empty(0, *s["space"].input_shape), torch.empty(0, dtype=torch.long))
    with pytest.raises(ValueError, match="validation split is empty"):
        _scorer(s, val_data=empty)


@pytest.mark.parametrize("broken", ["short", "raises"])
def test_run_trials_failed_batch_leaves_nothing_running(broken):
    space = create_space("digits-s")
    study = _new_study(optuna.storages.InMemoryStorage())
    run_trials(study, space=space, score=FakeScore(), budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=4,
               batch=4, progress=False)

    def bad_score(archs):
        if broken == "raises":
            raise KeyboardInterrupt  # e.g. Ctrl-C while scoring
        return FakeScore()(archs[:-1])

    with pytest.raises(KeyboardInterrupt if broken == "raises" else RuntimeError,
                       match=None if broken == "raises" else "returned 2 scores for 3"):
        run_trials(study, space=space, score=bad_score, budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=7,
                   batch=3, progress=False)
    assert _states(study) == ["COMPLETE"] * 4 + ["FAIL"] * 3
    # a later run tops up to the asked number of COMPLETE trials
    run_trials(study, space=space, score=FakeScore(), budgets=BUDGETS, objectives=ALL_OBJECTIVES, n_trials=7,
               batch=3, progress=False)
    assert _states(study).count("COMPLETE") == 7


def test_budget_accepts_numpy_numbers():
    assert Budget(latency_ms=np.int64(2), memory_mb=np.float32(0.5)).latency_ms == 2.0
