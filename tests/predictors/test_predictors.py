"""Tests for predictors: analytic features, error measures, cost models, the profile table and
``Predictor`` (fitting, evaluation, persistence, device checks, reference normalisation).

References are written out here: parameter counts of the built ``QuadraNet``; MACs against
``torch.utils.flop_counter.FlopCounterMode`` plus the quadratic product term derived from the
architecture; launch-shape waves as ``⌈blocks ÷ (SMs × resident)⌉``; RMSPE, within-x % and
Kendall's τ-b written out; cost models fitted to synthetic costs of known form (exact lines,
additive lookup tables over the model's own keys, linear functions of the features); the
models' NumPy predictions against scikit-learn's own ``predict`` on the estimators they were
copied from, tree by tree. Artifacts: saved and loaded predictions are bit-identical, and a
planted pickle is never unpickled. No real profiling: profile tables are synthetic, built from
the features with seeded noise.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import random
import re
import shutil
import warnings
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.numpy
import torch
from sklearn.linear_model import LinearRegression
from torch.utils.flop_counter import FlopCounterMode

from predictors import (
    COST_MODELS,
    PROFILE_COLUMNS,
    DeviceMismatch,
    Predictor,
    Samples,
    aggregate_profiles,
    append_profile_row,
    arch_features,
    cost_model_names,
    create_cost_model,
    feature_names,
    kendall_tau,
    layer_costs,
    prediction_metrics,
    read_profiles,
    rmspe,
    within_pct,
)
from predictors.costmodel import ClampedCostWarning, CostModel
from predictors.linear import LookupModel, _lookup_keys
from predictors.trees import ForestModel, GBTModel, TreeArrays
from profilers.fingerprint import DeviceFingerprint
from search_spaces.arch import ArchConfig, ArchError, BlockArch, StageArch
from search_spaces.networks import QuadraNet, count_params
from search_spaces.space import create_space, space_names
from search_spaces.triton_quadratic import launch_shape
from support.profiles import FP, OTHER_FP, TRAIN_BATCHES  # noqa: E402  (shared with the search tests)
from support.profiles import latency_true as _latency_true  # noqa: E402
from support.profiles import profile_row as _row  # noqa: E402
from support.profiles import profile_table as _table  # noqa: E402
from support.profiles import sample_archs as _archs  # noqa: E402

SM_COUNT = 132  # an H100's streaming multiprocessors


# ---- helpers: synthetic architectures, costs and profile tables ------------------------------

def _samples(archs, batch_sizes) -> Samples:
    rows = [arch_features(a, int(b)) for a, b in zip(archs, batch_sizes)]
    return Samples(list(archs), np.asarray(batch_sizes), pd.DataFrame(rows))


def _rmspe_ref(p, m) -> float:
    p, m = np.asarray(p, float), np.asarray(m, float)
    return 100.0 * math.sqrt(sum(((pi - mi) / mi) ** 2 for pi, mi in zip(p, m)) / len(m))


# ---- features --------------------------------------------------------------------------------

@pytest.mark.parametrize("space_name", ["digits-s", "cifar10-m"])
def test_params_match_the_built_network(space_name):
    space = create_space(space_name)
    archs = [space.min_arch(), space.max_arch()] + _archs(space_name, 20, seed=100)
    for arch in archs:
        built = count_params(QuadraNet(space.to_net_config(arch)))
        for batch in (1, 3):
            f = arch_features(arch, batch)
            assert f["params"] == built, arch.describe()
            assert f["param_bytes"] == 4 * built


def _product_term(space, arch: ArchConfig, batch: int) -> int:
    """Σ over quadratic blocks of B·C·H·W: the ⊙ of (W_a∗x)(W_b∗x), which FlopCounterMode
    does not count (it counts convolutions and matrix products only)."""
    _, h, w = space.input_shape
    h, w = h // space.stem_stride, w // space.stem_stride  # stem padding keeps k // s on these spaces
    total = 0
    for i, stage in enumerate(arch.stages):
        hi, wi = h // 2**i, w // 2**i
        total += sum(batch * stage.width * hi * wi for b in stage.blocks if b.order == 2)
    return total


@pytest.mark.parametrize("space_name", ["digits-s", "cifar10-m"])
def test_macs_match_the_flop_counter(space_name):
    space = create_space(space_name)
    batch = 2
    archs = [space.min_arch(), space.max_arch()] + _archs(space_name, 5, seed=200)
    assert any(a.n_quadratic for a in archs) and any(a.n_quadratic < sum(a.depths) for a in archs)
    for arch in archs:
        net = QuadraNet(space.to_net_config(arch)).eval()
        x = torch.randn(batch, *space.input_shape)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
        flops = counter.get_total_flops()
        f = arch_features(arch, batch)
        assert flops % 2 == 0
        assert flops // 2 == f["macs"] - _product_term(space, arch, batch), arch.describe()


def test_macs_split_by_kind_and_stage_add_up():
    space = create_space("digits-s")
    for arch in [space.max_arch()] + _archs("digits-s", 5, seed=300):
        f = arch_features(arch, 2)
        n = space.n_stages
        # stem conv + head GEMM are outside the stages; downsampling convs inside.
        assert f["macs"] == f["macs_gemm"] + f["macs_dw"] + f["macs_conv"]
        assert f["macs_dw"] == sum(f[f"macs_dw_k{k}"] for k in space.kernel_choices)
        stem = 2 * space.input_shape[1] * space.input_shape[2] * arch.widths[0] * space.input_shape[0] * 3 * 3
        head = 2 * arch.widths[-1] * space.num_classes
        assert sum(f[f"s{i}_macs"] for i in range(n)) == f["macs"] - stem - head
        assert f["n_quadratic"] == arch.n_quadratic
        assert f["n_blocks"] == sum(arch.depths)
        assert [f[f"s{i}_width"] for i in range(n)] == list(arch.widths)
        assert [f[f"s{i}_depth"] for i in range(n)] == list(arch.depths)


def test_features_scale_with_batch_where_they_should():
    space = create_space("cifar10-m")
    for arch in [space.min_arch(), space.max_arch()] + _archs("cifar10-m", 4, seed=400):
        f1, f4 = arch_features(arch, 1), arch_features(arch, 4)
        for name in ("macs", "macs_gemm", "macs_dw", "act_elems", "saved_bytes", "input_bytes", "s2_macs"):
            assert f4[name] == 4 * f1[name], name
        for name in ("params", "param_bytes", "n_ops", "n_gemm", "n_blocks", "n_quadratic", "s3_width",
                     "s1_kernel_sum", "s2_hidden_sum"):
            assert f4[name] == f1[name], name
        assert f4["batch_size"] == 4 and f1["batch_size"] == 1
        # bytes moved = B·(activations read and written) + weights read once per layer.
        assert f4["bytes_moved"] == 4 * f1["bytes_moved"] - 3 * f1["param_bytes"]
        act = {b: f["infer_peak_bytes"] - f["param_bytes"] - f["input_bytes"] for b, f in ((1, f1), (4, f4))}
        assert act[4] == 4 * act[1]
        assert f1["input_bytes"] == 4 * math.prod(space.input_shape)


@pytest.mark.parametrize("space_name", space_names())
def test_feature_names_are_the_dict_keys_in_order(space_name):
    space = create_space(space_name)
    arch = space.max_arch()
    names = feature_names(space)
    assert list(arch_features(arch, 1)) == names
    assert len(set(names)) == len(names)
    cuda = feature_names(space, cuda=True)
    assert cuda[:len(names)] == names
    assert cuda[len(names):] == ["waves", "waves_gemm", "waves_elementwise", "tail_idle", "blocks_total"]
    assert list(arch_features(arch, 1, sm_count=SM_COUNT)) == cuda
    assert all(isinstance(v, float) for v in arch_features(arch, 2).values())


def _waves_reference(layers, sm_count: int):
    """Per launch: ⌈blocks ÷ (SMs × resident)⌉ with 1 resident block per SM for GEMMs, 8 otherwise."""
    waves = waves_gemm = tail = blocks_total = 0.0
    n_grids = 0
    for layer in layers:
        per_wave = sm_count * (1 if layer.kind == "gemm" else 8)
        for blocks in layer.grid_blocks:
            w = -(-blocks // per_wave)
            waves += w
            waves_gemm += w if layer.kind == "gemm" else 0
            tail += 1.0 - (blocks - (w - 1) * per_wave) / per_wave
            blocks_total += blocks
            n_grids += 1
    return waves, waves_gemm, tail, blocks_total, n_grids


def test_launch_shape_features():
    space = create_space("digits-s")
    cases = [(space.min_arch(), 1), (space.max_arch(), 1), (space.max_arch(), 1024)]
    cases += [(a, 4) for a in _archs("digits-s", 3, seed=500)]
    for arch, batch in cases:
        f = arch_features(arch, batch, sm_count=SM_COUNT)
        plain = arch_features(arch, batch)
        assert {k: f[k] for k in plain} == plain  # launch features only add columns
        layers = layer_costs(space.to_net_config(arch), batch)
        waves, waves_gemm, tail, blocks_total, n_grids = _waves_reference(layers, SM_COUNT)
        assert f["waves"] == waves
        assert f["waves_gemm"] == waves_gemm
        assert f["waves_gemm"] + f["waves_elementwise"] == f["waves"]
        assert f["tail_idle"] == pytest.approx(tail, rel=1e-12)
        assert f["blocks_total"] == blocks_total
        assert f["waves"] >= n_grids  # every launch runs at least one wave
        assert 0.0 <= f["tail_idle"] < n_grids
        # The fused quadratic kernel's grid is launch_shape's: (B·C, ⌈H·W / BLOCK⌉).
        h = space.input_shape[1]
        quad = [layer for layer in layers if layer.kind == "quadconv"]
        expected = []
        for i, stage in enumerate(arch.stages):
            hw = (h // 2**i) ** 2
            shape = launch_shape(batch, stage.width, h // 2**i, h // 2**i)
            assert shape["grid"] == (batch * stage.width, -(-hw // shape["BLOCK"]))
            expected += [batch * stage.width * -(-hw // shape["BLOCK"])] * sum(b.order == 2 for b in stage.blocks)
        assert [q.grid_blocks[0] for q in quad] == expected

    # The smallest network at batch 1 (all first-order, ≤ 512 elements per tensor): every launch is
    # one block in one wave, so waves = blocks = launches and the idle tail is written out.
    arch = space.min_arch()
    f = arch_features(arch, 1, sm_count=SM_COUNT)
    assert f["waves"] == f["blocks_total"] == f["n_ops"]
    assert f["tail_idle"] == pytest.approx(f["n_gemm"] * (1 - 1 / SM_COUNT)
                                           + (f["n_ops"] - f["n_gemm"]) * (1 - 1 / (8 * SM_COUNT)))
    # A large batch fills several waves: the staircase the features exist for.
    big = arch_features(space.max_arch(), 1024, sm_count=SM_COUNT)
    n_grids = _waves_reference(layer_costs(space.to_net_config(space.max_arch()), 1024), SM_COUNT)[4]
    assert big["waves"] > n_grids
    assert big["waves_gemm"] > big["n_gemm"]


def test_every_cuda_launch_has_a_grid():
    # One grid per launch; the quadratic conv's 4 PyTorch-path ops are one fused kernel on CUDA.
    space = create_space("digits-s")
    arch = space.max_arch()  # all blocks quadratic
    layers = layer_costs(space.to_net_config(arch), 1)
    for layer in layers:
        assert len(layer.grid_blocks) == (1 if layer.kind == "quadconv" else layer.launches), layer
    f = arch_features(arch, 1, sm_count=SM_COUNT)
    n_quad = sum(layer.kind == "quadconv" for layer in layers)
    assert f["waves"] >= f["n_ops"] - 3 * n_quad


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4", None])
def test_bad_batch_size_is_refused(bad):
    arch = create_space("digits-s").min_arch()
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        arch_features(arch, bad)


def test_arch_outside_the_space_is_refused():
    space = create_space("digits-s")
    good = space.min_arch()
    wide = ArchConfig(space="digits-s", stages=(replace(good.stages[0], width=12),) + good.stages[1:])
    with pytest.raises(ArchError, match=re.escape("stages[0].width")) as err:
        arch_features(wide, 1)
    assert err.value.field == "stages[0].width"
    deep = ArchConfig(space="digits-s", stages=(replace(good.stages[0], blocks=good.stages[0].blocks * 3),)
                      + good.stages[1:])
    with pytest.raises(ArchError, match=re.escape("stages[0].blocks")):
        arch_features(deep, 1)
    big_kernel = ArchConfig(space="digits-s", stages=(StageArch(width=8, blocks=(BlockArch(9, 2, 1),)),)
                            + good.stages[1:])
    with pytest.raises(ArchError, match=re.escape("stages[0].blocks[0].kernel_size")):
        arch_features(big_kernel, 1)
    with pytest.raises(ArchError, match="space"):
        arch_features(good, 1, space=create_space("cifar10-m"))


# ---- metrics ---------------------------------------------------------------------------------

def _tau_b(x, y) -> float:
    """Kendall's τ-b written out: (P − Q) / √((P + Q + T)(P + Q + U)), T / U ties in x / y only."""
    p = q = t = u = 0
    for i, j in combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            t += 1
        elif dy == 0:
            u += 1
        elif dx == dy:
            p += 1
        else:
            q += 1
    return (p - q) / math.sqrt((p + q + t) * (p + q + u))


def test_rmspe_and_within_pct_by_hand():
    predicted, measured = [1.0, 2.0, 3.3, 0.5], [1.0, 2.5, 3.0, 0.4]
    # relative errors 0, −0.2, 0.1, 0.25
    assert rmspe(predicted, measured) == pytest.approx(100 * math.sqrt((0 + 0.04 + 0.01 + 0.0625) / 4))
    assert rmspe(predicted, measured) == pytest.approx(_rmspe_ref(predicted, measured))
    assert within_pct(predicted, measured, 5) == 0.25
    assert within_pct(predicted, measured, 10) == 0.5  # 10 % exactly counts as within
    assert within_pct(predicted, measured, 20) == 0.75
    assert within_pct(predicted, measured, 25) == 1.0
    assert rmspe(measured, measured) == 0.0
    rng = np.random.default_rng(0)
    m = rng.uniform(0.5, 5, 50)
    p = m * (1 + rng.normal(0, 0.1, 50))
    rel = np.abs(p - m) / m
    assert rmspe(p, m) == pytest.approx(_rmspe_ref(p, m))
    assert within_pct(p, m, 7.5) == pytest.approx(sum(r <= 0.075 for r in rel) / 50)


def test_kendall_tau_by_hand():
    rng = np.random.default_rng(1)
    x = rng.uniform(1, 2, 30)
    y = x + rng.normal(0, 0.2, 30)
    assert kendall_tau(x, y) == pytest.approx(_tau_b(x, y))
    xt, yt = np.round(x, 1), np.round(y, 1)  # with ties: τ-b
    assert kendall_tau(xt, yt) == pytest.approx(_tau_b(xt, yt))
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1.0], [2.0]))
    assert math.isnan(kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_prediction_metrics_collects_them():
    p, m = [1.0, 2.2, 2.9, 4.5], [1.1, 2.0, 3.0, 4.0]
    out = prediction_metrics(p, m)
    assert out == {"rmspe": pytest.approx(_rmspe_ref(p, m)), "within_5pct": 0.25, "within_10pct": 0.75,
                   "kendall_tau": pytest.approx(1.0), "n_test": 4}


@pytest.mark.parametrize("fn", [rmspe, kendall_tau, lambda p, m: within_pct(p, m, 10)])
@pytest.mark.parametrize("predicted, measured, match", [
    ([1.0, 2.0], [1.0, 2.0, 3.0], "equally long"),
    ([], [], "non-empty"),
    ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
    ([1.0, 2.0], [1.0, 0.0], "positive"),
    ([1.0, 2.0], [1.0, -3.0], "positive"),
    ([1.0, 2.0], [1.0, float("nan")], "positive"),
])
def test_metrics_refuse_bad_input(fn, predicted, measured, match):
    with pytest.raises(ValueError, match=match):
        fn(predicted, measured)


# ---- cost models -----------------------------------------------------------------------------

def test_create_cost_model_and_names():
    assert cost_model_names() == list(COST_MODELS) == ["flops", "lookup", "linear", "gbt", "forest"]
    # Each model module registers its own classes: the registry is the only list of them.
    assert {n: (c.__module__, c.__name__) for n, c in COST_MODELS.items()} == {
        "flops": ("predictors.linear", "FlopsModel"), "lookup": ("predictors.linear", "LookupModel"),
        "linear": ("predictors.linear", "LinearModel"), "gbt": ("predictors.trees", "GBTModel"),
        "forest": ("predictors.trees", "ForestModel")}
    for name in cost_model_names():
        m = create_cost_model(name, seed=3)
        assert m.name == name and m.seed == 3 and not m.fitted
    with pytest.raises(ValueError, match="unknown cost model 'xgboost'; valid: flops, lookup, linear, gbt, forest"):
        create_cost_model("xgboost")
    with pytest.raises(ValueError, match="unknown cost model"):
        create_cost_model(["flops"])


def test_register_cost_model_refuses_a_taken_name_and_non_models():
    from predictors import register_cost_model

    class Impostor(ForestModel):
        name = "forest"

    with pytest.raises(ValueError, match="cost model 'forest' is already registered"):
        register_cost_model(Impostor)
    with pytest.raises(TypeError, match="takes a CostModel subclass"):
        register_cost_model(dict)
    assert COST_MODELS["forest"] is ForestModel
    assert register_cost_model(ForestModel) is ForestModel and list(COST_MODELS)[-1] == "forest"


def test_samples_refuse_mismatched_lengths():
    archs = _archs("digits-s", 3, seed=600)
    feats = pd.DataFrame([arch_features(a, 1) for a in archs])
    with pytest.raises(ValueError, match="as many archs"):
        Samples(archs, np.array([1, 1]), feats)
    with pytest.raises(ValueError, match="as many archs"):
        Samples(archs[:2], np.array([1, 1, 1]), feats)
    s = Samples(archs, [1, 1, 1], feats)
    assert len(s) == 3 and s.batch_sizes.dtype.kind == "i"
    sub = s.subset(np.array([2, 0]))
    assert [a.arch_id for a in sub.archs] == [archs[2].arch_id, archs[0].arch_id]
    assert list(sub.features["macs"]) == [feats["macs"][2], feats["macs"][0]]


@pytest.mark.parametrize("name", cost_model_names())
def test_model_contract(name):
    archs = _archs("digits-s", 30, seed=700)
    batches = [1 if i % 2 else 4 for i in range(len(archs))]
    samples = _samples(archs, batches)
    y = np.array([_latency_true(arch_features(a, b)) for a, b in zip(archs, batches)])
    model = create_cost_model(name)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(samples)
    for bad, match in ((np.where(np.arange(len(y)) == 3, 0.0, y), "positive"),
                       (np.where(np.arange(len(y)) == 3, -1.0, y), "positive"),
                       (np.where(np.arange(len(y)) == 3, np.nan, y), "finite"),
                       (y[:-1], "one target per sample")):
        with pytest.raises(ValueError, match=match):
            create_cost_model(name).fit(samples, bad)
    with pytest.raises(ValueError, match="at least 2 samples"):
        create_cost_model(name).fit(samples.subset(np.array([0])), y[:1])
    assert model.fit(samples, y) is model and model.fitted
    held = _archs("digits-s", 10, seed=750, exclude={a.arch_id for a in archs})
    pred = model.predict(_samples(held, [1] * 5 + [4] * 5))
    truth = np.array([_latency_true(arch_features(a, b)) for a, b in zip(held, [1] * 5 + [4] * 5)])
    assert pred.shape == (10,) and np.all(np.isfinite(pred)) and np.all(pred > 0)
    # Every model follows the cost; the lookup table, fitted on 15 networks per batch size, misses
    # the entries those networks never used (measured: flops 7 %, lookup 26 %, the others 4 %).
    assert rmspe(pred, truth) < {"lookup": 40.0, "flops": 15.0}.get(name, 10.0)


def test_flops_model_recovers_one_line_per_batch_size():
    archs = _archs("digits-s", 30, seed=800)
    lines = {1: (2e-6, 0.3), 4: (5e-7, 1.1)}  # y = a·MACs + b, different per batch size
    batches = [1 if i % 2 else 4 for i in range(len(archs))]
    samples = _samples(archs, batches)
    y = np.array([lines[b][0] * f + lines[b][1] for b, f in zip(batches, samples.features["macs"])])
    model = create_cost_model("flops").fit(samples, y)
    for b, (a, c) in lines.items():
        fitted_a, fitted_c = model.per_batch[b]  # (slope, intercept)
        assert fitted_a == pytest.approx(a, rel=1e-9)
        assert fitted_c == pytest.approx(c, rel=1e-9)
    held = _archs("digits-s", 8, seed=850, exclude={a.arch_id for a in archs})
    for b, (a, c) in lines.items():
        s = _samples(held, [b] * len(held))
        np.testing.assert_allclose(model.predict(s), a * s.features["macs"].to_numpy() + c, rtol=1e-9)
    with pytest.raises(ValueError, match=r"fitted for batch sizes \[1, 4\], not 2"):
        model.predict(_samples(held, [2] * len(held)))


def test_flops_line_is_never_below_a_non_negative_fixed_cost():
    space = create_space("digits-s")
    small, big = space.min_arch(), space.max_arch()
    mid = _archs("digits-s", 1, seed=900)[0]
    samples = _samples([small, mid], [1, 1])
    m_small, m_mid = samples.features["macs"]
    assert m_small < m_mid
    # Falling costs: the unconstrained line through both points goes below 0 at the largest network;
    # a cost does not fall as compute grows, so the slope stops at 0: the mean, everywhere.
    m_big = arch_features(big, 1)["macs"]
    assert 2.0 + (m_big - m_small) * (1.0 - 2.0) / (m_mid - m_small) < 0
    model = create_cost_model("flops").fit(samples, [2.0, 1.0])
    assert model.per_batch[1] == pytest.approx((0.0, 1.5), rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.predict(_samples([big], [1]))[0] == pytest.approx(1.5, rel=1e-12)
    # Costs on a line with a negative intercept, profiled only on the larger networks: the free fit
    # (as before) extrapolates to <= 0 for the smallest network; the constrained one stays >= b >= 0.
    archs = _archs("digits-s", 40, seed=910)
    macs = np.array([arch_features(a, 1)["macs"] for a in archs])
    m_small = arch_features(small, 1)["macs"]
    big_half = [a for a, m in zip(archs, macs) if m >= np.median(macs)]
    train = _samples(big_half, [1] * len(big_half))
    m_lo = 0.9 * train.features["macs"].min()
    assert m_small < m_lo
    y = 1e-6 * (train.features["macs"].to_numpy() - m_lo) + 0.01
    free = LinearRegression().fit(train.features[["macs"]].to_numpy(), y)
    assert free.intercept_ < 0 and free.predict([[m_small]])[0] <= 0
    model = create_cost_model("flops").fit(train, y)
    a, b = model.per_batch[1]
    assert a > 0 and b >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred = model.predict(_samples([small] + archs, [1] * (len(archs) + 1)))
    assert np.all(pred >= b) and np.all(pred > 1e-6)


class _FixedCost(CostModel):
    """A stub whose raw predictions are given: what the clamp sees."""

    name = "fixed"
    description = "test stub"

    def __init__(self, raw):
        super().__init__()
        self.raw = np.asarray(raw, dtype=float)

    def _fit(self, samples, y):
        pass

    def _predict(self, samples):
        return self.raw[: len(samples)]

    def _state(self):
        return {}, {"raw": self.raw}

    def _set_state(self, params, arrays):
        self.raw = arrays["raw"]


def test_non_positive_predictions_are_clamped_and_reported():
    samples = _samples(_archs("digits-s", 3, seed=920), [1, 1, 1])
    model = _FixedCost([-2.0, 0.0, 3.5]).fit(samples, [1.0, 1.0, 1.0])
    with pytest.warns(ClampedCostWarning, match=r"fixed cost model predicted a non-positive cost .* clamped to 1e-06.*"
                                            r"not as meeting a budget"):
        pred = model.predict(samples)
    assert list(pred) == [1e-6, 1e-6, 3.5]
    assert issubclass(ClampedCostWarning, RuntimeWarning)
    model.raw = np.array([0.5, 1e-3, 3.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # positive predictions pass as they are, silently
        assert list(model.predict(samples)) == [0.5, 1e-3, 3.5]
    # The tree models clamp their linear part (its log is an input) and report it under their name.
    archs = _archs("digits-s", 30, seed=930)
    fit_samples = _samples(archs, [1] * len(archs))
    gbt = create_cost_model("gbt").fit(fit_samples, [_latency_true(arch_features(a, 1)) for a in archs])
    gbt.base = _FixedCost([-2.0, 0.0, 3.5]).fit(samples, [1.0, 1.0, 1.0])
    with pytest.warns(ClampedCostWarning, match="the linear part of the gbt cost model predicted a non-positive"):
        pred = gbt.predict(samples)
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)


def _restricted_archs(n: int, seed: int) -> list[ArchConfig]:
    """digits-s members with widths 8, 16, {24, 32}, {32, 64}: few enough lookup keys that 90
    samples determine the table (up to the structure every architecture shares)."""
    space = create_space("digits-s")
    out: dict[str, ArchConfig] = {}
    rng = random.Random(seed)
    while len(out) < n:
        a = space.sample(rng)
        widths = (8, 16, rng.choice((24, 32)), rng.choice((32, 64)))
        b = ArchConfig(space="digits-s", stages=tuple(StageArch(width=w, blocks=s.blocks)
                                                      for w, s in zip(widths, a.stages)))
        out.setdefault(b.arch_id, space.validate(b))
    return list(out.values())


def test_lookup_model_fits_an_additive_table():
    space = create_space("digits-s")
    rng = random.Random(5)
    entries = {}  # ground truth: a positive cost per lookup key
    for i, ws in enumerate(((8,), (16,), (24, 32), (32, 64))):
        for w in ws:
            entries[f"base:s{i}:w{w}"] = rng.uniform(0.05, 0.5)
            for k in space.kernel_choices:
                entries[f"k:s{i}:w{w}:{k}"] = rng.uniform(0.05, 0.5)
            for r in space.mlp_ratio_choices:
                entries[f"r:s{i}:w{w}:{r}"] = rng.uniform(0.05, 0.5)
            for o in space.order_choices:
                entries[f"o:s{i}:w{w}:{o}"] = rng.uniform(0.05, 0.5)
    const = 0.25

    def cost(arch):  # c + Σ_stages base + Σ_blocks (kernel + ratio + order)
        return const + sum(entries[k] for k in _lookup_keys(arch))

    archs = _restricted_archs(130, seed=11)
    train, held = archs[:90], archs[90:]
    seen = {k for a in train for k in _lookup_keys(a)}
    assert all(set(_lookup_keys(a)) <= seen for a in held)
    assert all(k in entries for k in seen)
    # Two batch sizes, each its own table: the second costs twice as much.
    samples = _samples(train + train, [1] * 90 + [2] * 90)
    y = np.array([cost(a) for a in train] + [2 * cost(a) for a in train])
    model = create_cost_model("lookup").fit(samples, y)
    assert isinstance(model, LookupModel)
    truth = np.array([cost(a) for a in held])
    np.testing.assert_allclose(model.predict(_samples(held, [1] * len(held))), truth, rtol=1e-6)
    np.testing.assert_allclose(model.predict(_samples(held, [2] * len(held))), 2 * truth, rtol=1e-6)
    table = model.table()
    assert sorted(table) == [1, 2]
    assert set(table[1]) == seen | {"const"}
    assert all(v >= 0 for k, v in table[1].items() if k != "const")
    with pytest.raises(ValueError, match=r"batch sizes \[1, 2\]"):
        model.predict(_samples(held[:1], [8]))


def _lookup_design(archs, columns) -> np.ndarray:
    index = {c: j for j, c in enumerate(columns)}
    x = np.zeros((len(archs), len(columns)))
    for r, a in enumerate(archs):
        for k in _lookup_keys(a):
            if k in index:
                x[r, index[k]] += 1.0
    return x


def _free_intercept_lookup(archs, y) -> tuple[list[str], LinearRegression]:
    """The lookup fit as it was: non-negative entries, but scikit-learn's free intercept."""
    columns = sorted({k for a in archs for k in _lookup_keys(a)})
    return columns, LinearRegression(positive=True).fit(_lookup_design(archs, columns), y)


def test_lookup_constant_is_non_negative_where_a_free_intercept_went_negative():
    """Few noisy profiles (8 networks, fewer than the table's entries), as a first search run has:
    left free, the intercept comes out negative and small networks are predicted at <= 0 ms.
    With the constant inside the non-negative fit every prediction is at least c >= 0 — and the
    least-norm table puts the shared cost in c, so no network is predicted free."""
    train = _archs("cifar10-m", 8, seed=1400)
    rng = np.random.default_rng(14)
    y = np.array([_latency_true(arch_features(a, 1)) for a in train]) * np.exp(0.3 * rng.standard_normal(8))
    held = _archs("cifar10-m", 300, seed=1450, exclude={a.arch_id for a in train})
    # The construction reproduces the defect: the old fit's intercept is negative and it
    # predicts <= 0 for some held-out networks (measured: -9.2, 56 of 300).
    columns, free = _free_intercept_lookup(train, y)
    assert free.intercept_ < -1.0
    assert np.sum(free.predict(_lookup_design(held, columns)) <= 0) >= 10
    model = create_cost_model("lookup").fit(_samples(train, [1] * 8), y)
    table = model.table()[1]
    assert table["const"] > 0 and all(v >= 0 for v in table.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no clamp, no warning
        pred = model.predict(_samples(held, [1] * len(held)))
        fit = model.predict(_samples(train, [1] * 8))
    assert np.all(pred >= table["const"]) and np.all(pred > 1e-6)
    np.testing.assert_allclose(fit, y, rtol=1e-6)  # 8 networks, more entries: it still fits them
    truth = np.array([_latency_true(arch_features(a, 1)) for a in held])
    assert rmspe(pred, truth) < 60.0  # measured: 37 % (the free fit, clamped: 66 %)


# The latency predictor of the audited CIFAR-10 search (srch_c10, 8 networks profiled on a 2-core
# CPU, latency at the reference speed, ms), copied: stages as (width, [(kernel, mlp_ratio, order)]).
_AUDIT_C10 = [
    ([(32, [(3, 2, 1)]), (64, [(5, 4, 2), (5, 3, 2)]), (96, [(3, 2, 1), (7, 2, 1), (3, 4, 1), (7, 3, 1)]),
      (192, [(7, 4, 2)])], 172.150),
    ([(32, [(3, 4, 1), (5, 3, 1)]), (32, [(3, 4, 1), (5, 3, 1)]), (96, [(3, 4, 1), (5, 2, 2)]), (128, [(3, 4, 1)])],
     138.425),
    ([(24, [(7, 4, 1)]), (32, [(3, 3, 2)]), (96, [(3, 3, 2), (3, 3, 2)]), (192, [(3, 4, 1), (3, 3, 2)])], 215.744),
    ([(16, [(3, 2, 1)]), (32, [(3, 2, 1)]), (64, [(3, 2, 1), (3, 2, 1)]), (128, [(3, 2, 1)])], 70.051),
    ([(32, [(7, 4, 2)] * 2), (64, [(7, 4, 2)] * 2), (128, [(7, 4, 2)] * 4), (256, [(7, 4, 2)] * 2)], 192.350),
    ([(32, [(3, 4, 1), (5, 2, 2)]), (32, [(5, 3, 2), (3, 4, 1)]), (96, [(5, 3, 1), (3, 3, 1)]), (256, [(3, 3, 2)])],
     126.602),
    ([(16, [(3, 2, 1)]), (32, [(3, 2, 1)]), (64, [(3, 2, 1), (3, 2, 1)]), (256, [(3, 3, 1)])], 20.624),
    ([(16, [(3, 2, 1)]), (32, [(3, 2, 2)]), (64, [(3, 2, 2), (3, 2, 1)]), (256, [(3, 3, 1)])], 119.162),
]
# The network its search picked at a predicted 0.0000 ms (b07c929c6f01; measured 8.87 ms).
_AUDIT_B07 = [(16, [(3, 2, 1), (7, 2, 1)]), (48, [(5, 2, 2)]), (64, [(7, 3, 1), (3, 2, 1)]),
              (192, [(7, 3, 1), (3, 4, 2)])]


def _c10(stages) -> ArchConfig:
    arch = ArchConfig(space="cifar10-m", stages=tuple(
        StageArch(width=w, blocks=tuple(BlockArch(kernel_size=k, mlp_ratio=r, order=o) for k, r, o in blocks))
        for w, blocks in stages))
    return create_space("cifar10-m").validate(arch)


def test_lookup_on_the_audited_table_predicts_no_free_network():
    train = [_c10(stages) for stages, _ in _AUDIT_C10]
    y = np.array([ms for _, ms in _AUDIT_C10])
    b07 = _c10(_AUDIT_B07)
    assert b07.arch_id == "b07c929c6f01"
    columns, free = _free_intercept_lookup(train, y)  # as the audited artifact was fitted
    assert free.intercept_ == pytest.approx(-27.62, abs=0.01)
    assert free.predict(_lookup_design([b07], columns))[0] < 0  # clamped to 1e-6: "0.0000 ms"
    model = create_cost_model("lookup").fit(_samples(train, [1] * len(train)), y)
    const = model.table()[1]["const"]
    assert const == pytest.approx(y.min(), rel=1e-6)  # the cost every profile shares, at least
    others = _archs("cifar10-m", 200, seed=1500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred_b07 = model.predict(_samples([b07], [1]))[0]
        pred = model.predict(_samples(others, [1] * len(others)))
        fit = model.predict(_samples(train, [1] * len(train)))
    assert pred_b07 > const  # measured: 63.8 ms at the reference speed
    assert np.all(pred >= const)
    np.testing.assert_allclose(fit, y, rtol=1e-6)


def test_linear_model_recovers_a_linear_function():
    archs = _archs("digits-s", 60, seed=1000)
    batches = [(1, 4, 8)[i % 3] for i in range(len(archs))]

    def cost(f):
        return 0.5 + 2e-6 * f["macs"] + 0.02 * f["n_ops"] + 1e-7 * f["bytes_moved"] + 0.05 * f["n_quadratic"]

    samples = _samples(archs, batches)
    y = samples.features.apply(cost, axis=1).to_numpy()
    model = create_cost_model("linear").fit(samples, y)
    held = _archs("digits-s", 20, seed=1100, exclude={a.arch_id for a in archs})
    hb = [(1, 4, 8)[i % 3] for i in range(len(held))]
    hs = _samples(held, hb)
    truth = hs.features.apply(cost, axis=1).to_numpy()
    pred = model.predict(hs)
    np.testing.assert_allclose(pred, truth, rtol=2e-3)  # measured: 3e-4
    # Columns are used by name: a reordered feature table gives the same predictions.
    shuffled = Samples(hs.archs, hs.batch_sizes, hs.features[hs.features.columns[::-1]])
    np.testing.assert_allclose(model.predict(shuffled), pred, rtol=1e-12)


def _smooth_cost(f) -> float:
    return 0.3 + 1.5 * math.sqrt(f["macs"] / 1e6) + 0.01 * f["n_ops"]


@pytest.mark.parametrize("name", ["gbt", "forest"])
def test_tree_models_fit_smooth_costs(name):
    archs = _archs("digits-s", 80, seed=1200)
    batches = [1 if i % 2 else 4 for i in range(len(archs))]
    samples = _samples(archs, batches)
    y = samples.features.apply(_smooth_cost, axis=1).to_numpy()
    model = create_cost_model(name, seed=0).fit(samples, y)
    held = _archs("digits-s", 30, seed=1300, exclude={a.arch_id for a in archs})
    hs = _samples(held, [1 if i % 2 else 4 for i in range(len(held))])
    truth = hs.features.apply(_smooth_cost, axis=1).to_numpy()
    assert rmspe(model.predict(hs), truth) < 5.0


def test_tree_models_learn_what_the_linear_part_misses():
    """A smooth step in MACs (the kind of turn a cache or a GPU wave makes): the linear model
    cannot bend, the trees fitted on its log ratio can."""
    def cost(f):
        return (0.2 + 1e-6 * f["macs"] + 0.01 * f["n_ops"]) * math.exp(0.5 * math.tanh((f["macs"] - 8e5) / 2e5))

    archs = _archs("digits-s", 120, seed=1200)
    samples = _samples(archs, [1] * len(archs))
    y = samples.features.apply(cost, axis=1).to_numpy()
    held = _samples(_archs("digits-s", 40, seed=1300, exclude={a.arch_id for a in archs}), [1] * 40)
    truth = held.features.apply(cost, axis=1).to_numpy()
    linear = rmspe(create_cost_model("linear").fit(samples, y).predict(held), truth)
    assert linear > 15.0  # measured: 23 %
    for name in ("gbt", "forest"):  # measured: 9 % each
        assert rmspe(create_cost_model(name).fit(samples, y).predict(held), truth) < 0.6 * linear, name


def test_forest_tree_spread():
    archs = _archs("digits-s", 40, seed=1400)
    samples = _samples(archs, [1] * len(archs))
    rng = np.random.default_rng(0)
    y = samples.features.apply(_smooth_cost, axis=1).to_numpy() * (1 + 0.05 * rng.standard_normal(len(archs)))
    model = create_cost_model("forest")
    assert isinstance(model, ForestModel)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.tree_spread(samples)
    model.fit(samples, y)
    held = _samples(_archs("digits-s", 7, seed=1450), [1] * 7)
    spread = model.tree_spread(held)
    assert spread.shape == (7,)
    assert np.all(np.isfinite(spread)) and np.all(spread >= 0) and np.any(spread > 0)
    # Its value: the standard deviation over the trees of their log-ratio predictions.
    base = model.base.predict(held)
    x = np.column_stack([held.features.to_numpy(), np.log(base)])
    per_tree = np.array([t.predict(x) for t in model.estimator.estimators_])
    np.testing.assert_allclose(spread, np.sqrt(((per_tree - per_tree.mean(0)) ** 2).mean(0)), rtol=1e-9)


# ---- cost models: one NumPy prediction path, data-only state ---------------------------------

@pytest.fixture(scope="module")
def state_data():
    """Noisy costs of 60 networks at batch sizes 1 and 4, and 30 held-out networks at both."""
    archs = _archs("digits-s", 60, seed=2100)
    batches = [1 if i % 2 else 4 for i in range(len(archs))]
    samples = _samples(archs, batches)
    rng = np.random.default_rng(21)
    y = samples.features.apply(_smooth_cost, axis=1).to_numpy() * np.exp(0.05 * rng.standard_normal(len(archs)))
    held = _archs("digits-s", 30, seed=2200, exclude={a.arch_id for a in archs})
    return samples, y, _samples(held, [1] * 15 + [4] * 15)


@pytest.fixture(scope="module")
def state_models(state_data):
    samples, y, _ = state_data
    return {name: create_cost_model(name, seed=2).fit(samples, y) for name in cost_model_names()}


def _through_files(params, arrays):
    """``(params, arrays)`` as an artifact stores them: JSON text and safetensors bytes."""
    return json.loads(json.dumps(params)), safetensors.numpy.load(safetensors.numpy.save(arrays))


def test_linear_predictions_equal_scikit_learns(state_models, state_data):
    model, held = state_models["linear"], state_data[2]
    x = held.features[model.columns].to_numpy()
    np.testing.assert_allclose(model._predict(held), model.estimator.predict(x), rtol=1e-12, atol=0)
    scaler, ridge = model.estimator[0], model.estimator[-1]
    np.testing.assert_array_equal(model.mean, scaler.mean_)
    np.testing.assert_array_equal(model.scale, scaler.scale_)
    np.testing.assert_array_equal(model.coef, ridge.coef_)
    assert model.intercept == ridge.intercept_


@pytest.mark.parametrize("name", ["gbt", "forest"])
def test_tree_predictions_equal_scikit_learns(state_models, state_data, name):
    """The NumPy walk over the exported node arrays gives what scikit-learn's trees give: tree by
    tree, and for the ensemble (boosting: init + learning_rate · Σ stages; forest: the mean)."""
    model = state_models[name]
    x, _ = model._inputs(state_data[2])
    trees = list(model.estimator.estimators_[:, 0]) if name == "gbt" else model.estimator.estimators_
    assert model.trees.n_trees == len(trees) == 300
    np.testing.assert_allclose(model.trees.leaf_values(x), np.array([t.predict(x) for t in trees]), rtol=1e-12,
                               atol=0)
    np.testing.assert_allclose(model.log_ratio(x), model.estimator.predict(x), rtol=1e-12, atol=1e-15)
    # The features are compared as float32, as scikit-learn does: a value above a root's threshold
    # in float64 that rounds to a float32 at or below it goes left (a float64 walk goes right).
    near, k = _float32_edge_case(trees, x[0])
    assert _walk64(trees[k].tree_, near[0]) != trees[k].predict(near)[0]
    assert model.trees.leaf_values(near)[k, 0] == trees[k].predict(near)[0]
    np.testing.assert_allclose(model.log_ratio(near), model.estimator.predict(near), rtol=1e-12, atol=1e-15)


def _walk64(tree, row) -> float:
    """One scikit-learn tree walked with the features left in float64 (which scikit-learn does not do)."""
    node = 0
    while tree.children_left[node] != -1:
        go_left = row[tree.feature[node]] <= tree.threshold[node]
        node = tree.children_left[node] if go_left else tree.children_right[node]
    return float(tree.value[node, 0, 0])


def _float32_edge_case(trees, row) -> tuple[np.ndarray, int]:
    """``row`` with its root feature of some tree ``k`` set just above the root's threshold, to a
    float64 that rounds to a float32 at or below it: the one place the float32 cast decides."""
    for k, est in enumerate(trees):
        t, f = float(est.tree_.threshold[0]), est.tree_.feature[0]
        lo = np.float32(t)
        if float(lo) > t:
            lo = np.nextafter(lo, np.float32(-np.inf))
        mid = (float(lo) + float(np.nextafter(lo, np.float32(np.inf)))) / 2
        v = (t + mid) / 2
        near = row[None, :].copy()
        near[0, f] = v
        if t < v < mid and _walk64(est.tree_, near[0]) != est.predict(near)[0]:
            return near, k
    raise AssertionError("no tree with a root threshold between float32 values")


def test_flops_and_lookup_predict_their_written_out_formulas(state_models, state_data):
    held = state_data[2]
    flops, lookup = state_models["flops"], state_models["lookup"]
    macs = held.features["macs"].to_numpy()
    expected = np.array([flops.per_batch[b][0] * m + flops.per_batch[b][1] for b, m in zip(held.batch_sizes, macs)])
    np.testing.assert_array_equal(flops._predict(held), expected)
    for b in (1, 4):
        idx = np.nonzero(held.batch_sizes == b)[0]
        columns, const, entries = lookup.per_batch[b]
        design = _lookup_design([held.archs[i] for i in idx], columns)
        np.testing.assert_allclose(lookup._predict(held)[idx], const + design @ entries, rtol=1e-12)


@pytest.mark.parametrize("name", cost_model_names())
def test_model_state_round_trip_predicts_bit_identically(state_models, state_data, name):
    model, held = state_models[name], state_data[2]
    params, arrays = model.to_state()
    assert params["model"] == name and params["seed"] == 2
    assert json.loads(json.dumps(params)) == params  # JSON values only
    assert all(isinstance(v, np.ndarray) and v.dtype in (np.float64, np.int64) for v in arrays.values())
    rebuilt = CostModel.from_state(*_through_files(params, arrays))
    assert type(rebuilt) is type(model) and rebuilt.fitted and rebuilt.estimator is None and rebuilt.seed == 2
    np.testing.assert_array_equal(rebuilt.predict(held), model.predict(held))
    assert type(model).from_state(params, arrays).name == name
    again_params, again_arrays = rebuilt.to_state()
    assert again_params == params and again_arrays.keys() == arrays.keys()
    assert all(np.array_equal(again_arrays[k], arrays[k]) for k in arrays)
    if name == "forest":
        np.testing.assert_array_equal(rebuilt.tree_spread(held), model.tree_spread(held))
    # One path: the fitted model never consults its scikit-learn estimator to predict.
    kept, model.estimator = model.estimator, None
    try:
        np.testing.assert_array_equal(model.predict(held), rebuilt.predict(held))
    finally:
        model.estimator = kept


def test_model_state_refuses_what_the_code_did_not_write(state_models):
    params, arrays = state_models["forest"].to_state()
    lookup_params, lookup_arrays = state_models["lookup"].to_state()

    def refused(match, p=params, a=arrays, cls=CostModel):
        with pytest.raises(ValueError, match=match):
            cls.from_state(p, a)

    refused("names model 'xgboost'; valid: flops, lookup, linear, gbt, forest", {**params, "model": "xgboost"})
    refused("model state is of model 'forest', not 'gbt'", cls=GBTModel)
    refused("seed must be a non-negative integer", {**params, "seed": -1})
    refused("params must be a JSON object", p=[params])
    refused(re.escape("missing ['trees.value']"), a={k: v for k, v in arrays.items() if k != "trees.value"})
    refused(re.escape("unexpected ['extra']"), a={**arrays, "extra": np.zeros(1)})
    refused(re.escape("unexpected ['learning_rate']"), {**params, "learning_rate": 0.1})
    refused("'base.coef' must be float64, got float32", a={**arrays, "base.coef": arrays["base.coef"].astype("f4")})
    refused("'trees.threshold' must be finite",
            a={**arrays, "trees.threshold": np.where(np.arange(len(arrays["trees.threshold"])) == 5, np.nan,
                                                     arrays["trees.threshold"])})
    refused(r"'base.mean' must have shape \(68,\)", a={**arrays, "base.mean": arrays["base.mean"][:-1]})
    left = arrays["trees.children_left"]
    internal = int(np.nonzero(left > 0)[0][1])
    cycle = left.copy()
    cycle[internal] = 0  # a child before its parent: a cycle
    refused(f"node {internal} .* is not a tree node", a={**arrays, "trees.children_left": cycle})
    shared = left.copy()
    shared[0] = arrays["trees.children_right"][0]  # both children the same node
    refused("the child of exactly one node", a={**arrays, "trees.children_left": shared})
    feature = arrays["trees.feature"].copy()
    feature[0] = 69  # 68 features + log(linear): 69 is out of range
    refused(r"feature 69 in \[0, 69\)", a={**arrays, "trees.feature": feature})
    negative = {**lookup_arrays, "const": -lookup_arrays["const"] - 1.0}
    refused("'const' must be non-negative", p=lookup_params, a=negative)
    refused("columns must be one list of lookup keys per batch size", p={**lookup_params, "columns": []},
            a=lookup_arrays)
    with pytest.raises(RuntimeError, match="not fitted"):
        create_cost_model("gbt").to_state()


def test_tree_arrays_walk_matches_a_tree_written_out():
    """Two stumps and a depth-2 tree, their predictions written out (left where x <= threshold)."""
    trees = TreeArrays(node_counts=np.array([3, 1, 5]),
                       children_left=np.array([1, -1, -1, -1, 1, 3, -1, -1, -1]),
                       children_right=np.array([2, -1, -1, -1, 2, 4, -1, -1, -1]),
                       feature=np.array([0, -2, -2, -2, 1, 0, -2, -2, -2]),
                       threshold=np.array([0.5, -2, -2, -2, 1.0, 0.25, -2, -2, -2]),
                       value=np.array([0.0, 1.0, 2.0, 7.0, 0.0, 3.0, 10.0, 20.0, 30.0]), n_features=2)
    assert trees.depth == 2 and trees.n_trees == 3
    # Tree 3: x1 <= 1 ? (x0 <= 0.25 ? 20 : 30) : 10. Ties go left.
    x = np.array([[0.5, 1.0], [0.6, 0.0], [0.1, 2.0], [0.2, 0.5]])
    np.testing.assert_array_equal(trees.leaf_values(x), [[1, 2, 1, 1], [7, 7, 7, 7], [30, 30, 10, 20]])
    with pytest.raises(ValueError, match=r"trees take 2 features per sample, got shape \(4, 3\)"):
        trees.leaf_values(np.zeros((4, 3)))


def test_a_non_finite_feature_is_refused_by_name(state_models, state_data):
    held = state_data[2]
    bad = Samples(held.archs, held.batch_sizes, held.features.assign(macs=np.where(
        np.arange(len(held)) == 2, np.nan, held.features["macs"])))
    for name in cost_model_names():
        if name == "lookup":
            continue  # it reads the architectures, not the features
        with pytest.raises(ValueError, match=re.escape("features must be finite; NaN or infinite values in ['macs']")):
            state_models[name].predict(bad)


# ---- profile table ---------------------------------------------------------------------------

def test_append_writes_header_once_and_read_round_trips(tmp_path):
    path = tmp_path / "sub" / "profiles.csv"
    archs = _archs("digits-s", 3, seed=1500)
    rows = [_row(a, b, 1.25 + i, pass_=i % 2) for i, (a, b) in enumerate(zip(archs, (1, 4, 8)))]
    rows[1]["arch_id"] = "0123456789"  # digits with a leading zero stay a string
    rows[2].update(ref_arch_id="feedbeef0000", ref_latency_ms=0.75, suspect="clock changed")
    for r in rows:
        append_profile_row(path, r)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(PROFILE_COLUMNS)
    assert sum(line == lines[0] for line in lines) == 1
    df = read_profiles(path)
    assert list(df.columns) == PROFILE_COLUMNS and len(df) == 3
    for i, r in enumerate(rows):
        for col in ("arch_id", "space", "device", "fingerprint_id", "fingerprint", "arch_json"):
            assert df[col].iloc[i] == r[col], col
        assert df["batch_size"].iloc[i] == r["batch_size"]
        for col in ("latency_ms", "peak_infer_mem_mb", "peak_train_mem_mb"):
            assert df[col].iloc[i] == r[col]
        assert df["pass"].iloc[i] == r["pass"]
        assert ArchConfig.from_json(df["arch_json"].iloc[i]) == archs[i]
        assert DeviceFingerprint.from_json(df["fingerprint"].iloc[i]) == FP
    assert df["batch_size"].dtype.kind == "i"
    assert df["suspect"].iloc[2] == "clock changed" and df["suspect"].iloc[0] == ""
    assert float(df["ref_latency_ms"].iloc[2]) == 0.75


def test_torn_last_line_is_dropped_on_read_and_before_append(tmp_path):
    path = tmp_path / "p.csv"
    archs = _archs("digits-s", 3, seed=1600)
    for a in archs[:2]:
        append_profile_row(path, _row(a, 1))
    full = path.read_bytes()
    torn = _row(archs[2], 1)
    line = ",".join(str(torn.get(c, "")) for c in PROFILE_COLUMNS[:8])
    path.write_bytes(full + line.encode())  # killed mid-write: no newline
    with pytest.warns(UserWarning, match="incomplete last row"):
        df = read_profiles(path)
    assert list(df["arch_id"]) == [a.arch_id for a in archs[:2]]
    with pytest.warns(UserWarning, match="dropping an incomplete last row"):
        append_profile_row(path, _row(archs[2], 1))
    assert path.read_bytes().startswith(full)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = read_profiles(path)
    assert list(df["arch_id"]) == [a.arch_id for a in archs]


@pytest.mark.parametrize("col, value, line", [
    ("latency_ms", "fast", 3), ("latency_ms", "", 4), ("latency_ms", 0.0, 2), ("latency_ms", -1.5, 3),
    ("peak_infer_mem_mb", "n/a", 4), ("peak_train_mem_mb", 0, 2), ("batch_size", "one", 3),
])
def test_bad_numbers_name_the_line(tmp_path, col, value, line):
    path = tmp_path / "p.csv"
    archs = _archs("digits-s", 3, seed=1700)
    for i, a in enumerate(archs):
        row = _row(a, 1)
        if i + 2 == line:  # the header is line 1
            row[col] = value
        append_profile_row(path, row)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line {line}: column {col} must be a positive"):
        read_profiles(path)


def test_table_refuses_malformed_files(tmp_path):
    a = _archs("digits-s", 1, seed=1800)[0]
    row = _row(a, 1)
    # Missing columns.
    path = tmp_path / "missing.csv"
    pd.DataFrame([{k: v for k, v in row.items() if k != "peak_train_mem_mb"}]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"lacks columns \['peak_train_mem_mb'\]"):
        read_profiles(path)
    # Not UTF-8.
    path = tmp_path / "latin.csv"
    path.write_bytes(",".join(PROFILE_COLUMNS).encode() + b"\n\xff\xfe\xfa,1\n")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*not UTF-8"):
        read_profiles(path)
    # Missing and empty files.
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_profiles(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        read_profiles(tmp_path / "empty.csv")


def test_append_refuses_bad_rows_and_foreign_files(tmp_path):
    a = _archs("digits-s", 1, seed=1900)[0]
    path = tmp_path / "p.csv"
    with pytest.raises(ValueError, match=r"unknown columns \['bogus'\]"):
        append_profile_row(path, {**_row(a, 1), "bogus": 1})
    with pytest.raises(ValueError, match=r"lacks required columns \['latency_ms'\]"):
        append_profile_row(path, {k: v for k, v in _row(a, 1).items() if k != "latency_ms"})
    assert not path.exists()  # nothing written by a refused row
    other = tmp_path / "other.csv"
    other.write_text("arch_id,latency_ms\nabc,1.0\n")
    with pytest.raises(ValueError, match="not a profile table of this version"):
        append_profile_row(other, _row(a, 1))
    assert other.read_text() == "arch_id,latency_ms\nabc,1.0\n"


def test_aggregate_takes_the_median_over_passes(tmp_path):
    a, b = _archs("digits-s", 2, seed=2000)
    path = tmp_path / "p.csv"
    # arch a, batch 1: three passes.
    for p, (lat, ref, inf, trn, sus) in enumerate([(2.0, 1.0, 10.0, 100.0, ""), (3.0, 2.0, 30.0, 100.0, "load"),
                                                   (10.0, 4.0, 20.0, 400.0, "clock")]):
        append_profile_row(path, _row(a, 1, lat, pass_=p, peak_infer_mem_mb=inf, peak_train_mem_mb=trn,
                                      ref_arch_id="r", ref_latency_ms=ref, suspect=sus))
    # arch b: one pass at batch 1, two at batch 4; arch a on another device: its own group.
    append_profile_row(path, _row(b, 1, 1.5, ref_arch_id="r", ref_latency_ms=1.0))
    for p, lat in enumerate((4.0, 6.0)):
        append_profile_row(path, _row(b, 4, lat, pass_=p, ref_arch_id="r", ref_latency_ms=2.0))
    append_profile_row(path, _row(a, 1, 7.0, fp=OTHER_FP, ref_arch_id="r", ref_latency_ms=3.5))
    agg = aggregate_profiles(read_profiles(path))
    assert len(agg) == 4
    by = {(r.arch_id, r.batch_size, r.fingerprint_id): r for r in agg.itertuples()}
    ra = by[(a.arch_id, 1, FP.fingerprint_id)]
    assert ra.passes == 3
    assert ra.latency_ms == 3.0 and ra.peak_infer_mem_mb == 20.0 and ra.peak_train_mem_mb == 100.0
    assert ra.ref_latency_ms == 2.0
    # ref_ratio: median over passes of latency / ref (2, 1.5, 2.5) — not median(lat) / median(ref) = 1.5.
    assert ra.ref_ratio == pytest.approx(2.0)
    assert ra.latency_pass_spread == pytest.approx((10.0 - 2.0) / 3.0)
    # ref_ratio_pass_mad: deviations of (2, 1.5, 2.5) from 2 are (0, 0.5, 0.5): median 0.5, over 2.
    assert ra.ref_ratio_pass_mad == pytest.approx(0.25)
    assert ra.suspect == "clock; load"
    rb1, rb4 = by[(b.arch_id, 1, FP.fingerprint_id)], by[(b.arch_id, 4, FP.fingerprint_id)]
    assert (rb1.passes, rb1.latency_ms, rb1.ref_ratio, rb1.latency_pass_spread) == (1, 1.5, 1.5, 0.0)
    assert (rb4.passes, rb4.latency_ms) == (2, 5.0)
    assert rb4.ref_ratio == pytest.approx(2.5) and rb4.latency_pass_spread == pytest.approx(0.4)
    ro = by[(a.arch_id, 1, OTHER_FP.fingerprint_id)]
    assert (ro.passes, ro.latency_ms, ro.ref_ratio) == (1, 7.0, 2.0)
    # Idempotent: an aggregated table comes back unchanged.
    pd.testing.assert_frame_equal(aggregate_profiles(agg), agg)
    # Without reference columns: no ratio, still the median.
    plain = aggregate_profiles(pd.DataFrame([_row(a, 1, v, pass_=p) for p, v in enumerate((5.0, 1.0, 2.0))]))
    assert len(plain) == 1 and plain["latency_ms"].iloc[0] == 2.0 and plain["passes"].iloc[0] == 3
    assert "ref_ratio" not in plain
    empty = aggregate_profiles(pd.DataFrame(columns=PROFILE_COLUMNS))
    assert len(empty) == 0 and "passes" in empty


# ---- Predictor -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train_archs():
    return _archs("digits-s", 48, seed=3000)


@pytest.fixture(scope="module")
def held_archs(train_archs):
    return _archs("digits-s", 20, seed=4000, exclude={a.arch_id for a in train_archs})


@pytest.fixture(scope="module")
def train_table(train_archs):
    return _table(train_archs, noise=0.01, seed=1)


@pytest.fixture(scope="module")
def fitted(train_table):
    return Predictor(target="latency").fit(train_table)


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    return fitted.save(tmp_path_factory.mktemp("predictor") / "latency")


def _copy(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "artifact")


def test_auto_picks_the_best_cross_validated_model(fitted, train_table):
    assert set(fitted.cv_scores) == set(COST_MODELS)
    assert all(np.isfinite(v) and v > 0 for v in fitted.cv_scores.values())
    assert fitted.model_name == min(fitted.cv_scores, key=fitted.cv_scores.get)
    assert fitted.model.name == fitted.model_name
    # The costs are linear in MACs and kernel counts with 1 % noise: the linear model is near the
    # noise floor, the FLOPs-only line misses the per-kernel overhead.
    assert fitted.cv_scores["linear"] < 3.0
    assert fitted.cv_scores[fitted.model_name] < 3.0
    assert fitted.cv_scores["flops"] > 2 * fitted.cv_scores["linear"]
    assert fitted.batch_sizes == list(TRAIN_BATCHES)
    assert fitted.space == "digits-s"
    assert fitted.fingerprint == FP.to_dict()
    assert fitted.feature_schema == feature_names(create_space("digits-s"))
    assert fitted.normalization == "none"
    assert len(fitted.table) == len(train_table)


def test_predict_shapes_and_values(fitted, held_archs):
    for b in TRAIN_BATCHES:
        p = fitted.predict(held_archs, b)
        truth = np.array([_latency_true(arch_features(a, b)) for a in held_archs])
        assert p.shape == (len(held_archs),) and np.all(p > 0)
        np.testing.assert_allclose(p, truth, rtol=0.05)
    one = fitted.predict(held_archs[0], 1)
    assert one.shape == (1,) and one[0] == pytest.approx(fitted.predict(held_archs[:3], 1)[0], rel=1e-12)
    assert fitted.predict([], 1).shape == (0,)


def test_evaluate_on_held_out_table(fitted, held_archs):
    held = _table(held_archs, noise=0.01, seed=2)
    out = fitted.evaluate(held)
    assert out["n_test"] == len(held) and out["n_train"] == len(fitted.table)
    assert out["within_10pct"] >= 0.95 and out["rmspe"] < 5.0 and out["kendall_tau"] > 0.9
    assert "within_10pct_raw" not in out
    # The same figures from the predictions written out here.
    predicted = np.concatenate([fitted.predict(held_archs, b) for b in TRAIN_BATCHES])
    order = [(a.arch_id, b) for b in TRAIN_BATCHES for a in held_archs]
    measured = held.set_index(["arch_id", "batch_size"]).loc[order, "latency_ms"].to_numpy()
    assert out["rmspe"] == pytest.approx(_rmspe_ref(predicted, measured))
    assert out["within_5pct"] == pytest.approx(np.mean(np.abs(predicted - measured) / measured <= 0.05))
    assert out["kendall_tau"] == pytest.approx(_tau_b(predicted, measured))


def test_predict_refuses_bad_requests(fitted, held_archs):
    with pytest.raises(ValueError, match=r"fitted on batch sizes \[1, 8\], not 2"):
        fitted.predict(held_archs, 2)
    cifar = create_space("cifar10-m").min_arch()
    with pytest.raises(ValueError, match="space 'cifar10-m'"):
        fitted.predict([held_archs[0], cifar], 1)
    with pytest.raises(ValueError, match="does not share"):
        fitted.predict(held_archs, 1, space=create_space("cifar10-m"))
    with pytest.raises(RuntimeError, match="not fitted"):
        Predictor().predict(held_archs, 1)
    with pytest.raises(RuntimeError, match="not fitted"):
        Predictor().check_device(FP.to_dict())


def test_predict_refuses_a_bool_batch_size(fitted, held_archs):
    with pytest.raises(ValueError, match="batch"):
        fitted.predict(held_archs, True)


def test_save_load_round_trip(fitted, saved, held_archs):
    assert sorted(p.name for p in saved.iterdir()) == ["model.safetensors", "predictor.json", "train.csv"]
    meta = json.loads((saved / "predictor.json").read_text())
    assert meta["model"] == fitted.model_name and meta["batch_sizes"] == [1, 8]
    assert meta["artifact_version"] == 2
    assert meta["versions"]["scikit-learn"] == __import__("sklearn").__version__
    assert meta["model_state"]["params"]["model"] == fitted.model_name
    assert meta["model_state"]["sha256"] == hashlib.sha256((saved / "model.safetensors").read_bytes()).hexdigest()
    loaded = Predictor.load(saved)
    assert (loaded.model_name, loaded.space, loaded.batch_sizes) == (fitted.model_name, "digits-s", [1, 8])
    assert loaded.fingerprint == fitted.fingerprint and loaded.cv_scores == fitted.cv_scores
    for b in TRAIN_BATCHES:
        np.testing.assert_array_equal(loaded.predict(held_archs, b), fitted.predict(held_archs, b))
    assert len(loaded.table) == len(fitted.table)
    held = _table(held_archs[:8], noise=0.01, seed=3)
    assert loaded.evaluate(held) == fitted.evaluate(held)


@pytest.fixture(scope="module")
def every_model(train_table):
    """A predictor of each cost model, fitted on the same table."""
    return {name: Predictor(model=name, seed=3).fit(train_table) for name in cost_model_names()}


@pytest.mark.parametrize("name", cost_model_names())
def test_every_model_saves_and_loads_bit_identically(every_model, held_archs, tmp_path, name):
    pred = every_model[name]
    art = pred.save(tmp_path / name)
    assert sorted(p.name for p in art.iterdir()) == ["model.safetensors", "predictor.json", "train.csv"]
    meta = json.loads((art / "predictor.json").read_text())
    assert meta["model_state"]["params"] == pred.model.to_state()[0]
    loaded = Predictor.load(art)
    assert loaded.model.name == name and loaded.model.estimator is None
    for b in TRAIN_BATCHES:
        np.testing.assert_array_equal(loaded.predict(held_archs, b), pred.predict(held_archs, b))
    held = _table(held_archs[:8], noise=0.01, seed=3)
    assert loaded.evaluate(held) == pred.evaluate(held)
    # Saved again, the loaded model writes the same arrays, byte for byte.
    again = loaded.save(tmp_path / f"{name}-again")
    assert (again / "model.safetensors").read_bytes() == (art / "model.safetensors").read_bytes()


def test_save_writes_every_file_through_atomic_write(fitted, tmp_path, monkeypatch):
    import predictors.artifact as module
    from search_spaces.atomic import write_atomic

    assert module.write_atomic is write_atomic  # the repository's one atomic writer
    written = []

    def recording(path, data, **kwargs):
        written.append(Path(path).name)
        return write_atomic(path, data, **kwargs)

    monkeypatch.setattr(module, "write_atomic", recording)
    art = fitted.save(tmp_path / "art")
    assert written == ["train.csv", "model.safetensors", "predictor.json"]  # the metadata, with the digest, last
    assert sorted(p.name for p in art.iterdir()) == sorted(written)  # nothing written another way, no leftovers


def test_read_metadata_gives_predictor_json_without_loading_the_model(fitted, saved, tmp_path):
    art = _copy(saved, tmp_path)
    on_disk = json.loads((art / "predictor.json").read_text())
    (art / "model.safetensors").write_bytes(b"damaged")  # not read
    meta = Predictor.read_metadata(str(art))
    assert meta == on_disk and meta["model"] == fitted.model_name and meta["artifact_version"] == 2
    assert {k: v for k, v in meta.items() if k not in ("model_state", "versions")} == {
        k: v for k, v in fitted.metadata().items() if k != "versions"}
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path} is not a predictor artifact")):
        Predictor.read_metadata(tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"the artifact directory holding it is {art}")):
        Predictor.read_metadata(art / "predictor.json")
    del on_disk["fingerprint"]
    (art / "predictor.json").write_text(json.dumps(on_disk))
    with pytest.raises(ValueError, match=re.escape(f"predictor metadata {art / 'predictor.json'} lacks "
                                                   f"['fingerprint']")):
        Predictor.read_metadata(art)


def test_an_artifact_saved_under_another_scikit_learn_loads_and_predicts_the_same(fitted, saved, held_archs,
                                                                                  tmp_path):
    art = _copy(saved, tmp_path)
    meta = json.loads((art / "predictor.json").read_text())
    meta["versions"]["scikit-learn"] = "0.0.1"
    (art / "predictor.json").write_text(json.dumps(meta))
    loaded = Predictor.load(art)  # the arrays and the NumPy code that reads them do not depend on it
    for b in TRAIN_BATCHES:
        np.testing.assert_array_equal(loaded.predict(held_archs, b), fitted.predict(held_archs, b))
    held = _table(held_archs[:8], noise=0.01, seed=3)
    assert loaded.evaluate(held) == fitted.evaluate(held)


def test_refit_rebuilds_from_predictor_json_and_train_csv(fitted, saved, held_archs, tmp_path):
    art = _copy(saved, tmp_path)
    (art / "model.safetensors").unlink()  # refit needs only predictor.json and train.csv
    refitted = Predictor.refit(art)
    assert refitted.model_name == fitted.model_name
    assert refitted.cv_scores == pytest.approx(fitted.cv_scores, rel=1e-6)
    loaded = Predictor.load(art)
    for b in TRAIN_BATCHES:
        np.testing.assert_array_equal(loaded.predict(held_archs, b), refitted.predict(held_archs, b))
        np.testing.assert_allclose(refitted.predict(held_archs, b), fitted.predict(held_archs, b), rtol=1e-6)


class _Planted:
    """What a planted pickle can do: unpickling it calls ``Path.touch(marker)``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _planted_pickle(marker) -> bytes:
    return pickle.dumps(_Planted(marker), protocol=pickle.HIGHEST_PROTOCOL)


def _legacy_message(art, *why: str) -> str:
    return (f"predictor {art} is in the old pickle format ({'; '.join(why)}), which is not loaded because unpickling "
            f"can run code; rebuild it from its predictor.json and train.csv (the pickle is not read, and is "
            f"removed) with: nas predictors refit {art}")


@pytest.mark.parametrize("victim", ["model.pkl", "model.safetensors"])
def test_a_planted_pickle_is_never_unpickled(fitted, saved, held_archs, tmp_path, victim):
    live = tmp_path / "live"
    pickle.loads(_planted_pickle(live))
    assert live.exists()  # the payload is live: unpickling it runs code
    art, marker = _copy(saved, tmp_path), tmp_path / "marker"
    (art / victim).write_bytes(_planted_pickle(marker))
    expected = {"model.pkl": re.escape(_legacy_message(art, f"it holds {art / 'model.pkl'}")),
                "model.safetensors": re.escape(f"predictor model {art / 'model.safetensors'} is corrupted") + ".*"
                                     + re.escape(f"`nas predictors refit {art}` rebuilds it from train.csv")}[victim]
    with pytest.raises(ValueError, match=expected):
        Predictor.load(art)
    assert not marker.exists()
    Predictor.refit(art)  # rebuilds without reading it
    assert not marker.exists()
    assert sorted(p.name for p in art.iterdir()) == ["model.safetensors", "predictor.json", "train.csv"]
    np.testing.assert_array_equal(Predictor.load(art).predict(held_archs, 1), fitted.predict(held_archs, 1))


def _old_artifact(saved, tmp_path, marker) -> Path:
    """An artifact as version 1 wrote it: artifact_version 1, no model_state, the model in model.pkl
    (here a planted pickle), no model.safetensors."""
    art = _copy(saved, tmp_path)
    meta = json.loads((art / "predictor.json").read_text())
    meta["artifact_version"] = 1
    del meta["model_state"]
    (art / "predictor.json").write_text(json.dumps(meta, indent=2))
    (art / "model.safetensors").unlink()
    (art / "model.pkl").write_bytes(_planted_pickle(marker))
    return art


def test_an_old_pickle_artifact_is_refused_and_refit_migrates_it(fitted, saved, held_archs, tmp_path):
    marker = tmp_path / "marker"
    art = _old_artifact(saved, tmp_path, marker)
    version = f"{art / 'predictor.json'} is artifact version 1"
    with pytest.raises(ValueError, match="^" + re.escape(_legacy_message(art, f"it holds {art / 'model.pkl'}",
                                                                          version)) + "$"):
        Predictor.load(art)
    assert not marker.exists()
    pickled = (art / "model.pkl").read_bytes()
    (art / "model.pkl").unlink()  # version 1 alone is refused too (its model is a pickle)
    with pytest.raises(ValueError, match="^" + re.escape(_legacy_message(art, version)) + "$"):
        Predictor.load(art)
    (art / "model.pkl").write_bytes(pickled)
    refitted = Predictor.refit(art)
    assert not marker.exists()
    assert sorted(p.name for p in art.iterdir()) == ["model.safetensors", "predictor.json", "train.csv"]
    assert json.loads((art / "predictor.json").read_text())["artifact_version"] == 2
    loaded = Predictor.load(art)
    assert loaded.model_name == fitted.model_name
    for b in TRAIN_BATCHES:
        np.testing.assert_array_equal(loaded.predict(held_archs, b), refitted.predict(held_archs, b))
        np.testing.assert_allclose(loaded.predict(held_archs, b), fitted.predict(held_archs, b), rtol=1e-6)


def test_refit_of_a_header_only_train_csv_names_the_file(saved, tmp_path):
    art = _copy(saved, tmp_path)
    header = (art / "train.csv").read_text().splitlines()[0]
    (art / "train.csv").write_text(header + "\n")
    before = {p.name: p.read_bytes() for p in art.iterdir()}
    with pytest.raises(ValueError, match=re.escape(f"predictor training table {art / 'train.csv'} has no rows")):
        Predictor.refit(art)
    assert {p.name: p.read_bytes() for p in art.iterdir()} == before


def _write_model_state(art, model) -> None:
    """``model``'s state written into ``art`` consistently: arrays, and params + digest in predictor.json."""
    params, arrays = model.to_state()
    blob = safetensors.numpy.save(arrays)
    (art / "model.safetensors").write_bytes(blob)
    meta = json.loads((art / "predictor.json").read_text())
    meta["model_state"] = {"params": params, "sha256": hashlib.sha256(blob).hexdigest()}
    (art / "predictor.json").write_text(json.dumps(meta))


def test_load_refuses_damaged_artifacts(fitted, saved, train_table, tmp_path):
    art = _copy(saved, tmp_path)
    model_path = art / "model.safetensors"
    good_model = model_path.read_bytes()
    good_json = (art / "predictor.json").read_text()
    refit = re.escape(f"`nas predictors refit {art}` rebuilds it from train.csv")
    for damaged in (good_model[: len(good_model) // 2], b"not safetensors at all", b""):
        model_path.write_bytes(damaged)
        with pytest.raises(ValueError, match=re.escape(str(model_path)) + ".*corrupted.*" + refit):
            Predictor.load(art)
    flipped = bytearray(good_model)
    flipped[-3] ^= 0x10  # a coefficient's bit: still parses, caught by the recorded digest
    model_path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=re.escape(str(model_path)) + ".*SHA-256 differs.*" + refit):
        Predictor.load(art)
    other = next(n for n in cost_model_names() if n != fitted.model_name)
    samples = fitted._table_samples(fitted.table)
    _write_model_state(art, create_cost_model(other).fit(samples, fitted._target_values(fitted.table)))
    with pytest.raises(ValueError, match=f"holds '{other}', metadata says '{fitted.model_name}'"):
        Predictor.load(art)
    meta = json.loads(good_json)

    def with_digest(blob: bytes) -> None:  # a file the recorded digest matches
        model_path.write_bytes(blob)
        meta["model_state"]["sha256"] = hashlib.sha256(blob).hexdigest()
        (art / "predictor.json").write_text(json.dumps(meta))

    with_digest(b"not safetensors, digest recorded")
    with pytest.raises(ValueError, match=re.escape(str(model_path)) + r" is corrupted \(SafetensorError.*" + refit):
        Predictor.load(art)
    _, arrays = fitted.model.to_state()
    with_digest(safetensors.numpy.save(dict(list(arrays.items())[1:])))  # not the model's state
    with pytest.raises(ValueError, match=re.escape(str(model_path)) + ".*is not a valid model.*missing.*" + refit):
        Predictor.load(art)
    del meta["model_state"]
    (art / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=re.escape(str(art / "predictor.json")) + ": model_state must be.*" + refit):
        Predictor.load(art)
    (art / "predictor.json").write_text(good_json)
    model_path.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"predictor {art} has no model.safetensors; ") + refit):
        Predictor.load(art)
    model_path.write_bytes(good_model)
    assert Predictor.load(art).model_name == fitted.model_name

    meta_path = art / "predictor.json"
    for text, match in (("{not json", "unreadable or corrupted"), (good_json[: len(good_json) // 2], "corrupted"),
                        ("[1, 2]", "not a JSON object")):
        meta_path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(str(meta_path)) + ".*" + match):
            Predictor.load(art)
    meta_path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match=re.escape(str(meta_path))):
        Predictor.load(art)
    for change, match in (({"artifact_version": 99}, "artifact version 99"), ({"model": "xgboost"}, "'xgboost'"),
                          ({"target": "energy"}, "'energy'")):
        meta_path.write_text(json.dumps({**json.loads(good_json), **change}))
        with pytest.raises(ValueError, match=re.escape(str(meta_path)) + ".*" + match):
            Predictor.load(art)
    meta = json.loads(good_json)
    del meta["fingerprint"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"lacks \['fingerprint'\]"):
        Predictor.load(art)
    meta_path.unlink()
    with pytest.raises(FileNotFoundError, match="not a predictor artifact"):
        Predictor.load(art)
    with pytest.raises(FileNotFoundError):
        Predictor.load(tmp_path / "does-not-exist")
    with pytest.raises(FileNotFoundError):
        Predictor.refit(tmp_path / "does-not-exist")


def test_load_refuses_a_versions_field_that_is_not_an_object(saved, tmp_path):
    art = _copy(saved, tmp_path)
    meta = json.loads((art / "predictor.json").read_text())
    meta["versions"] = "1.5"
    (art / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="predictor.json"):
        Predictor.load(art)


def test_device_checks(fitted, saved):
    fitted.check_device(FP.to_dict())  # its own device
    with pytest.raises(DeviceMismatch, match=r"name: 'Test CPU' != 'Other CPU'") as err:
        fitted.check_device(OTHER_FP.to_dict())
    assert isinstance(err.value, ValueError)
    assert "fitted on cpu Test CPU" in str(err.value) and "--force" in str(err.value)
    fitted.check_device(OTHER_FP.to_dict(), force=True)
    with pytest.raises(DeviceMismatch, match=r"threads: 2 != 8") as err:
        fitted.check_device(replace(FP, threads=8).to_dict())
    assert "name" not in str(err.value).split("differing:")[1]
    with pytest.raises(DeviceMismatch, match=r"cpu_cores: 2 != 4"):
        Predictor.load(saved, fingerprint=replace(FP, cpu_cores=4).to_dict())
    assert Predictor.load(saved, fingerprint=OTHER_FP.to_dict(), force=True).model_name == fitted.model_name
    assert Predictor.load(saved, fingerprint=FP.to_dict()).model_name == fitted.model_name


def test_fit_refuses_bad_tables(train_archs, train_table):
    small = train_table.iloc[:0]
    with pytest.raises(ValueError, match="non-empty profile table"):
        Predictor().fit(small)
    with pytest.raises(ValueError, match="non-empty profile table"):
        Predictor().fit(train_table.to_dict("records"))
    with pytest.raises(ValueError, match=r"lacks columns \['latency_ms'\]"):
        Predictor().fit(train_table.drop(columns=["latency_ms"]))
    two_devices = pd.concat([train_table, _table(train_archs[:5], fp=OTHER_FP)], ignore_index=True)
    with pytest.raises(ValueError, match="2 devices") as err:
        Predictor().fit(two_devices)
    assert FP.fingerprint_id in str(err.value) and OTHER_FP.fingerprint_id in str(err.value)
    cifar = _table(_archs("cifar10-m", 3, seed=5000), batch_sizes=(1,))
    with pytest.raises(ValueError, match="several spaces"):
        Predictor().fit(pd.concat([train_table, cifar], ignore_index=True))
    few = _table(train_archs[:4], batch_sizes=(1,))
    with pytest.raises(ValueError, match="at least 5 profiled architectures to fit, got 4"):
        Predictor().fit(few)
    with pytest.raises(ValueError, match="at least 8 profiled"):
        Predictor(folds=8).fit(_table(train_archs[:7], batch_sizes=(1,)))
    bad_json = train_table.copy()
    bad_json.loc[3, "arch_json"] = '{"space": "digits-s"}'
    with pytest.raises(ValueError, match="row 3: bad arch_json"):
        Predictor(model="linear").fit(bad_json)


@pytest.mark.parametrize("kw, match", [
    ({"target": "energy"}, "unknown target 'energy'; valid: latency, memory, train_memory"),
    ({"model": "xgboost"}, "unknown model 'xgboost'; valid: auto, flops, lookup, linear, gbt, forest"),
    ({"normalize": "yes"}, "unknown normalize 'yes'; valid: auto, reference, none"),
    ({"folds": 1}, "folds must be an integer >= 2"),
    ({"folds": 2.5}, "folds must be an integer >= 2"),
    ({"folds": True}, "folds must be an integer >= 2"),
])
def test_predictor_refuses_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        Predictor(**kw)


def test_fit_uses_the_median_over_passes(train_archs, held_archs):
    rng = np.random.default_rng(4)
    rows = []
    for a in train_archs[:30]:
        true = _latency_true(arch_features(a, 1))
        slow = rng.integers(3)  # one pass of three hit by a burst of load: 5× slower
        rows += [_row(a, 1, true * (5.0 if p == slow else 1.0), pass_=p) for p in range(3)]
    pred = Predictor(model="linear").fit(pd.DataFrame(rows))
    assert len(pred.table) == 30 and set(pred.table["passes"]) == {3}
    truth = np.array([_latency_true(arch_features(a, 1)) for a in held_archs])
    np.testing.assert_allclose(pred.predict(held_archs, 1), truth, rtol=0.02)


def test_memory_targets(train_archs, held_archs):
    table = _table(train_archs[:30], batch_sizes=(1,), ref_arch_id="r", ref_latency_ms=1.0)
    for target, column in (("memory", "peak_infer_mem_mb"), ("train_memory", "peak_train_mem_mb")):
        pred = Predictor(target=target, model="linear").fit(table)
        assert pred.column == column and pred.normalization == "none"  # references are for latency
        truth = _table(held_archs, batch_sizes=(1,))[column].to_numpy()
        np.testing.assert_allclose(pred.predict(held_archs, 1), truth, rtol=0.02)
    with pytest.raises(ValueError, match="normalize='reference' needs a latency table"):
        Predictor(target="memory", model="linear", normalize="reference").fit(table)


def _drifting_table(archs, ref: ArchConfig, *, seed: int) -> pd.DataFrame:
    """Latency = true × drift and ref_latency = ref_true × drift, drift per row in [0.7, 1.3]:
    the machine's speed changing between rows, measured by the reference beside each row."""
    rng = np.random.default_rng(seed)
    ref_true = _latency_true(arch_features(ref, 1))
    rows = []
    for a in archs:
        drift = rng.uniform(0.7, 1.3)
        rows.append(_row(a, 1, _latency_true(arch_features(a, 1)) * drift, ref_arch_id=ref.arch_id,
                         ref_latency_ms=ref_true * drift))
    return pd.DataFrame(rows)


def test_reference_normalisation(train_archs, held_archs, tmp_path):
    ref = create_space("digits-s").min_arch()
    ref_true = _latency_true(arch_features(ref, 1))
    train = _drifting_table(train_archs, ref, seed=5)
    held = _drifting_table(held_archs, ref, seed=6)
    pred = Predictor(model="linear").fit(train)
    assert pred.normalization == "reference" and pred.ref_arch_id == ref.arch_id
    assert pred.ref_baseline_ms == {1: pytest.approx(float(np.median(train["ref_latency_ms"])))}
    # It learns latency at the training table's median speed: true × baseline / ref_true.
    truth = np.array([_latency_true(arch_features(a, 1)) for a in held_archs])
    np.testing.assert_allclose(pred.predict(held_archs, 1), truth * pred.ref_baseline_ms[1] / ref_true, rtol=0.02)
    out = pred.evaluate(held)
    assert out["within_10pct"] >= 0.95
    assert out["within_10pct_raw"] <= 0.6
    assert out["rmspe_raw"] > 4 * out["rmspe"]
    # Held-out measurements are brought to the same speed: ratio × baseline.
    measured = held["latency_ms"] / held["ref_latency_ms"] * pred.ref_baseline_ms[1]
    np.testing.assert_allclose(pred.measured(held), measured.to_numpy(), rtol=1e-12)

    # Persisted with the artifact.
    loaded = Predictor.load(pred.save(tmp_path / "ref"))
    stored = pd.read_csv(tmp_path / "ref" / "train.csv")
    assert {"ref_latency_ms", "ref_ratio", "ref_ratio_pass_mad"} <= set(stored.columns)
    np.testing.assert_allclose(stored["ref_ratio"], train["latency_ms"] / train["ref_latency_ms"], rtol=1e-12)
    assert (loaded.normalization, loaded.ref_arch_id, loaded.ref_baseline_ms) == (
        "reference", ref.arch_id, pred.ref_baseline_ms)
    assert loaded.evaluate(held) == out

    # Off: the model learns the drifting raw latencies.
    raw = Predictor(model="linear", normalize="none").fit(train)
    assert raw.normalization == "none" and raw.ref_baseline_ms is None
    raw_out = raw.evaluate(held)
    assert "within_10pct_raw" not in raw_out and raw_out["within_10pct"] <= 0.6

    # A normalised predictor needs the reference beside held-out rows too.
    with pytest.raises(ValueError, match=f"normalised by reference architecture {ref.arch_id}"):
        pred.evaluate(held.drop(columns=["ref_arch_id", "ref_latency_ms"]))
    other_ref = held.assign(ref_arch_id="0000deadbeef")
    with pytest.raises(ValueError, match="normalised by reference"):
        pred.evaluate(other_ref)


def test_normalize_reference_needs_reference_columns(train_archs):
    plain = _table(train_archs[:10], batch_sizes=(1,))
    with pytest.raises(ValueError, match="normalize='reference' needs a latency table"):
        Predictor(model="linear", normalize="reference").fit(plain)
    mixed = _table(train_archs[:10], batch_sizes=(1,), ref_latency_ms=1.0)
    mixed["ref_arch_id"] = ["aaaa", "bbbb"] * 5  # two references: no common unit
    with pytest.raises(ValueError, match="one reference architecture"):
        Predictor(model="linear", normalize="reference").fit(mixed)
    assert Predictor(model="linear").fit(mixed).normalization == "none"  # auto: falls back to raw


def _flops_truth(arch: ArchConfig) -> float:
    return 0.2 + 1e-6 * arch_features(arch, 1)["macs"]


def test_reference_baseline_is_kept_per_batch_size(train_archs):
    # The reference is measured at each batch size; batch 8 runs 4x slower than batch 1. The
    # baseline must be per batch, or batch-8 predictions would be scaled by batch-1 speeds.
    ref = create_space("digits-s").min_arch()
    rows = []
    for b, scale in ((1, 1.0), (8, 4.0)):
        for i, a in enumerate(train_archs):
            drift = 1.0 + 0.2 * ((i % 5) - 2) / 2
            rows.append(_row(a, b, scale * _flops_truth(a) * drift, ref_arch_id=ref.arch_id,
                             ref_latency_ms=scale * 2.0 * drift))
    pred = Predictor(model="flops").fit(pd.DataFrame(rows))  # per batch: exact on a·MACs + b
    assert pred.ref_baseline_ms == {1: pytest.approx(2.0), 8: pytest.approx(8.0)}
    truth = np.array([_flops_truth(a) for a in train_archs[:5]])
    np.testing.assert_allclose(pred.predict(train_archs[:5], 8), 4.0 * truth, rtol=1e-6)
    np.testing.assert_allclose(pred.predict(train_archs[:5], 1), truth, rtol=1e-6)


# ---- held-out tables: batch sizes, device, space; arguments; artifact paths -------------------



@pytest.fixture(scope="module")
def b1_predictors(train_archs):
    """One predictor per learned model, fitted at batch size 1 only (the per-batch models
    flops/lookup refused other batch sizes already; these extrapolated silently)."""
    table = _table(train_archs[:20], batch_sizes=(1,))
    return {name: Predictor(model=name).fit(table) for name in ("linear", "gbt", "forest", "flops")}


@pytest.mark.parametrize("name", ["linear", "gbt", "forest", "flops"])
def test_held_out_tables_at_other_batch_sizes_are_refused(b1_predictors, held_archs, name):
    pred = b1_predictors[name]
    for batches, shown in (((4,), "batch size 4"), ((1, 4, 16), "batch sizes 4, 16")):
        held = _table(held_archs[:4], batch_sizes=batches)
        for what, call in (("evaluate", pred.evaluate), ("predict_table", pred.predict_table),
                           ("measured", pred.measured)):
            with pytest.raises(ValueError, match=re.escape(
                    f"{what}: this latency predictor was fitted on batch sizes [1], but the table has rows at {shown}; "
                    f"profile {shown} and refit, or select the table's rows at batch sizes [1]")):
                call(held)
    with pytest.raises(ValueError, match=re.escape("fitted on batch sizes [1], not 4; profile batch size 4 and refit")):
        pred.predict(held_archs[:4], 4)  # predict's own wording is unchanged
    # The rows at its batch size are accepted and scored.
    out = pred.evaluate(_table(held_archs[:4], batch_sizes=(1,)))
    assert out["n_test"] == 4 and np.isfinite(out["rmspe"])


def test_held_out_tables_of_another_device_are_refused(fitted, held_archs):
    held = _table(held_archs[:6], noise=0.01, seed=2)
    other = _table(held_archs[:6], noise=0.01, seed=2, fp=OTHER_FP)
    for what, call in (("evaluate", fitted.evaluate), ("predict_table", fitted.predict_table),
                       ("measured", fitted.measured)):
        start = (f"{what}: this latency predictor was fitted on cpu Test CPU, torch, 2 threads, but the table was "
                 f"measured on cpu Other CPU, torch, 2 threads")
        with pytest.raises(DeviceMismatch, match=re.escape(start)) as err:
            call(other)
        assert isinstance(err.value, ValueError)
        assert OTHER_FP.fingerprint_id in str(err.value) and "name: 'Test CPU' != 'Other CPU'" in str(err.value)
        assert "force=True" in str(err.value)
    # A field that is not the name (the thread count) is another device too.
    with pytest.raises(DeviceMismatch, match=r"threads: 2 != 8"):
        fitted.evaluate(_table(held_archs[:6], fp=replace(FP, threads=8)))
    # Rows of two devices: select one first.
    both = pd.concat([held, other], ignore_index=True)
    with pytest.raises(DeviceMismatch, match=r"evaluate: the table holds rows of 2 devices") as err:
        fitted.evaluate(both)
    assert FP.fingerprint_id in str(err.value) and OTHER_FP.fingerprint_id in str(err.value)
    # force: scored anyway, as the same measurements on its own device would be.
    assert fitted.evaluate(other, force=True) == fitted.evaluate(held)
    np.testing.assert_array_equal(fitted.predict_table(other, force=True), fitted.predict_table(held))
    np.testing.assert_array_equal(fitted.measured(other, force=True), fitted.measured(held))


def test_held_out_tables_that_are_not_usable_are_refused(fitted, held_archs):
    held = _table(held_archs[:4])
    with pytest.raises(ValueError, match="^evaluate needs a non-empty held-out profile table; the table given has no "
                                         "rows$"):
        fitted.evaluate(held.iloc[:0])
    with pytest.raises(ValueError, match="evaluate needs a non-empty"):
        fitted.evaluate(pd.DataFrame())
    assert fitted.predict_table(held.iloc[:0]).shape == (0,)  # as predict([]) gives
    assert fitted.measured(held.iloc[:0]).shape == (0,)
    for what, call in (("evaluate", fitted.evaluate), ("predict_table", fitted.predict_table)):
        with pytest.raises(TypeError, match=f"{what} needs a profile table \\(a pandas DataFrame\\), got list"):
            call(held.to_dict("records"))
        with pytest.raises(ValueError, match=re.escape(f"{what}: the profile table lacks columns ['fingerprint']")):
            call(held.drop(columns=["fingerprint"]))
        cifar = _table(_archs("cifar10-m", 2, seed=5000), batch_sizes=(1,))
        with pytest.raises(ValueError, match=re.escape(f"{what}: the table's rows are from space(s) ['cifar10-m']; "
                                                       f"this latency predictor is for space 'digits-s'")):
            call(cifar)
        with pytest.raises(ValueError, match=re.escape(f"{what}: column fingerprint must hold the device's "
                                                       f"fingerprint as a JSON object")):
            call(held.assign(fingerprint="not json"))
    with pytest.raises(ValueError, match=re.escape("evaluate: the profile table lacks columns ['latency_ms']")):
        fitted.evaluate(held.drop(columns=["latency_ms"]))
    with pytest.raises(RuntimeError, match="not fitted"):
        Predictor().evaluate(held)


@pytest.mark.parametrize("seed", ["x", -1, 2**32, 1.5, True, None])
def test_predictor_refuses_a_bad_seed(seed):
    with pytest.raises(ValueError, match=re.escape(
            f"seed must be a non-negative integer (at most 2**32 - 1, the range scikit-learn's random_state takes), "
            f"got {seed!r}")):
        Predictor(seed=seed)


def test_predictor_takes_numpy_integers_for_counts(train_archs):
    pred = Predictor(model="gbt", seed=np.int64(2**32 - 1), folds=np.int32(3))
    assert (pred.seed, pred.folds) == (2**32 - 1, 3) and type(pred.seed) is int and type(pred.folds) is int
    pred.fit(_table(train_archs[:8], batch_sizes=(1,)))  # the largest seed scikit-learn takes
    assert json.loads(json.dumps(pred.metadata()))["seed"] == 2**32 - 1


def test_predict_takes_a_numpy_batch_size(fitted, held_archs):
    np.testing.assert_array_equal(fitted.predict(held_archs[:3], np.int64(8)), fitted.predict(held_archs[:3], 8))
    assert arch_features(held_archs[0], np.int64(8)) == arch_features(held_archs[0], 8)


def test_load_and_refit_of_a_file_name_the_artifact_directory(saved, tmp_path):
    old = _old_artifact(saved, tmp_path, tmp_path / "marker")
    for path in (saved / "predictor.json", saved / "model.safetensors", saved / "train.csv", old / "model.pkl"):
        for call in (Predictor.load, Predictor.refit):
            with pytest.raises(ValueError, match=re.escape(
                    f"{path} is a file; a predictor artifact is a directory (holding predictor.json, "
                    f"model.safetensors, train.csv); the artifact directory holding it is {path.parent}")):
                call(path)
    assert not (tmp_path / "marker").exists()


def test_load_of_another_file_says_a_directory_is_expected(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(ValueError, match=re.escape(f"{other} is a file; a predictor artifact is a directory (holding "
                                                   f"predictor.json, model.safetensors, train.csv)")) as err:
        Predictor.load(other)
    assert "holding it is" not in str(err.value)


def test_save_onto_a_file_names_the_path(fitted, tmp_path):
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("keep me")
    with pytest.raises(FileExistsError, match=re.escape(
            f"predictor artifact directory {blocker} exists and is not a directory; give a directory to write "
            f"predictor.json, model.safetensors, train.csv into")):
        fitted.save(blocker)
    with pytest.raises(FileExistsError, match=re.escape(
            f"predictor artifact directory {blocker / 'sub' / 'latency'} cannot be created: {blocker} is a file, "
            f"not a directory")):
        fitted.save(blocker / "sub" / "latency")
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somefile.txt"]


@pytest.mark.parametrize("fingerprint, got", [("cpu", "str 'cpu'"), (FP, "DeviceFingerprint"),
                                              ([("kind", "cpu")], "list")])
def test_a_fingerprint_that_is_not_a_dict_is_a_type_error(fitted, saved, fingerprint, got):
    start = "fingerprint must be a dict of the device's identity fields, as DeviceFingerprint.to_dict() gives, got "
    with pytest.raises(TypeError, match=re.escape(start + got)) as err:
        Predictor.load(saved, fingerprint=fingerprint)
    assert ("pass fingerprint.to_dict()" in str(err.value)) == isinstance(fingerprint, DeviceFingerprint)
    with pytest.raises(TypeError, match=re.escape(start + got)):
        fitted.check_device(fingerprint)


# ---- `nas predictors fit`: bad input exits 2 and writes nothing ---------------------------------

def _profiles_csv(path, *spaces: str, n: int = 6):
    """A profile table on disk: ``n`` architectures of each space at batch size 1."""
    for space in spaces:
        for row in _table(_archs(space, n, seed=7000), batch_sizes=(1,)).to_dict("records"):
            append_profile_row(path, row)
    return path


def _fit(*argv: str) -> int:
    from nas.cli import main

    return main(["predictors", "fit", *map(str, argv)])


def test_cli_fit_header_only_table(tmp_path, capsys):
    path = tmp_path / "p.csv"
    path.write_text(",".join(PROFILE_COLUMNS) + "\n")
    assert _fit("--profiles", path, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nas predictors: error: profile table {path} has no rows")
    assert not (tmp_path / "out").exists()


def test_cli_fit_several_spaces_needs_space(tmp_path, capsys):
    path = _profiles_csv(tmp_path / "p.csv", "digits-s", "cifar10-m")
    assert _fit("--profiles", path, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err == (f"nas predictors: error: {path} holds 2 spaces ['cifar10-m', 'digits-s']; choose one with --space "
                   f"(one predictor per space)\n")
    assert _fit("--profiles", path, "--out", tmp_path / "out", "--space", "nope") == 2
    assert capsys.readouterr().err == (f"nas predictors: error: {path} has no rows of space 'nope'; it has "
                                       f"['cifar10-m', 'digits-s']\n")
    assert not (tmp_path / "out").exists()


def test_cli_fit_space_selects_its_rows(tmp_path, capsys):
    path = _profiles_csv(tmp_path / "p.csv", "digits-s", "cifar10-m")
    out = tmp_path / "out"
    assert _fit("--profiles", path, "--out", out, "--space", "cifar10-m", "--target", "latency",
                "--model", "flops") == 0, capsys.readouterr().err
    meta = json.loads((out / "latency" / "predictor.json").read_text())
    assert meta["space"] == "cifar10-m" and meta["n_train"] == 6
    assert sorted(p.name for p in out.iterdir()) == ["latency"]


def test_cli_fit_negative_seed_names_the_option(tmp_path, capsys):
    path = _profiles_csv(tmp_path / "p.csv", "digits-s")
    assert _fit("--profiles", path, "--out", tmp_path / "out", "--seed", "-1") == 2
    assert capsys.readouterr().err == "nas predictors: error: --seed must be a non-negative integer, got -1\n"
    assert not (tmp_path / "out").exists()


def test_cli_fit_out_is_a_file(tmp_path, capsys):
    path = _profiles_csv(tmp_path / "p.csv", "digits-s")
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("keep me")
    assert _fit("--profiles", path, "--out", blocker) == 2
    assert capsys.readouterr().err == (f"nas predictors: error: --out {blocker} is a file; give a directory "
                                       f"(one artifact per target is written under it)\n")
    assert _fit("--profiles", path, "--out", blocker / "sub") == 2
    assert capsys.readouterr().err == (f"nas predictors: error: --out {blocker / 'sub'} cannot be created: {blocker} "
                                       f"is a file, not a directory\n")
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "somefile.txt"]


def test_cli_fit_keeps_a_predictor_already_in_out_unless_overwrite(tmp_path, capsys):
    path = _profiles_csv(tmp_path / "p.csv", "digits-s")
    out = tmp_path / "out"
    assert _fit("--profiles", path, "--out", out, "--target", "latency", "--model", "flops") == 0
    before = {p.name: p.read_bytes() for p in (out / "latency").iterdir()}
    capsys.readouterr()
    assert _fit("--profiles", path, "--out", out, "--target", "latency", "--model", "linear") == 2
    assert capsys.readouterr().err == (f"nas predictors: error: {out / 'latency'} already holds a predictor; "
                                       f"pass --overwrite to replace it or choose another --out\n")
    assert {p.name: p.read_bytes() for p in (out / "latency").iterdir()} == before
    assert _fit("--profiles", path, "--out", out, "--target", "latency", "--model", "linear", "--overwrite") == 0
    assert json.loads((out / "latency" / "predictor.json").read_text())["model"] == "linear"


def test_cli_fit_interrupted_between_targets_names_the_missing_one(tmp_path, capsys):
    path = _profiles_csv(tmp_path / "p.csv", "digits-s")
    out = tmp_path / "out"
    assert _fit("--profiles", path, "--out", out, "--target", "latency", "--model", "flops") == 0  # memory never ran
    capsys.readouterr()
    assert _fit("--profiles", path, "--out", out, "--model", "flops") == 2  # both targets, the default
    assert capsys.readouterr().err == (f"nas predictors: error: {out / 'latency'} already holds a predictor; "
                                       f"pass --overwrite to replace it, --target memory to fit only the missing "
                                       f"one(s), or choose another --out\n")
    assert _fit("--profiles", path, "--out", out, "--target", "memory", "--model", "flops") == 0
    assert (out / "memory" / "predictor.json").is_file()


@pytest.mark.parametrize("bad", ["not json", '["a list"]', ""])
def test_cli_fit_bad_fingerprint_column_names_line_and_column(tmp_path, capsys, bad):
    path = _profiles_csv(tmp_path / "p.csv", "digits-s")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[1, "fingerprint"] = bad
    df.to_csv(path, index=False)
    assert _fit("--profiles", path, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"profile table {path}, line 3: column fingerprint must be the device's fingerprint as a JSON object" in err
    assert not (tmp_path / "out").exists()
