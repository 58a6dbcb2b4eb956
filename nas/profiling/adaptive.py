"""Adaptive sampling of a profiling run: new architectures where the current latency model errs
most (see :mod:`nas.profiling.collect`, point 2)."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pandas as pd

from predictors import Samples, create_cost_model
from predictors.features import arch_features
from search_spaces.arch import ArchConfig
from search_spaces.space import SearchSpace

__all__ = ["adaptive_candidates", "macs_key"]


def macs_key(space: SearchSpace, batch_size: int) -> Callable[[ArchConfig], float]:
    return lambda a: arch_features(a, batch_size, space=space)["macs"]


def adaptive_candidates(space: SearchSpace, table: pd.DataFrame, k: int, rng: random.Random,
                         taken: set[str], batch_size: int, seed: int) -> list[ArchConfig]:
    """``k`` new architectures near the ones a forest predicts worst, most uncertain first."""
    archs = [ArchConfig.from_json(t) for t in table["arch_json"]]
    feats = pd.DataFrame([arch_features(a, batch_size, space=space) for a in archs])
    # What latency predictors learn: latency relative to the reference measured beside it.
    use_ref = "ref_ratio" in table and table["ref_ratio"].notna().all()
    y = table["ref_ratio" if use_ref else "latency_ms"].to_numpy(dtype=float)
    samples = Samples(archs, np.full(len(archs), batch_size), feats)
    # Out-of-fold relative errors: where the current predictor errs.
    order = np.random.default_rng(seed).permutation(len(archs))
    folds = np.array_split(order, min(5, len(archs)))
    err = np.zeros(len(archs))
    for i, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != i])
        model = create_cost_model("forest", seed=seed).fit(samples.subset(train), y[train])
        err[test] = np.abs(model.predict(samples.subset(test)) / y[test] - 1.0)
    worst = [archs[i] for i in np.argsort(-err)[: max(1, k)]]
    pool: dict[str, ArchConfig] = {}
    for a in worst:
        for _ in range(8):
            m = space.mutate(a, rng, n_changes=rng.choice((1, 2)))
            if m.arch_id not in taken:
                pool.setdefault(m.arch_id, m)
    if len(pool) < k:  # a crowded neighbourhood: top up with random members
        while len(pool) < 4 * k:
            a = space.sample(rng)
            if a.arch_id not in taken:
                pool.setdefault(a.arch_id, a)
    cands = list(pool.values())
    model = create_cost_model("forest", seed=seed).fit(samples, y)
    cand_samples = Samples(cands, np.full(len(cands), batch_size),
                           pd.DataFrame([arch_features(a, batch_size, space=space) for a in cands]))
    spread = model.tree_spread(cand_samples)
    return [cands[i] for i in np.argsort(-spread)[:k]]

