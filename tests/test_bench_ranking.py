"""The ranking benchmark: subnet spread, and a record consistent with its own rows."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from scipy.stats import kendalltau, spearmanr

from nas.bench.ranking import RankingBenchConfig, arch_params, run_ranking_bench, spread_archs
from nas.cli import main
from search_spaces.networks import QuadraNet, count_params
from search_spaces.space import create_space



def test_arch_params_equals_a_built_network():
    space = create_space("digits-s")
    for arch in (space.min_arch(), space.max_arch()):
        assert arch_params(space, arch) == count_params(QuadraNet(space.to_net_config(arch)))


@pytest.mark.parametrize("k", [3, 10])
def test_spread_archs_runs_from_smallest_to_largest(k):
    space = create_space("digits-s")
    archs = spread_archs(space, k, seed=0)
    params = [arch_params(space, a) for a in archs]
    assert len({a.arch_id for a in archs}) == k
    assert archs[0] == space.min_arch() and archs[-1] == space.max_arch()
    assert params == sorted(params)
    assert spread_archs(space, k, seed=0) == archs  # seeded
    for a in archs:
        space.validate(a)


@pytest.mark.parametrize("field, value", [("k", 2), ("epochs", 0), ("seeds", 0), ("seeds", True)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        RankingBenchConfig(**{field: value})


@pytest.fixture(scope="module")
def tiny_record(tmp_path_factory):
    out = tmp_path_factory.mktemp("rank")
    record = run_ranking_bench(RankingBenchConfig(k=3, epochs=1, seeds=2, n_random=0), out=out, progress=False)
    return record, out


def test_record_is_consistent_with_its_rows(tiny_record):
    record, out = tiny_record
    rows = record["subnets"]
    assert len(rows) == 3
    inherited = [r["inherited_val_acc"] for r in rows]
    standalone = [r["standalone_val_acc"] for r in rows]
    assert record["kendall_tau"] == pytest.approx(kendalltau(inherited, standalone).statistic, nan_ok=True)
    assert record["spearman"] == pytest.approx(spearmanr(inherited, standalone).statistic, nan_ok=True)
    assert record["mean_abs_gap"] == pytest.approx(statistics.mean(abs(a - b) for a, b in zip(inherited, standalone)))
    for r in rows:
        assert len(r["standalone_val_acc_per_seed"]) == 2
        assert r["standalone_val_acc"] == pytest.approx(statistics.mean(r["standalone_val_acc_per_seed"]))
        assert 0 <= r["inherited_val_acc"] <= 100 and 0 <= r["standalone_val_acc"] <= 100
    assert record["standalone_seed_range"] == pytest.approx(statistics.mean(
        max(r["standalone_val_acc_per_seed"]) - min(r["standalone_val_acc_per_seed"]) for r in rows))
    assert record["largest_inherited_acc"] == rows[-1]["inherited_val_acc"]
    assert record["largest_standalone_acc"] == rows[-1]["standalone_val_acc"]
    assert rows[-1]["arch_id"] == create_space("digits-s").max_arch().arch_id
    assert record["minutes"] > 0
    assert json.loads((out / "ranking.json").read_text()) == json.loads(json.dumps(record))
    assert (out / "supernet" / "supernet.safetensors").is_file()
    stored = json.loads((out / "supernet" / "config.json").read_text())
    assert stored["supernet"]["distill"] is True and stored["supernet"]["n_random"] == 0


def test_inherited_accuracy_is_the_supernets(tiny_record):
    from nas.data import load_dataset
    from nas.supernet_train import evaluate_arch, load_supernet

    record, out = tiny_record
    supernet, _ = load_supernet(out / "supernet")
    splits = load_dataset("digits", seed=0)
    space = create_space("digits-s")
    _, acc = evaluate_arch(supernet, space.max_arch(), splits.val)
    assert record["largest_inherited_acc"] == pytest.approx(100 * acc)


def test_cli_bench_ranking_rejects_unknown_space_and_bad_k(capsys):
    assert main(["bench", "ranking", "--space", "nope", "--no-progress"]) == 2
    assert "digits-s" in capsys.readouterr().err
    assert main(["bench", "ranking", "--k", "2", "--no-progress"]) == 2
    assert "k must be" in capsys.readouterr().err


def test_space_without_a_registered_dataset_asks_for_one(tmp_path):
    with pytest.raises(ValueError, match="no default dataset; pass --dataset"):
        run_ranking_bench(RankingBenchConfig(space="imagenet-quadranet-t"), out=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
