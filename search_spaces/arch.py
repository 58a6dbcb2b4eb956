"""``ArchConfig``: one subnet of a search space, as plain data.

Per stage: the channel ``width`` and the active blocks (depth = number of blocks); per block:
the mixer ``kernel_size``, the ``mlp_ratio`` and the neuron ``order`` (2: the quadratic mixer
``(W_a∗x) ⊙ (W_b∗x) + W_c∗x``; 1: only ``W_c∗x``, a first-order block).

JSON form (what ``nas`` commands read and write)::

    {"space": "digits-s",
     "stages": [{"width": 16, "blocks": [{"kernel_size": 3, "mlp_ratio": 2, "order": 2}, …]}, …]}

``arch_id`` is a stable short hash of that canonical JSON. Field-level checks live here;
membership of a space (allowed values, number of blocks) is :meth:`SearchSpace.validate`.
Errors are :class:`ArchError` (a ``ValueError``) and name the offending field by its path,
e.g. ``stages[1].blocks[0].kernel_size``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["ArchConfig", "ArchError", "BlockArch", "StageArch"]


class ArchError(ValueError):
    """An architecture that is malformed or outside its search space; ``field`` is its path."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(data: Any, allowed: tuple[str, ...], path: str) -> None:
    if not isinstance(data, dict):
        raise ArchError(path or "arch", f"expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ArchError(where, f"unknown field; valid fields: {', '.join(allowed)}")
    missing = [k for k in allowed if k not in data]
    if missing:
        where = f"{path}.{missing[0]}" if path else missing[0]
        raise ArchError(where, "missing field")


@dataclass(frozen=True)
class BlockArch:
    kernel_size: int
    mlp_ratio: int
    order: int

    def __post_init__(self) -> None:
        for name in ("kernel_size", "mlp_ratio", "order"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ArchError(name, f"must be a positive integer, got {getattr(self, name)!r}")
        if self.order not in (1, 2):
            raise ArchError("order", f"must be 1 (first-order) or 2 (quadratic), got {self.order!r}")

    @property
    def is_quadratic(self) -> bool:
        return self.order == 2


@dataclass(frozen=True)
class StageArch:
    width: int
    blocks: tuple[BlockArch, ...]

    def __post_init__(self) -> None:
        if not _is_int(self.width) or self.width < 1:
            raise ArchError("width", f"must be a positive integer, got {self.width!r}")
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.blocks:
            raise ArchError("blocks", "a stage needs at least one block")
        for i, block in enumerate(self.blocks):
            if not isinstance(block, BlockArch):
                raise ArchError(f"blocks[{i}]", f"must be a BlockArch (ArchConfig.from_dict reads plain dicts), "
                                                f"got {type(block).__name__}")

    @property
    def depth(self) -> int:
        return len(self.blocks)


@dataclass(frozen=True)
class ArchConfig:
    """A subnet: the space it belongs to and its stages."""

    space: str
    stages: tuple[StageArch, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        if not isinstance(self.space, str) or not self.space:
            raise ArchError("space", f"must be a non-empty space name, got {self.space!r}")
        if not self.stages:
            raise ArchError("stages", "an architecture needs at least one stage")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, StageArch):
                raise ArchError(f"stages[{i}]", f"must be a StageArch (ArchConfig.from_dict reads plain dicts), "
                                                f"got {type(stage).__name__}")

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(s.depth for s in self.stages)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(s.width for s in self.stages)

    @property
    def n_quadratic(self) -> int:
        return sum(b.is_quadratic for s in self.stages for b in s.blocks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "stages": [
                {"width": s.width,
                 "blocks": [{"kernel_size": b.kernel_size, "mlp_ratio": b.mlp_ratio, "order": b.order}
                            for b in s.blocks]}
                for s in self.stages
            ],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=indent is None)

    @property
    def arch_id(self) -> str:
        """Stable 12-hex-digit id: SHA-256 of the canonical JSON (sorted keys, no spaces)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def describe(self) -> str:
        """Compact one-line form, e.g. ``16:[3r2Q 5r4L] 32:[…]`` (Q quadratic, L first-order)."""
        parts = []
        for s in self.stages:
            blocks = " ".join(f"{b.kernel_size}r{b.mlp_ratio}{'Q' if b.is_quadratic else 'L'}" for b in s.blocks)
            parts.append(f"{s.width}:[{blocks}]")
        return " ".join(parts)

    @classmethod
    def from_dict(cls, data: Any) -> ArchConfig:
        """Parse the JSON form; errors name the field path (``stages[1].blocks[0].order``)."""
        _check_keys(data, ("space", "stages"), "")
        if not isinstance(data["stages"], list):
            raise ArchError("stages", f"expected a list, got {type(data['stages']).__name__}")
        stages = []
        for i, s in enumerate(data["stages"]):
            spath = f"stages[{i}]"
            _check_keys(s, ("width", "blocks"), spath)
            if not isinstance(s["blocks"], list):
                raise ArchError(f"{spath}.blocks", f"expected a list, got {type(s['blocks']).__name__}")
            blocks = []
            for j, b in enumerate(s["blocks"]):
                bpath = f"{spath}.blocks[{j}]"
                _check_keys(b, ("kernel_size", "mlp_ratio", "order"), bpath)
                try:
                    blocks.append(BlockArch(**b))
                except ArchError as err:
                    raise ArchError(f"{bpath}.{err.field}", err.detail) from None
            try:
                stages.append(StageArch(width=s["width"], blocks=tuple(blocks)))
            except ArchError as err:
                raise ArchError(f"{spath}.{err.field}", err.detail) from None
        return cls(space=data["space"], stages=tuple(stages))

    @classmethod
    def from_json(cls, text: str) -> ArchConfig:
        if not isinstance(text, (str, bytes, bytearray)):
            raise ArchError("arch", f"must be JSON text, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ArchError("arch", f"not valid JSON: {err}") from None
        except RecursionError:
            raise ArchError("arch", "JSON nested too deeply to be an architecture") from None
        return cls.from_dict(data)
