"""Score architectures without training or measuring them: the search's objective function.

:class:`ArchScorer` gives, for a batch of architectures,

- ``val_acc``: the inherited-weight validation accuracy from the trained supernet (one forward
  over the validation split per architecture, under ``torch.inference_mode``), cached by
  ``arch_id`` — a search that proposes an architecture again pays nothing;
- ``latency_ms`` and ``peak_mem_mb``: the latency and memory predictors' estimates at the
  deployment batch size, one batched call per predictor for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset

from nas.objectives import by_value
from predictors.predictor import Predictor
from search_spaces.arch import ArchConfig
from search_spaces.elastic import QuadraSupernet
from search_spaces.layers import check_positive_int

__all__ = ["ArchScore", "ArchScorer"]


@dataclass(frozen=True)
class ArchScore:
    arch: ArchConfig
    val_acc: float  # in [0, 1]
    latency_ms: float  # predicted, at the deployment batch size
    peak_mem_mb: float  # predicted peak inference memory

    def objective(self, value: str) -> float:
        """The score of the objective named ``value`` (``val_acc``, …; :data:`nas.objectives.OBJECTIVES`)."""
        return float(getattr(self, by_value(value).score))


class ArchScorer:
    """Inherited accuracy (cached) and predicted latency / memory of architectures."""

    def __init__(self, *, supernet: QuadraSupernet, val_data: TensorDataset, latency: Predictor, memory: Predictor,
                 batch_size: int, device: str = "cpu", eval_batch_size: int = 1024) -> None:
        check_positive_int("batch_size", batch_size)
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
        self._acc: dict[str, float] = {}
        self.evaluations = 0  # supernet forwards actually run (cache misses)

    @torch.inference_mode()
    def accuracy(self, arch: ArchConfig) -> float:
        """Inherited-weight validation accuracy of ``arch`` (cached by ``arch_id``)."""
        key = arch.arch_id
        if key not in self._acc:
            self.supernet.set_active(self.space.validate(arch))
            correct = sum(int((self.supernet(x).argmax(dim=-1) == y).sum()) for x, y in self._chunks)
            self._acc[key] = correct / self._n_val
            self.evaluations += 1
        return self._acc[key]

    def score(self, archs: Sequence[ArchConfig]) -> list[ArchScore]:
        archs = list(archs)
        if not archs:
            return []
        lat = self.latency.predict(archs, self.batch_size)
        mem = self.memory.predict(archs, self.batch_size)
        return [ArchScore(arch=a, val_acc=self.accuracy(a), latency_ms=float(lt), peak_mem_mb=float(m))
                for a, lt, m in zip(archs, lat, mem)]
