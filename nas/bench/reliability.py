"""``nas bench reliability``: kill a search with SIGKILL at random moments, resume it, count.

A small search (a supernet and predictors prepared once, reused by every run) is started as a
real ``nas search`` subprocess on the run's own study file (the default storage,
:func:`nas.search.resume.default_storage`). Each cycle waits until the study has grown
since the last look and a further random moment (or, for ``early_kill_fraction`` of the
cycles, a random moment of the start-up), kills the process with ``SIGKILL`` and
reads the study back: every COMPLETE trial seen before must still be there with the same
values (else it is *lost*). The next cycle continues with ``--resume``. After ``cycles`` kills
a last ``--resume`` runs to the end.

Record: ``cycles`` (kills), ``kills_during_search`` (those aimed at the trial loop), ``trials_requested``,
``trials_completed`` (COMPLETE at the end), ``trials_lost`` (COMPLETE trials that vanished or
changed), ``duplicate_trials`` (COMPLETE beyond the request plus repeated trial numbers), the
FAIL trials the resumes left behind, and per-cycle details.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.rundir import write_json
from nas.search import SearchConfig, create_storage, obtain_predictors, obtain_supernet
from nas.search.resume import default_storage
from nas.search.storage import describe_storage, file_storage_path
from profilers import device_fingerprint
from search_spaces.layers import check_positive_int

__all__ = ["ReliabilityBenchConfig", "run_reliability_bench"]


@dataclass(frozen=True)
class ReliabilityBenchConfig:
    cycles: int = 10  # kill/resume cycles
    trials: int = 3000  # trials the search asks for (enough that every cycle's kill lands before the end)
    seed: int = 0  # seed of the search and of the kill moments
    supernet: str | None = None  # trained supernet run directory (default: train a small one)
    predictors: str | None = None  # predictor artifacts (default: profile and fit a few)
    max_extra_wait_s: float = 1.5  # after the study grew, wait up to this long before the kill
    early_kill_fraction: float = 0.2  # share of kills aimed at the start-up instead of the trial loop
    max_startup_wait_s: float = 6.0
    timeout_s: float = 300.0  # per run

    def __post_init__(self) -> None:
        check_positive_int("cycles", self.cycles)
        check_positive_int("trials", self.trials)
        if not self.max_extra_wait_s >= 0:
            raise ValueError(f"max_extra_wait_s must be non-negative, got {self.max_extra_wait_s!r}")
        if not 0.0 <= self.early_kill_fraction <= 1.0:
            raise ValueError(f"early_kill_fraction must be in [0, 1], got {self.early_kill_fraction!r}")


class _StudyReader:
    """Reads the search's study from outside; opens the file once it exists (opening it
    earlier would create the run directory the search has not made yet)."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name, self.storage = url, name, None

    def _study(self) -> optuna.Study | None:
        if self.storage is None:
            if not file_storage_path(self.url).exists():
                return None
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self.storage = create_storage(self.url)
        if self.name not in [s.study_name for s in optuna.get_all_study_summaries(self.storage)]:
            return None
        return optuna.load_study(study_name=self.name, storage=self.storage)

    def complete(self) -> dict[int, tuple[float, ...]]:
        """COMPLETE trials: number → values (empty while the study does not exist yet)."""
        study = self._study()
        if study is None:
            return {}
        return {t.number: tuple(t.values) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}

    def states(self) -> list[tuple[int, str]]:
        study = self._study()
        return [] if study is None else [(t.number, t.state.name) for t in study.get_trials(deepcopy=False)]


def run_reliability_bench(config: ReliabilityBenchConfig, *, out: str | Path, progress: bool = True) -> dict[str, Any]:
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = SearchConfig(quick=True, supernet=config.supernet, predictors=config.predictors, supernet_epochs=1,
                        profile_n=8, profile_passes=1, seed=config.seed, out=str(out / "base")).resolved()
    fp = device_fingerprint(base.device, threads=base.threads)
    obtain_supernet(base, out / "base", progress)
    obtain_predictors(base, out / "base", fp.to_dict(), progress)
    supernet = config.supernet or str(out / "base" / "supernet")
    predictors = config.predictors or str(out / "base" / "predictors")
    run = out / "search"
    url = default_storage(base, run)
    reader = _StudyReader(url, base.study_name)
    cmd = [sys.executable, "-m", "nas.cli", "search", "--supernet", supernet, "--predictors", predictors,
           "--trials", str(config.trials), "--population-size", "16", "--seed", str(config.seed),
           "--out", str(run), "--no-progress", "--quick", "--threads", str(base.threads),
           # loose budgets: this bench counts trials; a budget no trial meets would end runs with exit code 2
           "--latency-budget-ms", "1e6", "--memory-budget-mb", "1e6"]
    rng = random.Random(config.seed)
    seen: dict[int, tuple[float, ...]] = {}
    lost: set[int] = set()
    details = []
    log = open(out / "runs.log", "w")
    try:
        for cycle in range(config.cycles):
            resume = ["--resume"] if (run / "config.json").is_file() else []
            proc = subprocess.Popen(cmd + resume, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
            before = len(reader.complete())
            early = rng.random() < config.early_kill_fraction
            if early:  # while it starts up: loading models, opening or creating the study
                time.sleep(rng.uniform(0.2, config.max_startup_wait_s))
            else:
                deadline = time.monotonic() + config.timeout_s
                while proc.poll() is None and time.monotonic() < deadline:  # until the study grows
                    if len(reader.complete()) > before:
                        break
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, config.max_extra_wait_s))
            finished = proc.poll() is not None
            if not finished:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            if finished and proc.returncode != 0:
                log.flush()
                tail = (out / "runs.log").read_text().strip().splitlines()[-3:]
                raise RuntimeError(f"the search failed on its own (exit code {proc.returncode}) in cycle {cycle}: "
                                   + " | ".join(tail))
            now = reader.complete()
            vanished = [n for n, v in seen.items() if now.get(n) != v]
            lost.update(vanished)
            seen.update(now)
            details.append({"cycle": cycle, "killed": not finished, "during": "startup" if early else "search",
                            "returncode": proc.returncode,
                            "complete_before": before, "complete_after": len(now), "vanished": vanished})
            if progress:
                print(f"  cycle {cycle}: {'killed' if not finished else 'finished'} at {len(now)} complete trials",
                      file=sys.stderr, flush=True)
        proc = subprocess.run(cmd + ["--resume"], stdout=log, stderr=subprocess.STDOUT, timeout=config.timeout_s)
        final = reader.complete()
        lost.update(n for n, v in seen.items() if final.get(n) != v)
        states = reader.states()
    finally:
        log.close()
    numbers = [n for n, _ in states]
    record = {
        "cycles": sum(d["killed"] for d in details),
        "kills_during_search": sum(d["killed"] and d["during"] == "search" for d in details),
        "trials_requested": config.trials,
        "trials_completed": len(final),
        "trials_lost": len(lost),
        "duplicate_trials": max(0, len(final) - config.trials) + (len(numbers) - len(set(numbers))),
        "trials_failed": sum(s == "FAIL" for _, s in states),
        "final_returncode": proc.returncode,
        "storage": describe_storage(url),
        "details": details,
        "minutes": (time.perf_counter() - t_start) / 60.0,
        "config": asdict(config),
    }
    write_json(out / "reliability.json", record)
    return record
