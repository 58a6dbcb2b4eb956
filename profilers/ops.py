"""Per-op records of one profiled call: operator name and input shapes, aggregated over the call."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["OpRecord", "op_records"]


@dataclass(frozen=True)
class OpRecord:
    """One operator (name and input shapes) aggregated over an inference forward."""

    name: str
    input_shapes: str
    count: int
    self_cpu_us: float
    cpu_total_us: float
    self_device_us: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def op_records(prof) -> tuple[OpRecord, ...]:
    """The records of a finished ``torch.profiler`` run (``record_shapes=True``), most self time first."""
    records = []
    for e in prof.key_averages(group_by_input_shape=True):
        records.append(OpRecord(
            name=e.key, input_shapes=str(e.input_shapes), count=int(e.count),
            self_cpu_us=float(e.self_cpu_time_total), cpu_total_us=float(e.cpu_time_total),
            self_device_us=float(getattr(e, "self_device_time_total", 0.0) or 0.0),
        ))
    records.sort(key=lambda r: -r.self_cpu_us)
    return tuple(records)
