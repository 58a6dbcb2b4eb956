"""Checkpoints of long training runs: written atomically, read back with clear errors.

A checkpoint is one ``torch.save`` file holding plain data (state dicts, RNG states, counters,
the run's config). It is written to a temporary file in the same directory (``.NAME.tmp-PID``)
and renamed over the old one, so a crash mid-write never leaves a truncated checkpoint behind.

A process killed mid-write (SIGKILL, power loss) leaves that temporary file instead:
:func:`temp_files` finds such files and tells a dead writer's (safe to remove) from one a live
process on this host is still writing.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

import torch

__all__ = ["TempFile", "capture_rng_state", "load_checkpoint", "restore_rng_state", "save_checkpoint", "temp_files",
           "write_atomic", "writer_alive"]


def capture_rng_state() -> dict[str, Any]:
    """Python's and torch's (CPU and, if present, CUDA) generator states."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Have ``write`` write the file ``.NAME.tmp-PID`` beside ``path``, then rename it over ``path``:
    a reader (or a crash) never sees a partly written file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file + rename)."""
    return write_atomic(path, lambda tmp: torch.save(state, tmp))


# How long after a temporary file's last change a process must have started to be another one
# than its writer (a PID reused): the start time read from /proc is only good to about a second.
_START_MARGIN_S = 2.0


def _process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from Linux's /proc; ``None`` elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def writer_alive(pid: int, modified: float) -> bool:
    """Whether process ``pid`` of this host may still be writing a file last changed at ``modified``
    (``st_mtime``): false once it is gone, or when the process now holding that PID started after the
    file's last change (a PID reused, for instance by this very process after a container restart).
    Where that cannot be told (not Linux, no /proc), a running process counts as the writer. This
    process's own PID counts as gone: call it only where this process is not writing such a file."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return False  # a killed process's PID, now this process's
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate the process there; assume it is the writer
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    except (OSError, OverflowError, ValueError):
        return False  # no such process can exist
    started = _process_start_time(pid)
    return started is None or started <= modified + _START_MARGIN_S


class TempFile(NamedTuple):
    """A temporary file of an atomic write: ``path``, its writer's ``pid``, whether that is ``alive``."""

    path: Path
    pid: int
    alive: bool


def temp_files(directory: str | Path, names: Iterable[str]) -> list[TempFile]:
    """The temporary files in ``directory`` of atomic writes of the files ``names``: ``.NAME.tmp-PID``
    (:func:`write_atomic`, :func:`save_checkpoint`) and ``.NAME.PID-THREAD.tmp``
    (:func:`nas.run_dir.write_text_atomic`), sorted; an empty list when ``directory`` is not one."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    alternatives = "|".join(re.escape(name) for name in names)
    if not alternatives:
        return []
    pattern = re.compile(rf"\.(?:{alternatives})\.(?:tmp-(\d+)|(\d+)-\d+\.tmp)")
    found = []
    for path in sorted(directory.iterdir()):
        m = pattern.fullmatch(path.name)
        if m is None or not path.is_file() or path.is_symlink():
            continue
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:  # renamed or removed meanwhile: no longer a leftover
            continue
        pid = int(m.group(1) or m.group(2))
        found.append(TempFile(path, pid, writer_alive(pid, modified)))
    return found


def load_checkpoint(path: str | Path, *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a checkpoint; a missing, unreadable or incomplete file raises naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file
        raise ValueError(f"checkpoint {path} is unreadable (truncated or corrupted?): {err}") from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} does not hold a checkpoint record")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {', '.join(missing)}; it was not written by this command")
    return state
