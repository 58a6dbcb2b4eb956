"""Build a profile dataset: sample architectures of a space, measure them, append to a table.

``collect_profiles`` (what ``nas profile`` runs):

1. **Spread**: ``n − n_adaptive`` architectures spread over the space by estimated cost (MACs
   at the batch size): the smallest, the largest and evenly spaced quantiles of a large random
   pool (:meth:`SearchSpace.spread`), seeded.
2. **Adaptive**: the rest in rounds. Each round fits a residual random forest (the
   ``forest`` cost model) to the latencies measured so far (relative to the reference, 4.), takes the architectures it
   predicts worst out of fold, mutates them (:meth:`SearchSpace.mutate`) into candidates, and
   measures the candidates the forest's trees disagree on most — sampling where the current
   predictor errs.
3. Every architecture is measured again in ``passes − 1`` later passes, each in its own seeded
   order, so a burst of load from other tenants of a shared machine hits one measurement of an
   architecture, not all; the table keeps every pass and fitting uses their median. (Measuring a
   third pass only where the first two disagreed by over 3 % saved a third of the passes on
   digits-s but cost held-out Kendall τ, 0.959 → 0.944 in ``nas bench predictors``: all passes
   stay.) An architecture whose passes still disagree — median absolute deviation over the median above
   ``max_pass_mad`` — gets extra passes, up to ``max_passes``. Repeat passes time the network
   only: its memory, the same to the byte in every pass on the CPU, is measured in the first
   (with per-op records, on CUDA, every pass records them).
4. A fixed **reference architecture** (:func:`reference_arch`, the middle choice in every
   dimension) is timed interleaved with every measurement, call by call
   (:func:`profilers.timing.measure_latency_paired`), and each row records its latency
   (``ref_latency_ms``): the machine's speed at that moment. A shared machine's speed moves by
   tens of percent from one second to the next and drifts over minutes, while the ratio of
   two interleaved medians holds to about a percent; predictors learn latency at one reference
   speed (see :class:`predictors.Predictor`, ``normalize``).
5. Each measurement is :func:`profilers.profile`; a measurement whose ratio to the reference
   never settled (a busy machine) is retried — timed alone (no reference), also one whose
   spread ``(p90 − p10) / median`` exceeds ``max_spread``: beside the reference, that spread
   mostly shows the machine's speed swings, which the ratio cancels. The first good try is
   kept, else the tightest, and its row says so in ``suspect``.

With ``with_ops`` (default on CUDA) each measurement's per-op records and, on CUDA, per-kernel
records (grid, block, registers, shared memory, occupancy, waves) go to ``TABLE.records.jsonl``
beside the table, one JSON line per measurement; the row keeps the kernel count and waves.

Rows are appended to the CSV table as they are measured (:mod:`predictors.table`), keyed by
(arch_id, batch size, device fingerprint, pass): a run that is interrupted resumes where it stopped,
skipping what the table already holds for this device, and rows of other devices are kept
untouched.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from nas.profiling.adaptive import adaptive_candidates, macs_key
from nas.profiling.config import ProfileRunConfig
from nas.profiling.measure import deploy_reference, measure_arch, reference_arch
from nas.rundir import append_json_line
from predictors.table import aggregate_profiles, append_profile_row, read_profiles, rows_for
from profilers import LatencySettings, device_fingerprint, profile
from search_spaces.arch import ArchConfig
from search_spaces.space import arch_ids, create_space

__all__ = ["collect_profiles", "records_path"]


def records_path(table: str | Path) -> Path:
    """Where the per-op and per-kernel records of a profile table go: ``TABLE.records.jsonl``."""
    table = Path(table)
    return table.with_name(table.name + ".records.jsonl")


def collect_profiles(config: ProfileRunConfig, out: str | Path, *, exclude: Iterable[str | ArchConfig] = frozenset(),
                     progress: bool = True, on_row: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Profile until ``out`` holds ``config.n`` architectures × ``config.passes`` passes of this
    space, device and batch size.

    Pass 0 picks and measures the architectures (spread, then adaptive rounds); later passes
    measure the same architectures again, each pass in its own seeded order. ``exclude`` lists
    architectures (arch_ids or ArchConfigs) never to profile (a training set, when building a
    held-out one). Returns this
    device's rows for the space and batch size, aggregated over passes
    (:func:`predictors.table.aggregate_profiles`); ``attrs["minutes"]`` is this call's time.
    """
    out = Path(out)
    exclude = arch_ids(exclude)
    space = create_space(config.space)
    fp = device_fingerprint(config.device, threads=config.threads, runtime=config.runtime)
    fp_id = fp.fingerprint_id

    def mine() -> pd.DataFrame:
        if not out.exists() or out.stat().st_size == 0:
            return pd.DataFrame(columns=["arch_id", "batch_size", "fingerprint_id", "arch_json", "latency_ms", "pass"])
        return rows_for(read_profiles(out), fingerprint_id=fp_id, batch_sizes=[config.batch_size], space=space.name)

    rows = mine()
    done = set(zip(rows["arch_id"].astype(str), rows["pass"].astype(int))) if len(rows) else set()
    chosen = list(dict.fromkeys(rows.loc[rows["pass"].astype(int) == 0, "arch_id"].astype(str))) if len(rows) else []
    arch_of = {r.arch_id: ArchConfig.from_json(r.arch_json) for r in rows.itertuples()} if len(rows) else {}
    taken = set(chosen) | set(exclude)
    t0 = time.perf_counter()
    total = config.n * config.passes
    have = min(len(done), total)
    bar = tqdm(total=total, initial=have, desc=f"profile {space.name} b{config.batch_size}",
               unit="run", disable=not progress)

    ref_arch = reference_arch(space)
    # deployed once in the run's runtime: every measurement times it
    ref_model = deploy_reference(space, config.target)

    def measure(arch: ArchConfig, p: int, source: str) -> None:
        # memory in the first pass; every pass where per-op records are kept (they come with it)
        rec = measure_arch(arch, config, reference=ref_model, with_memory=p == 0 or config.records_ops)
        row = rec.to_row()
        row["ref_arch_id"] = ref_arch.arch_id
        row["sample_source"] = source
        row["pass"] = p
        if config.records_ops:
            # Written before the table row, so a row on disk always has its records (a kill in between
            # leaves a record whose measurement is repeated on resume: readers keep the last one).
            append_json_line(records_path(out), {"arch_id": arch.arch_id, "batch_size": config.batch_size,
                                                "fingerprint_id": fp_id, "pass": p,
                                                "ops": [o.to_dict() for o in rec.ops],
                                                "kernels": [k.to_dict() for k in rec.kernels]})
        append_profile_row(out, row)
        done.add((arch.arch_id, p))
        bar.update(1)
        if on_row is not None:
            on_row(row)

    try:
        if len(done) < total:
            # One untimed pass so the first measurement does not pay for library start-up.
            profile(space.max_arch(), device=config.device, batch_size=config.batch_size, threads=config.threads,
                    latency=LatencySettings(warmup=1, warmup_seconds=0.0, min_repeats=2, max_repeats=2),
                    with_ops=False, runtime=config.runtime)
        # Pass 0: choose and measure. Spread plan first (measured in a shuffled order, so any
        # drift of the machine over the run does not line up with architecture size).
        n_spread = config.n - config.n_adaptive
        plan = space.spread(n_spread, key=macs_key(space, config.batch_size), seed=config.seed,
                            pool=max(400, 10 * n_spread), exclude=exclude)
        random.Random(config.seed).shuffle(plan)
        for arch in plan:
            if len(chosen) >= config.n:
                break
            if arch.arch_id not in taken:
                chosen.append(arch.arch_id)
                taken.add(arch.arch_id)
                arch_of[arch.arch_id] = arch
                measure(arch, 0, "spread")
        rng = random.Random(config.seed + 1)
        per_round = max(1, -(-(config.n - len(chosen)) // config.adaptive_rounds))
        while len(chosen) < config.n:
            k = min(per_round, config.n - len(chosen))
            first = aggregate_profiles(mine())
            for arch in adaptive_candidates(space, first, k, rng, taken, config.batch_size, config.seed):
                chosen.append(arch.arch_id)
                taken.add(arch.arch_id)
                arch_of[arch.arch_id] = arch
                measure(arch, 0, "adaptive")
        # Later passes: the same architectures again, each pass in its own order.
        for p in range(1, config.passes):
            order = list(chosen[: config.n])
            random.Random(config.seed * 1000 + p).shuffle(order)
            for arch_id in order:
                if (arch_id, p) not in done:
                    measure(arch_of[arch_id], p, "repeat")
        # Extra passes for architectures whose passes disagree (a burst of load hit some).
        for p in range(config.passes, config.max_passes):
            agg = aggregate_profiles(mine())
            paired = "ref_ratio_pass_mad" in agg and agg["ref_ratio_pass_mad"].notna().all()
            mad_col = "ref_ratio_pass_mad" if paired else "latency_pass_mad"
            noisy = [a for a, mad, n in zip(agg["arch_id"].astype(str), agg[mad_col], agg["passes"])
                     if a in arch_of and ((mad > config.max_pass_mad and n <= p) or (a, p) in done)]
            todo = [a for a in noisy if (a, p) not in done]
            if not noisy:
                break
            bar.total += len(todo)
            bar.refresh()
            random.Random(config.seed * 1000 + p).shuffle(todo)
            for arch_id in todo:
                measure(arch_of[arch_id], p, "repeat")
    finally:
        bar.close()
    table = aggregate_profiles(mine())
    table.attrs["minutes"] = (time.perf_counter() - t0) / 60.0
    return table
