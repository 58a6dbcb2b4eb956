"""Benchmark ``nas bench runtimes``: how much a network's latency depends on the runtime it is
deployed with, and on the thread count.

``n`` architectures spread over the space by MACs (seeded, batch ``batch_size``) are each
deployed in PyTorch eager and in every runtime of ``runtimes`` (:mod:`profilers.runtimes`: the
files ``nas export`` writes), and at each thread count of ``threads`` every runtime is timed
**interleaved with PyTorch eager**, in one process (:func:`profilers.timing.measure_latency_paired`):
the ratio ``runtime / torch`` of two medians taken side by side, which the machine's drifting
speed does not disturb. The two alternate in blocks of about :data:`RUNTIME_BLOCK_MS` whose first
call is untimed: ONNX Runtime's and PyTorch's intra-op thread pools each keep their threads
spinning for a while after a call, and called one by one in alternation at two threads on two
cores, each runtime ran with the other's pool still spinning (PyTorch eager twice as slow as
beside TorchScript) — a contention of this benchmark, not of either deployment. The blocks
remove most of it, not all: on this 2-core machine eager at 2 threads still ran about 15 %
slower beside ONNX Runtime than beside TorchScript, so ratios at as many threads as cores are
the less exact ones (``median_torch_latency_ms`` per runtime shows it). The record gives per
runtime and thread count the distribution of those
ratios (median, p10, p90, min, max, the share of architectures the runtime runs faster) and the
Kendall τ between the two runtimes' latencies (whether they rank architectures alike); per
runtime, the speed-up from the fewest to the most threads (latency ratio, each measured
interleaved with the same eager model at its thread count). Every measurement is a row of
``runtimes.csv``; the summary is ``runtimes.json``.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from nas.profiling import PAIRED_LATENCY
from nas.profiling.adaptive import macs_key
from nas.rundir import write_json
from predictors.metrics import kendall_tau
from profilers import backend_for, check_runtime, create_runtime, device_fingerprint
from profilers.timing import measure_latency_paired
from search_spaces.layers import check_positive_int
from search_spaces.networks import QuadraNet
from search_spaces.space import create_space

__all__ = ["RUNTIME_BLOCK_MS", "RuntimeBenchConfig", "run_runtime_bench"]

# Each runtime's turn in the interleaved timing: about this long, its first call untimed.
RUNTIME_BLOCK_MS = 20.0


@dataclass(frozen=True)
class RuntimeBenchConfig:
    space: str = "cifar10-m"  # search space
    n: int = 50  # architectures, spread over the space by MACs
    batch_size: int = 1  # batch size timed
    threads: tuple[int, ...] = (1, 2)  # thread counts, each runtime timed at each
    runtimes: tuple[str, ...] = ("onnxruntime", "torchscript")  # runtimes compared with PyTorch eager
    device: str = "cpu"  # cpu or cuda[:N]
    seed: int = 0  # seed of the architectures chosen and of their order

    def __post_init__(self) -> None:
        create_space(self.space)
        check_positive_int("n", self.n)
        check_positive_int("batch_size", self.batch_size)
        object.__setattr__(self, "threads", tuple(self.threads))
        runtimes = self.runtimes.split(",") if isinstance(self.runtimes, str) else self.runtimes  # --runtimes a,b
        object.__setattr__(self, "runtimes", tuple(r.strip() for r in runtimes if r.strip()))
        if not self.threads:
            raise ValueError("threads must name at least one thread count")
        for t in self.threads:
            check_positive_int("threads", t)
        if not self.runtimes:
            raise ValueError("runtimes must name at least one runtime to compare with torch")
        for r in self.runtimes:
            check_runtime(r, option="runtimes")
            if r == "torch":
                raise ValueError("runtimes are compared with torch (eager): name the others "
                                 "(torchscript, onnxruntime)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")


def _distribution(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {"median": float(np.median(v)), "p10": float(np.quantile(v, 0.1)), "p90": float(np.quantile(v, 0.9)),
            "min": float(v.min()), "max": float(v.max()), "share_below_1": float(np.mean(v < 1.0)), "n": int(len(v))}


def run_runtime_bench(config: RuntimeBenchConfig, *, out: str | Path, progress: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = Path(out)
    backend = backend_for(config.device)
    fps = {r: device_fingerprint(config.device, threads=config.threads[0], runtime=r) for r in config.runtimes}
    out.mkdir(parents=True, exist_ok=True)
    space = create_space(config.space)
    archs = space.spread(config.n, key=macs_key(space, config.batch_size), seed=config.seed,
                         pool=max(400, 10 * config.n))
    random.Random(config.seed).shuffle(archs)  # drift of the machine does not line up with size
    runtimes = {name: create_runtime(name) for name in ("torch", *config.runtimes)}
    x = torch.randn((config.batch_size, *space.input_shape), generator=torch.Generator().manual_seed(0))
    x = x.to(backend.device)
    rows = []
    for arch in tqdm(archs, desc=f"runtimes {space.name}", unit="arch", disable=not progress):
        model = QuadraNet(space.to_net_config(arch)).eval()
        for threads in config.threads:
            with backend.threads(threads):
                eager = runtimes["torch"].deploy(model, input_shape=space.input_shape, device=backend.device,
                                                 threads=threads).infer_fn(x)
                for name in config.runtimes:
                    other = runtimes[name].deploy(model, input_shape=space.input_shape, device=backend.device,
                                                  threads=threads).infer_fn(x)
                    stats, ref = measure_latency_paired(other, eager, backend.device, **asdict(PAIRED_LATENCY),
                                                        block_ms=RUNTIME_BLOCK_MS)
                    rows.append({"arch_id": arch.arch_id, "threads": threads, "runtime": name,
                                 "latency_ms": stats.median_ms, "torch_latency_ms": ref.median_ms,
                                 "ratio": stats.median_ms / ref.median_ms,
                                 "stable": bool(stats.stable and ref.stable), "arch_json": arch.to_json()})
    table = pd.DataFrame(rows)
    table.to_csv(out / "runtimes.csv", index=False)
    record: dict[str, Any] = {"space": config.space, "device": config.device, "device_name": backend.name(),
                              "batch_size": config.batch_size, "ratio": "runtime latency / torch eager latency, "
                              "timed interleaved at the same thread count", "runtimes": {}}
    lo, hi = min(config.threads), max(config.threads)
    for name in config.runtimes:
        per: dict[str, Any] = {"fingerprint_id": fps[name].fingerprint_id, "by_threads": {}}
        mine = table[table["runtime"] == name]
        for threads in config.threads:
            rows_t = mine[mine["threads"] == threads]
            per["by_threads"][str(threads)] = {
                "ratio": _distribution(list(rows_t["ratio"])),
                "kendall_tau_vs_torch": kendall_tau(rows_t["latency_ms"].to_numpy(),
                                                    rows_t["torch_latency_ms"].to_numpy()),
                "median_latency_ms": float(rows_t["latency_ms"].median()),
                "median_torch_latency_ms": float(rows_t["torch_latency_ms"].median()),
                "unstable": int((~rows_t["stable"]).sum())}
        if lo != hi:
            a = mine[mine["threads"] == lo].set_index("arch_id")
            b = mine[mine["threads"] == hi].set_index("arch_id")
            # across thread counts the medians were not timed interleaved: minutes apart at most (same arch)
            per[f"speedup_{lo}_to_{hi}_threads"] = _distribution(list(a["latency_ms"] / b["latency_ms"]))
            per[f"torch_speedup_{lo}_to_{hi}_threads"] = _distribution(
                list(a["torch_latency_ms"] / b["torch_latency_ms"]))
            per[f"ratio_{lo}_threads_vs_torch_{hi}_threads"] = _distribution(
                list(a["latency_ms"] / b["torch_latency_ms"]))
        record["runtimes"][name] = per
    record["config"] = asdict(config)
    record["minutes"] = (time.perf_counter() - t0) / 60.0
    record["median_ratio_overall"] = {n: statistics.median(table[table["runtime"] == n]["ratio"])
                                      for n in config.runtimes}
    write_json(out / "runtimes.json", record)
    return record
