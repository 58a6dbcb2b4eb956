"""Tests for the profiling record: ``profile()`` on CPU (latency, memory, per-op records, table
row), the latency stopping rule, CPU peak memory from profiler events, the stderr filter, kernel
occupancy and waves, and the device fingerprint.

References are written out here: parameter bytes summed from the model, layer counts taken from
the built model, the analytic inference peak of ``predictors.features``, hand-computed
occupancy limits, waves and running peaks, scripted timing sequences with the stop point worked
out by hand.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import profilers.timing as timing
from predictors.features import arch_features
from predictors.table import PROFILE_COLUMNS, append_profile_row
from profilers import (
    ClockReading,
    DeviceFingerprint,
    FingerprintMismatch,
    LatencySettings,
    clock_change,
    cpu_model_name,
    device_fingerprint,
    kernel_records_from_trace,
    measure_latency,
    measure_latency_paired,
    peak_cpu_memory_bytes,
    peak_from_memory_events,
    profile,
    resident_blocks_per_sm,
    waves,
)
from profilers.quiet import filtered_native_stderr
from search_spaces.arch import ArchConfig
from search_spaces.mixers import QuadraConv
from search_spaces.networks import QuadraNet
from search_spaces.space import create_space

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a CUDA device")

MB = 2**20
# Fast latency sampling: these tests check the record, not the speed.
FAST = LatencySettings(warmup=1, warmup_seconds=0.0, min_repeats=3, max_repeats=6, max_seconds=2.0)
# Columns the collection loop adds to a profile row; everything else comes from to_row().
LOOP_COLUMNS = {"sample_source", "pass", "ref_arch_id", "ref_latency_ms"}


def _model_of(arch: ArchConfig) -> QuadraNet:
    space = create_space(arch.space)
    return QuadraNet(space.to_net_config(arch))


def _param_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _op_count(record, name: str) -> int:
    """Calls of op ``name`` over all input-shape groups."""
    return sum(o.count for o in record.ops if o.name == name)


_DIGITS = create_space("digits-s")
DIGITS_ARCHS = {"min": _DIGITS.min_arch(), "max": _DIGITS.max_arch(), "sample3": _DIGITS.sample(random.Random(3))}


@pytest.fixture(scope="module")
def digits_records():
    """One CPU profile per digits-s architecture at batch 2, one thread."""
    return {key: profile(arch, batch_size=2, threads=1, latency=FAST) for key, arch in DIGITS_ARCHS.items()}


# ---- profile(): the record -------------------------------------------------------------------

@pytest.mark.parametrize("key", sorted(DIGITS_ARCHS))
def test_profile_record_fields(digits_records, key):
    arch, rec = DIGITS_ARCHS[key], digits_records[key]
    assert rec.arch == arch and rec.arch_id == arch.arch_id
    assert rec.name == f"digits-s/{arch.arch_id}"
    assert rec.batch_size == 2 and rec.input_shape == (1, 8, 8)
    lat = rec.latency
    assert 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms
    assert FAST.min_repeats <= lat.repeats <= FAST.max_repeats
    assert rec.param_mb == _param_bytes(_model_of(arch)) / MB
    assert rec.peak_train_mem_mb > rec.peak_infer_mem_mb > rec.param_mb
    assert rec.fingerprint.kind == "cpu" and rec.fingerprint.threads == 1
    assert rec.fingerprint == device_fingerprint("cpu", threads=1)
    assert rec.kernels == ()  # per-kernel records are CUDA-only
    assert isinstance(rec.suspect, str) and rec.seconds > 0
    if not lat.stable:
        assert f"median not stable after {lat.repeats} repeats" in rec.suspect


@pytest.mark.parametrize("key", sorted(DIGITS_ARCHS))
def test_profile_op_counts_match_the_layers_of_the_model(digits_records, key):
    model, rec = _model_of(DIGITS_ARCHS[key]), digits_records[key]
    n_conv = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    n_quadra = sum(isinstance(m, QuadraConv) for m in model.modules())  # three depthwise convs each
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert n_linear >= 3 and n_conv >= 4  # stem, 3 downsamples, head, fc1/fc2 per block
    if key == "max":
        assert n_quadra > 0  # all-quadratic: the QuadraConv path is covered
    if key == "min":
        assert n_quadra == 0
    assert _op_count(rec, "aten::conv2d") == n_conv + 3 * n_quadra
    assert _op_count(rec, "aten::linear") == n_linear
    assert all(o.count >= 1 and o.self_cpu_us >= 0 and o.cpu_total_us >= o.self_cpu_us - 1e-6 for o in rec.ops)
    assert [o.self_cpu_us for o in rec.ops] == sorted((o.self_cpu_us for o in rec.ops), reverse=True)


def test_profile_row_has_the_table_columns_and_round_trips(digits_records, tmp_path):
    arch, rec = DIGITS_ARCHS["max"], digits_records["max"]
    row = rec.to_row()
    assert set(row) == set(PROFILE_COLUMNS) - LOOP_COLUMNS
    assert row["arch_id"] == arch.arch_id and row["space"] == "digits-s" and row["batch_size"] == 2
    assert row["device"] == "cpu" and row["threads"] == 1
    assert row["fingerprint_id"] == rec.fingerprint.fingerprint_id
    assert (row["latency_ms"], row["latency_p10_ms"], row["latency_p90_ms"], row["latency_repeats"]) == (
        rec.latency.median_ms, rec.latency.p10_ms, rec.latency.p90_ms, rec.latency.repeats)
    assert (row["peak_infer_mem_mb"], row["peak_train_mem_mb"], row["param_mb"]) == (
        rec.peak_infer_mem_mb, rec.peak_train_mem_mb, rec.param_mb)
    assert row["n_kernels"] == 0 and row["kernel_waves"] == 0
    assert ArchConfig.from_json(row["arch_json"]) == arch
    assert DeviceFingerprint.from_json(row["fingerprint"]) == rec.fingerprint
    # The table writer accepts it.
    path = tmp_path / "profiles.csv"
    append_profile_row(path, row)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["arch_id"] == arch.arch_id


def test_profile_to_dict_is_json(digits_records):
    rec = digits_records["max"]
    d = json.loads(json.dumps(rec.to_dict()))
    assert len(d["ops"]) == len(rec.ops) > 0
    assert d["ops"][0]["name"] == rec.ops[0].name
    assert d["kernels"] == []
    assert d["clocks_before"]["core_clock_mhz"] == rec.clocks_before.core_clock_mhz
    assert d["peak_infer_mem_mb"] == rec.peak_infer_mem_mb


def test_profile_restores_the_thread_count():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rec = profile(DIGITS_ARCHS["min"], batch_size=1, threads=1, latency=FAST, with_ops=False)
        assert torch.get_num_threads() == 2
        assert rec.fingerprint.threads == 1 and rec.ops == ()
        rec = profile(DIGITS_ARCHS["min"], batch_size=1, latency=FAST, with_ops=False)  # threads=None: as is
        assert rec.fingerprint.threads == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


class _Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("broken forward")


def test_profile_restores_the_thread_count_after_an_error():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="broken forward"):
            profile(_Broken(), input_shape=(3, 8, 8), threads=1, latency=FAST)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_profile_flags_a_median_that_never_settled(monkeypatch):
    ticks = iter(range(1, 1000))
    monkeypatch.setattr(timing, "time_once_ms", lambda fn, device: float(next(ticks)))  # always rising
    rec = profile(DIGITS_ARCHS["min"], batch_size=1, latency=FAST, with_ops=False)
    assert not rec.latency.stable and rec.latency.repeats == FAST.max_repeats
    assert f"median not stable after {FAST.max_repeats} repeats" in rec.suspect
    assert rec.to_row()["latency_stable"] is False


# Memory: measured CPU peak against the analytic simulation of predictors.features.
_CIFAR = create_space("cifar10-m")
CIFAR_ARCHS = [_CIFAR.min_arch(), _CIFAR.max_arch()] + [_CIFAR.sample(random.Random(s)) for s in (0, 1, 2)]


@pytest.mark.parametrize("arch", CIFAR_ARCHS, ids=["min", "max", "s0", "s1", "s2"])
def test_cpu_inference_peak_equals_the_analytic_peak(arch):
    rec = profile(arch, batch_size=4, threads=1, latency=FAST, with_ops=False)
    assert rec.peak_infer_mem_mb * MB == arch_features(arch, 4)["infer_peak_bytes"]
    assert rec.param_mb == _param_bytes(_model_of(arch)) / MB


def test_memory_is_deterministic():
    arch = DIGITS_ARCHS["sample3"]
    a = profile(arch, batch_size=3, latency=FAST, with_ops=False)
    b = profile(arch, batch_size=3, latency=FAST, with_ops=True)
    assert (a.peak_infer_mem_mb, a.peak_train_mem_mb) == (b.peak_infer_mem_mb, b.peak_train_mem_mb)


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 5))


def test_profile_plain_module():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    rec = profile(model, input_shape=(3, 8, 8), batch_size=2, latency=FAST)
    assert rec.arch is None and rec.arch_id is None and rec.name == "Sequential"
    assert rec.input_shape == (3, 8, 8)
    assert rec.param_mb == (3 * 4 * 9 + 4 + 144 * 5 + 5) * 4 / MB
    assert _op_count(rec, "aten::conv2d") == 1 and _op_count(rec, "aten::linear") == 1
    row = rec.to_row()
    assert row["arch_id"] == "" and row["space"] == "" and row["arch_json"] == ""
    assert rec.peak_train_mem_mb > rec.peak_infer_mem_mb > rec.param_mb


def test_plain_mlp_inference_peak_by_hand():
    # Resident: parameters + input. During the forward (B=2, float32): the first linear's output
    # (2, 16) and the ReLU's output (2, 16) are live together (128 + 128 bytes); when the last
    # linear writes (2, 5) the first one is already released (128 + 40). Peak: 256 bytes.
    model = _mlp()
    rec = profile(model, input_shape=(3, 8, 8), batch_size=2, latency=FAST, with_ops=False)
    params = (192 * 16 + 16 + 16 * 5 + 5) * 4
    x_bytes = 2 * 192 * 4
    assert rec.param_mb * MB == params
    assert rec.peak_infer_mem_mb * MB == params + x_bytes + 2 * 16 * 4 * 2


def test_profile_leaves_the_training_flag_of_a_plain_module():
    model = _mlp().train()
    profile(model, input_shape=(3, 8, 8), latency=FAST, with_ops=False)
    assert model.training


def test_profile_takes_a_custom_space(tiny_space):
    space = tiny_space(name="tiny-custom", depth_choices=((1,),), width_choices=((8,),), kernel_choices=(3,),
                       order_choices=(2,))
    arch = space.max_arch()
    with pytest.raises(ValueError, match="tiny-custom"):  # not registered: needs space=
        profile(arch, latency=FAST)
    rec = profile(arch, space=space, latency=FAST)
    assert rec.name == f"tiny-custom/{arch.arch_id}" and rec.to_row()["space"] == "tiny-custom"
    assert rec.param_mb == _param_bytes(QuadraNet(space.to_net_config(arch))) / MB
    assert _op_count(rec, "aten::conv2d") == 1 + 3  # stem + one QuadraConv


# ---- profile(): bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [0, -1, True, 1.5, "2"])
def test_profile_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        profile(DIGITS_ARCHS["min"], batch_size=batch_size, latency=FAST)


@pytest.mark.parametrize("threads", [0, -2, True, 1.0])
def test_profile_rejects_bad_threads(threads):
    with pytest.raises(ValueError, match="threads"):
        profile(DIGITS_ARCHS["min"], threads=threads, latency=FAST)


@pytest.mark.parametrize("device", ["meta", "mps"])
def test_profile_rejects_devices_other_than_cpu_and_cuda(device):
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        profile(DIGITS_ARCHS["min"], device=device, latency=FAST)


def test_profile_rejects_an_unknown_device_string():
    with pytest.raises(ValueError, match="device"):
        profile(DIGITS_ARCHS["min"], device="tpu", latency=FAST)


@no_cuda
def test_profile_on_cuda_without_a_gpu_raises():
    with pytest.raises(ValueError, match="device cuda requested"):
        profile(DIGITS_ARCHS["min"], device="cuda", latency=FAST)


def test_profile_plain_module_needs_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        profile(_mlp(), latency=FAST)


@pytest.mark.parametrize("shape", [(3, 8), (3, 8, 8, 1), (3, 8, 0), (3, 8.0, 8), (True, 8, 8)])
def test_profile_rejects_bad_input_shape(shape):
    with pytest.raises(ValueError, match="input_shape"):
        profile(_mlp(), input_shape=shape, latency=FAST)


def test_profile_rejects_input_shape_that_contradicts_the_space():
    with pytest.raises(ValueError, match="input_shape .* does not match space 'digits-s'"):
        profile(DIGITS_ARCHS["min"], input_shape=(3, 8, 8), latency=FAST)


@pytest.mark.parametrize("target", ["digits-s", {"space": "digits-s"}, None])
def test_profile_rejects_a_target_of_the_wrong_type(target):
    with pytest.raises(TypeError, match=f"nn.Module or an ArchConfig, got {type(target).__name__}"):
        profile(target, latency=FAST)


def test_profile_rejects_a_space_of_another_name():
    with pytest.raises(ValueError, match="space 'digits-s', space given is 'cifar10-m'"):
        profile(DIGITS_ARCHS["min"], space=_CIFAR, latency=FAST)


def test_profile_rejects_an_arch_invalid_for_its_space():
    bad = ArchConfig(space="digits-s", stages=_CIFAR.max_arch().stages)  # cifar widths in digits-s
    with pytest.raises(ValueError, match=r"stages\[0\]\.width"):
        profile(bad, latency=FAST)


def test_profile_rejects_bad_latency_settings():
    with pytest.raises(ValueError, match="min_repeats"):
        profile(DIGITS_ARCHS["min"], latency=LatencySettings(min_repeats=0), with_ops=False)


# ---- measure_latency: the stopping rule -------------------------------------------------------

class _Script:
    """A fake ``time_once_ms`` returning scripted samples; logs every call of the timed fn."""

    def __init__(self, values):
        self.values = iter(values)
        self.log: list[str] = []

    def fn(self):
        self.log.append("call")

    def time_once_ms(self, fn, device):
        self.log.append("timed")
        fn()
        return float(next(self.values))


def _run(monkeypatch, values, **kw):
    script = _Script(values)
    monkeypatch.setattr(timing, "time_once_ms", script.time_once_ms)
    kw = {"warmup": 0, "warmup_seconds": 0.0, **kw}
    return measure_latency(script.fn, "cpu", **kw), script


# Constant samples: stops at the first round that ends with >= min_repeats samples and has a
# previous round. Rounds are max(2, min_repeats // 2) samples long.
@pytest.mark.parametrize("min_repeats, expected", [
    (1, 4),    # rounds of 2: 2 (no previous round), 4
    (3, 4),    # rounds of 2: 2, 4
    (4, 4),    # rounds of 2: 2, 4
    (10, 10),  # rounds of 5: 5, 10
    (15, 21),  # rounds of 7: 7, 14 (< 15), 21
])
def test_constant_samples_stop_after_min_repeats(monkeypatch, min_repeats, expected):
    stats, script = _run(monkeypatch, [1.0] * 1000, min_repeats=min_repeats, max_repeats=100)
    assert stats.repeats == expected and stats.stable
    assert (stats.median_ms, stats.p10_ms, stats.p90_ms) == (1.0, 1.0, 1.0)
    assert script.log.count("timed") == expected


def test_a_median_that_keeps_rising_stops_at_max_repeats(monkeypatch):
    # Samples 1, 2, 3, …: the median (n+1)/2 moves by far more than 1 % each round. Rounds of 2
    # up to 10, then one sample to reach the cap of 11.
    stats, _ = _run(monkeypatch, range(1, 100), min_repeats=4, max_repeats=11, max_seconds=1e9)
    assert not stats.stable and stats.repeats == 11
    # 1..11: median 6; p10 at rank 1.0 -> 2; p90 at rank 9.0 -> 10.
    assert (stats.median_ms, stats.p10_ms, stats.p90_ms) == (6.0, 2.0, 10.0)


def test_alternating_far_apart_is_not_stable_at_the_cap(monkeypatch):
    # 1, 100, 1, 100 … with rounds of 3: medians 1, 50.5, 1, 50.5, … never settle.
    stats, _ = _run(monkeypatch, [1, 100] * 50, min_repeats=6, max_repeats=12, max_seconds=1e9)
    assert not stats.stable and stats.repeats == 12


@pytest.mark.parametrize("values, expected", [
    ([100, 100, 102, 102, 200, 200], 4),  # median 100 -> 101: a 1 % move, at the tolerance: stop
    ([100, 100, 104, 104, 102, 102, 5000], 6),  # 100 -> 102 (2 %): go on; 102 -> 102: stop
    ([5, 1, 1, 1, 1, 1, 1000], 6),  # 3 -> 1: go on; 1 -> 1: stop
])
def test_stops_when_one_round_moves_the_median_by_at_most_rel_tol(monkeypatch, values, expected):
    stats, _ = _run(monkeypatch, values, min_repeats=4, max_repeats=50, rel_tol=0.01)
    assert stats.repeats == expected and stats.stable


def test_max_seconds_stops_timing(monkeypatch):
    clock = [0.0]

    def perf_counter():
        return clock[0]

    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=perf_counter))
    rising = iter(range(1, 1000))

    def one_second_sample(fn, device):
        clock[0] += 1.0
        return float(next(rising))

    monkeypatch.setattr(timing, "time_once_ms", one_second_sample)
    # Rounds of 2: after 2 samples 2 s have passed (not > 2.5), after 4 samples 4 s: stop.
    stats = measure_latency(lambda: None, "cpu", warmup=0, warmup_seconds=0.0, min_repeats=2, max_repeats=100,
                            max_seconds=2.5)
    assert stats.repeats == 4 and not stats.stable


def test_warmup_calls_come_before_the_timed_ones(monkeypatch):
    stats, script = _run(monkeypatch, [2.0] * 100, warmup=3, min_repeats=4, max_repeats=10)
    assert script.log[:3] == ["call"] * 3
    assert script.log[3] == "timed"
    assert script.log.count("timed") == stats.repeats == 4
    assert script.log.count("call") == 3 + 4


def test_warmup_seconds_extend_the_warmup(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    calls = []

    def fn():
        calls.append(1)
        clock[0] += 1.0  # each warm-up call takes one second

    monkeypatch.setattr(timing, "time_once_ms", lambda f, device: 1.0)
    # One call is asked for, but 3.5 s of warm-up: calls end at 1, 2, 3, 4 s -> 4 calls.
    measure_latency(fn, "cpu", warmup=1, warmup_seconds=3.5, min_repeats=2, max_repeats=10)
    assert len(calls) == 4


@pytest.mark.parametrize("kw, name", [
    ({"warmup": -1}, "warmup"), ({"warmup": True}, "warmup"), ({"warmup": 1.5}, "warmup"),
    ({"min_repeats": 0}, "min_repeats"), ({"min_repeats": 2.0}, "min_repeats"),
    ({"max_repeats": -1}, "max_repeats"), ({"min_repeats": 5, "max_repeats": 4}, "min_repeats <= max_repeats"),
    ({"rel_tol": 0.0}, "rel_tol"), ({"rel_tol": float("nan")}, "rel_tol"),
    ({"max_seconds": 0.0}, "max_seconds"), ({"warmup_seconds": -0.1}, "warmup_seconds"),
])
def test_measure_latency_rejects_bad_arguments(kw, name):
    calls = []
    with pytest.raises(ValueError, match=name):
        measure_latency(lambda: calls.append(1), "cpu", **kw)
    assert calls == []  # validated before anything runs


# ---- measure_latency_paired: interleaved timing against a reference ---------------------------

class _PairScript:
    """A fake ``time_once_ms``: the target and the reference each draw from their own samples."""

    def __init__(self, target_values, ref_values):
        self.values = {"target": iter(target_values), "ref": iter(ref_values)}
        self.log: list[str] = []

    def target(self):
        self.log.append("target")

    def ref(self):
        self.log.append("ref")

    def time_once_ms(self, fn, device):
        fn()
        return float(next(self.values[self.log[-1]]))


def _run_paired(monkeypatch, target_values, ref_values, **kw):
    script = _PairScript(target_values, ref_values)
    monkeypatch.setattr(timing, "time_once_ms", script.time_once_ms)
    kw = {"warmup": 0, "warmup_seconds": 0.0, **kw}
    return measure_latency_paired(script.target, script.ref, "cpu", **kw), script


def test_paired_timing_interleaves_call_by_call_in_alternating_order(monkeypatch):
    (stats, ref_stats), script = _run_paired(monkeypatch, [2.0] * 100, [4.0] * 100, min_repeats=4, max_repeats=10)
    assert stats.repeats == ref_stats.repeats == 4 and stats.stable and ref_stats.stable
    assert script.log == ["target", "ref", "ref", "target", "target", "ref", "ref", "target"]
    assert (stats.median_ms, ref_stats.median_ms) == (2.0, 4.0)


def test_paired_timing_warms_both_up_first(monkeypatch):
    # call by call, whatever the warm-up took
    monkeypatch.setattr(timing, "pair_block", lambda call_ms, block_ms=None: 1)
    _, script = _run_paired(monkeypatch, [1.0] * 100, [1.0] * 100, warmup=2, min_repeats=4, max_repeats=10)
    assert script.log[:4] == ["target", "ref", "target", "ref"]
    assert len(script.log) == 4 + 2 * 4


@pytest.mark.parametrize("call_ms, block", [(5.0, 1), (1.0, 1), (0.5, 5), (0.1, 17), (0.0, 17), (0.25, 9)])
def test_pair_block_lasts_about_two_milliseconds_below_one(call_ms, block):
    assert timing.pair_block(call_ms) == block  # calls per turn, the first untimed


@pytest.mark.parametrize("call_ms, block_ms, block", [(5.0, 20.0, 5), (4.0, 20.0, 6), (30.0, 20.0, 3),
                                                      (0.5, 20.0, 17), (1.0, 2.0, 3)])
def test_pair_block_of_a_given_length_applies_to_calls_of_any_duration(call_ms, block_ms, block):
    assert timing.pair_block(call_ms, block_ms) == block  # ceil(block_ms / call_ms) timed, at least 2, + 1 untimed


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "20"])
def test_paired_timing_refuses_a_bad_block_length(monkeypatch, bad):
    with pytest.raises(ValueError, match="block_ms must be a positive number"):
        _run_paired(monkeypatch, [1.0] * 10, [1.0] * 10, min_repeats=2, max_repeats=2, block_ms=bad)


def test_paired_timing_with_a_block_length_alternates_long_calls_in_blocks(monkeypatch):
    # A warm-up of fake callables is instant, so a block of 1e-3 ms asks for the minimum: 2 timed calls,
    # after an untimed one, per turn — where without block_ms these (sub-millisecond) calls would take 17.
    (stats, ref_stats), script = _run_paired(monkeypatch, [1.0, 3.0] * 10, [2.0] * 100, warmup=1,
                                             min_repeats=4, max_repeats=4, block_ms=1e-3)
    timed = script.log[2:]
    assert timed[:3] == ["target"] * 3 and timed[3:9] == ["ref"] * 6 and timed[9:12] == ["target"] * 3
    assert stats.repeats == 4 and stats.median_ms == 2.0  # each sample the median of the block's 1.0 and 3.0


def test_paired_timing_of_fast_calls_alternates_in_blocks_and_samples_their_medians(monkeypatch):
    # The warm-up's calls are instant (the fake callables do nothing): sub-millisecond, so each
    # turn is a block of pair_block(0) = 17 calls — one untimed, then 16 timed whose median is the sample.
    block = timing.pair_block(0.0)
    target = [9.0] + [1.0] * (block - 2) + [50.0]  # per block: the median of the 16 timed calls is 1.0
    (stats, ref_stats), script = _run_paired(monkeypatch, target * 20 + [1.0] * 100, [2.0] * 2000, warmup=1,
                                             min_repeats=4, max_repeats=4)
    timed = script.log[2:]  # after one warm-up round
    assert timed[:block] == ["target"] * block and timed[block:3 * block] == ["ref"] * (2 * block)
    assert stats.repeats == ref_stats.repeats == 4 and (stats.median_ms, ref_stats.median_ms) == (1.0, 2.0)


def test_paired_timing_stops_on_a_steady_ratio_while_the_machine_speed_moves(monkeypatch):
    # The machine slows down step after step (both latencies grow by 10 % per step), so each
    # median keeps moving, but the target stays at half the reference: the ratio settles.
    speed = [1.1 ** k for k in range(100)]
    (stats, ref_stats), _ = _run_paired(monkeypatch, [1.0 * v for v in speed], [2.0 * v for v in speed],
                                        min_repeats=4, max_repeats=50, rel_tol=0.01)
    assert stats.stable and stats.repeats == 4
    assert stats.median_ms / ref_stats.median_ms == pytest.approx(0.5)
    # The same samples timed alone never settle: the median rises 10 % per sample.
    alone, _ = _run(monkeypatch, [1.0 * v for v in speed], min_repeats=4, max_repeats=50, rel_tol=0.01,
                    max_seconds=1e9)
    assert not alone.stable and alone.repeats == 50


def test_paired_timing_unsettled_ratio_stops_at_the_cap(monkeypatch):
    (stats, ref_stats), _ = _run_paired(monkeypatch, [1, 100] * 50, [10.0] * 100, min_repeats=6, max_repeats=12,
                                        max_seconds=1e9)
    assert not stats.stable and not ref_stats.stable and stats.repeats == ref_stats.repeats == 12


@pytest.mark.parametrize("kw, name", [
    ({"warmup": -1}, "warmup"), ({"min_repeats": 0}, "min_repeats"), ({"rel_tol": 0.0}, "rel_tol"),
    ({"min_repeats": 5, "max_repeats": 4}, "min_repeats <= max_repeats"), ({"max_seconds": -1.0}, "max_seconds"),
])
def test_measure_latency_paired_rejects_bad_arguments(kw, name):
    calls = []
    with pytest.raises(ValueError, match=name):
        measure_latency_paired(lambda: calls.append(1), lambda: calls.append(2), "cpu", **kw)
    assert calls == []


def test_profile_with_a_reference_architecture_records_its_latency():
    small, big = DIGITS_ARCHS["min"], DIGITS_ARCHS["max"]
    rec = profile(small, threads=1, with_ops=False, reference=big, latency=FAST)
    assert rec.ref_latency is not None and rec.ref_arch_id == big.arch_id
    assert rec.ref_latency.repeats == rec.latency.repeats >= FAST.min_repeats
    # The largest digits-s net does far more work than the smallest (both timed side by side).
    assert rec.ref_latency.median_ms > rec.latency.median_ms > 0
    row = rec.to_row()
    assert row["ref_latency_ms"] == rec.ref_latency.median_ms and row["ref_arch_id"] == big.arch_id
    assert set(row) <= set(PROFILE_COLUMNS)
    plain = profile(small, threads=1, with_ops=False, latency=FAST)
    assert plain.ref_latency is None and "ref_latency_ms" not in plain.to_row()


def test_profile_with_a_reference_module_leaves_its_training_flag():
    ref = _model_of(DIGITS_ARCHS["max"]).train()
    rec = profile(DIGITS_ARCHS["min"], threads=1, with_ops=False, reference=ref, latency=FAST)
    assert ref.training and rec.ref_latency.median_ms > 0 and rec.ref_arch_id is None
    assert rec.to_row()["ref_arch_id"] == ""


def test_profile_rejects_a_reference_of_another_input():
    cifar = create_space("cifar10-m").min_arch()
    with pytest.raises(ValueError, match=r"reference: input_shape \(1, 8, 8\) does not match space 'cifar10-m'"):
        profile(DIGITS_ARCHS["min"], with_ops=False, reference=cifar)
    with pytest.raises(TypeError, match=r"reference: profile\(\) takes an nn.Module or an ArchConfig, got str"):
        profile(DIGITS_ARCHS["min"], with_ops=False, reference="big")


# ---- memory -----------------------------------------------------------------------------------

@pytest.mark.parametrize("events, peak", [
    ([], 0),
    ([(0, 100), (1, 50), (2, -100), (3, 30)], 150),  # running 100, 150, 50, 80
    ([(3, 30), (0, 100), (2, -100), (1, 50)], 150),  # taken in time order
    ([(1, 80), (5, 100), (5, -80)], 100),  # same instant: the free first (80 -> 0 -> 100), not 180
    ([(0, -50), (1, 100)], 50),  # memory live before is not counted: -50, then 50
    ([(0, -10), (1, -20)], 0),
])
def test_peak_from_memory_events_by_hand(events, peak):
    assert peak_from_memory_events(events) == peak


def test_peak_cpu_memory_bytes_of_known_tensors():
    def fn():
        a = torch.ones(1000, 1000)  # 4,000,000 bytes
        b = torch.ones(1000, 1000)  # 8,000,000 live
        del a  # 4,000,000
        c = torch.ones(500, 1000)  # 6,000,000
        return b, c

    assert peak_cpu_memory_bytes(fn) == 2 * 1000 * 1000 * 4


def test_peak_cpu_memory_bytes_ignores_what_was_live_before():
    keep = torch.ones(1000, 1000)
    assert peak_cpu_memory_bytes(lambda: torch.ones(10, 100)) == 10 * 100 * 4
    assert keep.sum().item() == 1e6


# ---- stderr filter ----------------------------------------------------------------------------

CHATTER = b"USDT:2026-11-21 09:54:21 15556:15556 SyncActivityProfilerHandler.cpp:52] profiler_start\n"


_QUIET_SCRIPT = r"""
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("quiet", sys.argv[1])
quiet = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quiet)
chatter = sys.argv[2].encode() + b"\n"
with quiet.filtered_native_stderr():
    os.write(2, chatter)
    os.write(2, b"UserWarning: a real warning\n")
    os.write(2, chatter.replace(b"profiler_start", b"profiler_stop"))
    os.write(2, b"error: mentions profiler_start but is not a trace line\n")
    sys.stderr.write("python-level line\n")
try:
    with quiet.filtered_native_stderr():
        os.write(2, b"kept before an error\n" + chatter)
        raise KeyError("boom")
except KeyError:
    pass
os.write(2, b"after the block\n")
"""


def test_filtered_native_stderr_drops_profiler_chatter_on_fd2():
    # A fresh process whose sys.stderr is file descriptor 2, as in a terminal or a CLI run.
    import profilers.quiet

    proc = subprocess.run([sys.executable, "-c", _QUIET_SCRIPT, profilers.quiet.__file__, CHATTER.decode().strip()],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("UserWarning: a real warning\n"
                           "error: mentions profiler_start but is not a trace line\n"
                           "python-level line\n"
                           "kept before an error\n"
                           "after the block\n")


def test_filtered_native_stderr_drops_profiler_chatter(capfd):
    with filtered_native_stderr():
        os.write(2, CHATTER)
        os.write(2, b"UserWarning: a real warning\n")
        os.write(2, CHATTER.replace(b"profiler_start", b"profiler_stop"))
        os.write(2, b"error: mentions profiler_start but is not a trace line\n")
    _, err = capfd.readouterr()
    assert err == "UserWarning: a real warning\nerror: mentions profiler_start but is not a trace line\n"


def test_filtered_native_stderr_filters_fd2_and_restores_after_an_error(capfd):
    # In-process, through file descriptor 2 (where Kineto writes), with an error inside.
    with pytest.raises(KeyError):
        with filtered_native_stderr():
            os.write(2, b"kept line\n" + CHATTER)
            raise KeyError("boom")
    os.write(2, b"after\n")
    _, err = capfd.readouterr()
    assert err == "kept line\nafter\n"


# ---- kernels: occupancy and waves -------------------------------------------------------------

H100 = DeviceFingerprint(kind="cuda", name="H100", torch_version="x", sm_count=132, max_threads_per_sm=2048,
                         max_blocks_per_sm=32, regs_per_sm=65536, smem_per_sm_kb=228)


@pytest.mark.parametrize("threads, regs, smem, expected", [
    # threads: 1024 threads = 32 warps; 2048 // 1024 = 2 (no register or shared-memory limit)
    (1024, 0, 0, 2),
    # threads rounded up to whole warps: 100 threads -> 4 warps = 128; 2048 // 128 = 16
    (100, 0, 0, 16),
    # hardware limit: 1 warp; threads 2048 // 32 = 64, registers 65536 // (16*32) = 128; cap 32
    (32, 16, 0, 32),
    # registers: 8 warps × 255 regs -> 8160 per warp, rounded up to 8192; 65536 // 65536 = 1
    (256, 255, 0, 1),
    # allocation unit matters: 33 regs -> 1056 per warp -> 1280; 65536 // (1280*8) = 6 (not 7)
    (256, 33, 0, 6),
    # registers 128 -> 4096 per warp; 65536 // (4096*8) = 2; threads 2048 // 256 = 8
    (256, 128, 0, 2),
    # shared memory: 228 KiB = 233472 B; 233472 // 49152 = 4; threads 16, registers 65536 // (1024*4) = 16
    (128, 32, 48 * 1024, 4),
    # one block needs more shared memory than an SM has: none fits
    (128, 32, 300 * 1024, 0),
])
def test_resident_blocks_per_sm_by_hand(threads, regs, smem, expected):
    assert resident_blocks_per_sm(threads_per_block=threads, registers_per_thread=regs,
                                  shared_memory_bytes=smem, device=H100) == expected


def test_resident_blocks_per_sm_rejects_bad_input():
    with pytest.raises(ValueError, match="threads_per_block"):
        resident_blocks_per_sm(threads_per_block=0, registers_per_thread=32, shared_memory_bytes=0, device=H100)
    cpu = device_fingerprint("cpu")
    with pytest.raises(ValueError, match="max_threads_per_sm"):
        resident_blocks_per_sm(threads_per_block=128, registers_per_thread=32, shared_memory_bytes=0, device=cpu)


@pytest.mark.parametrize("blocks, sms, resident, expected", [
    (528, 132, 4, 1), (529, 132, 4, 2), (1000, 132, 4, 2), (1, 132, 16, 1), (132 * 2 * 7, 132, 2, 7),
])
def test_waves_by_hand(blocks, sms, resident, expected):
    assert waves(blocks, sms, resident) == expected == math.ceil(blocks / (sms * resident))


@pytest.mark.parametrize("sms, resident", [(0, 4), (132, 0)])
def test_waves_rejects_bad_input(sms, resident):
    with pytest.raises(ValueError, match="sm_count >= 1 and resident_per_sm >= 1"):
        waves(10, sms, resident)


def _kernel(name, grid, block, regs, smem=0, dur=10.0, **extra):
    args = {"grid": grid, "block": block, "registers per thread": regs, "shared memory": smem, **extra}
    return {"ph": "X", "cat": "kernel", "name": name, "dur": dur, "ts": 0, "args": args}


def _trace():
    return {"traceEvents": [
        {"ph": "X", "cat": "cpu_op", "name": "aten::conv2d", "dur": 50, "args": {"Input Dims": [[1]]}},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "dur": 3, "args": {}},
        {"ph": "s", "cat": "kernel", "name": "flow start", "id": 1},  # not a complete event
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "dur": 2, "args": {}},
        _kernel("gemm", [100, 2, 3], [128, 1, 1], 32, dur=12.5,
                **{"blocks per SM": 4.54, "warps per SM": 18.18, "est. achieved occupancy %": 25}),
        _kernel("elementwise", [1000, 1, 1], [16, 16, 1], 128, dur=4.0),
        _kernel("ncclAllReduce", [1, 1, 1], [32, 1, 1], 16),
        {"ph": "i", "cat": "kernel", "name": "instant"},
    ]}


def test_kernel_records_from_a_synthetic_trace():
    recs = kernel_records_from_trace(_trace(), H100)
    assert [r.name for r in recs] == ["gemm", "elementwise", "ncclAllReduce"]
    gemm, ew, nccl = recs
    # gemm: 600 blocks of 128 threads (4 warps), 32 regs: limits 32, 2048 // 128 = 16,
    # 65536 // (1024*4) = 16 -> 16 resident; one wave of 132*16 = 2112 slots, 600 used.
    assert (gemm.blocks, gemm.threads_per_block, gemm.resident_blocks_per_sm) == (600, 128, 16)
    assert gemm.waves == 1 and gemm.tail_fraction == 600 / 2112
    assert gemm.grid == (100, 2, 3) and gemm.block == (128, 1, 1) and gemm.duration_us == 12.5
    assert (gemm.blocks_per_sm, gemm.warps_per_sm, gemm.est_achieved_occupancy_pct) == (4.54, 18.18, 25.0)
    # elementwise: 1000 blocks of 256 threads, 128 regs -> 2 resident (registers); 264 per
    # wave -> 4 waves, the last holds 1000 - 3*264 = 208.
    assert (ew.blocks, ew.threads_per_block, ew.resident_blocks_per_sm) == (1000, 256, 2)
    assert ew.waves == 4 and ew.tail_fraction == 208 / 264
    assert (ew.blocks_per_sm, ew.warps_per_sm, ew.est_achieved_occupancy_pct) == (None, None, None)
    # 1 block: one wave, 1 of 132*32 slots.
    assert nccl.waves == 1 and nccl.tail_fraction == 1 / (132 * 32)
    assert json.loads(json.dumps(gemm.to_dict()))["grid"] == [100, 2, 3]


def test_kernel_records_exclude_by_name():
    recs = kernel_records_from_trace(_trace(), H100, exclude=("nccl", "elementwise"))
    assert [r.name for r in recs] == ["gemm"]


def test_kernel_records_from_a_trace_file(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(_trace()))
    assert kernel_records_from_trace(path, H100) == kernel_records_from_trace(_trace(), H100)
    assert kernel_records_from_trace(str(path), H100) == kernel_records_from_trace(_trace(), H100)


def test_kernel_records_reject_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "trace.txt"
    path.write_text("not json {")
    with pytest.raises(ValueError, match=f"cannot read profiler trace {path}"):
        kernel_records_from_trace(path, H100)
    missing = tmp_path / "missing.json"
    with pytest.raises(ValueError, match=f"cannot read profiler trace {missing}"):
        kernel_records_from_trace(missing, H100)


@pytest.mark.parametrize("what, value", [
    ("grid", [1, 2]), ("grid", "1,2,3"), ("grid", None), ("grid", [1, 2, "3"]), ("block", [128, 1]),
])
def test_kernel_records_reject_a_malformed_launch_shape(what, value):
    ev = _kernel("k", [1, 1, 1], [32, 1, 1], 16)
    ev["args"][what] = value
    with pytest.raises(ValueError, match=f"malformed {what}"):
        kernel_records_from_trace({"traceEvents": [ev]}, H100)


def test_kernel_records_need_a_cuda_fingerprint():
    with pytest.raises(ValueError, match="CUDA device fingerprint"):
        kernel_records_from_trace(_trace(), device_fingerprint("cpu"))
    with pytest.raises(ValueError, match="CUDA device fingerprint"):
        kernel_records_from_trace(_trace(), replace(H100, sm_count=None))


# ---- fingerprint ------------------------------------------------------------------------------

def test_cpu_fingerprint_fields():
    fp = device_fingerprint("cpu", threads=2)
    assert fp.kind == "cpu" and fp.name == cpu_model_name() and fp.torch_version == torch.__version__
    assert fp.cpu_cores == os.cpu_count() and fp.threads == 2
    cuda_fields = ("driver", "compute_capability", "sm_count", "l2_cache_mb", "total_memory_mb", "power_limit_w",
                   "max_threads_per_sm", "max_blocks_per_sm", "regs_per_sm", "smem_per_sm_kb")
    assert all(getattr(fp, f) is None for f in cuda_fields)
    assert device_fingerprint("cpu").threads == torch.get_num_threads() == 1  # conftest: one thread


def test_fingerprint_id_is_a_stable_hash_of_the_fields():
    fp = device_fingerprint("cpu", threads=2)
    canonical = json.dumps(fp.to_dict(), sort_keys=True, separators=(",", ":"))
    assert fp.fingerprint_id == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert len(fp.fingerprint_id) == 12 and all(c in "0123456789abcdef" for c in fp.fingerprint_id)
    assert device_fingerprint("cpu", threads=2).fingerprint_id == fp.fingerprint_id
    assert device_fingerprint("cpu", threads=3).fingerprint_id != fp.fingerprint_id


@pytest.mark.parametrize("fp", [device_fingerprint("cpu", threads=2), H100], ids=["cpu", "cuda"])
def test_fingerprint_json_round_trip(fp):
    back = DeviceFingerprint.from_json(fp.to_json())
    assert back == fp and back.fingerprint_id == fp.fingerprint_id
    assert DeviceFingerprint.from_dict(fp.to_dict()) == fp


def test_fingerprint_rejects_bad_data():
    data = device_fingerprint("cpu").to_dict()
    with pytest.raises(ValueError, match="unknown field 'gpu_temp'"):
        DeviceFingerprint.from_dict({**data, "gpu_temp": 40})
    with pytest.raises(ValueError, match="JSON object, got list"):
        DeviceFingerprint.from_dict([1, 2])
    with pytest.raises(ValueError, match="not valid JSON"):
        DeviceFingerprint.from_json("{kind")
    with pytest.raises(ValueError, match="kind must be 'cpu' or 'cuda', got 'tpu'"):
        DeviceFingerprint(kind="tpu", name="x", torch_version="x")
    with pytest.raises(ValueError, match="name"):
        DeviceFingerprint(kind="cpu", name="", torch_version="x")


def test_fingerprint_differences_and_check_matches():
    a = device_fingerprint("cpu", threads=2)
    b = replace(a, threads=4)
    assert a.differences(a) == []
    assert a.differences(b) == ["threads: 2 != 4"]
    assert H100.differences(replace(H100, sm_count=114, name="H100 PCIe")) == [
        "name: 'H100' != 'H100 PCIe'", "sm_count: 132 != 114"]
    a.check_matches(a, what="the predictor")  # same device: fine
    a.check_matches(b, what="the predictor", force=True)  # forced: fine
    with pytest.raises(FingerprintMismatch) as info:
        a.check_matches(b, what="the predictor")
    msg = str(info.value)
    assert msg.startswith("the predictor was measured on ")
    assert a.describe() in msg and b.describe() in msg
    assert a.fingerprint_id in msg and b.fingerprint_id in msg and "threads: 2 != 4" in msg
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("before, after, expected", [
    (ClockReading(core_clock_mhz=1000.0), ClockReading(core_clock_mhz=1050.0), ""),
    (ClockReading(core_clock_mhz=1000.0), ClockReading(core_clock_mhz=1100.0), ""),  # exactly 10 %: held
    (ClockReading(core_clock_mhz=1000.0), ClockReading(core_clock_mhz=1200.0), "core_clock_mhz changed 1000 -> 1200"),
    (ClockReading(core_clock_mhz=1980.0), ClockReading(core_clock_mhz=1410.0), "core_clock_mhz changed 1980 -> 1410"),
    (ClockReading(memory_clock_mhz=2600.0), ClockReading(memory_clock_mhz=1300.0),
     "memory_clock_mhz changed 2600 -> 1300"),
    (ClockReading(), ClockReading(core_clock_mhz=1000.0), ""),  # nothing to compare
    (ClockReading(throttle_reasons=("hw_thermal",)), ClockReading(throttle_reasons=("sw_power_cap",)),
     "throttling: hw_thermal, sw_power_cap"),
    (ClockReading(core_clock_mhz=1000.0, throttle_reasons=("hw_slowdown",)), ClockReading(core_clock_mhz=500.0),
     "throttling: hw_slowdown; core_clock_mhz changed 1000 -> 500"),
])
def test_clock_change(before, after, expected):
    assert clock_change(before, after) == expected


def test_device_fingerprint_rejects_other_devices():
    with pytest.raises(ValueError, match="'cpu' or 'cuda' devices, got meta"):
        device_fingerprint("meta")


@no_cuda
def test_device_fingerprint_on_cuda_without_a_gpu_raises():
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        device_fingerprint("cuda")


# ---- CUDA -------------------------------------------------------------------------------------

@pytest.mark.cuda
@needs_cuda
def test_profile_on_cuda_has_kernel_records():
    arch = DIGITS_ARCHS["max"]
    rec = profile(arch, device="cuda", batch_size=2, latency=FAST)
    fp = rec.fingerprint
    assert fp.kind == "cuda" and fp.sm_count > 0 and fp == device_fingerprint("cuda")
    assert len(rec.kernels) > 0
    assert all(k.blocks >= 1 and k.waves >= 1 and 0 < k.tail_fraction <= 1 for k in rec.kernels)
    for k in rec.kernels:
        assert k.waves == math.ceil(k.blocks / (fp.sm_count * max(k.resident_blocks_per_sm, 1)))
    row = rec.to_row()
    assert row["n_kernels"] == len(rec.kernels) and row["kernel_waves"] == sum(k.waves for k in rec.kernels)
    assert row["device"] == "cuda" and row["threads"] == ""
    assert rec.peak_train_mem_mb > rec.peak_infer_mem_mb > rec.param_mb == _param_bytes(_model_of(arch)) / MB
    assert _op_count(rec, "aten::linear") == sum(isinstance(m, nn.Linear) for m in _model_of(arch).modules())
    json.dumps(rec.to_dict())


@pytest.mark.cuda
@needs_cuda
def test_profile_on_cuda_beside_a_reference_times_both_with_events():
    small, big = DIGITS_ARCHS["min"], DIGITS_ARCHS["max"]
    rec = profile(small, device="cuda", batch_size=64, latency=FAST, with_ops=False, reference=big)
    assert rec.ref_latency is not None and rec.ref_arch_id == big.arch_id
    assert rec.ref_latency.repeats == rec.latency.repeats and rec.latency.median_ms > 0
    assert rec.ref_latency.median_ms > 0 and rec.to_row()["ref_latency_ms"] == rec.ref_latency.median_ms
