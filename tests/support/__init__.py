"""What several test folders share: the repository root, tiny search spaces, synthetic profile
tables and the settings of a small search (the fixtures of ``tests/conftest.py`` hand them out)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root, for subprocesses that import the project
