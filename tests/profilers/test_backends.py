"""Tests for profilers.backend: the device check, the registry of backends, and the CPU backend
against plain measurements (the CUDA backend's tests need a GPU and skip without one)."""

from __future__ import annotations

import time

import pytest
import torch

from profilers import BACKENDS, CPUBackend, CUDABackend, backend_for, check_device, present_backends

# ---- check_device ----------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:12"])
def test_check_device_accepts_cpu_and_cuda_forms(device):
    assert check_device(device) == device  # the form only; CUDA need not exist without available=True


@pytest.mark.parametrize("device", ["mps", "meta", "CPU", "Cuda", "cuda:", "cuda:x", "cuda:-1", "cpu:0", " cpu", "",
                                    None, 0, torch.device("cpu")])
def test_check_device_rejects_other_names(device):
    with pytest.raises(ValueError) as info:
        check_device(device, name="--device")
    assert str(info.value) == f"--device must be 'cpu' or 'cuda[:N]', got {device!r}"


def test_check_device_available_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_device("cpu", name="--device", available=True) == "cpu"
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError) as info:
            check_device(device, name="--device", available=True)
        assert str(info.value) == (f"--device {device}: no CUDA device is available here (torch {torch.__version__}); "
                                   f"use --device cpu")
    assert check_device("cuda") == "cuda"  # without available=True only the form is checked


def test_check_device_available_names_the_cuda_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1", available=True) == "cuda:1"
    with pytest.raises(ValueError) as info:
        check_device("cuda:2", name="--device", available=True)
    assert str(info.value) == ("--device cuda:2: this machine has 2 CUDA device(s) (cuda:0, cuda:1); choose one of "
                               "them or use --device cpu")


# ---- the registry and the choice of backend ---------------------------------------------------

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_the_registry_holds_one_backend_per_device_kind():
    assert BACKENDS == {"cpu": CPUBackend, "cuda": CUDABackend}
    assert CPUBackend in present_backends()


@pytest.mark.parametrize("device, cls", [("cpu", CPUBackend), (torch.device("cpu"), CPUBackend),
                                         ("cuda", CUDABackend), ("cuda:1", CUDABackend)])
def test_backend_for_picks_the_device_kind(device, cls):
    backend = backend_for(device)  # building one needs no GPU: measuring does
    assert type(backend) is cls and backend.device == torch.device(device)


@pytest.mark.parametrize("device", ["meta", "mps"])
def test_backend_for_refuses_a_kind_without_a_backend(device):
    with pytest.raises(ValueError, match=rf"^device must be 'cpu' or 'cuda', got {device}$"):
        backend_for(device)


def test_a_backend_refuses_a_device_of_another_kind():
    with pytest.raises(ValueError, match="CPUBackend measures cpu devices, not cuda"):
        CPUBackend(torch.device("cuda"))


# ---- the CPU backend against plain measurements ------------------------------------------------

def test_cpu_threads_are_set_inside_and_restored_after(monkeypatch):
    backend = backend_for("cpu")
    before = torch.get_num_threads()
    with backend.threads(1):
        assert torch.get_num_threads() == 1 == backend.threads_in_use()
    assert torch.get_num_threads() == before
    with pytest.raises(KeyboardInterrupt), backend.threads(1):
        raise KeyboardInterrupt
    assert torch.get_num_threads() == before
    with backend.threads(None):  # None keeps torch's setting
        assert torch.get_num_threads() == before


def test_cpu_time_once_ms_times_the_call():
    backend = backend_for("cpu")
    assert backend.time_once_ms(lambda: time.sleep(0.02)) >= 20.0


def test_cpu_peak_bytes_counts_what_was_live_and_the_largest_allocation():
    backend = backend_for("cpu")
    n = 1 << 20  # one float32 MiB tensor, allocated and freed inside the call

    def work():
        x = torch.ones(n // 4)
        del x

    assert backend.peak_bytes(work, live_bytes=123) == 123 + n
    calls = []

    def infer():
        calls.append("infer")
        work()

    def train():
        calls.append("train")
        y = torch.ones(n // 2)  # twice as much
        del y

    peak_infer, peak_train, ops, kernels = backend.memory_and_ops(infer, train, infer_live_bytes=0,
                                                                  train_live_bytes=7, with_ops=True, fingerprint=None)
    assert (peak_infer, peak_train, kernels) == (n, 7 + 2 * n, ())
    assert calls == ["infer", "train"]  # on a CPU the inference's op records come from its memory run
    assert any(op.name == "aten::ones" for op in ops)
    assert backend.memory_and_ops(infer, train, infer_live_bytes=0, train_live_bytes=0, with_ops=False,
                                  fingerprint=None)[2] == ()


def test_cpu_has_no_device_allocator_peak_and_no_kernel_records():
    backend = backend_for("cpu")
    called = []
    assert backend.device_peak_bytes(lambda: called.append(1), warm_up=True) is None and called == []
    assert not backend.records_kernels
    assert backend.ddp_device_ids() is None and backend.dist_backend == "gloo"


def test_rng_states_round_trip_through_every_present_backend():
    states = {cls.rng_key: cls.get_rng_state() for cls in present_backends()}
    first = torch.rand(3)
    for cls in present_backends():
        cls.set_rng_state(states[cls.rng_key])
    assert torch.equal(torch.rand(3), first)


# ---- the CUDA backend ---------------------------------------------------------------------------

@no_cuda
def test_cuda_is_absent_here_and_its_fingerprint_says_so():
    assert not CUDABackend.present() and CUDABackend.device_count() == 0
    with pytest.raises(ValueError, match="requested but torch sees no CUDA device"):
        backend_for("cuda").fingerprint()


@pytest.mark.cuda
@needs_cuda
def test_cuda_backend_measures_on_the_gpu():
    backend = backend_for("cuda")
    assert backend.records_kernels and backend.dist_backend == "nccl"
    x = torch.ones(1 << 20, device="cuda")
    assert backend.time_once_ms(lambda: x.mul(2)) > 0
    peak = backend.peak_bytes(lambda: torch.ones(1 << 20, device="cuda"), live_bytes=0)
    assert peak >= 4 * (1 << 20)
    fp = backend.fingerprint()
    assert fp.kind == "cuda" and fp.sm_count > 0
    calls = []
    _, _, ops, kernels = backend.memory_and_ops(lambda: calls.append("infer") or x.mul(2),
                                                lambda: calls.append("train") or x.add(1), infer_live_bytes=0,
                                                train_live_bytes=0, with_ops=True, fingerprint=fp)
    assert ops and kernels
    assert calls == ["infer", "train", "infer"]  # the allocator's peaks first, then one profiled inference
    assert backend.device_peak_bytes(lambda: calls.append("step"), warm_up=True) >= 0 and calls[-2:] == ["step"] * 2
