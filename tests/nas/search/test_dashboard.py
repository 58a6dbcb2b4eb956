"""optuna-dashboard reads a search's study as the workbench wrote it: objective names and each
trial's feasibility, checked through the dashboard's own HTTP API (skipped without the package)."""

from __future__ import annotations

import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from nas.objectives import metric_names
from nas.search.budgets import Budget, constraint_value
from nas.search.samplers import create_sampler
from nas.search.scoring import ArchScore
from nas.search.study import open_study, problem_record, run_trials
from search_spaces.space import create_space

dashboard = pytest.importorskip("optuna_dashboard")

OBJECTIVES = ("val_acc", "latency_ms", "peak_mem_mb")
BUDGETS = [Budget(latency_ms=1.2), Budget(latency_ms=2.0, memory_mb=6.0)]


def _score(archs):
    return [ArchScore(arch=a, val_acc=1.0 - 1.0 / (1.0 + a.n_quadratic), latency_ms=sum(a.widths) / 100.0,
                      peak_mem_mb=float(sum(a.depths))) for a in archs]


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # no request lines on stderr
        pass


@pytest.fixture(params=["journal", "sqlite"])
def served(request, tmp_path):
    """A study run by the workbench on its default journal file (or a SQLite file), and the dashboard
    serving it on loopback, given the file as ``optuna-dashboard study.journal`` is."""
    if request.param == "journal":
        url, given = f"journal:///{tmp_path / 'study.journal'}", str(tmp_path / "study.journal")
    else:
        url = given = f"sqlite:///{tmp_path / 'study.db'}"
    problem = problem_record(space="digits-s", objectives=OBJECTIVES, batch_size=1, budgets=BUDGETS,
                             dataset="digits", fingerprint_id="fp0")
    study = open_study(storage=url, study_name="dash", problem=problem,
                       sampler=create_sampler("nsga2", seed=0, population_size=8), resume=False)
    run_trials(study, space=create_space("digits-s"), score=_score, budgets=BUDGETS, objectives=OBJECTIVES,
               n_trials=16, batch=8, progress=False)
    server = make_server("127.0.0.1", 0, dashboard.wsgi(given), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", study
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_the_dashboard_names_the_objectives_and_shows_each_trials_feasibility(served):
    base, study = served
    (summary,) = _get(f"{base}/api/studies")["study_summaries"]
    assert summary["study_name"] == "dash"
    detail = _get(f"{base}/api/studies/{summary['study_id']}")
    assert detail["objective_names"] == metric_names(OBJECTIVES) == ["val_acc", "pred_latency_ms", "pred_peak_mem_mb"]
    trials = {t["number"]: t for t in detail["trials"]}
    assert len(trials) == 16
    feasible = 0
    for frozen in study.get_trials(deepcopy=False):
        lat, mem = frozen.values[1], frozen.values[2]
        expected = constraint_value(BUDGETS, lat, mem)
        assert trials[frozen.number]["constraints"] == [pytest.approx(expected, abs=1e-12)]
        feasible += expected <= 0
    assert 0 < feasible < 16  # the dashboard has both feasible and infeasible trials to tell apart
