"""The CUDA profiler backend: CUDA-event timing, the allocator's peak, per-op and per-kernel
records, and the GPU's fingerprint and clocks through NVML.

Fingerprint: GPU name, driver, compute capability, SM count, L2 size, memory size, power limit
and the per-SM limits the occupancy calculation needs (threads, registers, shared memory), from
``pynvml`` and ``torch.cuda.get_device_properties``. ``pynvml`` (package ``nvidia-ml-py``) is
imported lazily and only here; without it the fingerprint still has torch's device properties
and the clock readings are empty. Per-kernel records come from the profiler's Chrome trace
(:func:`profilers.kernels.kernel_records_from_trace`: grid, block, registers, shared memory,
occupancy, waves). Nothing here runs without a GPU; its tests skip cleanly.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from profilers.backend import ProfilerBackend, register_backend
from profilers.fingerprint import ClockReading, DeviceFingerprint
from profilers.kernels import kernel_records_from_trace
from profilers.memory import peak_cuda_memory_bytes
from profilers.ops import op_records
from profilers.quiet import filtered_native_stderr

__all__ = ["CUDABackend"]

# Compute capability -> max resident blocks per SM (CUDA C Programming Guide, table of
# technical specifications per compute capability). Not exposed by torch's properties.
_MAX_BLOCKS_PER_SM = {(7, 0): 32, (7, 2): 32, (7, 5): 16, (8, 0): 32, (8, 6): 16, (8, 7): 16, (8, 9): 24,
                      (9, 0): 32, (10, 0): 32, (12, 0): 32}

# NVML throttle-reason bits that mean the device slowed itself down (idle and app-clock
# settings are not throttling).
_THROTTLE_BITS = {0x2: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal", 0x40: "hw_thermal",
                  0x80: "hw_power_brake"}


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


def _nvml_handle(pynvml, index: int):
    # NVML indexes physical GPUs; CUDA_VISIBLE_DEVICES may remap. Match by PCI bus id.
    props = torch.cuda.get_device_properties(index)
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        try:
            pci = f"{props.pci_domain_id:08x}:{bus:02x}:{props.pci_device_id:02x}.0"
            return pynvml.nvmlDeviceGetHandleByPciBusId(pci)
        except Exception:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(index)


@register_backend
class CUDABackend(ProfilerBackend):
    kind = "cuda"
    records_kernels = True
    dist_backend = "nccl"
    rng_key = "cuda"

    @classmethod
    def present(cls) -> bool:
        return torch.cuda.is_available()

    @classmethod
    def device_count(cls) -> int:
        return torch.cuda.device_count() if cls.present() else 0

    @classmethod
    def get_rng_state(cls) -> Any:
        return torch.cuda.get_rng_state_all()

    @classmethod
    def set_rng_state(cls, state: Any) -> None:
        torch.cuda.set_rng_state_all(state)

    @property
    def index(self) -> int:
        return self.device.index if self.device.index is not None else torch.cuda.current_device()

    def name(self) -> str:
        return torch.cuda.get_device_name(self.device)

    def fingerprint(self, threads: int | None = None) -> DeviceFingerprint:
        device = self.device
        if not torch.cuda.is_available():
            raise ValueError(f"{device} requested but torch sees no CUDA device (torch {torch.__version__})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"{device} requested but torch sees {count} CUDA device(s) "
                             f"({', '.join(f'cuda:{i}' for i in range(count))})")
        props = torch.cuda.get_device_properties(self.index)
        cc = (props.major, props.minor)
        driver = power = None
        pynvml = _nvml()
        if pynvml is not None:
            try:
                handle = _nvml_handle(pynvml, self.index)
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

    def read_clocks(self) -> ClockReading:
        pynvml = _nvml()
        if pynvml is None:
            return ClockReading()
        try:
            h = _nvml_handle(pynvml, self.index)
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

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def time_once_ms(self, fn: Callable[[], object]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(self.device)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(self.device)
        return float(start.elapsed_time(end))

    def peak_bytes(self, fn: Callable[[], object], *, live_bytes: int) -> int:
        return peak_cuda_memory_bytes(fn, self.device)  # the allocator counts what was live already

    def memory_and_ops(self, infer: Callable[[], object], train: Callable[[], object], *, infer_live_bytes: int,
                       train_live_bytes: int, with_ops: bool,
                       fingerprint: DeviceFingerprint | None) -> tuple[int, int, tuple, tuple]:
        # The allocator's peaks first, then the op and kernel records of one more, profiled, call.
        self.synchronize()
        peak_infer = self.peak_bytes(infer, live_bytes=infer_live_bytes)
        peak_train = self.peak_bytes(train, live_bytes=train_live_bytes)
        ops, kernels = self._op_records(infer, fingerprint) if with_ops else ((), ())
        return peak_infer, peak_train, ops, kernels

    def _op_records(self, fn: Callable[[], object], fingerprint: DeviceFingerprint | None) -> tuple[tuple, tuple]:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with filtered_native_stderr():
            with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
                fn()
                torch.cuda.synchronize(self.device)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(path))
            trace = json.loads(path.read_text())
        kernels = tuple(kernel_records_from_trace(trace, fingerprint)) if fingerprint is not None else ()
        return op_records(prof), kernels

    def device_peak_bytes(self, fn: Callable[[], object], *, warm_up: bool = False) -> int | None:
        if warm_up:
            fn()
        return peak_cuda_memory_bytes(fn, self.device)

    def ddp_device_ids(self) -> list[int] | None:
        return [self.index]

    def for_local_rank(self, local_rank: int) -> str:
        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}"
