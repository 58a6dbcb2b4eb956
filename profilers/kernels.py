"""Per-kernel records from a CUDA ``torch.profiler`` trace, with occupancy and waves.

The profiler (Kineto over CUPTI) records, for every kernel launch, its grid and block size,
registers per thread and shared memory, and its own estimates "blocks per SM", "warps per SM"
and "est. achieved occupancy %". We add the *resident blocks per SM* from the CUDA occupancy
calculation and the number of **waves**::

    waves = ⌈ blocks ÷ (SMs × resident blocks per SM) ⌉

A kernel whose last wave is nearly empty leaves most SMs idle — the GPU tail effect that makes
latency climb in steps rather than with FLOPs (see DESIGN.md). ``tail_fraction`` is how full
the last wave is (1.0: full).

Resident blocks per SM is the minimum of four limits (CUDA C Programming Guide, "Occupancy
calculator"): the hardware block limit; ⌊max threads per SM ÷ (warps per block × 32)⌋;
⌊registers per SM ÷ (warps per block × registers per warp)⌋ with registers per warp rounded
up to the allocation unit of 256; ⌊shared memory per SM ÷ shared memory per block⌋.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from profilers.fingerprint import DeviceFingerprint

__all__ = ["KernelRecord", "kernel_records_from_trace", "resident_blocks_per_sm", "waves"]

_REG_ALLOC_UNIT = 256  # registers are allocated per warp in units of 256


def resident_blocks_per_sm(*, threads_per_block: int, registers_per_thread: int, shared_memory_bytes: int,
                           device: DeviceFingerprint) -> int:
    """Thread blocks of one kernel that fit on one SM at once (0 if one block does not fit)."""
    if threads_per_block < 1:
        raise ValueError(f"threads_per_block must be >= 1, got {threads_per_block}")
    needed = ("max_threads_per_sm", "max_blocks_per_sm", "regs_per_sm", "smem_per_sm_kb")
    missing = [n for n in needed if getattr(device, n) is None]
    if missing:
        raise ValueError(f"occupancy needs the device's {', '.join(missing)} (a CUDA fingerprint)")
    warps = math.ceil(threads_per_block / 32)
    limits = [device.max_blocks_per_sm, device.max_threads_per_sm // (warps * 32)]
    if registers_per_thread > 0:
        regs_per_warp = math.ceil(registers_per_thread * 32 / _REG_ALLOC_UNIT) * _REG_ALLOC_UNIT
        limits.append(device.regs_per_sm // (regs_per_warp * warps))
    if shared_memory_bytes > 0:
        limits.append(int(device.smem_per_sm_kb * 1024) // shared_memory_bytes)
    return max(0, min(limits))


def waves(blocks: int, sm_count: int, resident_per_sm: int) -> int:
    """⌈blocks ÷ (SMs × resident blocks per SM)⌉."""
    if sm_count < 1 or resident_per_sm < 1:
        raise ValueError(f"need sm_count >= 1 and resident_per_sm >= 1, got {sm_count} and {resident_per_sm}")
    return math.ceil(blocks / (sm_count * resident_per_sm))


@dataclass(frozen=True)
class KernelRecord:
    """One kernel launch as the profiler saw it, plus our occupancy and waves."""

    name: str
    duration_us: float
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    registers_per_thread: int
    shared_memory_bytes: int
    blocks_per_sm: float | None  # profiler: grid blocks / SMs
    warps_per_sm: float | None  # profiler: grid warps / SMs
    est_achieved_occupancy_pct: float | None  # profiler's estimate
    blocks: int
    threads_per_block: int
    resident_blocks_per_sm: int
    waves: int
    tail_fraction: float  # how full the last wave is, in (0, 1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _triple(value: Any, what: str) -> tuple[int, int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        return tuple(int(v) for v in value)  # type: ignore[return-value]
    raise ValueError(f"kernel event has a malformed {what}: {value!r} (expected [x, y, z])")


def _kernel_record(event: dict[str, Any], device: DeviceFingerprint) -> KernelRecord:
    args = event.get("args", {})
    grid = _triple(args.get("grid"), "grid")
    block = _triple(args.get("block"), "block")
    n_blocks = grid[0] * grid[1] * grid[2]
    threads = block[0] * block[1] * block[2]
    regs = int(args.get("registers per thread", 0))
    smem = int(args.get("shared memory", 0))
    resident = resident_blocks_per_sm(threads_per_block=threads, registers_per_thread=regs,
                                      shared_memory_bytes=smem, device=device)
    per_wave = device.sm_count * max(resident, 1)
    n_waves = waves(n_blocks, device.sm_count, max(resident, 1))
    last = n_blocks - (n_waves - 1) * per_wave
    occ = args.get("est. achieved occupancy %")
    return KernelRecord(
        name=str(event.get("name", "?")), duration_us=float(event.get("dur", 0.0)), grid=grid, block=block,
        registers_per_thread=regs, shared_memory_bytes=smem,
        blocks_per_sm=float(args["blocks per SM"]) if "blocks per SM" in args else None,
        warps_per_sm=float(args["warps per SM"]) if "warps per SM" in args else None,
        est_achieved_occupancy_pct=float(occ) if occ is not None else None,
        blocks=n_blocks, threads_per_block=threads, resident_blocks_per_sm=resident, waves=n_waves,
        tail_fraction=last / per_wave if n_blocks else 1.0,
    )


def kernel_records_from_trace(trace: dict[str, Any] | str | Path, device: DeviceFingerprint,
                              *, exclude: Iterable[str] = ()) -> list[KernelRecord]:
    """Kernel records from a Chrome-trace export of ``torch.profiler`` (dict or file path).

    Events whose category is ``kernel`` are kept; names containing any string in ``exclude``
    are dropped.
    """
    if device.kind != "cuda" or not device.sm_count:
        raise ValueError(f"kernel records need a CUDA device fingerprint, got {device.describe()}")
    if not isinstance(trace, dict):
        path = Path(trace)
        try:
            trace = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read profiler trace {path}: {err}") from None
    events = trace.get("traceEvents", [])
    exclude = tuple(exclude)
    out = []
    for ev in events:
        if ev.get("cat") == "kernel" and ev.get("ph") == "X" and not any(x in ev.get("name", "") for x in exclude):
            out.append(_kernel_record(ev, device))
    return out
