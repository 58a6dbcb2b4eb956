"""``nas bench ranking``: does the supernet rank architectures like stand-alone training does?

1. Train the supernet of ``space`` with the default recipe (sandwich rule, in-place
   distillation) for ``supernet_epochs`` (default: ``epochs``; the search's own supernet trains
   for 30).
2. Pick ``k`` subnets with a fixed seed, spread from smallest to largest: the space's min and
   max, plus ``k - 2`` of 400 random samples at evenly spaced quantiles of parameter count.
3. Evaluate each with inherited weights on the validation split.
4. Train each from scratch with the same recipe (``TrainConfig``, ``epochs``), once per seed in
   ``seeds`` (default 3), and take the mean final validation accuracy: on small validation
   sets one training run's accuracy moves by about as much as architectures differ.
5. Report Kendall's τ-b and Spearman's ρ between the two, the largest subnet's inherited and
   stand-alone accuracy (validation, and test for reference), the mean absolute gap and the
   minutes it all took. Accuracies are in percent.

Run directory: ``config.json`` (the benchmark's settings), ``supernet/`` (a supernet run),
``standalone.jsonl`` (one line per finished stand-alone run, appended as each ends) and, at
the end, ``ranking.json``. A run stopped part-way continues with ``resume=True``
(``--resume``): a finished supernet is loaded, an unfinished one resumes from its checkpoint,
and only the stand-alone runs missing from ``standalone.jsonl`` are trained. The settings must
be the stored ones (a difference is refused, naming it); ``minutes`` counts this invocation,
``standalone_runs_reused`` the runs an earlier one finished.

Diagnostics, to read τ against what the data allows:

- ``standalone_seed_range``: mean over subnets of max − min accuracy across seeds.
- ``standalone_seed_tau``: mean over pairs of seeds of Kendall's τ between one seed's
  stand-alone accuracies and another's — how well stand-alone training agrees with *itself*.
  No ranker can be expected to agree with a single stand-alone run better than that; the
  seed mean it is compared with is steadier, but when this is far below a τ target the target
  measures training noise, not the supernet. ``None`` with one seed (or when no two seeds
  rank the subnets at all).
- ``standalone_split_half_tau``: Kendall's τ between the mean over the even-numbered seeds and
  the mean over the odd-numbered ones — the agreement of two half-size references, a floor for
  how reliable the full seed mean is. ``None`` with one seed (or a half without a ranking).
- ``standalone_arch_std``, ``standalone_seed_std``, ``standalone_mean_reliability`` and
  ``kendall_tau_ceiling``: a one-way random-effects split of the stand-alone accuracies
  (subnets × seeds) into the spread of the architectures' true accuracies and the spread of one
  training run around its architecture's (both in points); the reliability of the seed mean
  (the share of its variance that is architecture, ICC(1,k)); and the τ a *perfect* ranker can
  expect against that mean, (2/π)·arcsin(√reliability) — exact for bivariate normal data
  (Greiner's relation), a guide otherwise. ``None`` with one seed, or when the subnets' means are
  all equal.
- ``kendall_tau_params``: τ between parameter count and stand-alone accuracy — ranking by size
  alone, the baseline a supernet has to beat to add anything.
- ``kendall_tau_val_loss`` (and ``standalone_seed_tau_val_loss``): the same on validation
  *loss*, a finer-grained signal than accuracy.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from scipy.stats import kendalltau, spearmanr
from tqdm.auto import tqdm

from nas.data import load_dataset
from nas.data.task import resolve_task
from nas.rundir import (
    append_json_line,
    default_run_dir,
    file_in_the_way,
    prepare_bench_dir,
    write_json,
    write_text,
)
from nas.train import (
    SupernetConfig,
    TrainConfig,
    check_data,
    evaluate,
    evaluate_arch,
    finished_supernet,
    set_seed,
    train_model,
)
from search_spaces.arch import ArchConfig
from search_spaces.layers import check_positive_int
from search_spaces.networks import QuadraNet, count_params
from search_spaces.space import SearchSpace, create_space

__all__ = [
    "RUNS_FILE", "SUMMARY_FIELDS", "RankingBenchConfig", "arch_params", "finished_runs", "mean_pairwise_tau",
    "ranking_run_dir", "run_ranking_bench", "seed_variance", "split_half_tau", "spread_archs",
]

_CANDIDATES = 400
RUNS_FILE = "standalone.jsonl"
_KIND = "nas-bench-ranking"
# The record's headline figures, in the order a printout shows them.
SUMMARY_FIELDS = ("kendall_tau", "spearman", "largest_inherited_acc", "largest_standalone_acc",
                  "largest_inherited_test_acc", "largest_standalone_test_acc", "mean_abs_gap", "standalone_seed_range",
                  "standalone_seed_tau", "standalone_split_half_tau", "standalone_arch_std", "standalone_seed_std",
                  "standalone_mean_reliability", "kendall_tau_ceiling", "kendall_tau_params", "kendall_tau_val_loss",
                  "standalone_seed_tau_val_loss", "minutes")


@dataclass(frozen=True)
class RankingBenchConfig:
    space: str = "digits-s"  # search space, or a template (s, m, l) fitted to --dataset
    dataset: str | None = None  # default: the space's own dataset
    data_dir: str | None = None  # directory holding the dataset files (cifar10)
    k: int = 10  # number of subnets
    epochs: int = 40  # stand-alone epochs, and the supernet's unless supernet_epochs is given
    supernet_epochs: int | None = None  # supernet epochs (default: epochs; the search trains it for 30)
    n_random: int = 2  # random subnets per supernet step besides largest and smallest
    distill: bool = True  # train the supernet with in-place distillation (--no-distill: the ablation)
    seed: int = 0  # seed of the supernet and the subnets chosen
    seeds: int = 3  # stand-alone training runs per subnet (seed, seed + 1, …; accuracy averaged)
    device: str = "cpu"  # cpu or cuda[:N]

    def __post_init__(self) -> None:
        check_positive_int("seeds", self.seeds)
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 3:
            raise ValueError(f"k must be an integer >= 3, got {self.k!r}")
        check_positive_int("epochs", self.epochs)
        if self.supernet_epochs is not None:
            check_positive_int("supernet_epochs", self.supernet_epochs)


def arch_params(space: SearchSpace, arch: ArchConfig) -> int:
    """Parameter count of ``arch``'s stand-alone network (built on the meta device: no memory)."""
    with torch.device("meta"):
        return count_params(QuadraNet(space.to_net_config(arch)))


def spread_archs(space: SearchSpace, k: int, *, seed: int) -> list[ArchConfig]:
    """``k`` distinct subnets from smallest to largest by parameter count (min, quantiles, max)."""
    return space.spread(k, key=lambda a: arch_params(space, a), seed=seed, pool=_CANDIDATES)


def _runs_per_subnet(runs: list[list[float]]) -> int:
    counts = {len(r) for r in runs}
    if len(counts) != 1:
        raise ValueError(f"every subnet needs the same number of runs, got {sorted(counts)}")
    return counts.pop()


def mean_pairwise_tau(runs: list[list[float]]) -> float | None:
    """Mean Kendall τ-b over pairs of columns of ``runs`` (rows: subnets, columns: seeds).

    ``None`` with fewer than two columns, or when every pair is undefined (a constant column).
    """
    n = _runs_per_subnet(runs)
    taus = [kendalltau([r[a] for r in runs], [r[b] for r in runs]).statistic
            for a, b in itertools.combinations(range(n), 2)]
    taus = [float(t) for t in taus if not math.isnan(t)]
    return statistics.mean(taus) if taus else None


def split_half_tau(runs: list[list[float]]) -> float | None:
    """Kendall τ-b between the per-row mean of the even-indexed and of the odd-indexed columns.

    ``None`` with fewer than two columns or when a half-mean is constant (no ranking).
    """
    if _runs_per_subnet(runs) < 2:
        return None
    tau = kendalltau([statistics.mean(r[0::2]) for r in runs], [statistics.mean(r[1::2]) for r in runs]).statistic
    return None if math.isnan(tau) else float(tau)


def seed_variance(runs: list[list[float]]) -> dict[str, float] | None:
    """Split ``runs`` (rows: subnets, columns: seeds) into architecture and seed variance.

    One-way random-effects ANOVA with ``n`` seeds: ``MSB`` = n · variance of the row means,
    ``MSW`` = mean of the row variances. Returns ``arch_std`` = √max(0, (MSB − MSW) / n),
    ``seed_std`` = √MSW, ``reliability`` = max(0, (MSB − MSW) / MSB) (of the n-seed mean) and
    ``tau_ceiling`` = (2/π)·arcsin(√reliability). ``None`` with one seed or equal row means.
    """
    n = _runs_per_subnet(runs)
    if n < 2 or len(runs) < 2:
        return None
    msb = n * statistics.variance([statistics.mean(r) for r in runs])
    if msb == 0:
        return None
    msw = statistics.mean(statistics.variance(r) for r in runs)
    reliability = max(0.0, (msb - msw) / msb)
    return {"arch_std": math.sqrt(max(0.0, (msb - msw) / n)), "seed_std": math.sqrt(msw),
            "reliability": reliability, "tau_ceiling": 2 / math.pi * math.asin(math.sqrt(reliability))}


def finished_runs(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The stand-alone runs recorded in ``path`` by ``(arch_id, seed)``; a last line cut short by
    a crash is ignored (that run is trained again), any other damage is an error naming the line."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    runs = {}
    for i, line in enumerate(lines, start=1):
        try:
            run = json.loads(line)
            runs[(str(run["arch_id"]), int(run["seed"]))] = run
        except (ValueError, KeyError, TypeError):
            if i == len(lines):
                break
            raise ValueError(f"{path}, line {i}: not a stand-alone run record") from None
    return runs


def ranking_run_dir(config: RankingBenchConfig, out: str | Path | None, *, resume: bool = False) -> Path:
    """The benchmark's run directory: ``out``, or a new ``results/bench-ranking-SPACE-TIME``
    (``resume`` needs ``out``); a file in the way is refused before anything runs."""
    if resume and not out:
        raise ValueError("--resume needs --out: the benchmark's run directory to continue")
    out = Path(out) if out else default_run_dir("bench-ranking", config.space)
    blocker = file_in_the_way(out)
    if blocker is not None:
        raise ValueError(f"--out {out} cannot be a run directory: {blocker} is a file, not a directory")
    return out


def run_ranking_bench(config: RankingBenchConfig, *, out: str | Path, progress: bool = True,
                      resume: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    task = resolve_task(config.space, config.dataset, data_dir=config.data_dir)
    space, dataset = create_space(task.space), task.dataset
    recipe = TrainConfig(epochs=config.epochs, seed=config.seed, device=config.device)
    out = Path(out)
    splits = load_dataset(dataset, seed=config.seed, data_dir=config.data_dir,
                          **task.data_options)  # bad data: nothing written yet
    check_data(space, splits)
    prepare_bench_dir(out, {"kind": _KIND, **asdict(config), "space": space.name, "dataset": dataset,
                            "data_options": task.data_options},
                      resume=resume, free=frozenset({"device"}))
    sn_recipe = recipe if config.supernet_epochs is None else replace(recipe, epochs=config.supernet_epochs)
    sn_cfg = SupernetConfig(train=sn_recipe, n_random=config.n_random, distill=config.distill)
    supernet = finished_supernet(space=space.name, dataset=dataset, config=sn_cfg, out=out / "supernet",
                                 data_dir=config.data_dir, data_options=task.data_options,
                                 progress=progress).to(config.device)
    t_supernet = time.perf_counter() - t0
    archs = spread_archs(space, config.k, seed=config.seed)
    runs_path = out / RUNS_FILE
    finished = finished_runs(runs_path)
    seeds = range(config.seed, config.seed + config.seeds)
    reused = sum((arch.arch_id, seed) in finished for arch in archs for seed in seeds)
    if runs_path.is_file():  # rewrite without a cut-short last line before appending to it
        write_text(runs_path, "".join(json.dumps(r) + "\n" for r in finished.values()))

    rows = []
    bar = tqdm(total=len(archs) * config.seeds, initial=reused, desc="stand-alone", unit="run",
               disable=not progress, leave=False)
    for arch in archs:
        inh_val_loss, inh_val = evaluate_arch(supernet, arch, splits.val, device=config.device)
        _, inh_test = evaluate_arch(supernet, arch, splits.test, device=config.device)
        runs = []
        for seed in seeds:
            run = finished.get((arch.arch_id, seed))
            if run is None:
                set_seed(seed)
                net = QuadraNet(space.to_net_config(arch))
                trained = train_model(net, splits, replace(recipe, seed=seed), progress=False)
                loss, acc = evaluate(net, splits.val, device=config.device)
                run = {"arch_id": arch.arch_id, "seed": seed, "params": count_params(net), "val_acc": 100 * acc,
                       "val_loss": loss, "test_acc": 100 * trained.test_acc, "seconds": trained.seconds}
                append_json_line(runs_path, run)
                bar.update(1)
            runs.append(run)
        val_accs = [r["val_acc"] for r in runs]
        val_losses = [r["val_loss"] for r in runs]
        rows.append({
            "arch_id": arch.arch_id, "arch": arch.describe(), "params": runs[0]["params"],
            "inherited_val_acc": 100 * inh_val, "standalone_val_acc": statistics.mean(val_accs),
            "inherited_test_acc": 100 * inh_test, "standalone_test_acc": statistics.mean(r["test_acc"] for r in runs),
            "inherited_val_loss": inh_val_loss, "standalone_val_loss": statistics.mean(val_losses),
            "standalone_val_acc_per_seed": val_accs, "standalone_val_loss_per_seed": val_losses,
        })
    bar.close()

    inherited = [r["inherited_val_acc"] for r in rows]
    standalone = [r["standalone_val_acc"] for r in rows]
    acc_runs = [r["standalone_val_acc_per_seed"] for r in rows]  # rows: subnets, columns: seeds
    loss_runs = [r["standalone_val_loss_per_seed"] for r in rows]
    largest = rows[-1]
    variance = seed_variance(acc_runs) or dict.fromkeys(("arch_std", "seed_std", "reliability", "tau_ceiling"))
    record = {
        "kendall_tau": float(kendalltau(inherited, standalone).statistic),
        "spearman": float(spearmanr(inherited, standalone).statistic),
        "largest_inherited_acc": largest["inherited_val_acc"],
        "largest_standalone_acc": largest["standalone_val_acc"],
        "mean_abs_gap": sum(abs(a - b) for a, b in zip(inherited, standalone)) / len(rows),
        "minutes": (time.perf_counter() - t0) / 60,
        "largest_inherited_test_acc": largest["inherited_test_acc"],
        "largest_standalone_test_acc": largest["standalone_test_acc"],
        "supernet_minutes": t_supernet / 60,
        "standalone_runs_reused": reused,
        "standalone_seed_range": statistics.mean(max(accs) - min(accs) for accs in acc_runs),
        "standalone_seed_tau": mean_pairwise_tau(acc_runs),
        "standalone_split_half_tau": split_half_tau(acc_runs),
        "standalone_arch_std": variance["arch_std"],
        "standalone_seed_std": variance["seed_std"],
        "standalone_mean_reliability": variance["reliability"],
        "kendall_tau_ceiling": variance["tau_ceiling"],
        "kendall_tau_params": float(kendalltau([r["params"] for r in rows], standalone).statistic),
        "kendall_tau_val_loss": float(kendalltau([r["inherited_val_loss"] for r in rows],
                                                 [r["standalone_val_loss"] for r in rows]).statistic),
        "standalone_seed_tau_val_loss": mean_pairwise_tau(loss_runs),
        "acc_unit": "percent; *_acc on the validation split unless named *_test_acc",
        "subnets": rows,
        "config": {**asdict(config), "dataset": dataset, "supernet_run": str(out / "supernet")},
    }
    write_json(out / "ranking.json", record)
    return record
