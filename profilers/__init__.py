"""Measuring a model on a device: timing and memory (per-op and per-kernel records and the
device fingerprint arrive with the profiling issue). Imports torch and ``search_spaces``."""

from profilers.device import cpu_model_name, device_name
from profilers.memory import SavedTensorMeter, peak_cuda_memory_bytes, saved_activation_bytes
from profilers.timing import TimingStats, summarize, synchronize, time_once_ms

__all__ = [
    "SavedTensorMeter", "cpu_model_name", "device_name", "TimingStats", "peak_cuda_memory_bytes", "saved_activation_bytes",
    "summarize", "synchronize", "time_once_ms",
]
