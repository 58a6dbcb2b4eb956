"""The ranking benchmark: subnet spread, and a record consistent with its own rows."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace

import pytest
import torch
from scipy.stats import kendalltau, spearmanr

import nas.bench.ranking as ranking_module
from nas.bench.ranking import (
    RUNS_FILE,
    RankingBenchConfig,
    arch_params,
    mean_pairwise_tau,
    run_ranking_bench,
    seed_variance,
    split_half_tau,
    spread_archs,
)
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


@pytest.mark.parametrize("field, value", [("k", 2), ("epochs", 0), ("seeds", 0), ("seeds", True),
                                          ("supernet_epochs", 0), ("supernet_epochs", 1.5)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        RankingBenchConfig(**{field: value})


def test_mean_pairwise_tau_averages_every_pair_of_seeds():
    runs = [[1.0, 1.0, 3.0], [2.0, 3.0, 1.0], [3.0, 2.0, 2.0], [4.0, 4.0, 4.0]]  # rows: subnets, columns: seeds
    cols = list(zip(*runs))
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = statistics.mean(kendalltau(cols[a], cols[b]).statistic for a, b in pairs)
    assert mean_pairwise_tau(runs) == pytest.approx(expected)
    # by hand for seeds 0 and 1: subnets ranked 1 2 3 4 vs 1 3 2 4 -> 5 concordant, 1 discordant pair
    assert kendalltau(cols[0], cols[1]).statistic == pytest.approx(4 / 6)


def test_mean_pairwise_tau_identical_seeds_agree_fully_and_one_seed_has_none():
    assert mean_pairwise_tau([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]) == pytest.approx(1.0)
    assert mean_pairwise_tau([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]) == pytest.approx(-1.0)
    assert mean_pairwise_tau([[97.0], [98.0], [99.0]]) is None
    # a seed where every subnet scored the same has no ranking: its pairs are left out
    assert mean_pairwise_tau([[1.0, 5.0, 1.0], [2.0, 5.0, 2.0], [3.0, 5.0, 3.0]]) == pytest.approx(1.0)
    assert mean_pairwise_tau([[5.0, 5.0], [5.0, 5.0]]) is None


def test_mean_pairwise_tau_rejects_ragged_runs():
    with pytest.raises(ValueError, match="same number of runs"):
        mean_pairwise_tau([[1.0, 2.0], [1.0]])


def test_split_half_tau_compares_even_and_odd_seed_means():
    runs = [[1.0, 2.0, 3.0, 1.0], [2.0, 1.0, 1.0, 1.0], [3.0, 3.0, 2.0, 4.0]]
    # even seeds (0, 2) mean: 2.0, 1.5, 2.5; odd seeds (1, 3) mean: 1.5, 1.0, 3.5 -> same order
    assert split_half_tau(runs) == pytest.approx(1.0)
    runs = [[1.0, 3.0, 1.0], [2.0, 2.0, 2.0], [3.0, 1.0, 3.0]]  # odd count: halves of 2 and 1 seeds
    assert split_half_tau(runs) == pytest.approx(kendalltau([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]).statistic)
    assert split_half_tau(runs) == pytest.approx(-1.0)


def test_split_half_tau_has_none_for_one_seed_or_a_constant_half_and_rejects_ragged_runs():
    assert split_half_tau([[97.0], [98.0]]) is None
    assert split_half_tau([[1.0, 5.0], [2.0, 5.0]]) is None
    with pytest.raises(ValueError, match="same number of runs"):
        split_half_tau([[1.0, 2.0], [1.0]])


def test_seed_variance_is_the_one_way_anova_split():
    runs = [[1.0, 3.0], [4.0, 4.0], [8.0, 6.0]]  # row means 2, 4, 7; row variances 2, 0, 2
    msb = 2 * statistics.variance([2.0, 4.0, 7.0])  # 2 seeds x 6.333 = 12.667
    msw = (2.0 + 0.0 + 2.0) / 3
    got = seed_variance(runs)
    assert got["seed_std"] == pytest.approx(math.sqrt(msw))
    assert got["arch_std"] == pytest.approx(math.sqrt((msb - msw) / 2))
    assert got["reliability"] == pytest.approx((msb - msw) / msb)
    assert got["tau_ceiling"] == pytest.approx(2 / math.pi * math.asin(math.sqrt((msb - msw) / msb)))
    # seeds that agree exactly: all variance is architecture, a perfect ranker reaches tau 1
    assert seed_variance([[1.0, 1.0], [2.0, 2.0], [5.0, 5.0]]) == pytest.approx(
        {"arch_std": statistics.stdev([1.0, 2.0, 5.0]), "seed_std": 0.0, "reliability": 1.0, "tau_ceiling": 1.0})


def test_seed_variance_clips_noise_larger_than_the_spread_and_has_none_without_a_split():
    got = seed_variance([[0.0, 10.0], [10.0, 0.0], [4.0, 6.0]])
    assert got is None  # every row mean is 5: nothing to split
    got = seed_variance([[0.0, 10.0], [10.0, 1.0], [4.0, 6.0]])  # means 5, 5.5, 5: seed noise dwarfs them
    assert got["arch_std"] == 0.0 and got["reliability"] == 0.0 and got["tau_ceiling"] == 0.0
    assert got["seed_std"] > 0
    assert seed_variance([[97.0], [98.0]]) is None  # one seed: no within-subnet variance
    with pytest.raises(ValueError, match="same number of runs"):
        seed_variance([[1.0, 2.0], [1.0]])


def test_tau_ceiling_predicts_a_perfect_rankers_tau_against_a_noisy_seed_mean():
    # simulate: 30 architectures with true accuracies N(0, 1), 4 seeds of N(0, 2^2) noise each. The true
    # reliability of the 4-seed mean is 1 / (1 + 4 / 4) = 0.5; a perfect ranker (the true values) against the
    # seed mean should average tau = (2/pi) asin(sqrt(0.5)) = 0.5, and the estimates should centre on the truth.
    gen = torch.Generator().manual_seed(0)
    taus, ceilings, reliabilities = [], [], []
    for _ in range(300):
        truth = torch.randn(30, generator=gen)
        runs = (truth[:, None] + 2 * torch.randn(30, 4, generator=gen)).tolist()
        taus.append(kendalltau(truth.tolist(), [statistics.mean(r) for r in runs]).statistic)
        got = seed_variance(runs)
        ceilings.append(got["tau_ceiling"])
        reliabilities.append(got["reliability"])
    assert statistics.mean(taus) == pytest.approx(0.5, abs=0.03)
    assert statistics.median(ceilings) == pytest.approx(0.5, abs=0.05)
    assert statistics.median(reliabilities) == pytest.approx(0.5, abs=0.08)


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
    for key, runs in (("standalone_seed_tau", "standalone_val_acc_per_seed"),
                      ("standalone_seed_tau_val_loss", "standalone_val_loss_per_seed")):
        expected = kendalltau([r[runs][0] for r in rows], [r[runs][1] for r in rows]).statistic  # 2 seeds: 1 pair
        if math.isnan(expected):
            assert record[key] is None
        else:
            assert record[key] == pytest.approx(expected)
    for r in rows:
        assert r["standalone_val_loss"] == pytest.approx(statistics.mean(r["standalone_val_loss_per_seed"]))
    expected = kendalltau([r["standalone_val_acc_per_seed"][0] for r in rows],
                          [r["standalone_val_acc_per_seed"][1] for r in rows]).statistic  # 2 seeds: halves of 1
    assert record["standalone_split_half_tau"] == (None if math.isnan(expected) else pytest.approx(expected))
    variance = seed_variance([r["standalone_val_acc_per_seed"] for r in rows])
    for key, name in (("arch_std", "standalone_arch_std"), ("seed_std", "standalone_seed_std"),
                      ("reliability", "standalone_mean_reliability"), ("tau_ceiling", "kendall_tau_ceiling")):
        assert record[name] == (None if variance is None else pytest.approx(variance[key]))
    assert record["kendall_tau_params"] == pytest.approx(
        kendalltau([r["params"] for r in rows], standalone).statistic, nan_ok=True)
    assert record["largest_inherited_acc"] == rows[-1]["inherited_val_acc"]
    assert record["largest_standalone_acc"] == rows[-1]["standalone_val_acc"]
    assert rows[-1]["arch_id"] == create_space("digits-s").max_arch().arch_id
    assert record["minutes"] > 0
    assert json.loads((out / "ranking.json").read_text()) == json.loads(json.dumps(record))
    assert (out / "supernet" / "supernet.safetensors").is_file()
    stored = json.loads((out / "supernet" / "config.json").read_text())
    assert stored["supernet"]["distill"] is True and stored["supernet"]["n_random"] == 0
    assert stored["supernet"]["train"]["epochs"] == 1  # supernet_epochs not given: the stand-alone epochs


def test_supernet_epochs_trains_the_supernet_longer_than_the_standalone_runs(tmp_path):
    out = tmp_path / "r"
    record = run_ranking_bench(RankingBenchConfig(k=3, epochs=1, supernet_epochs=2, seeds=2, n_random=0), out=out,
                               progress=False)
    stored = json.loads((out / "supernet" / "config.json").read_text())
    assert stored["supernet"]["train"]["epochs"] == 2
    assert record["config"]["supernet_epochs"] == 2 and record["config"]["epochs"] == 1


def test_inherited_accuracy_is_the_supernets(tiny_record):
    from nas.data import load_dataset
    from nas.train import evaluate_arch, load_supernet

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


@pytest.mark.parametrize("bench, module", [("ranking", "nas.bench.ranking.run_ranking_bench"),
                                           ("picks", "nas.bench.picks.run_picks_bench")])
def test_ctrl_c_in_a_resumable_bench_says_how_to_continue_it(tmp_path, capsys, monkeypatch, bench, module):
    def interrupted(config, *, out, progress, resume):
        out.mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(module, interrupted)
    out = tmp_path / "b"
    assert main(["bench", bench, "--out", str(out), "--no-progress"]) == 130
    assert capsys.readouterr().err == (f"\nnas bench: interrupted; what was done is kept in {out}: "
                                       f"run the same command with --out {out} --resume\n")


def test_space_without_a_registered_dataset_asks_for_one(tmp_path):
    with pytest.raises(ValueError, match="no default dataset; pass --dataset"):
        run_ranking_bench(RankingBenchConfig(space="imagenet-quadranet-t"), out=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, message", [
    (["--dataset", "digts"], "unknown dataset 'digts'"),
    (["--space", "cifar10-m", "--dataset", "digits"], "space 'cifar10-m' expects inputs (3, 32, 32)"),
    (["--space", "cifar10-m"], "--data-dir"),
])
def test_cli_bench_ranking_with_bad_data_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "r"
    assert main(["bench", "ranking", "--k", "3", "--epochs", "1", "--seeds", "1", *args, "--out", str(out),
                 "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # the corrected command is not refused as "already holds files"


def test_cli_bench_ranking_prints_the_record_and_says_why_one_seed_has_no_seed_tau(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["bench", "ranking", "--k", "3", "--epochs", "1", "--seeds", "1", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    record = json.loads((out / "ranking.json").read_text())
    assert record["standalone_seed_tau"] is None and record["standalone_seed_tau_val_loss"] is None
    assert record["standalone_split_half_tau"] is None
    assert record["standalone_mean_reliability"] is None and record["kendall_tau_ceiling"] is None
    assert "kendall_tau_ceiling: n/a" in text
    assert "standalone_seed_tau: n/a (needs two seeds that rank the subnets)" in text
    assert f"kendall_tau_params: {record['kendall_tau_params']:.4f}" in text
    assert f"record: {out / 'ranking.json'}" in text


# ---- a stopped benchmark resumes -----------------------------------------------------------------

TINY = RankingBenchConfig(k=3, epochs=1, seeds=2, n_random=0)
_TIMES = ("minutes", "supernet_minutes", "standalone_runs_reused", "config")
_REAL_TRAIN_MODEL = ranking_module.train_model


class Stopped(Exception):
    """Stands for whatever stops a run part-way (Ctrl-C, a kill, an error)."""


def _counting_train_model(monkeypatch, *, stop_after: int | None = None) -> list[int]:
    calls: list[int] = []

    def train_model(net, splits, config, **kwargs):
        if stop_after is not None and len(calls) == stop_after:
            raise Stopped
        calls.append(config.seed)
        return _REAL_TRAIN_MODEL(net, splits, config, **kwargs)

    monkeypatch.setattr(ranking_module, "train_model", train_model)
    return calls


def test_a_stopped_benchmark_resumes_with_only_the_missing_runs(tiny_record, tmp_path, monkeypatch):
    reference, _ = tiny_record
    out = tmp_path / "r"
    calls = _counting_train_model(monkeypatch, stop_after=4)
    with pytest.raises(Stopped):
        run_ranking_bench(TINY, out=out, progress=False)
    assert len((out / RUNS_FILE).read_text().splitlines()) == 4 and not (out / "ranking.json").exists()
    calls = _counting_train_model(monkeypatch)
    record = run_ranking_bench(TINY, out=out, progress=False, resume=True)
    assert len(calls) == 2 and record["standalone_runs_reused"] == 4  # 3 subnets x 2 seeds, 4 done before
    assert {k: v for k, v in record.items() if k not in _TIMES} == \
        {k: v for k, v in reference.items() if k not in _TIMES}  # as if it had never stopped
    assert len((out / RUNS_FILE).read_text().splitlines()) == 6


def test_resume_trains_again_a_run_whose_line_a_crash_cut_short(tiny_record, tmp_path, monkeypatch):
    reference, _ = tiny_record
    out = tmp_path / "r"
    _counting_train_model(monkeypatch, stop_after=2)
    with pytest.raises(Stopped):
        run_ranking_bench(TINY, out=out, progress=False)
    path = out / RUNS_FILE
    path.write_text(path.read_text()[:-20])  # the second line cut short
    calls = _counting_train_model(monkeypatch)
    record = run_ranking_bench(TINY, out=out, progress=False, resume=True)
    assert len(calls) == 5 and record["standalone_runs_reused"] == 1
    assert record["kendall_tau_params"] == reference["kendall_tau_params"]
    assert [r["standalone_val_acc_per_seed"] for r in record["subnets"]] == \
        [r["standalone_val_acc_per_seed"] for r in reference["subnets"]]


def test_damage_before_the_last_line_is_named(tmp_path, monkeypatch):
    out = tmp_path / "r"
    _counting_train_model(monkeypatch, stop_after=2)
    with pytest.raises(Stopped):
        run_ranking_bench(TINY, out=out, progress=False)
    path = out / RUNS_FILE
    path.write_text("garbage\n" + path.read_text())
    with pytest.raises(ValueError, match=f"{path}, line 1: not a stand-alone run record"):
        run_ranking_bench(TINY, out=out, progress=False, resume=True)


def test_resume_with_other_settings_or_of_another_directory_is_refused(tmp_path, monkeypatch, capsys):
    out = tmp_path / "r"
    _counting_train_model(monkeypatch, stop_after=1)
    with pytest.raises(Stopped):
        run_ranking_bench(TINY, out=out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match=r"was run with epochs=1, seeds=2, not epochs=2, seeds=3"):
        run_ranking_bench(replace(TINY, epochs=2, seeds=3), out=out, progress=False, resume=True)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # a new run into the occupied directory is refused; --resume needs --out; a non-benchmark directory
    assert main(["bench", "ranking", "--k", "3", "--out", str(out), "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["bench", "ranking", "--resume", "--no-progress"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"space": "digits-s"}')
    assert main(["bench", "ranking", "--out", str(other), "--resume", "--no-progress"]) == 2
    assert "is not the record of a nas bench ranking run" in capsys.readouterr().err
