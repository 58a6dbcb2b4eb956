"""Run directories: a new run never writes into a directory that already holds files."""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_new_run_dir", "prepare_run_dir"]


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
