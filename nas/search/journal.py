"""The run's own study file: Optuna's journal format, synced to disk once per batch of trials.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` appends every storage operation — a
trial asked, each of its parameters, each user attribute, its constraint, its tell — as one JSON
line, taking a lock file (created, then deleted) and syncing each one to disk. A trial of the
digits-s space costs about 41 operations (35 of them its parameters): profiled, a 300-trial
NSGA-II study spent 3.6 s of its 9.6 s in those appends, 2.5 s of it in 12,337 ``fsync`` calls,
where the same study in memory took 4.4 s in all. :class:`BatchSyncedJournal`
appends the same lines, under an ``flock`` of the journal itself on a descriptor it keeps open,
and leaves the sync to :meth:`BatchSyncedJournal.sync`, which the trial loop calls once per batch
(:func:`sync_storage`). Reading is Optuna's own code.

Nothing told is lost when the process is killed, at any moment: each append is one ``write``
to the file, which the kernel holds from then on whatever becomes of the process. A write cut
short by the kill (a long line, across a page) leaves an unterminated last line, which readers
ignore and the next append cuts off, under the lock, before writing. What the sync adds is
durability against the machine itself failing (power, kernel): at most the batch in flight is
lost then, and those trials are asked again on ``--resume``. Several processes may share the
file (each append takes the lock; a lock a killed process held is released by the kernel with
it, where a lock file would stay behind until its grace period ran out), and the file stays
Optuna's journal: ``optuna trials --storage study.journal`` and ``optuna-dashboard
study.journal`` read it. POSIX only (``fcntl``).
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend

__all__ = ["BatchSyncedJournal", "journal_storage", "sync_storage"]


class BatchSyncedJournal(JournalFileBackend):
    """Optuna's journal file backend, each append written under an ``flock`` but synced only by :meth:`sync`."""

    def __init__(self, path: str) -> None:
        super().__init__(path)  # creates the file when missing; its reading is used as it is
        self._path = path
        self._fd: int | None = None
        self._fd_pid: int | None = None
        self.unsynced = 0  # appends written since the last sync

    def _descriptor(self) -> int:
        """The journal opened for writing, once per process (a forked child opens its own)."""
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd, self._fd_pid = os.open(self._path, os.O_RDWR), os.getpid()
        return self._fd

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        fd = self._descriptor()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            end = os.fstat(fd).st_size
            if end and os.pread(fd, 1, end - 1) != b"\n":  # a writer killed mid-line; no one writes now
                end = _last_line_end(fd, end)
                os.ftruncate(fd, end)
            while data:  # one write of whole lines, in the kernel once it returns (looped if short)
                written = os.pwrite(fd, data, end)
                data, end = data[written:], end + written
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self.unsynced += 1

    def sync(self) -> None:
        """Make every append so far durable (one ``fsync``); nothing to do after none."""
        if self.unsynced:
            os.fsync(self._descriptor())
            self.unsynced = 0

    def close(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = self._fd_pid = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fd"] = state["_fd_pid"] = None  # a descriptor means nothing in another process
        return state


def _last_line_end(fd: int, end: int) -> int:
    """Where the last whole line of the journal (``end`` bytes long) ends: the unterminated tail a
    killed writer left is cut off there (no reader ever took it for a record)."""
    pos = end
    while pos > 0:
        step = min(4096, pos)
        chunk = os.pread(fd, step, pos - step)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return pos - step + nl + 1
        pos -= step
    return 0


def journal_storage(path: str) -> optuna.storages.JournalStorage:
    """A journal storage on the file ``path``, synced once per batch (see the module docstring)."""
    return optuna.storages.JournalStorage(BatchSyncedJournal(path))


def sync_storage(storage: optuna.storages.BaseStorage) -> None:
    """Sync a :class:`BatchSyncedJournal` storage's appends to disk; other storages sync themselves."""
    backend = getattr(storage, "_backend", None)
    if isinstance(backend, BatchSyncedJournal):
        backend.sync()
