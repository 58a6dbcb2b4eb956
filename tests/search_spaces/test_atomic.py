"""Tests for search_spaces.atomic: the one atomic writer and the scan of its leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from search_spaces import atomic
from search_spaces.atomic import replace_directory, sync_tree, temp_name, temp_paths, temp_sibling, write_atomic

DEAD_PID = 2**22 + 12345  # above the kernel's pid_max: no process has it


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_temp_name_is_a_hidden_sibling_naming_the_writer(tmp_path):
    tmp = temp_name(tmp_path / "config.json")
    assert tmp.parent == tmp_path
    assert tmp.name == f".config.json.tmp-{os.getpid()}-{threading.get_ident()}"


@pytest.mark.parametrize("data, expected", [(b"\x00\x01bytes", b"\x00\x01bytes"), ("text é\n", "text é\n".encode()),
                                            (lambda p: p.write_bytes(b"by a writer"), b"by a writer")])
def test_write_atomic_writes_the_data_and_leaves_no_temporary_file(tmp_path, data, expected):
    path = tmp_path / "a" / "b" / "record.json"  # missing parents are made
    assert write_atomic(path, data) == path
    assert path.read_bytes() == expected
    assert sorted(p.name for p in path.parent.iterdir()) == ["record.json"]


def test_write_atomic_fsyncs_the_file_and_its_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if Path("/proc/self/fd").is_dir() else fd)
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    path = tmp_path / "table.csv"
    write_atomic(path, "a,b\n1,2\n")
    if Path("/proc/self/fd").is_dir():
        assert synced[0].endswith(temp_name(path).name)  # the data, before the rename
        assert synced[-1] == str(tmp_path)  # the rename
    else:
        assert len(synced) == 2


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, failure):
    path = tmp_path / "picks.json"
    path.write_text("old")

    def writer(tmp):
        tmp.write_text("half of the ne")
        raise failure

    with pytest.raises(type(failure)):
        write_atomic(path, writer)
    assert _files(tmp_path) == {"picks.json": b"old"}


def _leftover(directory: Path, name: str, pid: int, *, kind: str = "file") -> Path:
    path = directory / name.format(pid=pid)
    if kind == "file":
        path.write_text("half")
    else:
        path.mkdir()
        (path / "arch.json").write_text("{")
    return path


def test_temp_paths_finds_the_files_of_every_scheme_and_tells_the_dead_from_the_living(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_new = _leftover(tmp_path, ".config.json.tmp-{pid}-140123", DEAD_PID)
        dead_old_ckpt = _leftover(tmp_path, ".checkpoint.pt.tmp-{pid}", DEAD_PID)
        dead_old_text = _leftover(tmp_path, ".history.csv.{pid}-140123.tmp", DEAD_PID)
        live = _leftover(tmp_path, ".config.json.tmp-{pid}-7", sleeper.pid)
        mine = _leftover(tmp_path, ".config.json.tmp-{pid}-7", os.getpid())  # this process writes none
        _leftover(tmp_path, ".other.json.tmp-{pid}-7", DEAD_PID)  # not one of the names asked for
        _leftover(tmp_path, ".config.json.tmp-{pid}-7-dir", DEAD_PID, kind="dir")  # a directory
        (tmp_path / "config.json").write_text("{}")
        found = {t.path: t for t in temp_paths(tmp_path, ["config.json", "checkpoint.pt", "history.csv"])}
        assert set(found) == {dead_new, dead_old_ckpt, dead_old_text, live, mine}
        assert {p for p, t in found.items() if t.alive} == {live}
        assert found[live].pid == sleeper.pid and found[dead_old_text].pid == DEAD_PID
    finally:
        sleeper.kill()
        sleeper.wait()


def test_temp_paths_of_directories_skip_files_and_set_aside_copies(tmp_path):
    new = _leftover(tmp_path, ".abc.tmp-{pid}-140123", DEAD_PID, kind="dir")
    old_export = _leftover(tmp_path, ".abc.tmp-{pid}-0123abcd", DEAD_PID, kind="dir")  # the previous version's
    _leftover(tmp_path, ".abc.old-{pid}-140123", DEAD_PID, kind="dir")  # maybe the only copy left
    _leftover(tmp_path, ".abc.tmp-{pid}-1", DEAD_PID)  # a file
    assert [t.path for t in temp_paths(tmp_path, ["abc"], directories=True)] == sorted([new, old_export])
    assert temp_paths(tmp_path / "missing", ["abc"]) == [] and temp_paths(tmp_path, []) == []


def test_replace_directory_moves_a_new_tree_into_place_and_drops_the_old(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "old.txt").write_text("old")
    tmp = temp_sibling(out)
    (tmp / "new.txt").write_text("new")
    assert replace_directory(tmp, out) == out
    assert _files(out) == {"new.txt": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary or set-aside copy left


def test_replace_directory_puts_the_old_one_back_when_the_new_cannot_move_in(tmp_path, monkeypatch):
    out = tmp_path / "export"
    out.mkdir()
    (out / "old.txt").write_text("old")
    tmp = temp_sibling(out)
    (tmp / "new.txt").write_text("new")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(Path(src))
        if Path(src) == tmp:
            raise OSError("the new one cannot move in")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="cannot move in"):
        replace_directory(tmp, out)
    assert _files(out) == {"old.txt": b"old"}
    assert not any(p.name.startswith(".export.old-") for p in tmp_path.iterdir())


def test_sync_tree_fsyncs_every_file(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    count = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (count.append(fd), real_fsync(fd)))
    sync_tree(tmp_path)
    assert len(count) >= 4  # two files and two directories


def test_append_durably_appends_whole_lines_and_fsyncs(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "log.jsonl"
    atomic.append_durably(path, "a\n")
    atomic.append_durably(path, "b\r\n")  # written as given: no newline translation
    assert path.read_bytes() == b"a\nb\r\n" and len(synced) == 2
