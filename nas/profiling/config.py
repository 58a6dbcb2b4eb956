"""What a profiling run measures: :class:`ProfileRunConfig` (space, count, the target — device,
runtime, threads, batch size —, passes, retries, the adaptive share)."""

from __future__ import annotations

from dataclasses import dataclass

from profilers import Target, backend_for, check_device, check_runtime
from search_spaces.layers import check_positive_int
from search_spaces.space import create_space

__all__ = ["ProfileRunConfig"]


@dataclass(frozen=True)
class ProfileRunConfig:
    """What to profile: ``n`` architectures of ``space`` on ``device`` at ``batch_size``."""

    space: str  # search space (see `nas space list`)
    n: int  # number of architectures
    device: str = "cpu"  # cpu or cuda[:N]
    batch_size: int = 1  # batch size the architectures are measured at
    seed: int = 0  # seed of the architectures chosen and of the pass orders
    threads: int | None = None  # CPU threads (default: torch's setting)
    runtime: str = "torch"  # what runs the network: torch (eager), torchscript or onnxruntime (the files nas export
    # writes)
    adaptive_fraction: float = 0.25  # share of architectures chosen where the current predictor errs most
    adaptive_rounds: int = 3  # rounds the adaptive share is chosen in
    passes: int = 3  # measurements per architecture, spread over the run
    max_passes: int = 7  # cap on passes for architectures whose passes disagree
    max_pass_mad: float = 0.03  # passes disagree above this relative MAD of the ratio to the reference
    retries: int = 2  # retries of a measurement whose ratio to the reference never settled
    max_spread: float = 0.25  # a latency timed alone is retried above this (p90 - p10) / median
    with_ops: bool | None = None  # also on CPU, write per-op records to FILE.records.jsonl
    # (always on CUDA, with kernels)

    def __post_init__(self) -> None:
        create_space(self.space)  # unknown names fail here, listing the valid ones
        check_positive_int("n", self.n)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("adaptive_rounds", self.adaptive_rounds)
        check_positive_int("passes", self.passes)
        check_positive_int("max_passes", self.max_passes)
        if self.max_passes < self.passes:
            raise ValueError(f"max_passes ({self.max_passes}) must be at least passes ({self.passes})")
        if not self.max_pass_mad > 0:
            raise ValueError(f"max_pass_mad must be positive, got {self.max_pass_mad!r}")
        check_device(self.device)
        check_runtime(self.runtime)
        if self.threads is not None:
            check_positive_int("threads", self.threads)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not 0.0 <= self.adaptive_fraction < 1.0:
            raise ValueError(f"adaptive_fraction must be in [0, 1), got {self.adaptive_fraction!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be a non-negative integer, got {self.retries!r}")
        if not self.max_spread > 0:
            raise ValueError(f"max_spread must be positive, got {self.max_spread!r}")

    @property
    def target(self) -> Target:
        """The deployment target measured."""
        return Target(device=self.device, runtime=self.runtime, threads=self.threads, batch_size=self.batch_size)

    @property
    def records_ops(self) -> bool:
        """Whether per-op (and kernel) records are written: PyTorch runtimes only (ONNX Runtime's
        calls are not seen by torch.profiler)."""
        if self.runtime == "onnxruntime":
            return False
        return self.with_ops if self.with_ops is not None else backend_for(self.device).records_kernels

    @property
    def n_adaptive(self) -> int:
        return int(round(self.n * self.adaptive_fraction)) if self.n >= 8 else 0
