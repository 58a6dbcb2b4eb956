"""Tests for profilers: saved-activation accounting, CUDA peak memory, timing and summaries,
each against a value derived in the test (storage sizes, numpy percentiles, a known sleep)."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
import torch
from torch import nn

from profilers import (
    SavedTensorMeter,
    TimingStats,
    peak_cuda_memory_bytes,
    saved_activation_bytes,
    summarize,
    synchronize,
    time_once_ms,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class _Scale(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(n))
        self.register_buffer("b", torch.zeros(n))


def _nbytes(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes()


# ---- SavedTensorMeter ------------------------------------------------------------------------

def test_meter_excludes_module_parameters():
    x = torch.randn(3, 5, requires_grad=True)  # (B, N) activation, 15 float32 = 60 bytes
    mod = _Scale(5)
    assert _nbytes(x) == 15 * 4
    with SavedTensorMeter(exclude=mod) as meter:
        y = (x * mod.w).sum()
    assert meter.n_packed == 2  # mul saves both operands
    assert meter.bytes == _nbytes(x) == 60
    assert meter.n_storages == 1
    y.backward()  # the graph is still intact after the meter
    assert torch.equal(x.grad, mod.w.detach().expand(3, 5))


def test_meter_without_exclude_counts_parameters_too():
    x = torch.randn(3, 5, requires_grad=True)
    mod = _Scale(5)
    with SavedTensorMeter() as meter:
        (x * mod.w).sum()
    assert meter.bytes == _nbytes(x) + _nbytes(mod.w) == 60 + 20
    assert meter.n_storages == 2


def test_meter_counts_a_storage_once():
    x = torch.randn(4, 6, requires_grad=True)
    v = x.view(-1)
    with SavedTensorMeter() as meter:
        (v * v).sum()  # the same view saved twice
    assert meter.n_packed == 2
    assert meter.bytes == _nbytes(x) == 96
    assert meter.n_storages == 1

    base = torch.randn(4, 6)  # two different slices of one storage: the whole storage, once
    a, b = base[:2].requires_grad_(), base[2:].requires_grad_()
    assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    with SavedTensorMeter() as meter:
        (a * b).sum()
    assert meter.n_packed == 2
    assert meter.bytes == _nbytes(base) == 96


def test_meter_excludes_buffers_and_views_of_parameters():
    x = torch.randn(2, 5, requires_grad=True)
    mod = _Scale(5)
    with SavedTensorMeter(exclude=mod) as meter:
        (x * mod.w[None, :] * (mod.b + 1)).sum()
    # First mul: x (for dw) and the view w[None] (for dx, excluded: the parameter's storage).
    # Second mul: only (b + 1), for d(x*w); x*w itself is not saved because b + 1 needs no
    # grad. b + 1 is a new tensor, not the buffer, so it counts: 5 float32.
    assert meter.n_packed == 3
    assert meter.bytes == _nbytes(x) + 5 * 4 == 60


def test_meter_records_nothing_outside_its_context():
    x = torch.randn(3, requires_grad=True)
    meter = SavedTensorMeter()
    with meter:
        pass
    (x * x).sum()
    assert meter.bytes == 0 and meter.n_packed == 0


# ---- saved_activation_bytes ------------------------------------------------------------------

@pytest.mark.parametrize("start_training", [True, False])
@pytest.mark.parametrize("x_requires_grad", [False, True])
def test_saved_activation_bytes_of_linear(start_training, x_requires_grad):
    torch.manual_seed(0)
    batch, d_in, d_out = 7, 12, 5
    model = nn.Linear(d_in, d_out)
    model.train(start_training)
    x = torch.randn(batch, d_in, requires_grad=x_requires_grad)
    modes = []
    model.register_forward_hook(lambda mod, inp, out: modes.append(mod.training))
    # y = x Wᵀ + b saves x (for dW) and, when x needs grad, Wᵀ (for dx) — a view of the weight.
    expected = batch * d_in * x.element_size()
    assert saved_activation_bytes(model, x) == expected == 7 * 12 * 4
    assert modes == [True]  # measured in training mode
    assert model.training is start_training  # and the mode restored


def test_saved_activation_bytes_includes_the_loss():
    torch.manual_seed(0)
    model = nn.Linear(6, 4)
    x = torch.randn(3, 6)
    y = torch.tensor([0, 1, 3])
    without = saved_activation_bytes(model, x)
    with_loss = saved_activation_bytes(model, x, loss_fn=lambda out: nn.functional.cross_entropy(out, y))
    # cross_entropy = nll_loss(log_softmax(out)): log_softmax saves its result (3x4 float32),
    # nll_loss saves that same tensor again (one storage), the targets (3 int64) and its
    # total_weight (a float32 scalar); the logits themselves are not saved.
    assert without == 3 * 6 * 4
    assert with_loss == without + 3 * 4 * 4 + 3 * 8 + 4


def test_saved_activation_bytes_restores_mode_on_error():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = Boom().eval()
    with pytest.raises(RuntimeError, match="boom"):
        saved_activation_bytes(model, torch.zeros(1))
    assert model.training is False


# ---- summarize -------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 10, 101])
def test_summarize_matches_numpy_percentiles(n):
    rng = np.random.default_rng(n)
    samples = rng.exponential(5.0, size=n).tolist()
    stats = summarize(samples)
    assert isinstance(stats, TimingStats)
    assert stats.repeats == n
    assert stats.median_ms == pytest.approx(np.percentile(samples, 50, method="linear"), rel=1e-12)
    assert stats.p10_ms == pytest.approx(np.percentile(samples, 10, method="linear"), rel=1e-12)
    assert stats.p90_ms == pytest.approx(np.percentile(samples, 90, method="linear"), rel=1e-12)
    assert stats.p10_ms <= stats.median_ms <= stats.p90_ms


def test_summarize_by_hand():
    # sorted 1..5: position (5-1)*q -> p10 = 1.4, median 3, p90 = 4.6; input order is irrelevant
    stats = summarize([5, 3, 1, 4, 2])
    assert (stats.median_ms, stats.repeats) == (3.0, 5)
    assert stats.p10_ms == pytest.approx(1.4) and stats.p90_ms == pytest.approx(4.6)


def test_summarize_empty_raises():
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


# ---- timing ----------------------------------------------------------------------------------

def test_time_once_ms_covers_a_sleep():
    calls = []

    def nap():
        calls.append(1)
        time.sleep(0.01)

    ms = time_once_ms(nap, "cpu")
    assert isinstance(ms, float)
    assert ms >= 9.0
    assert calls == [1]
    quick = time_once_ms(lambda: None, torch.device("cpu"))
    assert isinstance(quick, float) and quick >= 0.0


def test_synchronize_on_cpu_touches_no_cuda(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("torch.cuda.synchronize called for a CPU device")

    monkeypatch.setattr(torch.cuda, "synchronize", fail)
    assert synchronize("cpu") is None
    assert synchronize(torch.device("cpu")) is None
    time_once_ms(lambda: None, "cpu")  # the CPU timer does not synchronise either


def test_peak_cuda_memory_on_cpu_raises():
    ran = []
    with pytest.raises(ValueError, match="cuda"):
        peak_cuda_memory_bytes(lambda: ran.append(1), "cpu")
    assert ran == []


@pytest.mark.cuda
@needs_cuda
def test_peak_cuda_memory_covers_an_allocation():
    n = 4 * 2**20  # 16 MiB of float32
    kept = []
    peak = peak_cuda_memory_bytes(lambda: kept.append(torch.empty(n, device="cuda")), "cuda")
    assert peak >= n * 4
    ms = time_once_ms(lambda: torch.ones(n, device="cuda").sum(), "cuda")
    assert isinstance(ms, float) and ms > 0
    synchronize("cuda")


def test_cpu_device_name_is_the_cpuinfo_model_name():
    from pathlib import Path

    from profilers import cpu_model_name, device_name

    name = device_name("cpu")
    assert name == cpu_model_name() and name
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                  if ln.lower().startswith("model name")]
        if models:
            assert name == models[0]


# ---- device fingerprint: device names ----------------------------------------------------------

@pytest.mark.parametrize("device", ["bogus", "CPU", "cuda:x", "cuda:-1", " cpu", "", None, 0])
def test_fingerprint_refuses_unparseable_device_names(device):
    from profilers.fingerprint import device_fingerprint, read_clocks

    for fn in (device_fingerprint, read_clocks):
        with pytest.raises(ValueError) as info:
            fn(device)
        assert str(info.value) == f"device must be 'cpu' or 'cuda[:N]', got {device!r}"


def test_fingerprint_accepts_cpu_names_and_devices():
    from profilers.fingerprint import device_fingerprint

    assert device_fingerprint("cpu", threads=2) == device_fingerprint(torch.device("cpu"), threads=2)
    for device in ("mps", "meta", torch.device("meta")):  # torch's names of devices this project does not measure
        with pytest.raises(ValueError, match=r"^can fingerprint 'cpu' or 'cuda' devices, got (mps|meta)$"):
            device_fingerprint(device)


@pytest.mark.parametrize("threads", [0, -3, True, 1.5])
def test_fingerprint_refuses_a_thread_count_that_is_not_positive(threads):
    from profilers.fingerprint import device_fingerprint

    with pytest.raises(ValueError, match=r"threads must be a positive integer or None"):
        device_fingerprint("cpu", threads=threads)


def test_fingerprint_of_a_missing_cuda_device_is_a_value_error(monkeypatch):
    from profilers.fingerprint import device_fingerprint

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^cuda:3 requested but torch sees no CUDA device"):
        device_fingerprint("cuda:3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"^cuda:3 requested but torch sees 2 CUDA device\(s\) \(cuda:0, cuda:1\)$"):
        device_fingerprint("cuda:3")


# ---- latency settings: validated when built, finite seconds, NumPy integers --------------------

def _never_called():
    raise AssertionError("the timed callable ran: the settings were not validated first")


_BAD_SETTINGS = [
    ({"min_repeats": 0}, "need 1 <= min_repeats <= max_repeats, got 0 and 200"),
    ({"min_repeats": 5, "max_repeats": 4}, "need 1 <= min_repeats <= max_repeats, got 5 and 4"),
    ({"warmup": "5"}, "warmup must be a non-negative integer, got '5'"),
    ({"warmup": True}, "warmup must be a non-negative integer, got True"),
    ({"max_repeats": 2.0}, "max_repeats must be a non-negative integer, got 2.0"),
    ({"max_seconds": float("nan")}, "max_seconds must be a finite number of seconds > 0, got nan"),
    ({"max_seconds": float("inf")}, "max_seconds must be a finite number of seconds > 0, got inf"),
    ({"max_seconds": 0.0}, "max_seconds must be a finite number of seconds > 0, got 0.0"),
    ({"warmup_seconds": float("inf")}, "warmup_seconds must be a finite number of seconds >= 0, got inf"),
    ({"warmup_seconds": -0.5}, "warmup_seconds must be a finite number of seconds >= 0, got -0.5"),
    ({"warmup_seconds": "0.2"}, "warmup_seconds must be a finite number of seconds >= 0, got '0.2'"),
    ({"rel_tol": float("inf")}, "rel_tol must be a finite number > 0, got inf"),
    ({"rel_tol": False}, "rel_tol must be a finite number > 0, got False"),
]


@pytest.mark.parametrize("kw, message", _BAD_SETTINGS)
def test_latency_settings_are_validated_when_built(kw, message):
    from profilers import LatencySettings

    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        LatencySettings(**kw)


@pytest.mark.parametrize("kw, message", _BAD_SETTINGS)
def test_timing_refuses_bad_settings_before_running_anything(kw, message):
    # An infinite warmup_seconds used to warm up for ever; the callable raising here turns a
    # missing check into a failure instead of a hang.
    from profilers import measure_latency, measure_latency_paired

    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        measure_latency(_never_called, "cpu", **kw)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        measure_latency_paired(_never_called, _never_called, "cpu", **kw)


def test_latency_settings_store_numpy_numbers_as_plain_ones():
    from profilers import LatencySettings

    s = LatencySettings(warmup=np.int64(1), warmup_seconds=np.float32(0.5), min_repeats=np.int32(2),
                        max_repeats=np.uint8(4), rel_tol=np.float64(0.25), max_seconds=2)
    got = (s.warmup, s.warmup_seconds, s.min_repeats, s.max_repeats, s.rel_tol, s.max_seconds)
    assert got == (1, 0.5, 2, 4, 0.25, 2.0)
    assert [type(v) for v in (s.warmup, s.min_repeats, s.max_repeats)] == [int, int, int]
    assert [type(v) for v in (s.warmup_seconds, s.rel_tol, s.max_seconds)] == [float, float, float]
    assert LatencySettings() == LatencySettings(warmup=5, warmup_seconds=0.2, min_repeats=15, max_repeats=200,
                                                rel_tol=0.01, max_seconds=5.0)


def test_measure_latency_takes_numpy_counts():
    from profilers import measure_latency

    calls = []
    stats = measure_latency(lambda: calls.append(1), "cpu", warmup=np.int64(1), warmup_seconds=0.0,
                            min_repeats=np.int64(2), max_repeats=np.int64(2))
    assert stats.repeats == 2 and len(calls) == 3  # one warm-up call, two timed


@pytest.mark.parametrize("latency", [{"min_repeats": 2}, None, (5, 0.2, 15, 200, 0.01, 5.0)])
def test_profile_refuses_latency_that_is_not_latency_settings(latency):
    from profilers import profile

    model = nn.Linear(4, 2)
    with pytest.raises(TypeError, match=r"^latency must be a LatencySettings, got " + type(latency).__name__) as err:
        profile(model, input_shape=(1, 1, 4), latency=latency)
    if isinstance(latency, dict):
        assert str(err.value).endswith("; build one from it: LatencySettings(**{'min_repeats': 2})")


def test_fingerprint_and_profile_take_numpy_integers():
    from profilers import LatencySettings, device_fingerprint, profile

    fp = device_fingerprint("cpu", threads=np.int64(1))
    assert fp.threads == 1 and type(fp.threads) is int
    assert fp.fingerprint_id == device_fingerprint("cpu", threads=1).fingerprint_id  # hashable as JSON
    fast = LatencySettings(warmup=0, warmup_seconds=0.0, min_repeats=2, max_repeats=2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    record = profile(model, input_shape=(np.int64(1), np.int32(2), np.int64(3)), latency=fast, with_ops=False)
    assert record.input_shape == (1, 2, 3) and all(type(v) is int for v in record.input_shape)
    json.dumps(record.to_dict())


def test_profile_takes_a_numpy_batch_size():
    from profilers import LatencySettings, profile

    fast = LatencySettings(warmup=0, warmup_seconds=0.0, min_repeats=2, max_repeats=2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    record = profile(model, input_shape=(1, 2, 3), batch_size=np.int64(2), threads=np.int64(1), latency=fast,
                     with_ops=False)
    assert record.batch_size == 2 and type(record.batch_size) is int
    assert record.fingerprint.threads == 1
    json.dumps(record.to_dict())
