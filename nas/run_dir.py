"""Run directories: a new run never writes into a directory that already holds files."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["append_json_line", "check_new_run_dir", "check_output_file", "file_in_the_way", "prepare_run_dir",
           "read_run_config", "setting_changes", "write_text_atomic"]


def file_in_the_way(path: str | Path) -> Path | None:
    """``path`` or its nearest existing ancestor if that is not a directory (so no directory can be
    made at ``path``); ``None`` when ``path`` is a directory or could be created."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():  # a dangling link blocks as a file would
            return None if p.is_dir() else p
    return None


def check_new_run_dir(out: str | Path, *, hint: str = "choose another --out") -> Path:
    """Raise ``FileExistsError`` if ``out`` is a file or a non-empty directory, or if an existing
    ancestor of it is a file; create nothing."""
    out = Path(out)
    blocker = file_in_the_way(out)
    if blocker == out:
        raise FileExistsError(f"run directory {out} exists and is not a directory; {hint}")
    if blocker is not None:
        raise FileExistsError(f"run directory {out} cannot be created: {blocker} is a file, not a directory; {hint}")
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"run directory {out} already holds files; {hint}")
    return out


def prepare_run_dir(out: str | Path) -> Path:
    """Create ``out``; refuse a directory that already holds files (nothing is overwritten)."""
    out = check_new_run_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def check_output_file(path: str | Path, *, option: str = "--out") -> Path:
    """Raise ``ValueError`` unless a file can be written at ``path`` (creating its missing parent
    directories): it is not a directory and no existing ancestor is a file. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory; give the path of a file to write")
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise ValueError(f"{option} {path} cannot be written: {blocker} is a file, not a directory")
    return path


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


def append_json_line(path: str | Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line, flushed and fsync'ed: a crash loses at most the line
    being written (readers of such logs ignore a last line cut short)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def setting_changes(stored: dict[str, Any], current: dict[str, Any], *, free: frozenset[str] = frozenset(),
                    prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(name, stored, current)`` for every setting that differs between two run records, sorted,
    nested dicts compared field by field (``train.lr``); names in ``free`` may differ."""
    changes = []
    for key in sorted(set(stored) | set(current)):
        name = f"{prefix}{key}"
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += setting_changes(a, b, free=free, prefix=f"{name}.")
        elif a != b and name not in free:
            changes.append((name, a, b))
    return changes
