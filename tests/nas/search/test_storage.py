"""Storages from URLs, worker identities and the sampler state kept with a study."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys

import optuna
import pytest

from nas.search.samplers import SAMPLER_STATE_ATTR, create_sampler, restore_sampler_state, save_sampler_state
from nas.search.storage import StorageUnavailable, create_storage, describe_storage, worker_alive, worker_id
from nas.search.study import open_study, problem_record


def test_describe_storage_hides_the_password():
    assert describe_storage("postgresql://nas:s3cret@db:5432/q") == "postgresql://nas:***@db:5432/q"
    assert describe_storage("postgresql://nas@db/q") == "postgresql://nas@db/q"
    assert describe_storage("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"
    assert describe_storage(optuna.storages.InMemoryStorage()) == "InMemoryStorage"


def test_create_storage_kinds(tmp_path):
    assert isinstance(create_storage(None), optuna.storages.InMemoryStorage)
    store = optuna.storages.InMemoryStorage()
    assert create_storage(store) is store
    db = tmp_path / "sub" / "s.db"
    assert isinstance(create_storage(f"sqlite:///{db}"), optuna.storages.RDBStorage)
    with sqlite3.connect(db) as con:  # write-ahead log, persistent in the file
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    journal = create_storage(f"journal:///{tmp_path / 'j' / 's.journal'}")
    assert isinstance(journal, optuna.storages.JournalStorage)
    optuna.create_study(storage=journal, study_name="x")
    assert (tmp_path / "j" / "s.journal").stat().st_size > 0


@pytest.mark.parametrize("url", ["mysql://a@b/c", "redis://x", "/tmp/file.db", "sqlite:/rel.db"])
def test_unknown_storage_url_lists_valid_forms(url):
    with pytest.raises(ValueError, match="valid forms: sqlite:///PATH, journal:///PATH, postgresql://"):
        create_storage(url)


def test_unreachable_postgresql_raises_storage_unavailable():
    with pytest.raises(StorageUnavailable, match=r"cannot open the study storage postgresql://nobody@127\.0\.0\.1:9"):
        create_storage("postgresql://nobody@127.0.0.1:9/nowhere")


def test_worker_identity_and_liveness():
    me = worker_id()
    host, pid, start = me.rsplit(":", 2)
    assert host == socket.gethostname() and int(pid) == os.getpid()
    assert worker_alive(me) is True
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert worker_alive(f"{host}:{dead.pid}:{start}") is False
    assert worker_alive(f"{host}:{os.getpid()}:{int(start) + 1}") is False  # same PID, another process
    assert worker_alive("some-other-host:1:1") is None  # unknown: decided by age / heartbeat
    assert worker_alive("garbage") is None


@pytest.mark.parametrize("name", ["nsga2", "tpe", "random"])
def test_sampler_state_round_trip(name):
    problem = problem_record(space="digits-s", objectives=("val_acc", "latency_ms"), batch_size=1, budgets=[],
                             dataset="digits", fingerprint_id="fp")
    store = optuna.storages.InMemoryStorage()
    study = open_study(storage=store, study_name="s", problem=problem, sampler=create_sampler(name, seed=3),
                       resume=False)
    rng = study.sampler._rng.rng
    rng.random_sample(17)  # move the state on
    save_sampler_state(study)
    expected = rng.random_sample(5)
    assert study.user_attrs[SAMPLER_STATE_ATTR]["sampler"] == type(study.sampler).__name__
    # a fresh sampler with the same seed would replay the start; the restored one goes on
    resumed = open_study(storage=store, study_name="s", problem=problem, sampler=create_sampler(name, seed=3),
                         resume=True)
    assert list(resumed.sampler._rng.rng.random_sample(5)) == list(expected)
    # another sampler type does not take the state
    other = "random" if name != "random" else "tpe"
    study3 = optuna.load_study(study_name="s", storage=store, sampler=create_sampler(other, seed=3))
    assert restore_sampler_state(study3) is False
