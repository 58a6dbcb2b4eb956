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
