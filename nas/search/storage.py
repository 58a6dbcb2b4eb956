"""Optuna storages for a search, from a URL, and what a worker calls itself in them.

- ``None`` — in memory (one process; what benchmarks use).
- ``sqlite:///PATH`` — one file, one machine; put in write-ahead-log mode (one sync per commit,
  readers do not block the writer) with a generous lock timeout for a few local workers.
- ``journal:///PATH`` — Optuna's journal file storage: an append-only log with file locks, one
  process or several on one machine without a server; synced once per batch of trials
  (:mod:`nas.search.journal`). The run's own ``study.journal`` is the default.
- ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`` — a shared relational database for workers on
  many machines (needs ``psycopg2``); trials record heartbeats so a dead machine's trials can be
  failed once their heartbeat is older than the grace period.

A database that cannot be reached raises :class:`StorageUnavailable` naming the URL.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import optuna

from nas.search.journal import journal_storage

__all__ = ["SCHEMES", "StorageUnavailable", "check_storage_url", "create_storage", "describe_storage",
           "file_storage_path", "worker_alive", "worker_id"]

SCHEMES = ("sqlite:///", "journal:///", "postgresql://", "postgresql+psycopg2://")
HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 60


class StorageUnavailable(RuntimeError):
    """The study's database cannot be reached (down, wrong URL, missing driver)."""


def describe_storage(storage: Any) -> str:
    """A URL without its password (for messages and records)."""
    if not isinstance(storage, str):
        return type(storage).__name__
    if "://" in storage and "@" in storage:
        scheme, rest = storage.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{host}" if ":" in cred else storage
    return storage


_FILE_SCHEMES = ("sqlite:///", "journal:///")


def file_storage_path(url: str) -> Path | None:
    """The file a ``sqlite:///`` or ``journal:///`` URL names; ``None`` for a database server."""
    scheme = next((s for s in _FILE_SCHEMES if url.startswith(s)), None)
    return None if scheme is None else Path(url[len(scheme):])


def _sqlite(url: str) -> optuna.storages.BaseStorage:
    path = file_storage_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60)
    try:
        con.execute("PRAGMA journal_mode=WAL")  # persistent in the file
    finally:
        con.close()
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def _journal(url: str) -> optuna.storages.BaseStorage:
    path = file_storage_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    return journal_storage(str(path))


def _postgres(url: str) -> optuna.storages.BaseStorage:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise StorageUnavailable("a postgresql:// storage needs the psycopg2 driver: pip install psycopg2-binary") \
            from None
    if url.startswith("postgresql://"):  # SQLAlchemy 2.1's default driver for this scheme is psycopg 3
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5; we rely on them knowingly
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True},
                                          heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=GRACE_PERIOD_S)


def check_storage_url(url: str) -> str:
    """The scheme of a storage URL; an unsupported one raises, listing the valid forms."""
    scheme = next((s for s in SCHEMES if url.startswith(s)), None)
    if scheme is None:
        raise ValueError(f"unsupported storage URL {describe_storage(url)!r}; valid forms: sqlite:///PATH, "
                         f"journal:///PATH, postgresql://USER@HOST[:PORT]/DB")
    if scheme in _FILE_SCHEMES and not url[len(scheme):].strip():
        raise ValueError(f"storage URL {url!r} names no file; give a path: {scheme}PATH "
                         f"(an absolute path has four slashes: {scheme}/tmp/study)")
    return scheme


def create_storage(url: str | optuna.storages.BaseStorage | None) -> optuna.storages.BaseStorage:
    """The storage a URL names (see the module docstring); a storage object is returned as is."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(url, optuna.storages.BaseStorage):
        return url
    makers = {"sqlite:///": _sqlite, "journal:///": _journal, "postgresql://": _postgres,
              "postgresql+psycopg2://": _postgres}
    scheme = check_storage_url(url)
    try:
        return makers[scheme](url)
    except StorageUnavailable:
        raise
    except Exception as err:  # sqlalchemy / driver errors for an unreachable or refused database
        raise StorageUnavailable(f"cannot open the study storage {describe_storage(url)}: "
                                 f"{type(err).__name__}: {str(err).strip().splitlines()[0]}") from None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def worker_id() -> str:
    """``HOST:PID:START`` of this process, recorded on every trial it asks."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid()) or 0}"


def worker_alive(worker: str) -> bool | None:
    """Whether the worker that wrote ``worker`` still runs: True/False on this host, None
    (unknown) for another host."""
    try:
        host, pid, start = worker.rsplit(":", 2)
        pid_i = int(pid)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    now = _start_time(pid_i)
    if now is None:
        try:
            os.kill(pid_i, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return start == "0"
    return now == start
