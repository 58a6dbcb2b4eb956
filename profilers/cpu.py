"""The CPU profiler backend: ``perf_counter`` timing at a fixed intra-op thread count, peak memory
from ``torch.profiler``'s allocation events, per-op records, and the CPU's fingerprint.

Peak memory: parameters, buffers and inputs (live before the step, passed in as
``live_bytes``) plus the peak of live tensor allocations during it — the same quantity as
``torch.cuda.max_memory_allocated`` on a GPU.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from profilers.backend import ProfilerBackend, register_backend
from profilers.device import cpu_model_name
from profilers.fingerprint import ClockReading, DeviceFingerprint
from profilers.memory import profiled_cpu_peak
from profilers.ops import op_records
from profilers.quiet import filtered_native_stderr

__all__ = ["CPUBackend"]


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


@register_backend
class CPUBackend(ProfilerBackend):
    kind = "cpu"
    dist_backend = "gloo"
    rng_key = "torch"  # torch's default (CPU) generator

    @classmethod
    def present(cls) -> bool:
        return True

    @classmethod
    def get_rng_state(cls) -> Any:
        return torch.get_rng_state()

    @classmethod
    def set_rng_state(cls, state: Any) -> None:
        torch.set_rng_state(state)

    def name(self) -> str:
        return cpu_model_name()

    def fingerprint(self, threads: int | None = None) -> DeviceFingerprint:
        return DeviceFingerprint(kind="cpu", name=cpu_model_name(), torch_version=torch.__version__,
                                 cpu_cores=os.cpu_count(), threads=threads or torch.get_num_threads())

    def read_clocks(self) -> ClockReading:
        return ClockReading(core_clock_mhz=_cpu_mhz())

    def time_once_ms(self, fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    @contextlib.contextmanager
    def threads(self, threads: int | None) -> Iterator[None]:
        old = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(old)

    def threads_in_use(self) -> int | None:
        return torch.get_num_threads()

    def _profiled(self, fn: Callable[[], object], *, live_bytes: int, with_ops: bool) -> tuple[int, tuple]:
        """One call of ``fn`` under ``torch.profiler``: its peak and, with ``with_ops``, its op records."""
        with filtered_native_stderr():
            peak, prof = profiled_cpu_peak(fn, record_shapes=with_ops)
        return live_bytes + peak, (op_records(prof) if with_ops else ())

    def peak_bytes(self, fn: Callable[[], object], *, live_bytes: int) -> int:
        return self._profiled(fn, live_bytes=live_bytes, with_ops=False)[0]

    def memory_and_ops(self, infer: Callable[[], object], train: Callable[[], object], *, infer_live_bytes: int,
                       train_live_bytes: int, with_ops: bool,
                       fingerprint: DeviceFingerprint | None) -> tuple[int, int, tuple, tuple]:
        # The inference call's peak and op records come from the same profiled call; no kernels on a CPU.
        peak_infer, ops = self._profiled(infer, live_bytes=infer_live_bytes, with_ops=with_ops)
        peak_train = self.peak_bytes(train, live_bytes=train_live_bytes)
        return peak_infer, peak_train, ops, ()

