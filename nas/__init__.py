"""The QuadraNAS workbench: one subpackage per pipeline stage, in the order data flows.

``nas.data`` → ``nas.train`` → ``nas.profiling`` → ``nas.export`` / ``nas.report`` →
``nas.search`` → ``nas.bench`` → ``nas.cli``, over the shared records ``nas.objectives`` (the
objectives table), ``nas.pareto`` (dominance and hypervolume, pure numpy) and ``nas.rundir`` (the
one owner of run directories). Each subpackage's docstring says what it owns and may import; the
README's Layout section lists every module; ``tests/test_layering.py`` checks the order.

Importing ``nas`` is cheap (the CLI entry point imports it); ``nas.load_model`` loads on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from nas.export import load_model

        return load_model
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
