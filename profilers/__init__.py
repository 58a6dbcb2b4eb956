"""Measuring a model on a device: latency, memory, per-op and per-kernel records, and the device
fingerprint. Imports torch, pynvml (lazily, on CUDA) and ``search_spaces``."""

from profilers.device import cpu_model_name, device_name
from profilers.fingerprint import (ClockReading, DeviceFingerprint, FingerprintMismatch, clock_change,
                                   device_fingerprint, read_clocks)
from profilers.kernels import KernelRecord, kernel_records_from_trace, resident_blocks_per_sm, waves
from profilers.memory import (SavedTensorMeter, peak_cpu_memory_bytes, peak_cuda_memory_bytes,
                              peak_from_memory_events, saved_activation_bytes)
from profilers.profile import LatencySettings, OpRecord, ProfileRecord, profile
from profilers.timing import (TimingStats, measure_latency, measure_latency_paired, summarize, synchronize,
                              time_once_ms)

__all__ = [
    "ClockReading", "DeviceFingerprint", "FingerprintMismatch", "KernelRecord", "LatencySettings", "OpRecord",
    "ProfileRecord", "SavedTensorMeter", "TimingStats", "clock_change", "cpu_model_name", "device_fingerprint",
    "device_name", "kernel_records_from_trace", "measure_latency", "measure_latency_paired", "peak_cpu_memory_bytes",
    "peak_cuda_memory_bytes", "peak_from_memory_events", "profile", "read_clocks", "resident_blocks_per_sm",
    "saved_activation_bytes", "summarize", "synchronize", "time_once_ms", "waves",
]
