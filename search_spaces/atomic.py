"""Atomic writes of files and directories, and the leftovers of interrupted ones.

Every record the workbench keeps on disk — run records, tables, plots, checkpoints, predictor
artifacts, exports — is written by :func:`write_atomic`: into a temporary file beside its
destination, flushed and ``fsync``'ed, then renamed over the destination (and the directory
synced), so a reader or a crash never sees half a file. An export directory is built in a
temporary sibling directory (:func:`temp_sibling`), synced (:func:`sync_tree`) and renamed into
place (:func:`replace_directory`).

One naming scheme: ``.NAME.tmp-PID-THREAD`` beside ``NAME`` (a directory adds a random suffix).
A process killed mid-write leaves such a file (or directory) behind; :func:`temp_paths` finds
them — also those of the schemes earlier versions wrote (``.NAME.tmp-PID``,
``.NAME.PID-THREAD.tmp``, ``.NAME.tmp-PID-HEX``) — and tells a dead writer's (safe to remove) from
one a live process on this host is still writing (:func:`writer_alive`). Logs that grow a line
at a time (profile tables, per-op records, the ranking benchmark's runs) are appended with
:func:`append_durably`.

This module sits in the lowest layer, beside the search-space records, so that ``predictors``
(artifacts) and ``nas`` (run directories) share one writer; it imports the standard library only.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

__all__ = ["TempPath", "append_durably", "file_in_the_way", "replace_directory", "sync_tree", "temp_name",
           "temp_paths", "temp_sibling", "write_atomic", "writer_alive"]

TEMP_TAG = "tmp"  # a write in progress (or killed): .NAME.tmp-PID-THREAD
ASIDE_TAG = "old"  # a previous directory set aside while its replacement moves in: never removed by a scan


def file_in_the_way(path: str | Path) -> Path | None:
    """``path`` or its nearest existing ancestor if that is not a directory (so no directory can be
    made at ``path``); ``None`` when ``path`` is a directory or could be created."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():  # a dangling link blocks as a file would
            return None if p.is_dir() else p
    return None


def temp_name(path: str | Path, tag: str = TEMP_TAG) -> Path:
    """The temporary sibling of ``path`` this process and thread write: ``.NAME.TAG-PID-THREAD``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{threading.get_ident()}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable; a platform that cannot open directories skips it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: bytes | str | Callable[[Path], object], *,
                 encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` atomically and durably; returns ``path``.

    ``data`` is the file's bytes, its text (``encoding``), or a function that writes the file at
    the path it is given (``torch.save``, ``savefig``, …; the temporary path has no suffix of its
    own, so pass the format explicitly where a library reads it from the name). Missing parent
    directories are created. On any error, or an interruption, the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        if callable(data):
            data(tmp)
        else:
            payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
            with open(tmp, "wb") as fh:
                fh.write(payload)
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def append_durably(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Append ``text`` (whole lines) to the log ``path``, flushed and ``fsync``'ed: a crash loses at
    most the line being written, which readers of such logs drop (a last line without newline)."""
    path = Path(path)
    with open(path, "a", encoding=encoding, newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def temp_sibling(path: str | Path, tag: str = TEMP_TAG) -> Path:
    """A new, empty directory ``.NAME.TAG-PID-THREAD-RANDOM`` beside ``path`` (random, because a
    set-aside directory of a killed process that had this PID is kept; made with ``mkdir``, so the
    umask applies, unlike ``tempfile.mkdtemp``'s 0700)."""
    base = temp_name(path, tag)
    sibling = base.with_name(f"{base.name}-{secrets.token_hex(4)}")
    sibling.mkdir(parents=False)
    return sibling


def sync_tree(directory: str | Path) -> None:
    """``fsync`` every file in ``directory`` (recursively) and the directories themselves."""
    directory = Path(directory)
    for root, _dirs, files in os.walk(directory):
        for name in files:
            _fsync_file(Path(root) / name)
        _fsync_dir(Path(root))


def replace_directory(tmp: str | Path, out: str | Path) -> Path:
    """Rename the complete directory ``tmp`` to ``out``. An existing ``out`` is first set aside
    (``.NAME.old-PID-THREAD``), then removed once ``tmp`` is in place; if the rename fails, it is
    put back. ``tmp`` is synced first (:func:`sync_tree`)."""
    tmp, out = Path(tmp), Path(out)
    sync_tree(tmp)
    if not out.exists():
        os.replace(tmp, out)
        _fsync_dir(out.parent)
        return out
    aside = temp_sibling(out, ASIDE_TAG)
    try:
        os.replace(out, aside / out.name)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(aside / out.name, out)
            raise
    finally:
        if out.exists():  # else the old directory could not be put back: keep it set aside
            shutil.rmtree(aside, ignore_errors=True)
    _fsync_dir(out.parent)
    return out


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
    process's own PID counts as gone: call it only where this process is not writing such a file.
    Liveness is judged on this host only: on a directory shared between hosts, another host's
    writer looks gone."""
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


class TempPath(NamedTuple):
    """A temporary file or directory of an atomic write: ``path``, its writer's ``pid``, whether that
    is ``alive``."""

    path: Path
    pid: int
    alive: bool


def temp_paths(directory: str | Path, names: Iterable[str], *, directories: bool = False) -> list[TempPath]:
    """The temporary files (``directories``: the temporary directories) in ``directory`` of atomic
    writes of ``names``, sorted; an empty list when ``directory`` is not one. Set-aside directories
    (``.NAME.old-…``) are never listed: one may be the only copy left of a previous export."""
    directory = Path(directory)
    alternatives = "|".join(re.escape(name) for name in names)
    if not alternatives or not directory.is_dir():
        return []
    pattern = re.compile(rf"\.(?:{alternatives})\.(?:{TEMP_TAG}-(\d+)(?:-[0-9a-f]+)*|(\d+)-\d+\.tmp)")
    found = []
    for path in sorted(directory.iterdir()):
        m = pattern.fullmatch(path.name)
        if m is None or path.is_symlink() or not (path.is_dir() if directories else path.is_file()):
            continue
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:  # renamed or removed meanwhile: no longer a leftover
            continue
        pid = int(m.group(1) or m.group(2))
        found.append(TempPath(path, pid, writer_alive(pid, modified)))
    return found
