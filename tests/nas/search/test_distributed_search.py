"""Distributed search and fault tolerance, with real processes, a real PostgreSQL server and
real SIGKILLs: several workers fill one study with exactly the trials asked for, a killed
search resumes without losing or repeating trials, a database that goes away stops a worker
cleanly and a restarted one finishes the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas.search import SearchConfig, run_search
from nas.search.samplers import SAMPLER_STATE_ATTR
from nas.search.storage import create_storage, file_storage_path
from nas.search.study import SCORE_ATTR
from support import REPO
from support.pg_server import find_pg_bin, start_server

pytestmark = pytest.mark.slow

STUDY = "nas-search-digits-s"


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A small trained supernet and fitted predictors, shared by every worker of every test."""
    out = tmp_path_factory.mktemp("artifacts") / "run"
    run_search(SearchConfig(out=str(out), quick=True, trials=8, population_size=8, supernet_epochs=1, profile_n=8,
                            formats=("safetensors",)), progress=False)
    return {"supernet": str(out / "supernet"), "predictors": str(out / "predictors")}


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory):
    """The CI's server (``QUADRANAS_TEST_POSTGRES``), else one started here, else skip — except
    where ``QUADRANAS_REQUIRE_POSTGRES=1`` (CI) makes a missing server a failure."""
    url = os.environ.get("QUADRANAS_TEST_POSTGRES")
    if url:
        yield url
        return
    try:
        server = start_server()
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        if os.environ.get("QUADRANAS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but could not be started: {err}")
        pytest.skip(f"no PostgreSQL server could be started: {err}")
    yield server.url
    server.stop("immediate")


def _search_cmd(artifacts, out: Path, *extra: str, trials: int = 40) -> list[str]:
    return [sys.executable, "-m", "nas.cli", "search", "--supernet", artifacts["supernet"], "--predictors",
            artifacts["predictors"], "--trials", str(trials), "--population-size", "8", "--quick", "--out", str(out),
            "--no-progress", "--format", "safetensors", "--latency-budget-ms", "1000", "--memory-budget-mb", "1000",
            *extra]


def _study(storage: str, name: str = STUDY) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=create_storage(storage))


def _check_exact(study: optuna.Study, n: int, *, interrupted: bool = False) -> list:
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))  # no duplicates
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n  # exactly what was asked for
    assert all(SCORE_ATTR in t.user_attrs and len(t.values) == 3 for t in complete)  # none lost its scores
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    for t in trials:  # every other trial failed: a surplus one, or one a kill interrupted
        if t.state != TrialState.COMPLETE:
            assert t.state == TrialState.FAIL
            if not interrupted:
                assert t.user_attrs.get("surplus") is True and SCORE_ATTR not in t.user_attrs
    return complete


def _brute_front(df: pd.DataFrame) -> set[str]:
    pts = np.c_[-df["val_acc"], df["pred_latency_ms"], df["pred_peak_mem_mb"]]
    return {df["arch_id"].iloc[i] for i in range(len(pts))
            if not any(np.all(pts[j] <= pts[i]) and np.any(pts[j] < pts[i]) for j in range(len(pts)) if j != i)}


def _four_workers(artifacts, tmp_path, storage: str) -> None:
    procs = [subprocess.Popen(_search_cmd(artifacts, tmp_path / f"w{i}", "--storage", storage, "--study-name", STUDY,
                                          "--join", "--seed", str(i)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=REPO)
             for i in range(4)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, text in zip(procs, outs):
        assert p.returncode == 0, text
    complete = _check_exact(_study(storage), 40)
    workers = {t.user_attrs.get("worker") for t in complete}
    assert len(workers) >= 2  # the trials came from several processes into the one study
    # any worker rebuilds the report from the shared storage; its front is the one of trials.csv
    assert subprocess.run([sys.executable, "-m", "nas.cli", "report", "--run", str(tmp_path / "w3")],
                          env=_env(), cwd=REPO, capture_output=True).returncode == 0
    trials = pd.read_csv(tmp_path / "w3" / "trials.csv", dtype={"arch_id": str})
    assert (trials["state"] == "COMPLETE").sum() == 40
    pareto = pd.read_csv(tmp_path / "w3" / "pareto.csv", dtype={"arch_id": str})
    done = trials[trials["state"] == "COMPLETE"].drop_duplicates("arch_id")
    assert set(pareto["arch_id"]) == _brute_front(done)


def test_four_workers_on_postgresql(artifacts, tmp_path, pg_url):
    storage = pg_url
    # a fresh database per test run: drop what an earlier run of this test left
    study_names = [s.study_name for s in optuna.get_all_study_summaries(create_storage(storage))]
    if STUDY in study_names:
        optuna.delete_study(study_name=STUDY, storage=create_storage(storage))
    _four_workers(artifacts, tmp_path, storage)


def test_four_workers_on_a_journal_file(artifacts, tmp_path):
    _four_workers(artifacts, tmp_path, f"journal:///{tmp_path / 'shared.journal'}")


def test_workers_option_fills_the_study_exactly(artifacts, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(_search_cmd(artifacts, out, "--workers", "3", trials=60), capture_output=True, text=True,
                          env=_env(), cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["storage"].startswith("journal:///") and cfg["workers"] == 3
    _check_exact(_study(cfg["storage"]), 60)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_completed"] == 60 and summary["trials_failed"] == 0


def _wait_complete(storage: str, n: int, proc, timeout_s: float = 300) -> dict[int, tuple]:
    deadline = time.monotonic() + timeout_s
    store = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the search ended before it could be interrupted"
        if file_storage_path(storage) is not None and not file_storage_path(storage).exists():
            time.sleep(0.1)  # opening it here would create the run directory under the search's feet
            continue
        store = store or create_storage(storage)
        try:
            study = optuna.load_study(study_name=STUDY, storage=store)
            done = {t.number: tuple(t.values) for t in study.get_trials(states=(TrialState.COMPLETE,))}
        except KeyError:  # the study does not exist yet
            done = {}
        if len(done) >= n:
            return done
        time.sleep(0.1)
    raise TimeoutError(f"the study did not reach {n} complete trials")


def test_sigkill_during_the_search_then_resume(artifacts, tmp_path):
    out = tmp_path / "run"
    storage = f"journal:///{out / 'study.journal'}"  # the run's own study file, by default
    proc = subprocess.Popen(_search_cmd(artifacts, out, trials=80), stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, env=_env(), cwd=REPO)
    try:
        _wait_complete(storage, 24, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = _study(storage)
    before = {t.number: tuple(t.values) for t in killed.get_trials(states=(TrialState.COMPLETE,))}
    gen_key = "NSGAIISampler:generation"
    gen_before = max(t.system_attrs.get(gen_key, 0) for t in killed.trials)
    state_before = killed.user_attrs[SAMPLER_STATE_ATTR]
    assert len(before) < 80
    proc = subprocess.run(_search_cmd(artifacts, out, "--resume", trials=80), capture_output=True, text=True,
                          env=_env(), cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resumed = _study(storage)
    complete = _check_exact(resumed, 80, interrupted=True)
    after = {t.number: tuple(t.values) for t in complete}
    assert all(after.get(n) == v for n, v in before.items())  # nothing completed before the kill was lost
    # the NSGA-II population went on from the generation it had reached, with the stored RNG state
    assert max(t.system_attrs.get(gen_key, 0) for t in resumed.trials) > gen_before
    assert resumed.user_attrs[SAMPLER_STATE_ATTR]["rngs"] != state_before["rngs"]
    assert state_before["sampler"] == "NSGAIISampler"


def test_database_going_away_stops_the_worker_and_a_restart_resumes(artifacts, tmp_path):
    if find_pg_bin() is None and os.environ.get("QUADRANAS_REQUIRE_POSTGRES") != "1":
        pytest.skip("no PostgreSQL server binaries to start a private server")
    server = start_server()
    try:
        out = tmp_path / "run"
        cmd = _search_cmd(artifacts, out, "--storage", server.url, "--study-name", STUDY, trials=80)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=REPO)
        try:
            before = _wait_complete(server.url, 16, proc)
            server.stop("immediate")
            text = proc.communicate(timeout=120)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 3, text
        assert "storage" in text and "--resume" in text
        server.start()
        proc = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        complete = _check_exact(_study(server.url), 80, interrupted=True)
        after = {t.number: tuple(t.values) for t in complete}
        assert all(after.get(n) == v for n, v in before.items())
    finally:
        server.stop("immediate")


def test_reliability_bench_small(artifacts, tmp_path):
    from nas.bench.reliability import ReliabilityBenchConfig, run_reliability_bench

    record = run_reliability_bench(ReliabilityBenchConfig(cycles=2, trials=600, supernet=artifacts["supernet"],
                                                          predictors=artifacts["predictors"]),
                                   out=tmp_path / "bench", progress=False)
    assert record["cycles"] == 2 and record["trials_requested"] == 600
    assert record["trials_completed"] == 600 and record["trials_lost"] == 0 and record["duplicate_trials"] == 0
    assert record["final_returncode"] == 0 and record["storage"].startswith("journal:///")
    assert json.loads((tmp_path / "bench" / "reliability.json").read_text())["trials_completed"] == 600


def test_unreachable_database_is_a_clear_error(artifacts, tmp_path, capsys):
    from nas.cli import search_main

    url = "postgresql://nobody@127.0.0.1:9/nowhere"  # port 9 (discard): nothing listens
    code = search_main(["--supernet", artifacts["supernet"], "--predictors", artifacts["predictors"], "--quick",
                        "--storage", url, "--out", str(tmp_path / "x"), "--no-progress"])
    assert code == 3
    err = capsys.readouterr().err
    assert "cannot open the study storage" in err and "127.0.0.1:9" in err


def test_unknown_storage_scheme_lists_valid_ones(artifacts, tmp_path, capsys):
    from nas.cli import search_main

    code = search_main(["--supernet", artifacts["supernet"], "--predictors", artifacts["predictors"], "--quick",
                        "--storage", "mysql://x@y/z", "--out", str(tmp_path / "x"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "mysql://" in err and "journal:///" in err and "postgresql://" in err


def test_sigkill_during_profiling_then_resume(artifacts, tmp_path):
    """Killed while profiling (before its study exists), the search resumes from the last
    profiled row and then runs its study."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas.cli", "search", "--supernet", artifacts["supernet"], "--quick",
           "--profile-n", "10", "--trials", "16", "--population-size", "8", "--out", str(out), "--no-progress",
           "--format", "safetensors", "--latency-budget-ms", "1000", "--memory-budget-mb", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=_env(), cwd=REPO)
    table = out / "profiles.csv"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the search ended before it could be interrupted"
            if table.exists() and len(table.read_text().splitlines()) >= 4:  # header + 3 rows
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "study.journal").exists() and not (out / "predictors").exists()
    rows_before = [line for line in table.read_text().splitlines()[1:] if line.strip()]
    proc = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows_after = table.read_text().splitlines()[1:]
    assert rows_after[: len(rows_before) - 1] == rows_before[:-1]  # measured rows kept (the last may be torn)
    _check_exact(_study(f"journal:///{out / 'study.journal'}"), 16)
    assert (out / "predictors" / "latency" / "predictor.json").is_file()
