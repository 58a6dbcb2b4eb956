"""Measuring a model on a device: latency, memory, per-op and per-kernel records, and the device
fingerprint.

Owns :func:`profile` and its :class:`ProfileRecord`; the profiler backends — a base class with a
CPU and a CUDA implementation (:mod:`profilers.backend`, :mod:`profilers.cpu`,
:mod:`profilers.cuda`), chosen by the device, which hold everything measuring does differently
on each — and the one device check (:func:`check_device`); timing (:mod:`profilers.timing`),
memory (:mod:`profilers.memory`), per-op (:mod:`profilers.ops`) and per-kernel records with
occupancy and waves (:mod:`profilers.kernels`), the fingerprint and clock records
(:mod:`profilers.fingerprint`).

May import: torch, pynvml (lazily, on CUDA), onnxruntime (lazily, for its runtime) and ``search_spaces``.
"""

from profilers.backend import BACKENDS, ProfilerBackend, backend_for, check_device, present_backends
from profilers.cpu import CPUBackend  # registers the CPU backend
from profilers.cuda import CUDABackend  # registers the CUDA backend
from profilers.device import cpu_model_name, device_name
from profilers.fingerprint import (
    ClockReading,
    DeviceFingerprint,
    FingerprintMismatch,
    clock_change,
    device_fingerprint,
    read_clocks,
)
from profilers.kernels import KernelRecord, kernel_records_from_trace, resident_blocks_per_sm, waves
from profilers.memory import (
    SavedTensorMeter,
    peak_cpu_memory_bytes,
    peak_cuda_memory_bytes,
    peak_from_memory_events,
    saved_activation_bytes,
)
from profilers.ops import OpRecord, op_records
from profilers.profile import LatencySettings, ProfileRecord, profile
from profilers.runtimes import RUNTIMES, Deployed, Runtime, check_runtime, create_runtime
from profilers.target import Target
from profilers.timing import TimingStats, measure_latency, measure_latency_paired, summarize, synchronize, time_once_ms

__all__ = [
    "BACKENDS", "CPUBackend", "CUDABackend", "ClockReading", "Deployed", "DeviceFingerprint", "FingerprintMismatch",
    "KernelRecord", "LatencySettings", "OpRecord", "ProfileRecord", "ProfilerBackend", "RUNTIMES", "Runtime",
    "SavedTensorMeter", "Target", "TimingStats", "backend_for", "check_device", "check_runtime", "clock_change",
    "cpu_model_name", "create_runtime", "device_fingerprint", "device_name", "kernel_records_from_trace",
    "measure_latency", "measure_latency_paired", "op_records", "peak_cpu_memory_bytes", "peak_cuda_memory_bytes",
    "peak_from_memory_events", "present_backends", "profile", "read_clocks", "resident_blocks_per_sm",
    "saved_activation_bytes", "summarize", "synchronize", "time_once_ms", "waves",
]
