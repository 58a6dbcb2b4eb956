"""Tests for nas.rundir: run names, the check that a new run never writes into an occupied
directory, and reading and writing a run's records."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from nas.rundir import (
    append_json_line,
    check_new_run_dir,
    check_output_file,
    default_run_dir,
    file_in_the_way,
    prepare_run_dir,
    read_record_json,
    read_record_table,
    read_run_config,
    setting_changes,
    write_json,
    write_rows,
    write_table,
)

# ---- run directory helpers -------------------------------------------------------------------

def test_prepare_run_dir(tmp_path):
    nested = tmp_path / "a" / "b"
    assert prepare_run_dir(nested) == nested and nested.is_dir()
    assert prepare_run_dir(nested) == nested  # empty directory: accepted
    (nested / "x.txt").write_text("1")
    with pytest.raises(FileExistsError, match="already holds files"):
        prepare_run_dir(nested)
    with pytest.raises(FileExistsError, match="not a directory"):
        prepare_run_dir(nested / "x.txt")


def test_check_new_run_dir_names_a_file_among_the_ancestors(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    assert file_in_the_way(tmp_path / "new" / "run") is None and file_in_the_way(tmp_path) is None
    assert file_in_the_way(blocker) == blocker
    assert file_in_the_way(blocker / "a" / "b") == blocker
    with pytest.raises(FileExistsError) as info:
        check_new_run_dir(blocker / "a" / "b", hint="choose another --out")
    assert str(info.value) == (f"run directory {blocker / 'a' / 'b'} cannot be created: {blocker} is a file, not a "
                               f"directory; choose another --out")
    assert blocker.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_default_run_dir_name(tmp_path):
    before = time.strftime("%Y%m%d-%H%M%S")
    path = default_run_dir("train", "quadranet_digits", "digits", root=tmp_path)
    after = time.strftime("%Y%m%d-%H%M%S")
    assert path.parent == tmp_path
    m = re.fullmatch(r"train-quadranet_digits-digits-(\d{8}-\d{6})", path.name)
    assert m and before <= m.group(1) <= after
    assert default_run_dir("train", "m", "d").parent == Path("results")
    assert not path.exists()


def test_write_json_writes_one_indented_record_with_a_trailing_newline(tmp_path):
    path = write_json(tmp_path / "sub" / "summary.json", {"a": 1, "b": [2.5, None]})
    assert path.read_text() == json.dumps({"a": 1, "b": [2.5, None]}, indent=2) + "\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["summary.json"]  # no temporary file left
    with pytest.raises(TypeError, match="PosixPath"):  # a value JSON cannot hold is refused, nothing written
        write_json(tmp_path / "other.json", {"p": Path("x")})
    assert not (tmp_path / "other.json").exists()
    assert json.loads(write_json(tmp_path / "other.json", {"p": Path("x")}, default=str).read_text()) == {"p": "x"}


def test_tables_round_trip_through_the_record_readers(tmp_path):
    frame = pd.DataFrame({"arch_id": ["0123", "ab"], "val_acc": [0.5, 0.25]})
    write_table(tmp_path / "trials.csv", frame)
    back = read_record_table(tmp_path / "trials.csv", required_columns=("arch_id",), text_columns=("arch_id",))
    assert back["arch_id"].tolist() == ["0123", "ab"]  # text stays text, leading zero included
    write_rows(tmp_path / "history.csv", [{"epoch": 1, "loss": 1.5}, {"epoch": 2, "loss": 1.25}])
    assert (tmp_path / "history.csv").read_bytes() == b"epoch,loss\r\n1,1.5\r\n2,1.25\r\n"


def test_record_readers_name_the_file_and_the_command_that_writes_it(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="picks.json not found in run directory .*the search there has not "
                                                "finished.*nas-search --out"):
        read_record_json(tmp_path / "picks.json")
    assert read_record_json(tmp_path / "summary.json", required=False) is None
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match="summary.json in run directory .* is not readable .not valid JSON"):
        read_record_json(tmp_path / "summary.json")
    (tmp_path / "trials.csv").write_text("")
    with pytest.raises(ValueError, match="the file is empty, not even a header"):
        read_record_table(tmp_path / "trials.csv")
    (tmp_path / "trials.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing column.s. arch_id; columns found: a, b"):
        read_record_table(tmp_path / "trials.csv", required_columns=("arch_id",))


def test_read_run_config_names_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no config.json; it is not a nas-search run directory"):
        read_run_config(tmp_path)
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(ValueError, match="does not hold a nas train-supernet config"):
        read_run_config(tmp_path, kind="nas train-supernet")


def test_check_output_file_refuses_a_directory_or_a_file_in_the_way(tmp_path):
    assert check_output_file(tmp_path / "new" / "x.json") == tmp_path / "new" / "x.json"
    with pytest.raises(ValueError, match="is a directory; give the path of a file"):
        check_output_file(tmp_path)
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="cannot be written: .*f is a file"):
        check_output_file(tmp_path / "f" / "x.json", option="--out")


def test_append_json_line_appends_whole_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    append_json_line(path, {"a": 1})
    append_json_line(path, {"b": [2]})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}, {"b": [2]}]


def test_setting_changes_compares_nested_records_field_by_field():
    stored = {"space": "s", "train": {"lr": 0.1, "device": "cpu"}, "n": 1}
    current = {"space": "s", "train": {"lr": 0.2, "device": "cuda"}, "n": 2}
    assert setting_changes(stored, current, free=frozenset({"train.device"})) == [("n", 1, 2), ("train.lr", 0.1, 0.2)]


def test_prepare_bench_dir_records_settings_and_refuses_a_resume_that_differs(tmp_path):
    from nas.rundir import prepare_bench_dir

    out = tmp_path / "b"
    settings = {"kind": "nas-bench-x", "epochs": 3, "device": "cpu"}
    prepare_bench_dir(out, settings, resume=False, free=frozenset({"device"}))
    assert json.loads((out / "config.json").read_text()) == settings
    with pytest.raises(FileExistsError, match="--resume"):
        prepare_bench_dir(out, settings, resume=False)
    prepare_bench_dir(out, {**settings, "device": "cuda"}, resume=True, free=frozenset({"device"}))  # free: may change
    with pytest.raises(ValueError, match=r"--resume refused: .* was run with epochs=3, not epochs=4"):
        prepare_bench_dir(out, {**settings, "epochs": 4}, resume=True)
    with pytest.raises(ValueError, match="not the record of a nas bench y run"):
        prepare_bench_dir(out, {**settings, "kind": "nas-bench-y"}, resume=True)
    with pytest.raises(FileNotFoundError, match="not a nas bench x run directory"):
        prepare_bench_dir(tmp_path / "none", settings, resume=True)
    assert json.loads((out / "config.json").read_text()) == settings  # a refused resume rewrote nothing
