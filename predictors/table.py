"""The profile table: one CSV row per measurement of an (architecture, device, batch size).

An architecture is measured in several *passes* spread over the run (column ``pass``), so a
burst of load from other tenants of a shared machine hits one pass, not all;
:func:`aggregate_profiles` gives one row per (architecture, device, batch size) with the median
over passes — what predictors are fitted on. Memory, the same to the byte in every pass, is
measured in an architecture's first pass; later passes leave its columns empty.

Columns carry their units (``latency_ms``, ``peak_infer_mem_mb``); ``arch_json`` holds the
architecture so features can be recomputed from the table alone, and ``fingerprint`` the
device's identity as JSON (``fingerprint_id`` is its short hash). Rows are appended one at a
time and flushed to disk, so a run that is killed loses at most the row it was writing;
:func:`read_profiles` drops such a torn last line with a warning and refuses anything else that
is malformed, naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from search_spaces.atomic import append_durably

__all__ = ["PROFILE_COLUMNS", "REQUIRED_COLUMNS", "TARGETS", "aggregate_profiles", "append_profile_row",
           "read_profiles", "rows_for"]

PROFILE_COLUMNS = [
    "arch_id", "space", "name", "batch_size", "device", "fingerprint_id", "device_name", "threads",
    "latency_ms", "latency_p10_ms", "latency_p90_ms", "latency_repeats", "latency_stable",
    "peak_infer_mem_mb", "peak_train_mem_mb", "param_mb", "n_kernels", "kernel_waves",
    "core_clock_before_mhz", "core_clock_after_mhz", "suspect", "profile_seconds", "measured_at",
    "sample_source", "pass", "ref_arch_id", "ref_latency_ms", "arch_json", "fingerprint",
]
REQUIRED_COLUMNS = ["arch_id", "space", "batch_size", "device", "fingerprint_id", "latency_ms",
                    "peak_infer_mem_mb", "peak_train_mem_mb", "arch_json", "fingerprint"]
# What a predictor can be fitted to: name used on the command line -> table column.
TARGETS = {"latency": "latency_ms", "memory": "peak_infer_mem_mb", "train_memory": "peak_train_mem_mb"}


def append_profile_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row (header first if the file is new), flushed and fsync'ed."""
    path = Path(path)
    unknown = sorted(set(row) - set(PROFILE_COLUMNS))
    if unknown:
        raise ValueError(f"profile row has unknown columns {unknown}; valid: {', '.join(PROFILE_COLUMNS)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in row]
    if missing:
        raise ValueError(f"profile row lacks required columns {missing}")
    if path.exists() and path.stat().st_size > 0:
        _repair_torn_tail(path)  # may leave the file empty: a header torn by a kill
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        _check_header(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=PROFILE_COLUMNS, lineterminator="\n")
    if new:
        writer.writeheader()
    writer.writerow({c: row.get(c, "") for c in PROFILE_COLUMNS})
    append_durably(path, buf.getvalue())


def _check_header(path: Path) -> None:
    with open(path, encoding="utf-8", newline="") as fh:
        header = fh.readline().rstrip("\r\n").split(",")
    if header != PROFILE_COLUMNS:
        raise ValueError(f"{path} is not a profile table of this version (its header has {len(header)} columns: "
                         f"{','.join(header[:5])}…); write to a new file")


def _repair_torn_tail(path: Path) -> None:
    """Cut a last line that has no newline (a write interrupted by a kill) before appending."""
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        warnings.warn(f"{path}: dropping an incomplete last row ({len(data) - cut} bytes) left by an interrupted run",
                      stacklevel=3)
        fh.truncate(cut)


def read_profiles(path: str | Path) -> pd.DataFrame:
    """Read a profile table; errors name the file and what is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"profile table {path} does not exist") from None
    except OSError as err:
        raise ValueError(f"cannot read profile table {path}: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"profile table {path} is not UTF-8 CSV text (byte {err.start})") from None
    if text and not text.endswith("\n"):
        cut = text.rfind("\n") + 1
        if cut == 0 and ",".join(PROFILE_COLUMNS).startswith(text):
            warnings.warn(f"{path}: ignoring a header torn by an interrupted run; the table has no rows",
                          stacklevel=2)
            return pd.DataFrame(columns=PROFILE_COLUMNS)
        warnings.warn(f"{path}: ignoring an incomplete last row left by an interrupted run", stacklevel=2)
        text = text[:cut]
    if not text.strip():
        raise ValueError(f"profile table {path} is empty")
    try:
        df = pd.read_csv(io.StringIO(text), dtype={"arch_id": str, "fingerprint_id": str, "suspect": str,
                                                   "sample_source": str, "threads": str, "pass": int},
                         keep_default_na=False, na_values={"latency_ms": [""]})
    except (pd.errors.ParserError, ValueError) as err:
        raise ValueError(f"profile table {path} is not valid CSV: {err}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"profile table {path} lacks columns {missing}; is it a profile table?")
    repeat = (pd.to_numeric(df["pass"], errors="coerce") > 0) if "pass" in df else pd.Series(False, index=df.index)
    for col in ("batch_size", "latency_ms", "peak_infer_mem_mb", "peak_train_mem_mb"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values <= 0)
        if col in _MEASURED_ONCE:  # a repeat pass times the network only: its memory is empty
            bad &= ~(repeat & (df[col].astype(str) == ""))
        if bad.any():
            line = int(bad.to_numpy().nonzero()[0][0]) + 2  # header is line 1
            raise ValueError(f"profile table {path}, line {line}: column {col} must be a positive number"
                             + (" (empty only in a repeat pass)" if col in _MEASURED_ONCE else "")
                             + f", got {df[col].iloc[line - 2]!r}")
        df[col] = values
    df["batch_size"] = df["batch_size"].astype(int)
    valid = {v: _is_json_object(v) for v in df["fingerprint"].astype(str).unique()}
    bad = ~df["fingerprint"].astype(str).map(valid) | df["fingerprint"].isna()
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + 2
        got = str(df["fingerprint"].iloc[line - 2])[:60]
        raise ValueError(f"profile table {path}, line {line}: column fingerprint must be the device's fingerprint "
                         f"as a JSON object (as `nas profile` writes it), got {got!r}")
    return df


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


# Measured in an architecture's first pass only (the same to the byte in every pass); a repeat
# pass's row leaves them empty, and the median over passes is the first pass's value.
_MEASURED_ONCE = ("peak_infer_mem_mb", "peak_train_mem_mb")
_MEDIAN_COLUMNS = ["latency_ms", "latency_p10_ms", "latency_p90_ms", "peak_infer_mem_mb", "peak_train_mem_mb",
                   "profile_seconds", "ref_latency_ms", "ref_ratio"]
KEY = ["arch_id", "batch_size", "fingerprint_id"]


def _rel_mad(v: pd.Series) -> float:
    """Median absolute deviation over the median (NaN if any value is missing)."""
    if v.isna().any():
        return float("nan")
    return float((v - v.median()).abs().median() / v.median())


def aggregate_profiles(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (arch_id, batch_size, fingerprint_id): the median over its passes.

    ``passes`` counts the measurements; ``ref_ratio`` is the median over passes of
    ``latency_ms / ref_latency_ms`` (the latency in units of the reference architecture measured
    at the same time; NaN without a reference); ``latency_pass_mad`` is the median absolute
    deviation of the passes' latencies over their median (how well the median is pinned down; one
    outlying pass does not move it); ``latency_pass_spread`` is (max − min) / median of the passes'
    latencies; ``ref_ratio_pass_mad`` is the same for ``ref_ratio`` (NaN without a
    reference); ``suspect`` joins the passes' notes. Other columns are the first pass's.
    """
    if len(df) == 0:
        return df.assign(passes=pd.Series(dtype=int), latency_pass_spread=pd.Series(dtype=float),
                         latency_pass_mad=pd.Series(dtype=float))
    if "passes" in df and not df.duplicated(KEY).any():
        return df  # already aggregated
    df = df.copy()
    for col in _MEDIAN_COLUMNS:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    if "ref_latency_ms" in df:
        # Per pass: latency in units of the reference measured beside it; the median over
        # passes of this ratio is what reference-normalised predictors learn.
        df["ref_ratio"] = df["latency_ms"] / df["ref_latency_ms"]
    groups = df.groupby(KEY, sort=False)
    first = groups.first()
    for col in _MEDIAN_COLUMNS:
        if col in df:
            first[col] = groups[col].median()
    lat = groups["latency_ms"]
    first["passes"] = groups.size()
    first["latency_pass_spread"] = (lat.max() - lat.min()) / lat.median()
    first["latency_pass_mad"] = lat.agg(_rel_mad)
    if "ref_ratio" in df:
        first["ref_ratio_pass_mad"] = groups["ref_ratio"].agg(_rel_mad)
    if "suspect" in df:
        first["suspect"] = groups["suspect"].agg(lambda s: "; ".join(sorted({v for v in s.astype(str) if v})))
    return first.reset_index()


def rows_for(df: pd.DataFrame, *, fingerprint_id: str | None = None, batch_sizes: Iterable[int] | None = None,
             space: str | None = None) -> pd.DataFrame:
    """The rows of one device / batch sizes / space."""
    mask = pd.Series(True, index=df.index)
    if fingerprint_id is not None:
        mask &= df["fingerprint_id"].astype(str) == fingerprint_id
    if batch_sizes is not None:
        mask &= df["batch_size"].isin(list(batch_sizes))
    if space is not None:
        mask &= df["space"] == space
    return df[mask]
