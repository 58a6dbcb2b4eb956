"""Tests for profile collection (nas.profiling), the predictor and staircase benchmarks
(nas.bench.predictors, nas.bench.staircase) and their CLI commands (`nas profile`,
`nas predictors fit|refit|show|predict`, `nas bench predictors|staircase`).

References: the spread plan recomputed with :meth:`SearchSpace.spread`, the median over passes
recomputed from the raw CSV rows, metrics recomputed from the saved tables and artifacts with
the RMSPE formula written out, the middle choices of digits-s written out by hand."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nas.profiling.collect
import nas.profiling.measure
from nas.bench.predictors import PredictorBenchConfig
from nas.bench.staircase import StaircaseBenchConfig
from nas.cli import main
from nas.profiling import ProfileRunConfig, collect_profiles, measure_arch, reference_arch
from predictors import COST_MODELS
from predictors.features import arch_features
from predictors.predictor import Predictor
from predictors.table import PROFILE_COLUMNS, aggregate_profiles, append_profile_row, read_profiles
from profilers.fingerprint import device_fingerprint
from profilers.profile import LatencySettings, profile
from profilers.timing import TimingStats
from search_spaces.arch import ArchConfig, StageArch
from search_spaces.space import create_space, space_names
from support import REPO
from support.processes import sigkill_when

SPACE = "digits-s"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TARGETS = ("latency", "memory", "train_memory")
METRIC_KEYS = ("rmspe", "within_5pct", "within_10pct", "kendall_tau", "n_train", "n_test", "profiling_minutes")


# ---- helpers -------------------------------------------------------------------------------------

def _space():
    return create_space(SPACE)


def _my_fp():
    return device_fingerprint("cpu")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _keys(rows) -> list[tuple[str, int]]:
    return [(r["arch_id"], int(r["pass"])) for r in rows]


def _expected_spread(n_spread: int, *, seed: int = 0, exclude=frozenset()) -> set[str]:
    """The spread plan collect_profiles must follow: MACs-spread members of the space."""
    space = _space()
    plan = space.spread(n_spread, key=lambda a: arch_features(a, 1, space=space)["macs"], seed=seed,
                        pool=max(400, 10 * n_spread), exclude=frozenset(exclude))
    return {a.arch_id for a in plan}


class _Stop(Exception):
    """Raised by an on_row callback to interrupt a run."""


def _stop_after(k: int):
    seen: list[dict] = []

    def on_row(row: dict) -> None:
        seen.append(row)
        if len(seen) >= k:
            raise _Stop(f"interrupted after {k} rows")

    return on_row, seen


def _run(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) with stdout and stderr captured (usable in module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _foreign_row(row: dict[str, str], name: str = "Other CPU 9000") -> dict[str, str]:
    """``row`` as if measured on another device: another fingerprint and fingerprint_id."""
    fp = json.loads(row["fingerprint"])
    fp["name"] = name
    out = dict(row)
    out["fingerprint"] = json.dumps(fp, sort_keys=True)
    out["fingerprint_id"] = "0123456789ab"
    out["device_name"] = name
    return out


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


# ---- ProfileRunConfig --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"space": "nope"}, r"unknown search space 'nope'; valid: .*digits-s"),
    ({"n": 0}, r"n must be a positive integer, got 0"),
    ({"n": 2.5}, r"n must be a positive integer"),
    ({"batch_size": 0}, r"batch_size must be a positive integer, got 0"),
    ({"passes": 0}, r"passes must be a positive integer, got 0"),
    ({"adaptive_rounds": 0}, r"adaptive_rounds must be a positive integer"),
    ({"device": "tpu"}, r"device must be 'cpu' or 'cuda\[:N\]', got 'tpu'"),
    ({"adaptive_fraction": 1.0}, r"adaptive_fraction must be in \[0, 1\), got 1.0"),
    ({"adaptive_fraction": -0.1}, r"adaptive_fraction must be in \[0, 1\)"),
    ({"retries": -1}, r"retries must be a non-negative integer, got -1"),
    ({"retries": True}, r"retries must be a non-negative integer"),
    ({"seed": -1}, r"seed must be a non-negative integer, got -1"),
    ({"seed": 1.0}, r"seed must be a non-negative integer"),
    ({"threads": 0}, r"threads must be a positive integer"),
    ({"max_spread": 0.0}, r"max_spread must be positive"),
])
def test_profile_run_config_rejects_bad_input(kwargs, match):
    base = {"space": SPACE, "n": 8}
    with pytest.raises(ValueError, match=match):
        ProfileRunConfig(**{**base, **kwargs})


def test_profile_run_config_unknown_space_lists_every_space():
    with pytest.raises(ValueError) as info:
        ProfileRunConfig(space="nope", n=4)
    for name in space_names():
        assert name in str(info.value)


@pytest.mark.parametrize("n, fraction, expected", [(8, 0.25, 2), (12, 0.25, 3), (7, 0.25, 0), (8, 0.0, 0),
                                                   (10, 0.5, 5)])
def test_n_adaptive(n, fraction, expected):
    assert ProfileRunConfig(space=SPACE, n=n, adaptive_fraction=fraction).n_adaptive == expected


# ---- reference_arch --------------------------------------------------------------------------------

def test_reference_arch_is_the_middle_member_of_digits_s():
    space = _space()
    ref = reference_arch(space)
    assert space.validate(ref) is ref
    # digits-s: widths ((8,16),(16,24,32),(24,32,48,64),(32,64,96,128)) -> index len//2;
    # depths ((1,2),(1,2),(1,2,3),(1,2)) -> 2,2,2,2; kernel (3,5,7) -> 5; mlp (2,3,4) -> 3; order (1,2) -> 2.
    assert [s.width for s in ref.stages] == [16, 24, 48, 96]
    assert [s.depth for s in ref.stages] == [2, 2, 2, 2]
    blocks = [b for s in ref.stages for b in s.blocks]
    assert {(b.kernel_size, b.mlp_ratio, b.order) for b in blocks} == {(5, 3, 2)}
    assert reference_arch(create_space(SPACE)).arch_id == ref.arch_id  # stable


@pytest.mark.parametrize("name", space_names())
def test_reference_arch_is_a_member_of_every_space(name):
    space = create_space(name)
    ref = reference_arch(space)
    assert space.validate(ref) is ref
    for stage, ds, ws in zip(ref.stages, space.depth_choices, space.width_choices):
        assert stage.width == ws[len(ws) // 2]
        assert stage.depth == ds[len(ds) // 2]


# ---- measure_arch: retries (profile() replaced by a scripted fake) -------------------------------

@pytest.fixture(scope="module")
def base_record():
    return profile(_space().min_arch(), latency=LatencySettings(warmup=1, warmup_seconds=0.0, min_repeats=2,
                                                                 max_repeats=2))


def _script_profile(monkeypatch, base, script, *, paired=False):
    """Replace nas.profiling.profile by one returning records of the given (spread, stable, suspect);
    ``paired``: timed beside a reference with the same spread and stability."""
    calls: list[dict] = []
    it = iter(script)

    def fake(arch, **kw):
        spread, stable, suspect = next(it)
        calls.append(kw)
        lat = TimingStats(median_ms=2.0, p10_ms=2.0, p90_ms=2.0 + 2.0 * spread, repeats=15, stable=stable)
        ref = TimingStats(median_ms=4.0, p10_ms=4.0, p90_ms=4.0 + 4.0 * spread, repeats=15, stable=stable)
        return replace(base, latency=lat, ref_latency=ref if paired else None, suspect=suspect)

    monkeypatch.setattr(nas.profiling.measure, "profile", fake)
    monkeypatch.setattr(nas.profiling.collect, "profile", fake)
    return calls


def _spread_of(rec) -> float:
    return (rec.latency.p90_ms - rec.latency.p10_ms) / rec.latency.median_ms


def test_measure_arch_tight_first_try_is_kept(monkeypatch, base_record):
    calls = _script_profile(monkeypatch, base_record, [(0.1, True, "")])
    cfg = ProfileRunConfig(space=SPACE, n=4, batch_size=3, threads=1, retries=2)
    rec = measure_arch(_space().min_arch(), cfg)
    assert len(calls) == 1
    assert calls[0]["device"] == "cpu" and calls[0]["batch_size"] == 3 and calls[0]["threads"] == 1
    assert calls[0]["with_ops"] is False
    assert _spread_of(rec) == pytest.approx(0.1) and rec.suspect == ""


def test_measure_arch_retries_until_tight(monkeypatch, base_record):
    calls = _script_profile(monkeypatch, base_record, [(0.5, True, ""), (0.2, True, ""), (0.01, True, "")])
    rec = measure_arch(_space().min_arch(), ProfileRunConfig(space=SPACE, n=4, retries=2))
    assert len(calls) == 2  # the second try is within max_spread 0.25: no third
    assert _spread_of(rec) == pytest.approx(0.2) and rec.suspect == ""


def test_measure_arch_keeps_tightest_and_flags_it_when_all_noisy(monkeypatch, base_record):
    calls = _script_profile(monkeypatch, base_record, [(0.5, True, ""), (0.3, True, "clock moved"),
                                                       (0.4, True, "")])
    rec = measure_arch(_space().min_arch(), ProfileRunConfig(space=SPACE, n=4, retries=2))
    assert len(calls) == 3
    assert _spread_of(rec) == pytest.approx(0.3)
    assert rec.suspect == "clock moved; latency spread (p90-p10)/median 0.30 after 3 tries"


def test_measure_arch_retries_zero_measures_once(monkeypatch, base_record):
    calls = _script_profile(monkeypatch, base_record, [(0.5, True, "")])
    rec = measure_arch(_space().min_arch(), ProfileRunConfig(space=SPACE, n=4, retries=0))
    assert len(calls) == 1
    assert rec.suspect == "latency spread (p90-p10)/median 0.50 after 1 tries"


def test_measure_arch_retries_an_unsettled_median(monkeypatch, base_record):
    calls = _script_profile(monkeypatch, base_record, [(0.1, False, ""), (0.1, False, ""), (0.1, False, "")])
    rec = measure_arch(_space().min_arch(), ProfileRunConfig(space=SPACE, n=4, retries=2))
    assert len(calls) == 3  # tight but never stable: every try is used
    assert "after 3 tries" in rec.suspect


def test_measure_arch_prefers_a_stable_try_within_max_spread(monkeypatch, base_record):
    calls = _script_profile(monkeypatch, base_record, [(0.1, False, ""), (0.2, True, ""), (0.15, False, "")])
    rec = measure_arch(_space().min_arch(), ProfileRunConfig(space=SPACE, n=4, retries=2))
    assert len(calls) == 2
    assert rec.latency.stable and _spread_of(rec) == pytest.approx(0.2) and rec.suspect == ""


def test_measure_arch_beside_a_reference_keeps_a_settled_ratio_despite_a_wide_spread(monkeypatch, base_record):
    calls = _script_profile(monkeypatch, base_record, [(0.6, True, ""), (0.01, True, "")], paired=True)
    ref = _space().max_arch()
    rec = measure_arch(_space().min_arch(), ProfileRunConfig(space=SPACE, n=4, retries=2), reference=ref)
    assert len(calls) == 1 and calls[0]["reference"] is ref
    assert _spread_of(rec) == pytest.approx(0.6) and rec.suspect == ""


def test_measure_arch_beside_a_reference_retries_an_unsettled_ratio(monkeypatch, base_record):
    calls = _script_profile(monkeypatch, base_record, [(0.1, False, ""), (0.05, False, ""), (0.2, False, "")],
                            paired=True)
    rec = measure_arch(_space().min_arch(), ProfileRunConfig(space=SPACE, n=4, retries=2),
                       reference=_space().max_arch())
    assert len(calls) == 3
    assert _spread_of(rec) == pytest.approx(0.05)
    assert rec.suspect == "ratio to the reference unsettled after 3 tries"


# ---- collect_profiles -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    path = tmp_path_factory.mktemp("collect") / "profiles.csv"
    config = ProfileRunConfig(space=SPACE, n=8, passes=2, max_passes=2, seed=0)
    table = collect_profiles(config, path, progress=False)
    return config, path, table


def test_collect_writes_every_pass_of_every_arch(collected):
    config, path, table = collected
    rows = _csv_rows(path)
    fp_id = _my_fp().fingerprint_id
    assert list(rows[0]) == PROFILE_COLUMNS
    assert len(rows) == 16 and all(r["fingerprint_id"] == fp_id for r in rows)
    keys = _keys(rows)
    assert len(set(keys)) == 16
    ids = {a for a, _ in keys}
    assert len(ids) == 8
    assert sorted(keys) == sorted((a, p) for a in ids for p in (0, 1))
    assert {r["space"] for r in rows} == {SPACE} and {r["batch_size"] for r in rows} == {"1"}
    assert all(r["arch_id"] == ArchConfig.from_json(r["arch_json"]).arch_id for r in rows)
    # Every pass-1 row comes after every pass-0 row.
    passes = [int(r["pass"]) for r in rows]
    assert passes == sorted(passes)


def test_collect_sources_follow_the_spread_then_adaptive_plan(collected):
    config, path, _ = collected
    rows = _csv_rows(path)
    space = _space()
    assert {r["sample_source"] for r in rows} <= {"spread", "adaptive", "repeat"}
    first = [r for r in rows if r["pass"] == "0"]
    spread = {r["arch_id"] for r in first if r["sample_source"] == "spread"}
    adaptive = {r["arch_id"] for r in first if r["sample_source"] == "adaptive"}
    assert config.n_adaptive == 2
    assert len(adaptive) == 2 and len(spread) == 6 and not (spread & adaptive)
    assert spread == _expected_spread(6)
    assert {space.min_arch().arch_id, space.max_arch().arch_id} <= spread
    assert all(r["sample_source"] == "repeat" for r in rows if r["pass"] == "1")
    # Every architecture is a member of the space.
    for r in first:
        space.validate(ArchConfig.from_json(r["arch_json"]))


def test_collect_rows_carry_the_reference(collected):
    _, path, table = collected
    rows = _csv_rows(path)
    ref_id = reference_arch(_space()).arch_id
    assert {r["ref_arch_id"] for r in rows} == {ref_id}
    assert all(float(r["ref_latency_ms"]) > 0 for r in rows)
    assert all(float(r["latency_ms"]) > 0 for r in rows)
    assert all(float(r["peak_infer_mem_mb"]) > 0 if r["pass"] == "0" else r["peak_infer_mem_mb"] == "" for r in rows)
    assert (table["ref_arch_id"] == ref_id).all()


def test_collect_returns_median_over_passes(collected):
    _, path, table = collected
    rows = _csv_rows(path)
    assert len(table) == 8 and (table["passes"] == 2).all()
    assert table["arch_id"].is_unique
    assert table.attrs["minutes"] > 0
    for rec in table.itertuples():
        mine = [r for r in rows if r["arch_id"] == rec.arch_id]
        lat = [float(r["latency_ms"]) for r in mine]
        ratio = [float(r["latency_ms"]) / float(r["ref_latency_ms"]) for r in mine]
        assert rec.latency_ms == pytest.approx(float(np.median(lat)), rel=1e-12)
        assert rec.latency_pass_spread == pytest.approx((max(lat) - min(lat)) / np.median(lat), rel=1e-9)
        assert rec.ref_ratio == pytest.approx(float(np.median(ratio)), rel=1e-12)


def test_collect_on_a_complete_table_measures_nothing(collected, tmp_path):
    config, path, table = collected
    copy = tmp_path / "copy.csv"
    shutil.copy(path, copy)
    before = copy.read_bytes()
    on_row, seen = _stop_after(1)
    again = collect_profiles(config, copy, progress=False, on_row=on_row)
    assert seen == []
    assert copy.read_bytes() == before
    assert sorted(again["arch_id"]) == sorted(table["arch_id"])
    assert again.set_index("arch_id")["latency_ms"].to_dict() == pytest.approx(
        table.set_index("arch_id")["latency_ms"].to_dict())


@pytest.mark.parametrize("k", [3, 8], ids=["in-pass-0", "in-pass-1"])
def test_collect_resumes_after_an_interruption(tmp_path, k):
    config = ProfileRunConfig(space=SPACE, n=6, passes=2, max_passes=2, seed=0)
    path = tmp_path / "p.csv"
    on_row, seen = _stop_after(k)
    with pytest.raises(_Stop):
        collect_profiles(config, path, progress=False, on_row=on_row)
    at_stop = _lines(path)
    assert len(at_stop) == 1 + k
    assert [r["arch_id"] for r in _csv_rows(path)] == [r["arch_id"] for r in seen]

    on_row2, seen2 = _stop_after(10**6)
    table = collect_profiles(config, path, progress=False, on_row=on_row2)
    assert len(seen2) == 12 - k  # only what was missing is measured
    lines = _lines(path)
    assert lines[: 1 + k] == at_stop
    rows = _csv_rows(path)
    keys = _keys(rows)
    assert len(rows) == 12 and len(set(keys)) == 12
    ids = {a for a, _ in keys}
    assert ids == _expected_spread(6)  # n < 8: no adaptive share; the same plan as an uninterrupted run
    assert sorted(keys) == sorted((a, p) for a in ids for p in (0, 1))
    assert len(table) == 6 and (table["passes"] == 2).all()


def test_collect_drops_a_torn_last_line_and_completes(tmp_path):
    config = ProfileRunConfig(space=SPACE, n=6, passes=1, max_passes=1, seed=0)
    path = tmp_path / "p.csv"
    on_row, seen = _stop_after(3)
    with pytest.raises(_Stop):
        collect_profiles(config, path, progress=False, on_row=on_row)
    lines = _lines(path)
    torn_id = seen[-1]["arch_id"]
    # A kill while the third row was written: half of it, no newline.
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2], encoding="utf-8")
    with pytest.warns(UserWarning, match="incomplete last row"):
        table = collect_profiles(config, path, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = read_profiles(path)  # whole again: no warning
    assert _lines(path)[:3] == lines[:3]
    rows = _csv_rows(path)
    assert len(rows) == 6 and len(set(_keys(rows))) == 6
    assert torn_id in {r["arch_id"] for r in rows}
    assert {r["arch_id"] for r in rows} == _expected_spread(6)
    assert len(df) == 6 and len(table) == 6


def test_collect_resumes_a_table_torn_in_its_first_row(collected, tmp_path):
    _, src, _ = collected
    header, first = _lines(src)[:2]
    path = tmp_path / "p.csv"
    path.write_text(header + first[: len(first) // 2], encoding="utf-8")  # killed while writing row 1
    with pytest.warns(UserWarning, match="incomplete last row"):
        table = collect_profiles(ProfileRunConfig(space=SPACE, n=2, passes=1, max_passes=1, seed=0), path,
                                 progress=False)
    lines = _lines(path)
    assert lines[0] == header and len(lines) == 3
    space = _space()
    assert {r["arch_id"] for r in _csv_rows(path)} == {space.min_arch().arch_id, space.max_arch().arch_id}
    assert len(table) == 2


def test_collect_resumes_a_table_torn_in_its_header(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(",".join(PROFILE_COLUMNS)[:100], encoding="utf-8")  # killed while writing the header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = collect_profiles(ProfileRunConfig(space=SPACE, n=2, passes=1, max_passes=1, seed=0), path,
                                 progress=False)
    assert len(table) == 2 and len(_csv_rows(path)) == 2


def test_collect_keeps_rows_of_another_device(tmp_path):
    space = _space()
    path = tmp_path / "p.csv"
    fp = _my_fp()
    target = space.min_arch()  # in the spread plan: this device must still measure it
    foreign = {c: "" for c in PROFILE_COLUMNS}
    foreign.update({
        "arch_id": target.arch_id, "space": SPACE, "name": "x", "batch_size": 1, "device": "cpu",
        "fingerprint_id": "0123456789ab", "device_name": "Other CPU", "threads": 1, "latency_ms": 123.0,
        "latency_p10_ms": 120.0, "latency_p90_ms": 126.0, "latency_repeats": 15, "latency_stable": True,
        "peak_infer_mem_mb": 4.5, "peak_train_mem_mb": 9.0, "param_mb": 0.5, "n_kernels": 0, "kernel_waves": 0,
        "profile_seconds": 2.0, "measured_at": "2026-01-01T00:00:00", "sample_source": "spread", "pass": 0,
        "ref_arch_id": reference_arch(space).arch_id, "ref_latency_ms": 100.0, "arch_json": target.to_json(),
        "fingerprint": json.dumps({**fp.to_dict(), "name": "Other CPU"}, sort_keys=True),
    })
    append_profile_row(path, foreign)
    foreign_line = _lines(path)[1]
    config = ProfileRunConfig(space=SPACE, n=6, passes=1, max_passes=1, seed=0)
    table = collect_profiles(config, path, progress=False)
    assert _lines(path)[1] == foreign_line  # untouched
    rows = _csv_rows(path)
    assert len(rows) == 7
    mine = [r for r in rows if r["fingerprint_id"] == fp.fingerprint_id]
    assert len(mine) == 6 and target.arch_id in {r["arch_id"] for r in mine}
    assert len(table) == 6 and set(table["fingerprint_id"]) == {fp.fingerprint_id}
    assert 123.0 not in set(table["latency_ms"])


def test_collect_never_profiles_excluded_archs(tmp_path):
    space = _space()
    plan = sorted(_expected_spread(6))
    exclude = {space.min_arch().arch_id, space.max_arch().arch_id, plan[0], plan[1]}
    config = ProfileRunConfig(space=SPACE, n=6, passes=1, max_passes=1, seed=0)
    table = collect_profiles(config, tmp_path / "p.csv", exclude=exclude, progress=False)
    ids = {r["arch_id"] for r in _csv_rows(tmp_path / "p.csv")}
    assert len(ids) == 6 and not (ids & exclude)
    assert ids == _expected_spread(6, exclude=exclude)
    assert set(table["arch_id"]) == ids


def test_collect_refuses_a_table_of_another_format(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks columns"):
        collect_profiles(ProfileRunConfig(space=SPACE, n=6, passes=1, max_passes=1), path, progress=False)
    assert path.read_text() == "a,b\n1,2\n"


# ---- a real kill, then a resumed run ---------------------------------------------------------------

def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _profile_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "nas", "profile", "--space", SPACE, "--n", "10", "--passes", "2", "--max-passes", "2",
            "--out", str(out), "--no-progress"]


def _complete_rows(path: Path) -> int:
    if not path.exists():
        return 0
    data = path.read_bytes()
    return max(0, data.count(b"\n") - 1)


@pytest.mark.slow
def test_sigkill_then_rerun_completes_without_duplicates(tmp_path):
    out = tmp_path / "profiles.csv"
    env = _subprocess_env()
    sigkill_when(_profile_cmd(out), lambda: _complete_rows(out) >= 5, log=tmp_path / "killed.log", env=env,
                 what=f"5 rows in {out}")
    data = out.read_bytes()
    complete = data[: data.rfind(b"\n") + 1].decode().splitlines(keepends=True)
    n_at_kill = len(complete) - 1
    assert 5 <= n_at_kill < 20

    resumed = subprocess.run(_profile_cmd(out), capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{out}: 10 architectures of {SPACE} at batch 1" in resumed.stdout
    assert _lines(out)[: 1 + n_at_kill] == complete
    rows = _csv_rows(out)
    keys = _keys(rows)
    assert len(rows) == 20 and len(set(keys)) == 20
    ids = {a for a, _ in keys}
    assert len(ids) == 10
    assert sorted(keys) == sorted((a, p) for a in ids for p in (0, 1))
    first = [r for r in rows if r["pass"] == "0"]
    assert sorted(r["sample_source"] for r in first).count("spread") == 8  # n_adaptive(10) = round(2.5) = 2
    assert sum(r["sample_source"] == "adaptive" for r in first) == 2
    assert {r["arch_id"] for r in first if r["sample_source"] == "spread"} == _expected_spread(8)


# ---- `nas profile` -------------------------------------------------------------------------------------

def test_cli_profile_writes_table_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert main(["profile", "--space", SPACE, "--n", "6", "--passes", "1", "--max-passes", "1", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    line = text.splitlines()[0]
    fp = _my_fp()
    m = re.fullmatch(rf"{re.escape(str(out))}: 6 architectures of {SPACE} at batch 1 on (.+) \[fingerprint "
                     r"([0-9a-f]{12})\], 1 passes; latency ([\d.]+)-([\d.]+) ms, peak inference memory "
                     r"([\d.]+)-([\d.]+) MB; ([\d.]+) min this run", line)
    assert m, line
    table = aggregate_profiles(read_profiles(out))
    assert len(table) == 6
    assert m.group(1) == fp.name and m.group(2) == fp.fingerprint_id
    assert m.group(3) == f"{table['latency_ms'].min():.3f}" and m.group(4) == f"{table['latency_ms'].max():.3f}"
    assert m.group(5) == f"{table['peak_infer_mem_mb'].min():.2f}"
    assert m.group(6) == f"{table['peak_infer_mem_mb'].max():.2f}"
    assert float(m.group(3)) > 0


@pytest.mark.parametrize("args, match", [
    (["--space", "nope", "--n", "4"], r"unknown search space 'nope'; valid: .*digits-s"),
    (["--space", SPACE, "--n", "0"], r"n must be a positive integer, got 0"),
    (["--space", SPACE, "--n", "4", "--batch-size", "0"], r"batch_size must be a positive integer"),
    (["--space", SPACE, "--n", "4", "--passes", "0"], r"passes must be a positive integer"),
    (["--space", SPACE, "--n", "4", "--passes", "3", "--max-passes", "2"], r"max_passes \(2\) must be at least passes"),
    (["--space", SPACE, "--n", "4", "--device", "tpu"], r"device must be 'cpu' or 'cuda\[:N\]'"),
    (["--space", SPACE, "--n", "4", "--adaptive-fraction", "1"], r"adaptive_fraction must be in \[0, 1\)"),
    (["--space", SPACE, "--n", "4", "--seed", "-1"], r"seed must be a non-negative integer"),
])
def test_cli_profile_bad_input_exits_2(tmp_path, capsys, args, match):
    out = tmp_path / "t.csv"
    assert main(["profile", *args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas profile: error: ")
    assert re.search(match, err), err
    assert not out.exists()


def test_cli_profile_refuses_a_foreign_csv(tmp_path, capsys):
    out = tmp_path / "t.csv"
    out.write_text("a,b\n1,2\n")
    assert main(["profile", "--space", SPACE, "--n", "4", "--out", str(out), "--no-progress"]) == 2
    assert "lacks columns" in capsys.readouterr().err
    assert out.read_text() == "a,b\n1,2\n"


# ---- `nas predictors` ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted(collected, tmp_path_factory):
    _, path, _ = collected
    out = tmp_path_factory.mktemp("pred") / "preds"
    code, stdout, stderr = _run(["predictors", "fit", "--profiles", path, "--out", out])
    assert code == 0, stderr
    return path, out, stdout


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory):
    arch = reference_arch(_space())
    path = tmp_path_factory.mktemp("arch") / "a.json"
    path.write_text(arch.to_json(indent=2) + "\n")
    return arch, path


def test_predictors_fit_writes_both_artifacts(fitted):
    _, out, stdout = fitted
    for target in ("latency", "memory"):
        d = out / target
        assert {p.name for p in d.iterdir()} == {"predictor.json", "model.safetensors", "train.csv"}
        meta = json.loads((d / "predictor.json").read_text())
        assert meta["target"] == target and meta["model"] in COST_MODELS and meta["space"] == SPACE
        assert meta["batch_sizes"] == [1] and meta["n_train"] == 8
        assert set(meta["cv_rmspe"]) == set(COST_MODELS)
        assert meta["cv_rmspe"][meta["model"]] == min(meta["cv_rmspe"].values())
        assert meta["fingerprint"] == _my_fp().to_dict()
        pred = Predictor.load(d, fingerprint=_my_fp().to_dict())
        assert pred.model_name == meta["model"]
        assert f"{target}: model {meta['model']} on 8 architectures, batch sizes [1]" in stdout
        assert f"-> {d}" in stdout
        assert len(read_profiles(d / "train.csv")) == 8
    assert "reference-normalised" in stdout.splitlines()[0]  # the latency line
    assert not (out / "train_memory").exists()


def test_predictors_show_names_models(fitted, capsys):
    _, out, _ = fitted
    assert main(["predictors", "show", str(out)]) == 0
    text = capsys.readouterr().out
    for target in ("latency", "memory"):
        meta = json.loads((out / target / "predictor.json").read_text())
        assert f"{out / target}: {target} predictor, model {meta['model']}, space {SPACE}, batch sizes [1]" in text
    for name in COST_MODELS:
        assert len(re.findall(rf"CV RMSPE {name}\s", text)) == 2
    # A single artifact directory works too.
    assert main(["predictors", "show", str(out / "memory")]) == 0
    assert "memory predictor" in capsys.readouterr().out


def test_predictors_predict_prints_the_predictions(fitted, arch_file, capsys):
    _, out, _ = fitted
    arch, path = arch_file
    assert main(["predictors", "predict", "--predictor", str(out), "--arch", str(path), "--batch-size", "1"]) == 0
    text = capsys.readouterr().out
    lat = re.search(r"^latency: ([\d.]+) ms at the profiling run's speed \(arch (\w+), batch 1, (\w+)\)$", text, re.M)
    mem = re.search(r"^memory: ([\d.]+) MB \(arch (\w+), batch 1, (\w+)\)$", text, re.M)
    assert lat and mem, text
    assert float(lat.group(1)) > 0 and float(mem.group(1)) > 0
    assert lat.group(2) == mem.group(2) == arch.arch_id
    for m, target in ((lat, "latency"), (mem, "memory")):
        pred = Predictor.load(out / target)
        assert m.group(3) == pred.model_name
        assert m.group(1) == f"{float(pred.predict([arch], 1)[0]):.4f}"


def test_predictors_predict_prints_the_interval_of_a_level(fitted, arch_file, capsys):
    _, out, _ = fitted
    arch, path = arch_file
    assert main(["predictors", "predict", "--predictor", str(out / "latency"), "--arch", str(path),
                 "--level", "0.9"]) == 0
    text = capsys.readouterr().out
    m = re.search(r"^latency: ([\d.]+) ms at the profiling run's speed, 90 % interval ([\d.]+)–([\d.]+) ms", text, re.M)
    assert m, text
    value, low, high = map(float, m.groups())
    iv = Predictor.load(out / "latency").predict([arch], 1, level=0.9)
    assert (low, value, high) == pytest.approx((float(iv.low[0]), float(iv.median[0]), float(iv.high[0])), abs=1e-4)
    assert low < value < high


@pytest.mark.parametrize("args, needle", [
    (["--level", "1.5"], "level must be a number strictly between 0 and 1"),
    (["--runtime", "tflite"], "--runtime must be one of torch, torchscript, onnxruntime"),
    (["--runtime", "onnxruntime"], "runtime: 'torch' != 'onnxruntime'"),  # a torch predictor, another target
])
def test_predictors_predict_refuses_bad_levels_runtimes_and_other_targets(fitted, arch_file, capsys, args, needle):
    _, out, _ = fitted
    _, path = arch_file
    assert main(["predictors", "predict", "--predictor", str(out), "--arch", str(path), *args]) == 2
    assert needle in capsys.readouterr().err


def test_predictors_refit_keeps_artifacts_loadable(fitted, arch_file, tmp_path, capsys):
    _, src, _ = fitted
    arch, _ = arch_file
    out = tmp_path / "preds"
    shutil.copytree(src, out)
    before = {t: float(Predictor.load(out / t).predict([arch], 1)[0]) for t in ("latency", "memory")}
    assert main(["predictors", "refit", str(out)]) == 0
    text = capsys.readouterr().out
    for t in ("latency", "memory"):
        pred = Predictor.load(out / t, fingerprint=_my_fp().to_dict())
        assert f"refitted {out / t}: {t} model {pred.model_name} on 8 rows" in text
        # Same table, same seed: the same model and the same prediction.
        assert float(pred.predict([arch], 1)[0]) == pytest.approx(before[t], rel=1e-9)


def test_predictors_refit_repairs_a_corrupt_model_and_another_scikit_learn_loads(fitted, arch_file, tmp_path,
                                                                                 capsys):
    """A corrupted model.safetensors is refused with the command that repairs it, which does; an
    artifact recorded under another scikit-learn loads and predicts as it did (predictions come from
    the stored arrays, not from scikit-learn), and refits cleanly under the installed one."""
    import sklearn

    _, src, _ = fitted
    arch, arch_path = arch_file
    out = tmp_path / "preds"
    shutil.copytree(src, out)
    before = {t: float(Predictor.load(out / t).predict([arch], 1)[0]) for t in ("latency", "memory")}
    model_path = out / "latency" / "model.safetensors"
    model_path.write_bytes(b"not safetensors")
    meta_path = out / "memory" / "predictor.json"
    meta = json.loads(meta_path.read_text())
    meta["versions"]["scikit-learn"] = "0.0.1"
    meta_path.write_text(json.dumps(meta))

    def predict(d: Path) -> list[str]:
        return ["predictors", "predict", "--predictor", str(d), "--arch", str(arch_path)]

    assert main(predict(out / "latency")) == 2
    err = capsys.readouterr().err
    assert f"predictor model {model_path} is corrupted" in err and f"nas predictors refit {out / 'latency'}" in err
    assert main(predict(out / "memory")) == 0  # recorded under scikit-learn 0.0.1: loads, predicts the same
    assert re.search(rf"^memory: {before['memory']:.4f} MB \(arch {arch.arch_id}, batch 1, ", capsys.readouterr().out,
                     re.M)
    assert main(["predictors", "refit", str(out)]) == 0
    text = capsys.readouterr().out
    for t in ("latency", "memory"):
        assert re.search(rf"^refitted {re.escape(str(out / t))}: {t} model \w+ on 8 rows "
                         rf"\(scikit-learn {re.escape(sklearn.__version__)}\)$", text, re.M), text
        assert Predictor.read_metadata(out / t)["versions"]["scikit-learn"] == sklearn.__version__
    assert main(predict(out)) == 0
    text = capsys.readouterr().out
    for t, unit in (("latency", "ms"), ("memory", "MB")):
        value = float(Predictor.load(out / t).predict([arch], 1)[0])
        assert value == pytest.approx(before[t], rel=1e-9)  # same table, same seed: the same model
        assert re.search(rf"^{t}: {value:.4f} {unit} ", text, re.M), text


def test_predictors_predict_refuses_another_device_unless_forced(fitted, arch_file, tmp_path, capsys):
    _, src, _ = fitted
    _, arch_path = arch_file
    out = tmp_path / "preds"
    shutil.copytree(src, out)
    meta_path = out / "latency" / "predictor.json"
    meta = json.loads(meta_path.read_text())
    real = meta["fingerprint"]["name"]
    meta["fingerprint"]["name"] = "Other CPU 9000"
    meta_path.write_text(json.dumps(meta))
    argv = ["predictors", "predict", "--predictor", str(out / "latency"), "--arch", str(arch_path),
            "--batch-size", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "fitted on cpu Other CPU 9000" in err
    assert f"name: 'Other CPU 9000' != {real!r}" in err
    assert "--force" in err
    assert main([*argv, "--force"]) == 0
    assert re.search(r"^latency: [\d.]+ ms", capsys.readouterr().out, re.M)
    # Another thread count is another device too.
    assert main(["predictors", "predict", "--predictor", str(out / "memory"), "--arch", str(arch_path),
                 "--threads", "7"]) == 2
    assert "threads: 1 != 7" in capsys.readouterr().err


def test_predictors_predict_refuses_an_unfitted_batch_size(fitted, arch_file, capsys):
    _, out, _ = fitted
    _, arch_path = arch_file
    assert main(["predictors", "predict", "--predictor", str(out), "--arch", str(arch_path),
                 "--batch-size", "32"]) == 2
    err = capsys.readouterr().err
    assert "fitted on batch sizes [1], not 32" in err


def test_predictors_predict_missing_arch_file_exits_2(fitted, tmp_path, capsys):
    _, out, _ = fitted
    assert main(["predictors", "predict", "--predictor", str(out), "--arch", str(tmp_path / "none.json")]) == 2
    assert "cannot read architecture file" in capsys.readouterr().err


def test_predictors_fit_needs_a_fingerprint_id_for_a_mixed_table(collected, tmp_path, capsys):
    _, src, _ = collected
    table = tmp_path / "mixed.csv"
    shutil.copy(src, table)
    for row in _csv_rows(src)[:6]:
        append_profile_row(table, _foreign_row(row))
    mine = _my_fp().fingerprint_id
    assert main(["predictors", "fit", "--profiles", str(table), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "holds 2 devices" in err and mine in err and "0123456789ab" in err and "--fingerprint-id" in err
    assert not (tmp_path / "d").exists()
    assert main(["predictors", "fit", "--profiles", str(table), "--out", str(tmp_path / "d"),
                 "--fingerprint-id", "ffffffffffff"]) == 2
    assert "has no rows of fingerprint 'ffffffffffff'" in capsys.readouterr().err
    assert main(["predictors", "fit", "--profiles", str(table), "--out", str(tmp_path / "d"),
                 "--fingerprint-id", mine, "--target", "memory", "--model", "linear"]) == 0
    assert "memory: model linear on 8 architectures" in capsys.readouterr().out
    meta = json.loads((tmp_path / "d" / "memory" / "predictor.json").read_text())
    assert meta["fingerprint"]["name"] == _my_fp().name and meta["n_train"] == 8


@pytest.mark.parametrize("extra, match", [
    (["--batch-size", "4"], r"no rows of .* match batch sizes \[4\]"),
    (["--model", "bogus"], r"unknown model 'bogus'; valid: auto, flops"),
])
def test_predictors_fit_bad_options_exit_2(collected, tmp_path, capsys, extra, match):
    _, path, _ = collected
    assert main(["predictors", "fit", "--profiles", str(path), "--out", str(tmp_path / "d"), *extra]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_predictors_fit_missing_profiles_exits_2(tmp_path, capsys):
    missing = tmp_path / "none.csv"
    assert main(["predictors", "fit", "--profiles", str(missing), "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert f"profile table {missing} does not exist" in err
    assert not (tmp_path / "d").exists()


def test_predictors_show_and_refit_on_an_empty_dir_exit_2(tmp_path, capsys):
    for action in ("show", "refit"):
        assert main(["predictors", action, str(tmp_path)]) == 2
        assert "holds no predictor artifact" in capsys.readouterr().err


def test_predictors_show_corrupt_metadata_exits_2(fitted, tmp_path, capsys):
    _, src, _ = fitted
    out = tmp_path / "preds"
    shutil.copytree(src, out)
    (out / "latency" / "predictor.json").write_text("{not json")
    assert main(["predictors", "show", str(out)]) == 2
    assert "unreadable or corrupted" in capsys.readouterr().err


# ---- `nas bench predictors` ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"n_train": 5}, r"n_train must be at least 10"),
    ({"n_test": 0}, r"n_test must be a positive integer"),
    ({"seed": 1, "test_seed": 1}, r"test_seed must differ from seed"),
    ({"batch_sizes": ()}, r"batch_sizes must name at least one"),
    ({"batch_sizes": (0,)}, r"batch_size must be a positive integer"),
    ({"targets": ("speed",)}, r"unknown targets \['speed'\]; valid: latency, memory, train_memory"),
    ({"space": "nope"}, r"unknown search space 'nope'"),
    ({"device": "tpu"}, r"device must be 'cpu' or 'cuda"),
])
def test_predictor_bench_config_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PredictorBenchConfig(**kwargs)


@pytest.mark.parametrize("args, match", [
    (["--n-train", "5"], r"n_train must be at least 10 to fit and cross-validate, got 5"),
    (["--seed", "1", "--test-seed", "1"], r"test_seed must differ from seed"),
    (["--batch-size", "0"], r"batch_size must be a positive integer"),
    (["--space", "nope"], r"unknown search space 'nope'"),
])
def test_cli_bench_predictors_bad_input_exits_2(tmp_path, capsys, args, match):
    out = tmp_path / "bench"
    assert main(["bench", "predictors", *args, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas bench: error: ") and re.search(match, err), err
    assert not out.exists()


@pytest.fixture(scope="module")
def predictor_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "preds"
    code, stdout, stderr = _run(["bench", "predictors", "--space", SPACE, "--n-train", "12", "--n-test", "6",
                                 "--json", "--out", out, "--no-progress"])
    assert code == 0, stderr
    return out, json.loads(stdout)


@pytest.mark.slow
def test_bench_predictors_record(predictor_bench):
    out, record = predictor_bench
    assert record["space"] == SPACE and record["fingerprint_id"] == _my_fp().fingerprint_id
    assert list(record["batch_sizes"]) == ["1"]
    per = record["batch_sizes"]["1"]
    for target in TARGETS:
        res = per[target]
        assert res["default"] in COST_MODELS
        assert res["cv_rmspe"][res["default"]] == min(res["cv_rmspe"].values())
        for name in COST_MODELS:
            m = res[name]
            assert set(METRIC_KEYS) <= set(m)
            assert m["n_train"] == 12 and m["n_test"] == 6
            assert m["rmspe"] >= 0 and 0 <= m["within_5pct"] <= m["within_10pct"] <= 1
            assert math.isnan(m["kendall_tau"]) or -1 <= m["kendall_tau"] <= 1
            assert m["profiling_minutes"] == per["profiling_minutes_train"] > 0
        assert res["default_beats_flops"] == (res[res["default"]]["rmspe"] < res["flops"]["rmspe"])
    assert per["latency"]["normalization"] == "reference"
    assert "rmspe_raw" in per["latency"][per["latency"]["default"]]
    assert per["memory"]["normalization"] == "none"
    assert Path(per["parity_plot"]) == out / "parity-b1.png" and _is_png(out / "parity-b1.png")
    on_disk = json.loads((out / "predictors.json").read_text())
    assert json.dumps(on_disk, sort_keys=True) == json.dumps(record, sort_keys=True)
    for target in TARGETS:
        pred = Predictor.load(out / f"predictor-b1-{target}", fingerprint=_my_fp().to_dict())
        assert pred.model_name == per[target]["default"]


@pytest.mark.slow
def test_bench_predictors_scores_predictions_as_a_user_sees_them(predictor_bench):
    out, record = predictor_bench
    per = record["batch_sizes"]["1"]
    rows = pd.read_csv(out / "user_view_b1.csv", dtype={"arch_id": str})
    test_ids = {r["arch_id"] for r in _csv_rows(out / "profiles_test.csv")}
    assert set(rows["arch_id"]) == test_ids and len(rows) == 6
    lat, mem = per["latency"]["user_view"], per["memory"]["user_view"]
    pred, meas = rows["predicted_latency_ms"].to_numpy(), rows["latency_ms"].to_numpy()
    assert lat["within_10pct"] == pytest.approx(float(np.mean(np.abs(pred / meas - 1) <= 0.10)))
    assert lat["rmspe"] == pytest.approx(100 * float(np.sqrt(np.mean((pred / meas - 1) ** 2))))
    inside = (rows["latency_low90_ms"] <= rows["latency_ms"]) & (rows["latency_ms"] <= rows["latency_high90_ms"])
    assert lat["coverage"]["90"] == pytest.approx(float(inside.mean()))
    assert set(lat["coverage"]) == set(mem["coverage"]) == {"80", "90", "95"}
    assert lat["coverage"]["80"] <= lat["coverage"]["90"] <= lat["coverage"]["95"]
    # the prediction is stated at the speed read before each measurement
    latency = Predictor.load(out / "predictor-b1-latency")
    archs = [ArchConfig.from_json(r["arch_json"]) for r in _csv_rows(out / "profiles_test.csv") if r["pass"] == "0"]
    base = dict(zip([a.arch_id for a in archs], latency.predict(archs, 1)))
    assert np.allclose(pred, [base[a] * f for a, f in zip(rows["arch_id"], rows["speed_factor"])])
    assert lat["speed_factor_min"] <= lat["speed_factor_median"] <= lat["speed_factor_max"]
    assert mem["within_5pct"] == pytest.approx(float(np.mean(np.abs(rows["predicted_peak_mem_mb"] /
                                                                     rows["peak_mem_mb"] - 1) <= 0.05)))
    assert set(per["latency"]["coverage_normalised"]) == {"80", "90", "95"} and per["user_view_minutes"] > 0


@pytest.mark.slow
def test_bench_predictors_held_out_set_is_disjoint(predictor_bench):
    out, _ = predictor_bench
    train, test = _csv_rows(out / "profiles_train.csv"), _csv_rows(out / "profiles_test.csv")
    train_ids, test_ids = {r["arch_id"] for r in train}, {r["arch_id"] for r in test}
    assert len(train_ids) == 12 and len(test_ids) == 6
    assert not (train_ids & test_ids)
    # Default: 3 passes each, up to 7 for an architecture whose passes disagree; passes are contiguous.
    for rows in (train, test):
        per_arch: dict[str, list[int]] = {}
        for r in rows:
            per_arch.setdefault(r["arch_id"], []).append(int(r["pass"]))
        for passes in per_arch.values():
            assert sorted(passes) == list(range(len(passes))) and 3 <= len(passes) <= 7
    assert {r["sample_source"] for r in test} <= {"spread", "repeat"}  # no adaptive share in the test set


@pytest.mark.slow
def test_bench_predictors_metrics_match_a_recomputation(predictor_bench):
    out, record = predictor_bench
    train = read_profiles(out / "profiles_train.csv")
    test = aggregate_profiles(read_profiles(out / "profiles_test.csv"))
    per = record["batch_sizes"]["1"]
    for target in TARGETS:
        for name in COST_MODELS:
            pred = Predictor(target=target, model=name, seed=0).fit(train)
            got = pred.evaluate(test)
            for key in ("rmspe", "within_5pct", "within_10pct", "kendall_tau"):
                assert got[key] == pytest.approx(per[target][name][key], rel=1e-9, nan_ok=True), (target, name, key)
    # RMSPE written out for the default memory model: 100·sqrt(mean(((p − m)/m)²)).
    pred = Predictor.load(out / "predictor-b1-memory")
    p = pred.predict_table(test)
    m = test["peak_infer_mem_mb"].to_numpy(dtype=float)
    assert 100.0 * math.sqrt(float(np.mean(((p - m) / m) ** 2))) == pytest.approx(
        per["memory"][pred.model_name]["rmspe"], rel=1e-9)
    assert float(np.mean(np.abs(p - m) / m <= 0.10)) == pytest.approx(per["memory"][pred.model_name]["within_10pct"])


# ---- `nas bench staircase` -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"stage": 9}, r"stage must be in 0..3 for space 'digits-s', got 9"),
    ({"stage": -1}, r"stage must be in 0..3"),
    ({"max_width": 20}, r"max_width must be a multiple of 8 and at least 16, got 20"),
    ({"max_width": 8}, r"max_width must be a multiple of 8 and at least 16, got 8"),
    ({"repeats": 0}, r"repeats must be a positive integer"),
    ({"batch_size": 0}, r"batch_size must be a positive integer"),
    ({"n_train": 0}, r"n_train must be a positive integer"),
    ({"device": "tpu"}, r"device must be 'cpu' or 'cuda"),
])
def test_staircase_config_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StaircaseBenchConfig(**{"space": SPACE, **kwargs})


@pytest.mark.parametrize("args, match", [
    (["--stage", "9"], r"stage must be in 0..3"),
    (["--max-width", "20"], r"max_width must be a multiple of 8"),
    (["--space", "nope"], r"unknown search space 'nope'"),
])
def test_cli_bench_staircase_bad_input_exits_2(tmp_path, capsys, args, match):
    out = tmp_path / "st"
    argv = ["bench", "staircase", "--space", SPACE, "--stage", "1", *args, "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nas bench: error: ") and re.search(match, err), err
    assert not out.exists()


def test_cli_bench_staircase_refuses_a_memory_predictor(fitted, tmp_path, capsys):
    _, preds, _ = fitted
    argv = ["bench", "staircase", "--space", SPACE, "--stage", "1", "--batch-size", "1", "--repeats", "1",
            "--predictor", str(preds / "memory"), "--out", str(tmp_path / "st"), "--no-progress"]
    assert main(argv) == 2
    assert "predicts memory, not latency" in capsys.readouterr().err


def test_cli_bench_staircase_refuses_another_spaces_predictor_before_sweeping(fitted, tmp_path, capsys):
    _, preds, _ = fitted  # fitted on digits-s
    out = tmp_path / "st"
    argv = ["bench", "staircase", "--space", "cifar10-m", "--stage", "0", "--batch-size", "1", "--repeats", "1",
            "--predictor", str(preds / "latency"), "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "fitted on space 'digits-s', not 'cifar10-m'" in err and "--space digits-s" in err
    assert not out.exists()


def test_cli_bench_staircase_refuses_another_devices_predictor(fitted, tmp_path, capsys):
    _, src, _ = fitted
    preds = tmp_path / "preds"
    shutil.copytree(src, preds)
    meta_path = preds / "latency" / "predictor.json"
    meta = json.loads(meta_path.read_text())
    meta["fingerprint"]["name"] = "Other CPU 9000"
    meta_path.write_text(json.dumps(meta))
    argv = ["bench", "staircase", "--space", SPACE, "--stage", "1", "--batch-size", "1", "--repeats", "1",
            "--predictor", str(preds / "latency"), "--out", str(tmp_path / "st"), "--no-progress"]
    assert main(argv) == 2
    assert "fitted on cpu Other CPU 9000" in capsys.readouterr().err


def _staircase_archs(widths):
    space = _space()
    base = reference_arch(space)
    return [ArchConfig(space=SPACE, stages=tuple(StageArch(width=w, blocks=s.blocks) if i == 1 else s
                                                 for i, s in enumerate(base.stages))) for w in widths]


@pytest.fixture(scope="module")
def staircase(tmp_path_factory):
    out = tmp_path_factory.mktemp("stair") / "st"
    code, stdout, stderr = _run(["bench", "staircase", "--space", SPACE, "--stage", "1", "--max-width", "32",
                                 "--batch-size", "1", "--repeats", "1", "--n-train", "10", "--json", "--out", out,
                                 "--no-progress"])
    assert code == 0, stderr
    return out, json.loads(stdout)


@pytest.mark.slow
def test_bench_staircase_record(staircase):
    out, record = staircase
    rows = record["rows"]
    widths = [r["width"] for r in rows]
    assert widths == [8, 16, 24, 32]
    assert record["stage"] == 1 and record["batch_size"] == 1 and record["device"] == "cpu"
    assert record["widths_outside_space"] == [8]  # stage 1 of digits-s offers 16, 24, 32
    for r in rows:
        assert r["latency_ms"] > 0 and r["predicted_ms"] > 0
        assert len(r["latency_samples_ms"]) == 1 and r["latency_ms"] == min(r["latency_samples_ms"])
        assert r["kernel_waves"] is None  # CPU: no kernel records
    macs = [r["macs"] for r in rows]
    assert all(b > a for a, b in zip(macs, macs[1:]))
    space = _space()
    wide = replace(space, width_choices=tuple(tuple(sorted(set(ws) | {8, 16, 24, 32})) if i == 1 else ws
                                              for i, ws in enumerate(space.width_choices)))
    archs = _staircase_archs(widths)
    assert macs == [arch_features(a, 1, space=wide)["macs"] for a in archs]
    measured = [r["latency_ms"] for r in rows]
    assert record["flat_or_down_steps"] == sum(1 for a, b in zip(measured, measured[1:]) if b <= a * 1.01)
    assert -1 <= record["spearman_latency_vs_macs"] <= 1
    pred = Predictor.load(out / "predictor-latency", fingerprint=_my_fp().to_dict())
    assert record["predictor"] == {"model": pred.model_name, "normalization": pred.normalization,
                                   "source": str(out / "predictor-latency")}
    assert [r["predicted_ms"] for r in rows] == pytest.approx(list(pred.predict(archs, 1, space=wide)), rel=1e-9)
    assert _is_png(out / "staircase.png") and record["plot"] == str(out / "staircase.png")
    assert json.dumps(json.loads((out / "staircase.json").read_text()), sort_keys=True) == json.dumps(
        record, sort_keys=True)
    profiles = _csv_rows(out / "profiles.csv")
    assert len({r["arch_id"] for r in profiles}) == 10 and 30 <= len(profiles) <= 70  # n_train 10, 3-7 passes


@pytest.mark.slow
def test_bench_staircase_reuses_a_fitted_predictor(staircase, tmp_path, capsys):
    first_out, first = staircase
    out = tmp_path / "again"
    source = first_out / "predictor-latency"
    assert main(["bench", "staircase", "--space", SPACE, "--stage", "1", "--max-width", "32", "--batch-size", "1",
                 "--repeats", "1", "--predictor", str(source), "--json", "--out", str(out), "--no-progress"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert not (out / "profiles.csv").exists() and not (out / "predictor-latency").exists()
    assert record["predictor"]["source"] == str(source)
    assert [r["predicted_ms"] for r in record["rows"]] == pytest.approx([r["predicted_ms"] for r in first["rows"]],
                                                                        rel=1e-12)
    assert [r["macs"] for r in record["rows"]] == [r["macs"] for r in first["rows"]]
    # The text table: one line per width, predicted values as in the record.
    assert main(["bench", "staircase", "--space", SPACE, "--stage", "1", "--max-width", "16", "--batch-size", "1",
                 "--repeats", "1", "--predictor", str(source), "--out", str(tmp_path / "text"),
                 "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["width", "measured", "ms", "predicted", "ms", "MMACs", "waves"]
    assert [line.split()[0] for line in lines[1:3]] == ["8", "16"]
    assert [line.split()[2] for line in lines[1:3]] == [f"{r['predicted_ms']:.3f}" for r in first["rows"][:2]]
    assert lines[3].startswith("spearman(latency, MACs)=")


def test_cli_bench_staircase_batch_size_the_predictor_lacks_exits_2(fitted, tmp_path, capsys):
    _, preds, _ = fitted
    argv = ["bench", "staircase", "--space", SPACE, "--stage", "1", "--max-width", "16", "--batch-size", "2",
            "--repeats", "1", "--predictor", str(preds / "latency"), "--out", str(tmp_path / "st"), "--no-progress"]
    assert main(argv) == 2
    assert "fitted on batch sizes [1], not 2" in capsys.readouterr().err


# ---- per-op records beside the table ----------------------------------------------------------------

def test_with_ops_writes_one_record_line_per_measurement(tmp_path):
    path = tmp_path / "p.csv"
    config = ProfileRunConfig(space=SPACE, n=3, passes=2, max_passes=2, seed=0, with_ops=True)
    assert config.records_ops and not ProfileRunConfig(space=SPACE, n=3).records_ops  # off by default on CPU
    collect_profiles(config, path, progress=False)
    records_file = nas.profiling.records_path(path)
    assert records_file.name == "p.csv.records.jsonl"
    lines = [json.loads(line) for line in records_file.read_text().splitlines()]
    rows = _csv_rows(path)
    assert [(r["arch_id"], r["pass"]) for r in lines] == [(r["arch_id"], int(r["pass"])) for r in rows]
    for rec in lines:
        names = {o["name"] for o in rec["ops"]}
        assert "aten::linear" in names and rec["kernels"] == []  # no kernels on CPU
        assert rec["batch_size"] == 1 and rec["fingerprint_id"] == _my_fp().fingerprint_id


def test_cli_profile_with_ops(tmp_path, capsys):
    path = tmp_path / "p.csv"
    assert main(["profile", "--space", SPACE, "--n", "2", "--passes", "1", "--max-passes", "1", "--out", str(path),
                 "--with-ops",
                 "--no-progress"]) == 0
    assert len(nas.profiling.records_path(path).read_text().splitlines()) == 2
    assert main(["profile", "--space", SPACE, "--n", "2", "--passes", "1", "--max-passes", "1",
                 "--out", str(tmp_path / "q.csv"),
                 "--no-progress"]) == 0
    assert not nas.profiling.records_path(tmp_path / "q.csv").exists()


# ---- extra passes where passes disagree -------------------------------------------------------------

def test_extra_passes_only_for_archs_whose_passes_disagree(monkeypatch, base_record, tmp_path):
    """A fake device: every arch takes 2 ms, except one 'noisy' arch whose passes cycle through
    2.0 / 2.3 / 2.6 ms — the median absolute deviation over the median stays at 7-13 %, above
    max_pass_mad, so it is measured again until max_passes; the others stop at `passes`."""
    space = _space()
    noisy_id = space.min_arch().arch_id
    seen: dict[str, int] = {}

    def fake(arch, **kw):
        k = seen.get(arch.arch_id, 0)
        seen[arch.arch_id] = k + 1
        ms = (2.0, 2.3, 2.6)[k % 3] if arch.arch_id == noisy_id else 2.0
        lat = TimingStats(median_ms=ms, p10_ms=ms, p90_ms=ms, repeats=15, stable=True)
        return replace(base_record, latency=lat, arch=arch, suspect="")

    monkeypatch.setattr(nas.profiling.measure, "profile", fake)
    monkeypatch.setattr(nas.profiling.collect, "profile", fake)
    path = tmp_path / "p.csv"
    config = ProfileRunConfig(space=SPACE, n=6, passes=3, max_passes=6, max_pass_mad=0.03, seed=0)
    table = collect_profiles(config, path, progress=False)
    passes = dict(zip(table["arch_id"], table["passes"]))
    assert noisy_id in passes  # min_arch is in the spread plan
    assert passes[noisy_id] == 6
    assert all(n == 3 for a, n in passes.items() if a != noisy_id)
    rows = _csv_rows(path)
    assert sorted(int(r["pass"]) for r in rows if r["arch_id"] == noisy_id) == list(range(6))
    # Resuming a finished run measures nothing more.
    before = path.read_bytes()
    collect_profiles(config, path, progress=False)
    assert path.read_bytes() == before


def test_extra_passes_follow_the_ratio_to_the_reference_not_the_raw_latency(monkeypatch, base_record, tmp_path):
    """With a reference timed beside each measurement, a pass-to-pass change of the machine's
    speed (latency and reference both 15 % slower) is not disagreement; a change of the ratio is."""
    space = _space()
    drifting_id, noisy_id = space.min_arch().arch_id, space.max_arch().arch_id
    seen: dict[str, int] = {}

    def fake(arch, reference=None, **kw):
        if reference is None:  # the untimed warm-up call before the first measurement
            return replace(base_record, arch=arch, suspect="")
        k = seen.get(arch.arch_id, 0)
        seen[arch.arch_id] = k + 1
        speed = (1.0, 1.15, 1.3)[k % 3]
        ratio = (1.0, 1.15, 1.3)[k % 3] if arch.arch_id == noisy_id else 1.0
        lat = TimingStats(median_ms=2.0 * ratio * speed, p10_ms=2.0, p90_ms=2.0, repeats=15, stable=True)
        ref = TimingStats(median_ms=4.0 * speed, p10_ms=4.0, p90_ms=4.0, repeats=15, stable=True)
        return replace(base_record, latency=lat, ref_latency=ref, arch=arch, suspect="")

    monkeypatch.setattr(nas.profiling.measure, "profile", fake)
    monkeypatch.setattr(nas.profiling.collect, "profile", fake)
    config = ProfileRunConfig(space=SPACE, n=6, passes=3, max_passes=5, max_pass_mad=0.03, seed=0)
    table = collect_profiles(config, tmp_path / "p.csv", progress=False)
    passes = dict(zip(table["arch_id"], table["passes"]))
    assert passes[noisy_id] == 5
    assert all(n == 3 for a, n in passes.items() if a != noisy_id)
    by = table.set_index("arch_id")
    assert by.loc[drifting_id, "latency_pass_mad"] > 0.03  # raw latencies disagree ...
    assert by.loc[drifting_id, "ref_ratio_pass_mad"] == 0.0  # ... their ratio to the reference does not
    assert by.loc[drifting_id, "ref_ratio"] == pytest.approx(0.5)
    assert by.loc[noisy_id, "ref_ratio_pass_mad"] > 0.03


def test_repeat_passes_time_only_and_the_memory_is_the_first_passs(tmp_path):
    path = tmp_path / "p.csv"
    config = ProfileRunConfig(space=SPACE, n=3, passes=2, max_passes=2, seed=0)
    table = collect_profiles(config, path, progress=False)
    rows = _csv_rows(path)
    first = {r["arch_id"]: r for r in rows if r["pass"] == "0"}
    repeats = [r for r in rows if r["pass"] == "1"]
    assert len(first) == 3 and len(repeats) == 3
    for r in repeats:  # latency measured, memory left empty
        assert float(r["latency_ms"]) > 0 and r["peak_infer_mem_mb"] == "" and r["peak_train_mem_mb"] == ""
    for row in table.itertuples():
        assert row.peak_infer_mem_mb == float(first[row.arch_id]["peak_infer_mem_mb"])
        assert row.peak_train_mem_mb == float(first[row.arch_id]["peak_train_mem_mb"])
    assert len(read_profiles(path)) == 6


def test_an_empty_memory_is_refused_in_a_first_pass(tmp_path):
    path = tmp_path / "p.csv"
    collect_profiles(ProfileRunConfig(space=SPACE, n=2, passes=1, max_passes=1, seed=0), path, progress=False)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = next(csv.reader([lines[1]]))
    cells[header.index("peak_infer_mem_mb")] = ""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    path.write_text("\n".join([lines[0], out.getvalue().rstrip("\n"), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=r"line 2: column peak_infer_mem_mb must be a positive number "
                                         r"\(empty only in a repeat pass\)"):
        read_profiles(path)


def test_profile_without_memory_times_only(base_record):
    rec = profile(_space().min_arch(), latency=LatencySettings(warmup=1, warmup_seconds=0.0, min_repeats=2,
                                                                max_repeats=2), with_memory=False, with_ops=False)
    assert rec.latency.median_ms > 0 and math.isnan(rec.peak_infer_mem_mb) and math.isnan(rec.peak_train_mem_mb)
    row = rec.to_row()
    assert row["peak_infer_mem_mb"] == "" and row["peak_train_mem_mb"] == ""
    assert base_record.to_row()["peak_infer_mem_mb"] == base_record.peak_infer_mem_mb > 0
    with pytest.raises(ValueError, match="with_memory=False needs with_ops=False"):
        profile(_space().min_arch(), with_memory=False)  # with_ops defaults to True


def test_max_passes_below_passes_is_refused():
    with pytest.raises(ValueError, match="max_passes"):
        ProfileRunConfig(space=SPACE, n=4, passes=3, max_passes=2)
    with pytest.raises(ValueError, match="max_pass_mad"):
        ProfileRunConfig(space=SPACE, n=4, max_pass_mad=0.0)


def test_plots_return_the_file_they_write(tmp_path):
    from nas.report import parity_plot, staircase_plot

    panels = [{"title": "t", "unit": "ms", "measured": [1.0, 2.0], "series": {"a": [1.1, 1.9]}}]
    written = parity_plot(panels, tmp_path / "parity")  # no suffix: PNG
    assert written == tmp_path / "parity.png" and _is_png(written)
    assert parity_plot(panels, tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")
    (tmp_path / "adir").mkdir()
    with pytest.raises(ValueError, match="adir is a directory; give the plot's file name"):
        parity_plot(panels, tmp_path / "adir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "p.svg", "parity.png"]  # nothing beside adir
    written = staircase_plot([8, 16], [1.0, 1.5], [1e6, 2e6], None, tmp_path / "stairs")
    assert written == tmp_path / "stairs.png" and _is_png(written)


def test_collect_profiles_names_a_bad_exclude_before_writing(tmp_path):
    with pytest.raises(TypeError, match="exclude must hold arch_id strings or ArchConfigs, got dict"):
        collect_profiles(ProfileRunConfig(space=SPACE, n=3), tmp_path / "p.csv", exclude=[{"arch_id": "x"}],
                         progress=False)
    assert list(tmp_path.iterdir()) == []
