"""The QuadraNAS pipeline: search, training, profiling, export (``nas`` command: :mod:`nas.cli`).

Importing ``nas`` is cheap (the CLI entry point imports it); names below load on first use.
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
