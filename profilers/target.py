"""``Target``: where and how a network is deployed — device, runtime, threads, batch size.

One frozen record for "this network will run on the CPU in ONNX Runtime with one thread at
batch 1". Latency and memory are measured, predicted and budgeted for a target: its device,
runtime and threads are part of every measurement's device fingerprint
(:class:`profilers.fingerprint.DeviceFingerprint`: a predictor fitted for one target is refused
on another), and the batch size is every profile row's and predictor's. Written as text it is
``DEVICE:RUNTIME[:THREADS][:bBATCH]`` (``cpu:onnxruntime:1``, ``cpu:torch:2:b8``,
``cuda:onnxruntime``) — :meth:`Target.parse` and :attr:`Target.label`.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any

from profilers.backend import check_device
from profilers.runtimes import RUNTIMES, check_runtime

__all__ = ["Target"]


def _positive(name: str, value: object, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"target {name} must be a positive integer{' or None' if optional else ''}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Target:
    """A deployment target (see the module docstring); validated when built."""

    device: str = "cpu"  # cpu or cuda[:N]
    runtime: str = "torch"  # see profilers.runtimes.RUNTIMES
    threads: int | None = None  # intra-op threads (CPU; None: torch's setting)
    batch_size: int = 1

    def __post_init__(self) -> None:
        check_device(self.device, name="target device")
        check_runtime(self.runtime, option="target runtime", installed=False)
        object.__setattr__(self, "threads", _positive("threads", self.threads, optional=True))
        object.__setattr__(self, "batch_size", _positive("batch_size", self.batch_size, optional=False))

    @property
    def label(self) -> str:
        """``DEVICE:RUNTIME[:THREADS]:bBATCH``, what :meth:`parse` reads."""
        threads = f":{self.threads}" if self.threads is not None else ""
        return f"{self.device}:{self.runtime}{threads}:b{self.batch_size}"

    def describe(self) -> str:
        threads = "" if self.threads is None else f", {self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{self.runtime} on {self.device}{threads}, batch {self.batch_size}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}

    @classmethod
    def from_dict(cls, data: Any) -> Target:
        if not isinstance(data, dict):
            raise ValueError(f"a target is a JSON object, got {type(data).__name__}")
        known = {"device", "runtime", "threads", "batch_size", "label"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"target has unknown field {unknown[0]!r}; valid: device, runtime, threads, batch_size")
        return cls(**{k: v for k, v in data.items() if k != "label"})

    @classmethod
    def parse(cls, text: str, *, batch_size: int = 1) -> Target:
        """``cpu:onnxruntime:1`` → ``Target("cpu", "onnxruntime", 1)``; ``bN`` sets the batch size
        (else ``batch_size``). Errors name the part that is wrong and the valid form."""
        form = "DEVICE:RUNTIME[:THREADS][:bBATCH], e.g. cpu:onnxruntime:1 or cuda:torch:b8"
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"a target is written {form}, got {text!r}")
        parts = text.strip().split(":")
        device = parts.pop(0)
        if parts and parts[0].isdigit() and device == "cuda":  # cuda:N:RUNTIME
            device = f"cuda:{parts.pop(0)}"
        if not parts:
            raise ValueError(f"target {text!r} names no runtime ({', '.join(RUNTIMES)}); write {form}")
        runtime = parts.pop(0)
        threads = None
        for part in parts:
            if part.startswith("b") and part[1:].isdigit():
                batch_size = int(part[1:])
            elif part.isdigit() and threads is None:
                threads = int(part)
            else:
                raise ValueError(f"target {text!r}: cannot read {part!r}; write {form}")
        return cls(device=device, runtime=runtime, threads=threads, batch_size=batch_size)
