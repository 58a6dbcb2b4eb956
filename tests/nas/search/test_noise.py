"""Accuracy with its uncertainty: the binomial standard error, the dispersion test over a study's
trials, a pick against the next cheaper Pareto-optimal architecture, and the scorer's figures
against a plain PyTorch evaluation."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chi2
from torch.utils.data import TensorDataset

from nas.search.config import SearchConfig
from nas.search.noise import accuracy_spread, compare_to_cheaper, noise_statement
from nas.search.scoring import binomial_se


def _trials(accs, ids=None):
    ids = ids or [f"a{i}" for i in range(len(accs))]
    return pd.DataFrame({"state": ["COMPLETE"] * len(accs), "val_acc": accs, "arch_id": ids})


def test_binomial_se_formula() -> None:
    assert binomial_se(0.8, 400) == pytest.approx(math.sqrt(0.8 * 0.2 / 400))
    assert binomial_se(1.0, 10) == 0.0 and binomial_se(0.0, 10) == 0.0


def test_spread_within_noise_says_so() -> None:
    n = 270
    accs = [0.96, 0.963, 0.959, 0.9604, 0.9611, 0.962]
    out = accuracy_spread(_trials(accs), n)
    mean = sum(accs) / len(accs)
    stat = sum((a - mean) ** 2 for a in accs) / (mean * (1 - mean) / n)
    assert out["dispersion"] == pytest.approx(stat) and out["p_value"] == pytest.approx(chi2.sf(stat, 5))
    assert out["separates"] is False
    assert "this task does not separate these architectures at 270 validation images" in noise_statement(out)


def test_spread_beyond_noise_separates() -> None:
    out = accuracy_spread(_trials([0.3, 0.5, 0.62, 0.7, 0.85]), 2000)
    assert out["separates"] is True and out["spread_points"] == pytest.approx(55.0)
    assert noise_statement(out).endswith("the task separates these architectures")


def test_spread_counts_each_architecture_once_and_only_complete_trials() -> None:
    t = _trials([0.5, 0.5, 0.9], ids=["a", "a", "b"])
    t.loc[len(t)] = {"state": "FAIL", "val_acc": float("nan"), "arch_id": "c"}
    assert accuracy_spread(t, 100)["architectures"] == 2
    assert accuracy_spread(_trials([]), 100)["separates"] is None
    assert "too few" in noise_statement(accuracy_spread(_trials([0.5]), 100))


def test_pick_against_the_next_cheaper_front_member() -> None:
    pareto = pd.DataFrame({"arch_id": ["x", "y", "z"], "val_acc": [0.70, 0.80, 0.81],
                           "pred_latency_ms": [1.0, 2.0, 3.0]})
    pick = {"arch_id": "z", "predicted": {"val_acc": 0.81, "latency_ms": 3.0}}
    vs = compare_to_cheaper(pick, pareto, 1000)
    se = math.hypot(binomial_se(0.81, 1000), binomial_se(0.80, 1000))
    assert vs["arch_id"] == "y" and vs["z"] == pytest.approx(0.01 / se) and vs["distinguishable"] is False
    pick = {"arch_id": "y", "predicted": {"val_acc": 0.80, "latency_ms": 2.0}}
    assert compare_to_cheaper(pick, pareto, 1000)["distinguishable"] is True  # 10 points over x
    assert compare_to_cheaper({"arch_id": "x", "predicted": {"val_acc": 0.7, "latency_ms": 1.0}}, pareto, 1000) is None
    assert compare_to_cheaper({"arch_id": None, "predicted": None}, pareto, 1000) is None


def test_scorer_accuracy_se_and_loss_match_a_plain_evaluation(tiny_space) -> None:
    from nas.search.scoring import ArchScorer
    from search_spaces.elastic import QuadraSupernet

    space = tiny_space()
    torch.manual_seed(0)
    supernet = QuadraSupernet(space).eval()
    c, h, w = space.input_shape
    x = torch.randn(37, c, h, w)
    y = torch.randint(0, space.num_classes, (37,))
    arch = space.sample(random.Random(1))

    class Fixed:  # a predictor stand-in with the attributes the scorer checks
        def __init__(self, target):
            self.target, self.space, self.batch_sizes = target, space.name, (1,)

        def predict(self, archs, batch_size):
            return [1.0] * len(archs)

    scorer = ArchScorer(supernet=supernet, val_data=TensorDataset(x, y), latency=Fixed("latency"),
                        memory=Fixed("memory"), batch_size=1, eval_batch_size=10)
    (s,) = scorer.score([arch])
    supernet.set_active(arch)
    with torch.no_grad():
        logits = supernet(x)
    acc = float((logits.argmax(1) == y).float().mean())
    assert s.val_acc == pytest.approx(acc) and s.val_acc_se == pytest.approx(binomial_se(acc, 37))
    assert s.val_loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert s.objective("val_loss") == s.val_loss and scorer.n_val == 37


def test_accuracy_metric_loss_scores_by_validation_loss() -> None:
    assert SearchConfig(accuracy_metric="loss").objectives == ("val_loss", "latency_ms", "peak_mem_mb")
    assert SearchConfig().objectives == ("val_acc", "latency_ms", "peak_mem_mb")
    with pytest.raises(ValueError, match="accuracy_metric must be one of acc, loss"):
        SearchConfig(accuracy_metric="top5")
    with pytest.raises(ValueError, match="--accuracy-metric loss .* have none; add accuracy to --objectives"):
        SearchConfig(accuracy_metric="loss", objectives="latency,memory")
