"""Run directories: a new run never writes into a directory that already holds files."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["check_new_run_dir", "prepare_run_dir", "read_run_config", "write_text_atomic"]


def check_new_run_dir(out: str | Path, *, hint: str = "choose another --out") -> Path:
    """Raise ``FileExistsError`` if ``out`` is a file or a non-empty directory; create nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"run directory {out} exists and is not a directory; {hint}")
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"run directory {out} already holds files; {hint}")
    return out


def prepare_run_dir(out: str | Path) -> Path:
    """Create ``out``; refuse a directory that already holds files (nothing is overwritten)."""
    out = check_new_run_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_run_config(run_dir: str | Path, *, kind: str = "nas-search") -> dict[str, Any]:
    """``RUN/config.json`` of a ``kind`` run directory; a missing or unreadable one raises naming it."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{Path(run_dir)} holds no config.json; it is not a {kind} run directory")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); was it written by {kind}?") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a {kind} config")
    return data


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``: a reader
    (or a crash) never sees half a record."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
