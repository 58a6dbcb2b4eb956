"""``profile``: measure one model (or one architecture of a search space) on one device.

One call produces a :class:`ProfileRecord`:

- **latency** of an inference forward at ``batch_size``: warm-up, then repeats until the median
  is stable or a cap is hit (:func:`profilers.timing.measure_latency`); median, p10, p90 and the
  number of repeats. CUDA work is timed with events after synchronising; CPU work with a fixed
  thread count (``threads``, restored afterwards). With a ``reference`` (a model or an
  architecture), its forward is timed interleaved call by call with the target's
  (:func:`profilers.timing.measure_latency_paired`) and the record also carries the
  reference's latency: the machine's speed at that moment, for ratios that a shared machine's
  drifting speed does not disturb.
- **runtime** (:mod:`profilers.runtimes`): the network runs in PyTorch eager (``torch``, the
  default), or as the TorchScript or ONNX file ``nas export`` writes, loaded in that runtime —
  the reference too, so the ratio to it is a ratio within one runtime.
- **memory**: peak inference memory (one forward under ``torch.inference_mode``) and peak
  training memory (forward, cross-entropy, backward, with gradients allocated inside), plus
  parameter bytes. CUDA: ``torch.cuda.max_memory_allocated`` after a reset, which includes
  everything live on the device. CPU: parameters, buffers and the input (live before the step)
  plus the peak of live tensor allocations during the step from ``torch.profiler`` memory
  events — the same quantity. In ONNX Runtime, inference memory is ONNX Runtime's own count
  (its arena's peak bytes in use; :class:`profilers.runtimes.OnnxRuntime`), and per-op records
  are not taken; training memory is always PyTorch eager's (training runs in PyTorch).
- **per-op records** from ``torch.profiler`` (op name, input shapes, self time, count) of one
  inference forward; on CUDA also **per-kernel records** with grid, block, registers, shared
  memory, the profiler's blocks/warps per SM and occupancy, and our resident blocks per SM and
  waves (:mod:`profilers.kernels`).
- the **device fingerprint** and clock readings before and after; ``suspect`` says why the
  measurement may be off (throttling, clocks that moved, a median that never settled).
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from profilers.backend import backend_for
from profilers.fingerprint import ClockReading, DeviceFingerprint, clock_change, with_runtime
from profilers.kernels import KernelRecord
from profilers.ops import OpRecord
from profilers.runtimes import Deployed, create_runtime
from profilers.timing import TimingStats, check_timing_settings, measure_latency, measure_latency_paired
from search_spaces.arch import ArchConfig
from search_spaces.layers import check_positive_int, plain_int
from search_spaces.networks import QuadraNet
from search_spaces.space import SearchSpace, as_space, create_space

__all__ = ["LatencySettings", "OpRecord", "ProfileRecord", "profile"]

MB = 2**20


@dataclass(frozen=True)
class LatencySettings:
    """How latency is sampled (see :func:`profilers.timing.measure_latency`)."""

    warmup: int = 5
    warmup_seconds: float = 0.2
    min_repeats: int = 15
    max_repeats: int = 200
    rel_tol: float = 0.01
    max_seconds: float = 5.0

    def __post_init__(self) -> None:
        # Validated when built (not first inside a measurement), by the timing functions' own
        # rules; NumPy numbers are stored as plain int / float.
        for name, value in check_timing_settings(**asdict(self)).items():
            object.__setattr__(self, name, value)


def _or_empty(value: float) -> float | str:
    return "" if math.isnan(value) else value


@dataclass(frozen=True)
class ProfileRecord:
    """Everything measured for one (model, device, batch size)."""

    name: str
    batch_size: int
    input_shape: tuple[int, int, int]
    fingerprint: DeviceFingerprint
    latency: TimingStats
    peak_infer_mem_mb: float
    peak_train_mem_mb: float
    param_mb: float
    clocks_before: ClockReading
    clocks_after: ClockReading
    suspect: str
    seconds: float
    arch: ArchConfig | None = None
    ops: tuple[OpRecord, ...] = field(default=(), repr=False)
    kernels: tuple[KernelRecord, ...] = field(default=(), repr=False)
    ref_latency: TimingStats | None = None  # the reference's latency, timed interleaved with ``latency``
    ref_arch_id: str | None = None  # the reference's arch_id, when it was given as an architecture

    @property
    def arch_id(self) -> str | None:
        return self.arch.arch_id if self.arch is not None else None

    def to_row(self) -> dict[str, Any]:
        """The flat row a profile table stores (units in the column names)."""
        fp = self.fingerprint
        row: dict[str, Any] = {
            "arch_id": self.arch_id or "", "space": self.arch.space if self.arch else "",
            "name": self.name, "batch_size": self.batch_size,
            "device": fp.kind, "fingerprint_id": fp.fingerprint_id, "device_name": fp.name,
            "threads": fp.threads if fp.threads is not None else "",
            "latency_ms": self.latency.median_ms, "latency_p10_ms": self.latency.p10_ms,
            "latency_p90_ms": self.latency.p90_ms, "latency_repeats": self.latency.repeats,
            "latency_stable": self.latency.stable,
            # not measured (a repeat pass): left empty
            "peak_infer_mem_mb": _or_empty(self.peak_infer_mem_mb),
            "peak_train_mem_mb": _or_empty(self.peak_train_mem_mb),
            "param_mb": self.param_mb,
            "n_kernels": len(self.kernels), "kernel_waves": sum(k.waves for k in self.kernels),
            "core_clock_before_mhz": self.clocks_before.core_clock_mhz or "",
            "core_clock_after_mhz": self.clocks_after.core_clock_mhz or "",
            "suspect": self.suspect, "profile_seconds": self.seconds,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "arch_json": self.arch.to_json() if self.arch else "",
            "fingerprint": fp.to_json(),
        }
        if self.ref_latency is not None:
            row["ref_latency_ms"] = self.ref_latency.median_ms
            row["ref_arch_id"] = self.ref_arch_id or ""
        return row

    def to_dict(self) -> dict[str, Any]:
        """Full JSON-able record, per-op and per-kernel lists included."""
        out = self.to_row()
        out["ops"] = [o.to_dict() for o in self.ops]
        out["kernels"] = [k.to_dict() for k in self.kernels]
        out["clocks_before"] = asdict(self.clocks_before)
        out["clocks_after"] = asdict(self.clocks_after)
        return out


def _resolve(target: nn.Module | ArchConfig, input_shape, space: SearchSpace | None
             ) -> tuple[nn.Module, tuple[int, int, int], ArchConfig | None, str]:
    space = as_space(space)
    if isinstance(target, ArchConfig):
        if space is not None and space.name != target.space:
            raise ValueError(f"architecture is for space {target.space!r}, space given is {space.name!r}")
        space = space or create_space(target.space)
        space.validate(target)
        model = QuadraNet(space.to_net_config(target))
        if input_shape is not None and tuple(input_shape) != space.input_shape:
            raise ValueError(f"input_shape {tuple(input_shape)} does not match space {space.name!r} "
                             f"input {space.input_shape}")
        return model, space.input_shape, target, f"{space.name}/{target.arch_id}"
    if isinstance(target, nn.Module):
        if input_shape is None:
            cfg = getattr(target, "config", None)
            input_shape = getattr(cfg, "input_shape", None)
        if input_shape is None:
            raise ValueError("profiling a plain nn.Module needs input_shape=(C, H, W)")
        shape = tuple(input_shape)
        if len(shape) != 3 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in shape):
            raise ValueError(f"input_shape must be three positive ints (C, H, W), got {input_shape!r}")
        shape = tuple(int(v) for v in shape)
        return target, shape, None, getattr(getattr(target, "config", None), "name", type(target).__name__)
    raise TypeError(f"profile() takes an nn.Module or an ArchConfig, got {type(target).__name__}")


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode():
        return int(model(x[:1]).shape[-1])


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    del loss


def profile(
    target: nn.Module | ArchConfig,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    input_shape: tuple[int, int, int] | None = None,
    threads: int | None = None,
    latency: LatencySettings = LatencySettings(),
    with_ops: bool = True,
    seed: int = 0,
    space: SearchSpace | None = None,
    reference: nn.Module | ArchConfig | Deployed | None = None,
    runtime: str = "torch",
    with_memory: bool = True,
) -> ProfileRecord:
    """Measure ``target`` (a model, or an architecture of ``space`` — default: the registered
    space it names) on ``device`` in ``runtime`` (:data:`profilers.runtimes.RUNTIMES`). A module
    passed in is moved to ``device``; its training flag and gradients are left as they were.
    ``reference`` (a model or an architecture taking the same input, or one already deployed in
    ``runtime`` — built once when every measurement of a run times it) is timed interleaved with
    ``target``; the record's ``ref_latency`` holds its latency. ``with_memory=False`` times the
    network only (a repeat measurement of an architecture whose memory is known: on the CPU the
    peaks are the same to the byte in every pass); the record's memory figures are then NaN. It
    needs ``with_ops=False``: per-op records come from the same profiled calls as the memory."""
    batch_size = check_positive_int("batch_size", plain_int(batch_size))
    if threads is not None:
        threads = check_positive_int("threads", plain_int(threads))
    if not isinstance(latency, LatencySettings):
        raise TypeError(f"latency must be a LatencySettings, got {type(latency).__name__}"
                        + (f"; build one from it: LatencySettings(**{latency!r})" if isinstance(latency, dict) else ""))
    if not with_memory and with_ops:
        raise ValueError("with_memory=False needs with_ops=False: per-op records come from the profiled calls "
                         "that measure memory")
    rt = create_runtime(runtime)  # unknown or not installed: said before anything is built
    backend = backend_for(device)
    device = backend.device
    if not backend.present():
        raise ValueError(f"device {device} requested but torch sees no {backend.kind.upper()} device")
    space = as_space(space)
    model, shape, arch, name = _resolve(target, input_shape, space)
    ref_model, ref_arch, ref_deployed = None, None, None
    if isinstance(reference, Deployed):
        if reference.runtime != runtime:
            raise ValueError(f"reference is deployed in {reference.runtime}, the measurement runs in {runtime}")
        ref_deployed = reference
    elif reference is not None:
        same_space = isinstance(reference, ArchConfig) and space is not None and space.name == reference.space
        ref_space = space if same_space else None
        try:
            ref_model, _, ref_arch, _ = _resolve(reference, shape, ref_space)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"reference: {exc}") from None
    ref_was_training = ref_model.training if ref_model is not None else False
    # A caller's module is moved to ``device``; its training flag and gradients are restored.
    was_training = model.training
    saved_grads = {p: p.grad for p in model.parameters() if p.grad is not None}
    t0 = time.perf_counter()
    try:
        with backend.threads(threads):
            in_use = backend.threads_in_use()
            fp = with_runtime(backend.fingerprint(in_use), runtime, rt.version())
            gen = torch.Generator().manual_seed(seed)
            model = model.to(device)
            x = torch.randn((batch_size, *shape), generator=gen).to(device)
            n_classes = _num_classes(model.eval(), x)
            y = torch.randint(0, n_classes, (batch_size,), generator=gen).to(device)
            resident = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
            param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
            x_bytes, y_bytes = x.numel() * x.element_size(), y.numel() * y.element_size()

            model.eval()
            deployed = rt.deploy(model, input_shape=shape, device=device, threads=in_use)
            infer = deployed.infer_fn(x)
            if ref_model is not None:
                ref_deployed = rt.deploy(ref_model.to(device).eval(), input_shape=shape, device=device,
                                         threads=in_use)
            before = backend.read_clocks()

            timing = asdict(latency)  # LatencySettings' fields are the timing functions' keywords
            ref_stats = None
            if ref_deployed is None:
                stats = measure_latency(infer, device, **timing)
            else:
                stats, ref_stats = measure_latency_paired(infer, ref_deployed.infer_fn(x), device, **timing)
            def train() -> None:  # one training step, the model left in eval mode without gradients
                model.train()
                try:
                    _train_step(model, x, y)
                finally:
                    model.zero_grad(set_to_none=True)
                    model.eval()

            runtime_peak = deployed.peak_infer_bytes(x) if with_memory else None
            if not with_memory:  # a repeat measurement: latency only
                peak_infer = peak_train = math.nan
                ops, kernels = (), ()
            elif runtime_peak is None:  # a PyTorch runtime: the device's backend measures the call
                peak_infer, peak_train, ops, kernels = backend.memory_and_ops(
                    infer, train, infer_live_bytes=resident + x_bytes,
                    train_live_bytes=resident + x_bytes + y_bytes, with_ops=with_ops, fingerprint=fp)
            else:  # the runtime's own count; training is PyTorch's
                peak_infer, ops, kernels = runtime_peak, (), ()
                peak_train = backend.peak_bytes(train, live_bytes=resident + x_bytes + y_bytes)
            after = backend.read_clocks()
    finally:
        model.train(was_training)
        if ref_model is not None:
            ref_model.train(ref_was_training)
        for p in model.parameters():
            p.grad = saved_grads.get(p)
    suspect = clock_change(before, after)
    if not stats.stable:
        suspect = "; ".join(filter(None, [suspect, f"median not stable after {stats.repeats} repeats"]))
    return ProfileRecord(
        name=name, batch_size=batch_size, input_shape=shape, fingerprint=fp, latency=stats,
        peak_infer_mem_mb=peak_infer / MB, peak_train_mem_mb=peak_train / MB, param_mb=param_bytes / MB,
        clocks_before=before, clocks_after=after, suspect=suspect, seconds=time.perf_counter() - t0,
        arch=arch, ops=ops, kernels=kernels, ref_latency=ref_stats,
        ref_arch_id=ref_arch.arch_id if ref_arch is not None else None,
    )
