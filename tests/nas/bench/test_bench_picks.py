"""The picks benchmark end to end on tiny settings: a record consistent with its own training
runs, random candidates that meet the budget when measured, the uniform QuadraNet, resume."""

from __future__ import annotations

import json
import statistics

import pytest

from nas.bench.picks import RUNS_FILE, PicksBenchConfig, run_picks_bench, uniform_candidates
from nas.search.budgets import Budget
from search_spaces.space import create_space

pytestmark = pytest.mark.slow

TINY = dict(space="digits-s", dataset="digits", quick=True, trials=12, supernet_epochs=1, epochs=1,
            latency_budget_ms=50.0, memory_budget_mb=50.0)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("picks") / "bench"
    return out, run_picks_bench(PicksBenchConfig(**TINY), out=out, progress=False)


def test_record_is_consistent_with_its_training_runs(bench):
    out, record = bench
    runs = [json.loads(line) for line in (out / RUNS_FILE).read_text().splitlines()]
    assert len(runs) == record["n_networks"] * 3 == (1 + 5 + 1) * 3
    by_arch = {}
    for r in runs:
        by_arch.setdefault(r["arch_id"], []).append(r["test_acc"])
    for net in record["networks"]:
        accs = by_arch[net["arch_id"]]
        assert net["test_accs"] == accs and net["mean_test_acc"] == pytest.approx(statistics.mean(accs))
        assert net["se_test_acc"] == pytest.approx(statistics.stdev(accs) / 3 ** 0.5)
    roles = [n["role"] for n in record["networks"]]
    assert roles == ["pick"] + ["random"] * 5 + ["uniform"]
    random_means = [n["mean_test_acc"] for n in record["networks"] if n["role"] == "random"]
    assert record["random_median_test_acc"] == pytest.approx(statistics.median(random_means))
    assert record["gap_to_random_median_points"] == pytest.approx(record["pick_mean_test_acc"]
                                                                  - statistics.median(random_means))
    ranked = sorted(record["networks"], key=lambda n: -n["mean_test_acc"])
    assert ranked[record["pick_rank"] - 1]["role"] == "pick"
    assert record["pick_at_least_random_median"] == (record["gap_to_random_median_points"] >= 0)


def test_every_network_meets_the_budget_when_measured(bench):
    _, record = bench
    budget = Budget.from_dict(record["budget"])
    assert budget.label == "latency ≤ 50 ms, memory ≤ 50 MB"
    for net in record["networks"]:
        assert budget.meets(net["latency_ms"], net["peak_mem_mb"])
    assert len({n["arch_id"] for n in record["networks"]}) == record["n_networks"]


def test_uniform_candidates_are_uniform_quadranets():
    space = create_space("digits-s")
    archs = uniform_candidates(space)
    assert archs[0].depths == tuple(min(d) for d in space.depth_choices)
    assert archs[-1].widths == tuple(max(w) for w in space.width_choices)
    for arch in archs:
        blocks = [b for s in arch.stages for b in s.blocks]
        assert {(b.kernel_size, b.mlp_ratio, b.order) for b in blocks} == {(7, 4, 2)}
        space.validate(arch)


def test_resume_trains_only_what_is_missing(bench, tmp_path):
    import shutil

    out, record = bench
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    lines = (copy / RUNS_FILE).read_text().splitlines()
    (copy / RUNS_FILE).write_text("\n".join(lines[:-2]) + "\n")
    again = run_picks_bench(PicksBenchConfig(**TINY), out=copy, progress=False, resume=True)
    assert again["standalone_runs_reused"] == len(lines) - 2
    assert [n["arch_id"] for n in again["networks"]] == [n["arch_id"] for n in record["networks"]]
    with pytest.raises(ValueError, match="--resume refused.*epochs=1"):
        run_picks_bench(PicksBenchConfig(**{**TINY, "epochs": 2}), out=copy, progress=False, resume=True)


@pytest.mark.parametrize("field, value, match", [("k_random", 4, "k_random must be an integer >= 5"),
                                                 ("seeds", 2, "seeds must be an integer >= 3"),
                                                 ("epochs", 0, "epochs")])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        PicksBenchConfig(**{field: value})


def test_a_finished_search_is_taken_as_it_is(bench, tmp_path):
    out, record = bench
    again = run_picks_bench(PicksBenchConfig(**{**TINY, "search": str(out / "search"), "k_random": 5}),
                            out=tmp_path / "b2", progress=False)
    assert not (tmp_path / "b2" / "search").exists()  # no second search
    assert again["networks"][0]["arch_id"] == record["networks"][0]["arch_id"]
    with pytest.raises(FileNotFoundError, match="holds no picks.json"):
        run_picks_bench(PicksBenchConfig(**{**TINY, "search": str(tmp_path)}), out=tmp_path / "b3", progress=False)
