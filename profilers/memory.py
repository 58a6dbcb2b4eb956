"""Memory measurements of a model: activations saved for backward, and the CUDA peak.

``peak_cpu_memory_bytes`` is the CPU counterpart of ``torch.cuda.max_memory_allocated``: the
highest total of live tensor allocations while a callable runs, from the allocation and free
events ``torch.profiler`` records with ``profile_memory=True``.

``saved_activation_bytes`` counts what autograd keeps alive between forward and backward,
using ``torch.autograd.graph.saved_tensors_hooks``: every tensor packed for backward (by
built-in ops and by custom ``autograd.Function.save_for_backward`` alike) is recorded by its
storage, each storage is counted once (views share it), and storages that belong to the
model's parameters or buffers are excluded (they are alive anyway).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["SavedTensorMeter", "peak_cpu_memory_bytes", "peak_cuda_memory_bytes", "peak_from_memory_events",
           "profiled_cpu_peak", "saved_activation_bytes"]


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    s = t.untyped_storage()
    return (str(t.device), s.data_ptr())


class SavedTensorMeter:
    """Context manager recording the unique storages packed for backward inside it."""

    def __init__(self, *, exclude: nn.Module | None = None) -> None:
        self._excluded: set[tuple[str, int]] = set()
        if exclude is not None:
            for t in list(exclude.parameters()) + list(exclude.buffers()):
                self._excluded.add(_storage_key(t))
        self._seen: dict[tuple[str, int], int] = {}
        self.n_packed = 0
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self.n_packed += 1
        key = _storage_key(t)
        if key not in self._excluded:
            self._seen[key] = t.untyped_storage().nbytes()
        return t

    @property
    def bytes(self) -> int:
        return sum(self._seen.values())

    @property
    def n_storages(self) -> int:
        return len(self._seen)

    def __enter__(self) -> SavedTensorMeter:
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, *, loss_fn: Callable | None = None) -> int:
    """Bytes of activations saved for backward by one training forward of ``model`` on ``x``.

    The forward runs in training mode under autograd; with ``loss_fn`` (called on the
    output) the loss's own saved tensors are included. No backward is run.
    """
    was_training = model.training
    model.train()
    try:
        with torch.enable_grad(), SavedTensorMeter(exclude=model) as meter:
            out = model(x)
            if loss_fn is not None:
                out = loss_fn(out)
        del out
    finally:
        model.train(was_training)
    return meter.bytes


def peak_cuda_memory_bytes(fn: Callable[[], object], device: torch.device | str) -> int:
    """``torch.cuda.max_memory_allocated`` while running ``fn`` (after a peak reset)."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"peak CUDA memory needs a cuda device, got {device}")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))


def peak_from_memory_events(events: list[tuple[int, int]]) -> int:
    """Highest running total of ``(time_ns, nbytes)`` allocation (+) and free (−) events.

    The running total starts at 0 (memory already live is not counted); events are taken in
    time order, frees before allocations at the same instant.
    """
    total = peak = 0
    for _, nbytes in sorted(events, key=lambda e: (e[0], e[1])):
        total += nbytes
        peak = max(peak, total)
    return peak


def peak_cpu_memory_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of CPU tensor memory allocated by ``fn`` above what was live before it."""
    return profiled_cpu_peak(fn)[0]


def profiled_cpu_peak(fn: Callable[[], object], *, record_shapes: bool = False) -> tuple[int, object]:
    """One call of ``fn`` under ``torch.profiler`` with memory events: the peak bytes of CPU tensor
    memory it allocated above what was live before it, and the finished profiler (with
    ``record_shapes``, ready for per-op records)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=record_shapes) as prof:
        fn()
    return peak_from_memory_events(cpu_memory_events(prof)), prof


def cpu_memory_events(prof) -> list[tuple[int, int]]:
    """``(time_ns, nbytes)`` of every CPU allocation/free a finished ``torch.profiler`` saw."""
    out = []
    for e in prof.profiler.kineto_results.events():
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU:
            out.append((int(e.start_ns()), int(e.nbytes())))
    return out
