"""Score architectures without training or measuring them: the search's objective function.

:class:`ArchScorer` gives, for a batch of architectures,

- ``val_acc``: the inherited-weight validation accuracy from the trained supernet (one forward
  over the validation split per architecture, under ``torch.inference_mode``), cached by
  ``arch_id`` — a search that proposes an architecture again pays nothing — and the forward
  starts from the longest prefix of stages an earlier architecture shared (what a stage computes
  depends only on the stages before it; in a 300-trial NSGA-II study on digits-s four new
  architectures in five shared at least their first stage with an earlier one), the activations
  kept in a bounded cache (``prefix_cache_mb``; the same numbers as a whole forward) — with its binomial
  standard error ``val_acc_se`` = √(p(1 − p) / n) on the ``n`` validation images, and the mean
  cross-entropy ``val_loss`` of the same forward (the objective of ``--accuracy-metric loss``);
- ``latency_ms`` and ``peak_mem_mb``: the latency and memory predictors' estimates at the
  deployment batch size, one batched call per predictor for the whole batch; latency stated at
  the machine's speed when the study began (``latency_scale``, :mod:`nas.profiling.speed`);
- with a ``confidence`` level, the prediction intervals of that level (``latency_lo_ms`` …
  ``peak_mem_hi_mb``, :meth:`predictors.Predictor.predict`); a trial then meets a budget only
  when the upper ends do (:attr:`ArchScore.budget_latency_ms`, :attr:`ArchScore.budget_peak_mem_mb`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from nas.objectives import by_value
from predictors.predictor import Predictor, check_level
from search_spaces.arch import ArchConfig
from search_spaces.elastic import QuadraSupernet
from search_spaces.layers import check_positive_int

__all__ = ["ACCURACY_METRICS", "ArchScore", "ArchScorer", "binomial_se"]

# --accuracy-metric: the objective value name each stands for.
ACCURACY_METRICS = {"acc": "val_acc", "loss": "val_loss"}


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` images: √(p(1 − p) / n)."""
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


@dataclass(frozen=True)
class ArchScore:
    arch: ArchConfig
    val_acc: float  # in [0, 1]
    latency_ms: float  # predicted, at the deployment batch size
    peak_mem_mb: float  # predicted peak inference memory
    val_acc_se: float = float("nan")  # binomial standard error of val_acc
    val_loss: float = float("nan")  # mean cross-entropy on the validation split (inherited weights)
    latency_lo_ms: float = float("nan")  # the prediction interval (with a confidence level; else NaN)
    latency_hi_ms: float = float("nan")
    peak_mem_lo_mb: float = float("nan")
    peak_mem_hi_mb: float = float("nan")

    @property
    def budget_latency_ms(self) -> float:
        """The latency a budget is checked against: the interval's upper end where there is one."""
        return self.latency_hi_ms if math.isfinite(self.latency_hi_ms) else self.latency_ms

    @property
    def budget_peak_mem_mb(self) -> float:
        """The memory a budget is checked against: the interval's upper end where there is one."""
        return self.peak_mem_hi_mb if math.isfinite(self.peak_mem_hi_mb) else self.peak_mem_mb

    def objective(self, value: str) -> float:
        """The score of the objective named ``value`` (``val_acc``, …; :data:`nas.objectives.OBJECTIVES`)."""
        return float(getattr(self, by_value(value).score))


class ArchScorer:
    """Inherited accuracy (cached) and predicted latency / memory of architectures."""

    def __init__(self, *, supernet: QuadraSupernet, val_data: TensorDataset, latency: Predictor, memory: Predictor,
                 batch_size: int, device: str = "cpu", eval_batch_size: int = 1024, confidence: float | None = None,
                 latency_scale: float = 1.0, prefix_cache_mb: float = 256.0) -> None:
        check_positive_int("batch_size", batch_size)
        if isinstance(prefix_cache_mb, bool) or not isinstance(prefix_cache_mb, (int, float)) \
                or not math.isfinite(prefix_cache_mb) or prefix_cache_mb < 0:
            raise ValueError(f"prefix_cache_mb must be a non-negative number of MB (0: no cache), got "
                             f"{prefix_cache_mb!r}")
        self._prefix_cap = int(prefix_cache_mb * 2**20)
        if confidence is not None:
            confidence = check_level(confidence)
        self.confidence = confidence
        self.latency_scale = latency_scale
        check_positive_int("eval_batch_size", eval_batch_size)
        if latency.target != "latency":
            raise ValueError(f"latency predictor has target {latency.target!r}, expected 'latency'")
        if memory.target != "memory":
            raise ValueError(f"memory predictor has target {memory.target!r}, expected 'memory'")
        for pred in (latency, memory):
            if pred.space != supernet.space.name:
                raise ValueError(f"{pred.target} predictor is for space {pred.space!r}; the supernet is "
                                 f"{supernet.space.name!r}")
            if batch_size not in pred.batch_sizes:
                raise ValueError(f"the {pred.target} predictor was fitted on batch sizes {pred.batch_sizes}, not "
                                 f"{batch_size}; profile batch size {batch_size} and fit again")
        self.supernet = supernet.to(device).eval()
        self.space = supernet.space
        self.latency = latency
        self.memory = memory
        self.batch_size = batch_size
        self.device = device
        x, y = val_data.tensors
        self._chunks = [(x[i:i + eval_batch_size].to(device), y[i:i + eval_batch_size].to(device))
                        for i in range(0, len(y), eval_batch_size)]
        self._n_val = len(y)
        if self._n_val == 0:
            raise ValueError("the validation split is empty")
        self._acc: dict[str, tuple[float, float]] = {}
        self.evaluations = 0  # supernet forwards actually run (cache misses)
        # (chunk, stages of a prefix) -> the activations after it; least recently used dropped first
        self._prefix: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._prefix_bytes = 0
        self.stages_run = 0  # stages computed by those forwards
        self.stages_reused = 0  # stages whose output came from the prefix cache instead

    @property
    def n_val(self) -> int:
        return self._n_val

    @torch.inference_mode()
    def evaluate(self, arch: ArchConfig) -> tuple[float, float]:
        """Inherited-weight ``(accuracy, mean loss)`` of ``arch`` on the validation split (cached by ``arch_id``)."""
        key = arch.arch_id
        if key not in self._acc:
            arch = self.space.validate(arch)
            correct, loss = 0, 0.0
            for chunk, (x, y) in enumerate(self._chunks):
                logits = self._forward(chunk, x, arch)
                correct += int((logits.argmax(dim=-1) == y).sum())
                loss += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            self._acc[key] = (correct / self._n_val, loss / self._n_val)
            self.evaluations += 1
        return self._acc[key]

    def _forward(self, chunk: int, x: torch.Tensor, arch: ArchConfig) -> torch.Tensor:
        """The supernet's logits for ``arch`` on validation chunk ``chunk``, starting after the
        longest prefix of its stages whose output is cached, and caching each new prefix's."""
        n = len(arch.stages)
        start, h = 0, x
        for k in range(n - 1, 0, -1):
            hit = self._prefix.get((chunk, arch.stages[:k]))
            if hit is not None:
                self._prefix.move_to_end((chunk, arch.stages[:k]))
                start, h = k, hit
                break
        self.stages_reused += start
        for i in range(start, n):
            h = self.supernet.run_stages(h, arch, i, i + 1)
            if i < n - 1:  # a whole architecture's own output is never a prefix of another's
                self._remember((chunk, arch.stages[:i + 1]), h)
        self.stages_run += n - start
        return self.supernet.run_head(h, arch)

    def _remember(self, key: tuple, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self._prefix_cap:
            return
        self._prefix[key] = value
        self._prefix_bytes += size
        while self._prefix_bytes > self._prefix_cap:
            _, old = self._prefix.popitem(last=False)
            self._prefix_bytes -= old.numel() * old.element_size()

    def accuracy(self, arch: ArchConfig) -> float:
        """Inherited-weight validation accuracy of ``arch`` (cached by ``arch_id``)."""
        return self.evaluate(arch)[0]

    def score(self, archs: Sequence[ArchConfig]) -> list[ArchScore]:
        archs = list(archs)
        if not archs:
            return []
        scale = check_scale(self.latency_scale)
        nan = [float("nan")] * len(archs)
        if self.confidence is None:
            lat = np.asarray(self.latency.predict(archs, self.batch_size), dtype=float) * scale
            mem = np.asarray(self.memory.predict(archs, self.batch_size), dtype=float)
            lat_lo = lat_hi = mem_lo = mem_hi = nan
        else:
            lat_iv = self.latency.predict(archs, self.batch_size, level=self.confidence).scaled(scale)
            mem_iv = self.memory.predict(archs, self.batch_size, level=self.confidence)
            lat, lat_lo, lat_hi = lat_iv.median, lat_iv.low, lat_iv.high
            mem, mem_lo, mem_hi = mem_iv.median, mem_iv.low, mem_iv.high
        out = []
        for i, a in enumerate(archs):
            acc, loss = self.evaluate(a)
            out.append(ArchScore(arch=a, val_acc=acc, latency_ms=float(lat[i]), peak_mem_mb=float(mem[i]),
                                 val_acc_se=binomial_se(acc, self._n_val), val_loss=loss,
                                 latency_lo_ms=float(lat_lo[i]), latency_hi_ms=float(lat_hi[i]),
                                 peak_mem_lo_mb=float(mem_lo[i]), peak_mem_hi_mb=float(mem_hi[i])))
        return out


def check_scale(scale: object) -> float:
    """A latency scale (the machine's speed now over the profiling run's): a positive finite number."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"latency_scale must be a positive finite number, got {scale!r}")
    return float(scale)
