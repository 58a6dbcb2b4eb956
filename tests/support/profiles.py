"""Synthetic profile tables: architectures of a space with closed-form costs, as ``nas profile``
would record them (one device fingerprint, every column a predictor reads)."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pandas as pd

from predictors.features import arch_features
from profilers.fingerprint import DeviceFingerprint
from search_spaces.arch import ArchConfig
from search_spaces.space import create_space

FP = DeviceFingerprint(kind="cpu", name="Test CPU", torch_version="x", cpu_cores=2, threads=2)
OTHER_FP = replace(FP, name="Other CPU")
TRAIN_BATCHES = (1, 8)


def sample_archs(space_name: str, n: int, *, seed: int, exclude: set[str] = frozenset()) -> list[ArchConfig]:
    """``n`` distinct members of a space, sampled with ``random.Random(seed + i)``."""
    space = create_space(space_name)
    out: dict[str, ArchConfig] = {}
    i = 0
    while len(out) < n:
        a = space.sample(random.Random(seed + i))
        i += 1
        if a.arch_id not in exclude:
            out.setdefault(a.arch_id, a)
    return list(out.values())


def latency_true(f: dict[str, float]) -> float:
    """Synthetic latency (ms): a fixed cost, compute, and a per-kernel overhead."""
    return 0.2 + 1e-6 * f["macs"] + 0.01 * f["n_ops"]


def profile_row(arch: ArchConfig, batch_size: int, latency_ms: float | None = None, *, fp: DeviceFingerprint = FP,
         pass_: int = 0, **extra) -> dict:
    """One profile row; memory columns follow the features (MB), latency defaults to the true one."""
    f = arch_features(arch, batch_size)
    row = {
        "arch_id": arch.arch_id, "space": arch.space, "batch_size": batch_size, "device": fp.kind,
        "fingerprint_id": fp.fingerprint_id, "fingerprint": fp.to_json(),
        "latency_ms": latency_true(f) if latency_ms is None else latency_ms,
        "peak_infer_mem_mb": 20.0 + f["infer_peak_bytes"] / 2**20,
        "peak_train_mem_mb": 30.0 + (f["saved_bytes"] + 3 * f["param_bytes"]) / 2**20,
        "arch_json": arch.to_json(), "pass": pass_,
    }
    row.update(extra)
    return row


def profile_table(archs, batch_sizes=TRAIN_BATCHES, *, noise: float = 0.0, seed: int = 0, fp: DeviceFingerprint = FP,
           **extra) -> pd.DataFrame:
    """Every arch at every batch size, latency = true × (1 + noise·N(0, 1))."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in archs:
        for b in batch_sizes:
            true = latency_true(arch_features(a, b))
            rows.append(profile_row(a, b, true * (1.0 + noise * rng.standard_normal()), fp=fp, **extra))
    return pd.DataFrame(rows)
