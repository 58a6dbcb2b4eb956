"""Device fingerprint: which machine a profile was measured on, and whether its clocks held.

A :class:`DeviceFingerprint` holds the *identity* of a device — what must match for a latency
or memory measurement (and a predictor fitted on such measurements) to carry over:

- CPU: model name, logical core count, the thread count used, torch version;
- CUDA: GPU name, driver, compute capability, SM count, L2 size, memory size, power limit and
  the per-SM limits the occupancy calculation needs (threads, registers, shared memory), from
  ``pynvml`` and ``torch.cuda.get_device_properties``; torch version;
- both: the **runtime** the network runs in (:mod:`profilers.runtimes`: ``torch`` eager,
  ``torchscript``, ``onnxruntime``) and that runtime's version where it is not torch's. A
  measurement in ONNX Runtime is of another target than one in PyTorch eager on the same
  machine, so a predictor fitted on one is refused on the other. The identity of a ``torch``
  measurement leaves both fields out, so its ``fingerprint_id`` is the one it had before runtimes
  were recorded (profile tables and predictors of earlier versions still match).

``fingerprint_id`` is a short hash of those identity fields. Per-measurement conditions —
clocks, temperature, power draw — are a :class:`ClockReading`, read before and after each
measurement; :func:`clock_change` flags throttling or clock changes in between.

Reading them is the device's profiler backend's job (:mod:`profilers.cpu`, :mod:`profilers.cuda`):
:func:`device_fingerprint` and :func:`read_clocks` ask the backend of the device given.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from profilers.backend import as_device, backend_for, kinds_text

__all__ = ["ClockReading", "DeviceFingerprint", "FingerprintMismatch", "clock_change", "device_fingerprint",
           "read_clocks", "with_runtime"]

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
    runtime: str = "torch"  # the runtime measured (profilers.runtimes.RUNTIMES)
    runtime_version: str | None = None  # its version, where it is not torch's

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "cuda"):
            raise ValueError(f"fingerprint kind must be 'cpu' or 'cuda', got {self.kind!r}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"fingerprint name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.runtime, str) or not self.runtime:
            raise ValueError(f"fingerprint runtime must be a non-empty string, got {self.runtime!r}")

    @property
    def fingerprint_id(self) -> str:
        """12 hex digits: SHA-256 of the identity fields as canonical JSON."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """The identity fields; a ``torch`` measurement's leaves the runtime fields out (see the
        module docstring), so its ``fingerprint_id`` is unchanged from earlier versions."""
        out = asdict(self)
        if out["runtime"] == "torch" and out["runtime_version"] is None:
            del out["runtime"], out["runtime_version"]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> DeviceFingerprint:
        if not isinstance(data, dict):
            raise ValueError(f"a device fingerprint is a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"device fingerprint has unknown field {unknown[0]!r}; valid: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> DeviceFingerprint:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as err:
            raise ValueError(f"device fingerprint is not valid JSON: {err}") from None

    def differences(self, other: DeviceFingerprint) -> list[str]:
        """``field: mine != theirs`` for every identity field that differs."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]

    def describe(self) -> str:
        runtime = "" if self.runtime == "torch" else f", {self.runtime} {self.runtime_version or ''}".rstrip()
        if self.kind == "cpu":
            return (f"CPU {self.name} ({self.cpu_cores} cores, {self.threads} threads, torch {self.torch_version}"
                    f"{runtime})")
        return (f"GPU {self.name} (cc {self.compute_capability}, {self.sm_count} SMs, driver {self.driver}, "
                f"torch {self.torch_version}{runtime})")

    def check_matches(self, other: DeviceFingerprint, *, what: str, force: bool = False) -> None:
        """Raise :class:`FingerprintMismatch` unless ``other`` is this device (or ``force``)."""
        diffs = self.differences(other)
        if diffs and not force:
            raise FingerprintMismatch(
                f"{what} was measured on {self.describe()} [fingerprint {self.fingerprint_id}], but this device is "
                f"{other.describe()} [fingerprint {other.fingerprint_id}]; differing: {'; '.join(diffs)}. "
                f"Profile this device and fit a predictor for it, or pass force=True / --force to use it anyway"
            )


def device_fingerprint(device: torch.device | str = "cpu", *, threads: int | None = None,
                       runtime: str = "torch") -> DeviceFingerprint:
    """The fingerprint of ``device`` measured in ``runtime``; on CPU ``threads`` is the thread
    count used (default torch's)."""
    from profilers.runtimes import RUNTIMES, check_runtime

    check_runtime(runtime)
    device = as_device(device)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None (torch's setting), got {threads!r}")
    try:
        backend = backend_for(device)
    except ValueError:
        raise ValueError(f"can fingerprint {kinds_text()} devices, got {device}") from None
    fp = backend.fingerprint(int(threads) if threads is not None else None)
    return with_runtime(fp, runtime, RUNTIMES[runtime].version())


def with_runtime(fp: DeviceFingerprint, runtime: str, version: str | None) -> DeviceFingerprint:
    """``fp`` as the fingerprint of a measurement in ``runtime`` (of ``version``)."""
    from dataclasses import replace

    return replace(fp, runtime=runtime, runtime_version=version)


@dataclass(frozen=True)
class ClockReading:
    """Clocks and conditions at one moment. CPU: mean core MHz (if the OS exposes it)."""

    core_clock_mhz: float | None = None
    memory_clock_mhz: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    throttle_reasons: tuple[str, ...] = ()


def read_clocks(device: torch.device | str = "cpu") -> ClockReading:
    """Clocks, temperature, power and active throttle reasons of ``device`` now."""
    return backend_for(device).read_clocks()


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
