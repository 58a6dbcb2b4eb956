"""Hardware budgets: "under 2 ms at batch 1 and under 40 MB".

A :class:`Budget` caps latency (ms), peak inference memory (MB) or both; the search returns one
pick per budget. Budgets reach the Optuna study as one constraint (:func:`constraint_value`):
an architecture is feasible when it meets *any* of the budgets, so the study explores the union
of the feasible regions and each budget's pick is chosen among the trials that meet it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Budget", "auto_budgets", "budgets_from_lists", "constraint_value"]


def _check_limit(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of {'ms' if 'ms' in name else 'MB'}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Budget:
    """Upper limits on latency (ms, at the deployment batch size) and peak inference memory (MB)."""

    latency_ms: float | None = None
    memory_mb: float | None = None
    source: str = "user"  # "user" or "auto" (derived from the profiled architectures)

    def __post_init__(self) -> None:
        object.__setattr__(self, "latency_ms", _check_limit("latency_budget_ms", self.latency_ms))
        object.__setattr__(self, "memory_mb", _check_limit("memory_budget_mb", self.memory_mb))
        if self.source not in ("user", "auto"):
            raise ValueError(f"budget source must be 'user' or 'auto', got {self.source!r}")

    @property
    def label(self) -> str:
        parts = []
        if self.latency_ms is not None:
            parts.append(f"latency ≤ {self.latency_ms:.4g} ms")
        if self.memory_mb is not None:
            parts.append(f"memory ≤ {self.memory_mb:.4g} MB")
        return ", ".join(parts) or "no limit"

    def overshoot(self, latency_ms: float, memory_mb: float) -> dict[str, float | None]:
        """Relative overshoot per limit (0.1 = 10 % over, negative = under); None where unlimited."""
        return {"latency": None if self.latency_ms is None else latency_ms / self.latency_ms - 1.0,
                "memory": None if self.memory_mb is None else memory_mb / self.memory_mb - 1.0}

    def excess(self, latency_ms: float, memory_mb: float) -> float:
        """Largest relative overshoot (0.1 = 10 % over); ≤ 0 when both limits are met. A
        non-finite cost (a failed measurement) meets no budget: ``inf``."""
        if not (math.isfinite(latency_ms) and math.isfinite(memory_mb)):
            return math.inf
        limited = [v for v in self.overshoot(latency_ms, memory_mb).values() if v is not None]
        return max(limited) if limited else -1.0

    def meets(self, latency_ms: float, memory_mb: float) -> bool:
        return self.excess(latency_ms, memory_mb) <= 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "memory_mb": self.memory_mb, "source": self.source,
                "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Budget:
        return cls(latency_ms=data.get("latency_ms"), memory_mb=data.get("memory_mb"),
                   source=data.get("source", "user"))


def budgets_from_lists(latency_ms: Sequence[float] | None, memory_mb: Sequence[float] | None) -> list[Budget]:
    """Pair ``--latency-budget-ms`` and ``--memory-budget-mb`` values into budgets.

    Equal counts pair up in order; a single value of one kind is shared by every value of the
    other; one kind alone gives budgets on that quantity only. Nothing given → ``[]``.
    """
    lat, mem = list(latency_ms or []), list(memory_mb or [])
    if not lat and not mem:
        return []
    if lat and mem and len(lat) != len(mem) and 1 not in (len(lat), len(mem)):
        raise ValueError(f"{len(lat)} latency budgets and {len(mem)} memory budgets cannot be paired: give as many "
                         f"of each (one result per pair), or one of either kind to share")
    n = max(len(lat), len(mem))
    lat = lat * n if len(lat) == 1 else lat or [None] * n
    mem = mem * n if len(mem) == 1 else mem or [None] * n
    return [Budget(latency_ms=a, memory_mb=b) for a, b in zip(lat, mem)]


def auto_budgets(latencies_ms: Sequence[float], memories_mb: Sequence[float],
                 quantiles: Sequence[float] = (0.25, 0.5)) -> list[Budget]:
    """Budgets at quantiles of measured latencies and memories (used when the user gives none)."""
    import numpy as np

    if len(latencies_ms) == 0 or len(memories_mb) == 0:
        raise ValueError("auto budgets need at least one profiled architecture")
    return [Budget(latency_ms=float(np.quantile(latencies_ms, q)), memory_mb=float(np.quantile(memories_mb, q)),
                   source="auto") for q in quantiles]


def constraint_value(budgets: Sequence[Budget], latency_ms: float, memory_mb: float) -> float:
    """The study's constraint: ≤ 0 when some budget is met, else the smallest relative overshoot."""
    if not budgets:
        return -1.0
    return min(b.excess(latency_ms, memory_mb) for b in budgets)
