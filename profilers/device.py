"""Human-readable device names (the identity used to match measurements is :mod:`profilers.fingerprint`)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from profilers.backend import backend_for

__all__ = ["cpu_model_name", "device_name"]


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device | str) -> str:
    """Human-readable name of ``device``: the GPU's name on CUDA, the CPU model otherwise."""
    return backend_for(device).name()
