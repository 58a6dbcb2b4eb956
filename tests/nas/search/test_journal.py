"""The run's own study file (nas.search.journal): Optuna's journal format, synced once per batch,
readable by Optuna's own backend and CLI, and whole again after a writer killed mid-line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas.search import journal as journal_mod
from nas.search.budgets import Budget
from nas.search.journal import BatchSyncedJournal, journal_storage, sync_storage
from nas.search.samplers import create_sampler
from nas.search.scoring import ArchScore
from nas.search.storage import create_storage
from nas.search.study import open_study, problem_record, run_trials
from search_spaces.space import create_space

OBJECTIVES = ("val_acc", "latency_ms", "peak_mem_mb")
BUDGETS = [Budget(latency_ms=1.2)]
SPACE = create_space("digits-s")


def _score(archs):
    return [ArchScore(arch=a, val_acc=1.0 - 1.0 / (2.0 + a.n_quadratic), latency_ms=sum(a.widths) / 100.0,
                      peak_mem_mb=float(sum(a.depths))) for a in archs]


def _study(url, name="j", resume=False):
    problem = problem_record(space="digits-s", objectives=OBJECTIVES, batch_size=1, budgets=BUDGETS,
                             dataset="digits", fingerprint_id="fp0")
    return open_study(storage=url, study_name=name, problem=problem,
                      sampler=create_sampler("nsga2", seed=0, population_size=8), resume=resume)


def _complete(path: Path, name="j") -> dict[int, tuple[float, ...]]:
    """COMPLETE trials as Optuna's own journal backend reads the file."""
    plain = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    study = optuna.load_study(study_name=name, storage=plain)
    return {t.number: tuple(t.values) for t in study.get_trials(states=(TrialState.COMPLETE,))}


def test_the_default_journal_url_gives_the_batch_synced_backend(tmp_path):
    storage = create_storage(f"journal:///{tmp_path / 'a' / 'study.journal'}")
    assert isinstance(storage, optuna.storages.JournalStorage)
    assert isinstance(storage._backend, BatchSyncedJournal)


def test_run_trials_syncs_the_journal_once_per_batch(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(journal_mod.os, "fsync", lambda fd: synced.append(fd))
    url = f"journal:///{tmp_path / 'study.journal'}"
    study = _study(url)
    assert synced == []  # creating the study wrote, but did not sync
    run_trials(study, space=SPACE, score=_score, budgets=BUDGETS, objectives=OBJECTIVES, n_trials=16, batch=4,
               progress=False)
    assert len(synced) == 4  # 16 trials in batches of 4, one sync each (the study's creation in the first)
    assert study._storage._backend.unsynced == 0
    sync_storage(study._storage)  # nothing written since: no sync
    assert len(synced) == 4


def test_a_study_written_here_is_read_alike_by_optunas_own_backend(tmp_path):
    path = tmp_path / "study.journal"
    study = _study(f"journal:///{path}")
    run_trials(study, space=SPACE, score=_score, budgets=BUDGETS, objectives=OBJECTIVES, n_trials=12, batch=4,
               progress=False)
    ours = {t.number: tuple(t.values) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(ours) == 12 and _complete(path) == ours
    for line in path.read_text().splitlines():  # compact JSON lines, as Optuna's backend writes them
        assert json.dumps(json.loads(line), separators=(",", ":")) == line


def test_the_optuna_cli_reads_the_study_file(tmp_path):
    path = tmp_path / "study.journal"
    study = _study(f"journal:///{path}")
    run_trials(study, space=SPACE, score=_score, budgets=BUDGETS, objectives=OBJECTIVES, n_trials=8, batch=4,
               progress=False)
    cli = Path(sys.executable).with_name("optuna")
    if not cli.is_file():
        pytest.skip("the optuna command is not installed beside this Python")
    out = subprocess.run([str(cli), "trials", "--storage", str(path), "--study-name", "j", "-f", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 8 and {r["state"] for r in rows} == {"COMPLETE"}


def test_a_line_torn_by_a_killed_writer_is_cut_off_before_the_next_append(tmp_path):
    path = tmp_path / "study.journal"
    study = _study(f"journal:///{path}")
    run_trials(study, space=SPACE, score=_score, budgets=BUDGETS, objectives=OBJECTIVES, n_trials=8, batch=4,
               progress=False)
    before = _complete(path)
    whole = path.read_bytes()
    with open(path, "ab") as f:  # what a write cut short by SIGKILL leaves: part of a line
        f.write(b'{"op_code":6,"worker_id":"dead","trial_id":3,"sta')
    assert _complete(path) == before  # readers ignore the unterminated tail
    resumed = _study(f"journal:///{path}", resume=True)
    run_trials(resumed, space=SPACE, score=_score, budgets=BUDGETS, objectives=OBJECTIVES, n_trials=12, batch=4,
               progress=False)
    after = _complete(path)
    assert len(after) == 12 and all(after[n] == v for n, v in before.items())
    data = path.read_bytes()
    assert data.startswith(whole) and b'"sta{' not in data and data.endswith(b"\n")
    for line in data.splitlines():
        json.loads(line)  # every line whole


def test_a_torn_tail_longer_than_a_page_is_cut_off_too(tmp_path):
    path = tmp_path / "x.journal"
    backend = BatchSyncedJournal(str(path))
    backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "a", "directions": [1]}])
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"junk":"' + b"x" * 10000)  # no newline anywhere in the last 10 kB
    backend.append_logs([{"op_code": 2, "worker_id": "w", "study_id": 0, "user_attr": {"k": 1}}])
    lines = path.read_bytes().splitlines()
    assert path.read_bytes().startswith(whole) and len(lines) == 2 and json.loads(lines[1])["user_attr"] == {"k": 1}


def test_sync_makes_the_appends_durable_with_one_fsync(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(journal_mod.os, "fsync", lambda fd: synced.append(os.fstat(fd).st_size))
    backend = BatchSyncedJournal(str(tmp_path / "y.journal"))
    for k in range(5):
        backend.append_logs([{"op_code": 2, "worker_id": "w", "study_id": 0, "user_attr": {"k": k}}])
    assert backend.unsynced == 5 and synced == []
    backend.sync()
    assert synced == [(tmp_path / "y.journal").stat().st_size] and backend.unsynced == 0


def test_sync_storage_leaves_other_storages_alone(tmp_path):
    sync_storage(optuna.storages.InMemoryStorage())  # nothing to sync, no error
    storage = journal_storage(str(tmp_path / "z.journal"))
    optuna.create_study(storage=storage, study_name="z")
    assert storage._backend.unsynced > 0
    sync_storage(storage)
    assert storage._backend.unsynced == 0


_WRITER = """
import sys
from nas.search.journal import BatchSyncedJournal
b = BatchSyncedJournal(sys.argv[1])
for k in range(int(sys.argv[3])):
    b.append_logs([{"op_code": 2, "worker_id": sys.argv[2], "study_id": 0, "user_attr": {"k": k, "pad": "x" * 3000}}])
"""


def test_processes_appending_at_once_leave_only_whole_lines(tmp_path):
    path = tmp_path / "shared.journal"
    BatchSyncedJournal(str(path))  # creates the file
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"w{i}", "150"]) for i in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    lines = path.read_bytes().splitlines()
    assert len(lines) == 450
    records = [json.loads(line) for line in lines]
    for i in range(3):  # each writer's lines whole and in its own order
        assert [r["user_attr"]["k"] for r in records if r["worker_id"] == f"w{i}"] == list(range(150))


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def test_a_lock_held_by_a_killed_process_does_not_block_the_next_append(tmp_path):
    path = tmp_path / "held.journal"
    backend = BatchSyncedJournal(str(path))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
    finally:
        holder.kill()  # SIGKILL while holding the lock
        holder.wait(timeout=30)
    t0 = time.monotonic()
    backend.append_logs([{"op_code": 2, "worker_id": "w", "study_id": 0, "user_attr": {"k": 1}}])
    assert time.monotonic() - t0 < 5  # the kernel released the dead process's lock (a lock file would wait 30 s)
    assert json.loads(path.read_bytes().splitlines()[-1])["user_attr"] == {"k": 1}
