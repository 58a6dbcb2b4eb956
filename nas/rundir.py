"""Run directories: their names, and the one module that reads and writes a run's records.

Every command that leaves a run behind — ``nas-search``, ``nas train-supernet``, ``nas
train-net``, the benchmarks — names it with :func:`default_run_dir` (``results/KIND-…-TIME``),
refuses a directory that already holds a run (:func:`check_new_run_dir`: a new run never writes
into one) and writes its records here: JSON records (``config.json``, ``picks.json``,
``summary.json``, ``train_log.json``, benchmark records) with :func:`write_json`, tables
(``trials.csv``, ``pareto.csv``, ``history.csv``) with :func:`write_table` /
:func:`write_rows`, other text with :func:`write_text` — each through the one atomic writer,
:func:`search_spaces.atomic.write_atomic` (temporary file, fsync, rename: a kill never leaves
half a record) — and logs one line at a time with :func:`append_json_line`. It reads them back
with :func:`read_run_config`, :func:`read_record_json` and :func:`read_record_table`, whose
errors name the file and the command that writes it.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search_spaces.atomic import append_durably, file_in_the_way, write_atomic

__all__ = [
    "CONFIG", "PARETO", "PICKS", "SUMMARY", "TRIALS", "append_json_line", "check_new_run_dir", "check_output_file",
    "corrupt_record", "default_run_dir", "file_in_the_way", "prepare_bench_dir", "prepare_run_dir",
    "read_record_json", "read_record_table", "read_run_config", "setting_changes", "write_json", "write_rows",
    "write_table", "write_text",
]

# The records of a search run (nas-search); a supernet run has config.json, history.csv, train_log.json.
CONFIG = "config.json"
TRIALS = "trials.csv"
PARETO = "pareto.csv"
PICKS = "picks.json"
SUMMARY = "summary.json"
SEARCH_WRITER = "nas-search"


def default_run_dir(kind: str, *parts: object, root: str | Path = "results") -> Path:
    """``ROOT/KIND-PART-…-YYYYmmdd-HHMMSS``: the default directory of a new run (``search``,
    ``train``, ``bench-ranking``, …), named by the local time it starts."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / "-".join([kind, *(str(p) for p in parts), stamp])


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


def read_run_config(run_dir: str | Path, *, kind: str = SEARCH_WRITER) -> dict[str, Any]:
    """``RUN/config.json`` of a ``kind`` run directory; a missing or unreadable one raises naming it."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{Path(run_dir)} holds no config.json; it is not a {kind} run directory")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); was it written by {kind}?") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a {kind} config")
    return data


def _missing(path: Path, writer: str) -> FileNotFoundError:
    if path.name in (PICKS, PARETO, TRIALS) and (path.parent / CONFIG).is_file():
        return FileNotFoundError(f"{path.name} not found in run directory {path.parent}: the search there has not "
                                 f"finished (stopped or still running); finish it with `{writer} --out "
                                 f"{path.parent} --resume`, then report")
    return FileNotFoundError(f"{path.name} not found in run directory {path.parent}: it is written by "
                             f"`{writer}`; point at the directory a finished search wrote (--out)")


def corrupt_record(path: Path, detail: str, writer: str = SEARCH_WRITER) -> ValueError:
    """The error for a record of a run that cannot be used: names the file, what is wrong, who writes it."""
    return ValueError(f"{path.name} in run directory {path.parent} is not readable ({detail}); it is written "
                      f"by `{writer}`: re-run the search or restore the file")


def read_record_json(path: str | Path, *, required: bool = True, writer: str = SEARCH_WRITER) -> Any:
    """A JSON record of a run (``None`` when absent and not ``required``); a missing or corrupt one
    raises naming the file and the command ``writer`` that writes it."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise _missing(path, writer)
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise corrupt_record(path, f"not valid JSON: {err}", writer) from None


def read_record_table(path: str | Path, *, required_columns: Sequence[str] = (), text_columns: Sequence[str] = (),
                      writer: str = SEARCH_WRITER) -> pd.DataFrame:
    """A CSV table of a run, ``text_columns`` read as strings; a missing file, one that is not a CSV
    table or one lacking ``required_columns`` raises naming the file."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path, writer)
    try:
        table = pd.read_csv(path, dtype={c: str for c in text_columns})
    except pd.errors.EmptyDataError:
        raise corrupt_record(path, "the file is empty, not even a header", writer) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise corrupt_record(path, f"not a valid CSV table: {err}", writer) from None
    missing = [c for c in required_columns if c not in table.columns]
    if missing:
        raise corrupt_record(path, f"missing column(s) {', '.join(missing)}; columns found: "
                                   f"{', '.join(table.columns)}", writer)
    return table


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (parents created); a reader or a crash never sees half of it."""
    return write_atomic(path, text)


def write_json(path: str | Path, data: Any, *, default: Callable[[Any], Any] | None = None) -> Path:
    """Write a JSON record (indented, one trailing newline) atomically. A value JSON cannot hold
    raises ``TypeError`` unless ``default`` turns it into one (``default=str``: its text)."""
    return write_atomic(path, json.dumps(data, indent=2, default=default) + "\n")


def write_table(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a pandas table as CSV (no index) atomically: a kill never leaves half a table."""
    return write_atomic(path, frame.to_csv(index=False))


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]], fieldnames: Iterable[str] | None = None) -> Path:
    """Write dict rows as a CSV table (header from ``fieldnames``, default the first row's keys) atomically."""
    rows = list(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames if fieldnames is not None else rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return write_atomic(path, buf.getvalue())


def append_json_line(path: str | Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line, flushed and fsync'ed: a crash loses at most the line
    being written (readers of such logs ignore a last line cut short)."""
    append_durably(path, json.dumps(record) + "\n")


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


def prepare_bench_dir(out: Path, settings: dict[str, Any], *, resume: bool,
                      free: frozenset[str] = frozenset()) -> None:
    """A benchmark's run directory: for a new run, refuse an occupied ``out`` and record
    ``settings`` in ``config.json``; for a resume, refuse a directory of another benchmark (its
    ``kind``, e.g. ``nas-bench-ranking`` for ``nas bench ranking``) or one run with other settings
    (names in ``free`` may differ)."""
    command = settings["kind"].replace("-", " ")
    if not resume:
        check_new_run_dir(out, hint="pass --resume to continue that benchmark, or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG, settings)
        return
    stored = read_run_config(out, kind=command)
    if stored.get("kind") != settings["kind"]:
        raise ValueError(f"--resume refused: {out / CONFIG} is not the record of a {command} run")
    changed = setting_changes(stored, settings, free=free)
    if changed:
        raise ValueError(f"--resume refused: {out} was run with {', '.join(f'{k}={a!r}' for k, a, _ in changed)}, "
                         f"not {', '.join(f'{k}={b!r}' for k, _, b in changed)}; resume with the same settings or "
                         f"use a new --out")
