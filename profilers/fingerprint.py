"""Device fingerprint: which machine a profile was measured on, and whether its clocks held.

A :class:`DeviceFingerprint` holds the *identity* of a device — what must match for a latency
or memory measurement (and a predictor fitted on such measurements) to carry over:

- CPU: model name, logical core count, the thread count used, torch version;
- CUDA: GPU name, driver, compute capability, SM count, L2 size, memory size, power limit and
  the per-SM limits the occupancy calculation needs (threads, registers, shared memory), from
  ``pynvml`` and ``torch.cuda.get_device_properties``; torch version.

``fingerprint_id`` is a short hash of those identity fields. Per-measurement conditions —
clocks, temperature, power draw — are a :class:`ClockReading`, read before and after each
measurement; :func:`clock_change` flags throttling or clock changes in between.

``pynvml`` (package ``nvidia-ml-py``) is imported lazily and only on CUDA; without it the
fingerprint still has torch's device properties and says the NVML fields are missing.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from profilers.device import cpu_model_name

__all__ = ["ClockReading", "DeviceFingerprint", "FingerprintMismatch", "clock_change", "device_fingerprint",
           "read_clocks"]

# Compute capability -> max resident blocks per SM (CUDA C Programming Guide, table of
# technical specifications per compute capability). Not exposed by torch's properties.
_MAX_BLOCKS_PER_SM = {(7, 0): 32, (7, 2): 32, (7, 5): 16, (8, 0): 32, (8, 6): 16, (8, 7): 16, (8, 9): 24,
                      (9, 0): 32, (10, 0): 32, (12, 0): 32}


class FingerprintMismatch(ValueError):
    """A measurement or predictor belongs to a different device than the one at hand."""


@dataclass(frozen=True)
class DeviceFingerprint:
    """Identity of a device (see module docstring). Fields a device kind lacks are ``None``."""

    kind: str  # "cpu" | "cuda"
    name: str
    torch_version: str
    cpu_cores: int | None = None
    threads: int | None = None
    driver: str | None = None
    compute_capability: str | None = None
    sm_count: int | None = None
    l2_cache_mb: float | None = None
    total_memory_mb: float | None = None
    power_limit_w: float | None = None
    max_threads_per_sm: int | None = None
    max_blocks_per_sm: int | None = None
    regs_per_sm: int | None = None
    smem_per_sm_kb: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "cuda"):
            raise ValueError(f"fingerprint kind must be 'cpu' or 'cuda', got {self.kind!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"fingerprint name must be a non-empty string, got {self.name!r}")

    @property
    def fingerprint_id(self) -> str:
        """12 hex digits: SHA-256 of the identity fields as canonical JSON."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> "DeviceFingerprint":
        if not isinstance(data, dict):
            raise ValueError(f"a device fingerprint is a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"device fingerprint has unknown field {unknown[0]!r}; valid: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "DeviceFingerprint":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as err:
            raise ValueError(f"device fingerprint is not valid JSON: {err}") from None

    def differences(self, other: "DeviceFingerprint") -> list[str]:
        """``field: mine != theirs`` for every identity field that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

    def describe(self) -> str:
        if self.kind == "cpu":
            return f"CPU {self.name} ({self.cpu_cores} cores, {self.threads} threads, torch {self.torch_version})"
        return (f"GPU {self.name} (cc {self.compute_capability}, {self.sm_count} SMs, driver {self.driver}, "
                f"torch {self.torch_version})")

    def check_matches(self, other: "DeviceFingerprint", *, what: str, force: bool = False) -> None:
        """Raise :class:`FingerprintMismatch` unless ``other`` is this device (or ``force``)."""
        diffs = self.differences(other)
        if diffs and not force:
            raise FingerprintMismatch(
                f"{what} was measured on {self.describe()} [fingerprint {self.fingerprint_id}], but this device is "
                f"{other.describe()} [fingerprint {other.fingerprint_id}]; differing: {'; '.join(diffs)}. "
                f"Profile this device and fit a predictor for it, or pass force=True / --force to use it anyway"
            )


def _nvml():
    try:
        import pynvml  # package nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver / no NVML library: fingerprint falls back to torch's view
        return None
    return pynvml


def _nvml_handle(pynvml, device: torch.device):
    index = device.index if device.index is not None else torch.cuda.current_device()
    # NVML indexes physical GPUs; CUDA_VISIBLE_DEVICES may remap. Match by PCI bus id.
    props = torch.cuda.get_device_properties(index)
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(f"{props.pci_domain_id:08x}:{bus:02x}:{props.pci_device_id:02x}.0")
        except Exception:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def _as_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``; a string torch cannot parse ('CPU', 'bogus', 'cuda:x') is a
    ``ValueError`` naming the valid forms, not torch's ``RuntimeError``. Device types other than
    cpu and cuda are left to the caller."""
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError:
            pass
    raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")


def device_fingerprint(device: torch.device | str = "cpu", *, threads: int | None = None) -> DeviceFingerprint:
    """The fingerprint of ``device``; on CPU ``threads`` is the thread count used (default torch's)."""
    device = _as_device(device)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None (torch's setting), got {threads!r}")
    threads = int(threads) if threads is not None else None
    if device.type == "cpu":
        return DeviceFingerprint(kind="cpu", name=cpu_model_name(), torch_version=torch.__version__,
                                 cpu_cores=os.cpu_count(), threads=threads or torch.get_num_threads())
    if device.type != "cuda":
        raise ValueError(f"can fingerprint 'cpu' or 'cuda' devices, got {device}")
    if not torch.cuda.is_available():
        raise ValueError(f"{device} requested but torch sees no CUDA device (torch {torch.__version__})")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(f"{device} requested but torch sees {count} CUDA device(s) "
                         f"({', '.join(f'cuda:{i}' for i in range(count))})")
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    cc = (props.major, props.minor)
    driver = power = None
    pynvml = _nvml()
    if pynvml is not None:
        try:
            handle = _nvml_handle(pynvml, device)
            driver = str(pynvml.nvmlSystemGetDriverVersion())
            power = pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000.0
        except Exception:
            pass
    return DeviceFingerprint(
        kind="cuda", name=props.name, torch_version=torch.__version__, driver=driver,
        compute_capability=f"{props.major}.{props.minor}", sm_count=props.multi_processor_count,
        l2_cache_mb=round(getattr(props, "L2_cache_size", 0) / 2**20, 3),
        total_memory_mb=round(props.total_memory / 2**20, 1), power_limit_w=power,
        max_threads_per_sm=getattr(props, "max_threads_per_multi_processor", None),
        max_blocks_per_sm=_MAX_BLOCKS_PER_SM.get(cc, 16),
        regs_per_sm=getattr(props, "regs_per_multiprocessor", None),
        smem_per_sm_kb=(props.shared_memory_per_multiprocessor / 1024
                        if hasattr(props, "shared_memory_per_multiprocessor") else None),
    )


@dataclass(frozen=True)
class ClockReading:
    """Clocks and conditions at one moment. CPU: mean core MHz (if the OS exposes it)."""

    core_clock_mhz: float | None = None
    memory_clock_mhz: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    throttle_reasons: tuple[str, ...] = ()


def _cpu_mhz() -> float | None:
    freqs = []
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"):
        try:
            freqs.append(int(path.read_text()) / 1000.0)
        except (OSError, ValueError):
            pass
    if not freqs:
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.lower().startswith("cpu mhz"):
                    freqs.append(float(line.split(":", 1)[1]))
        except (OSError, ValueError):
            pass
    return sum(freqs) / len(freqs) if freqs else None


# NVML throttle-reason bits that mean the device slowed itself down (idle and app-clock
# settings are not throttling).
_THROTTLE_BITS = {0x2: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
                  0x80: "hw_power_brake"}


def read_clocks(device: torch.device | str = "cpu") -> ClockReading:
    """Clocks, temperature, power and active throttle reasons of ``device`` now."""
    device = _as_device(device)
    if device.type != "cuda":
        return ClockReading(core_clock_mhz=_cpu_mhz())
    pynvml = _nvml()
    if pynvml is None:
        return ClockReading()
    try:
        h = _nvml_handle(pynvml, device)
        reasons_bits = pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)
        return ClockReading(
            core_clock_mhz=float(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)),
            memory_clock_mhz=float(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM)),
            temperature_c=float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
            power_w=pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
            throttle_reasons=tuple(name for bit, name in _THROTTLE_BITS.items() if reasons_bits & bit),
        )
    except Exception:
        return ClockReading()


def clock_change(before: ClockReading, after: ClockReading, *, rel_tol: float = 0.10) -> str:
    """Why a measurement between two readings is suspect ('' when the clocks held).

    Flags throttle reasons active at either reading and a core or memory clock that moved by
    more than ``rel_tol`` (relative).
    """
    reasons = sorted(set(before.throttle_reasons) | set(after.throttle_reasons))
    notes = [f"throttling: {', '.join(reasons)}"] if reasons else []
    for name in ("core_clock_mhz", "memory_clock_mhz"):
        a, b = getattr(before, name), getattr(after, name)
        if a and b and abs(b - a) / a > rel_tol:
            notes.append(f"{name} changed {a:.0f} -> {b:.0f}")
    return "; ".join(notes)
