"""``nas bench picks``: is the search's pick a good network, trained from scratch?

1. Run ``nas-search`` for one budget (``search/``; the given budget, else the tighter of the
   automatic ones) — its pick is measured on the device and meets the budget. Or take the first
   budget's pick of a finished run (``search``): its space, data and device then hold.
2. Draw random architectures of the space (seeded) and measure each stand-alone network on the
   device until ``k_random`` meet the same budget when measured.
3. The space's uniform hand-designed QuadraNet of similar cost: every block quadratic with the
   largest kernel and MLP ratio (QuadraNet's 7×7, ratio 4 where the space allows them), depth
   and width scaled together over the stages' choices; of those that meet the budget when
   measured, the one whose measured latency is closest to the pick's.
4. Train each from scratch with the same recipe (``epochs``), once per seed in ``seeds``, on the
   search's own data split, and evaluate it on the test split.

The record (``picks_bench.json``) gives each network's mean test accuracy with its standard
error over seeds (std / √seeds), its parameters and measured cost, the pick's rank among all of
them (1 = best), the random architectures' median and the pick's gap to it (points), and
``pick_at_least_random_median``. Accuracies are in percent. ``standalone.jsonl`` keeps one line
per finished training run: ``resume=True`` trains only the missing ones, and a finished search
or candidate measurement is reused.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from nas.bench.ranking import finished_runs
from nas.data import load_dataset
from nas.rundir import (
    append_json_line,
    prepare_bench_dir,
    read_record_json,
    read_run_config,
    write_json,
)
from nas.search import SearchConfig, run_search
from nas.search.budgets import Budget
from nas.train import TrainConfig, set_seed, train_model
from profilers import check_device, profile
from search_spaces.arch import ArchConfig, BlockArch, StageArch
from search_spaces.layers import check_positive_int
from search_spaces.networks import QuadraNet, count_params
from search_spaces.space import SearchSpace, create_space

__all__ = ["PicksBenchConfig", "run_picks_bench", "uniform_candidates"]

RUNS_FILE = "standalone.jsonl"
CANDIDATES_FILE = "candidates.json"
RECORD_FILE = "picks_bench.json"
_KIND = "nas-bench-picks"
_UNIFORM_LEVELS = 9
_MAX_DRAWS_PER_RANDOM = 40


@dataclass(frozen=True)
class PicksBenchConfig:
    space: str = "s"  # search space, or a template (s, m, l) fitted to --dataset
    dataset: str | None = "cluttered-digits"  # dataset (see `nas datasets`)
    data_dir: str | None = None  # the dataset's folder or file
    latency_budget_ms: float | None = None  # the budget's latency limit (default: the search's tighter automatic one)
    memory_budget_mb: float | None = None  # the budget's memory limit
    k_random: int = 5  # random architectures that meet the budget when measured
    seeds: int = 3  # training runs per network (seed, seed + 1, …)
    epochs: int = 15  # stand-alone training epochs
    supernet_epochs: int | None = None  # the search's supernet epochs (default: the search's own)
    trials: int | None = None  # the search's trials (default: the search's own)
    quick: bool = False  # the search with its quick settings (a first look, or a test)
    search: str | None = None  # a finished nas-search run to take the pick from (its first budget) instead of searching
    seed: int = 0  # seed of the search, the random draws and the first training run
    device: str = "cpu"  # cpu or cuda[:N]
    threads: int | None = None  # CPU threads for measuring (default: torch's setting)

    def __post_init__(self) -> None:
        if isinstance(self.k_random, bool) or not isinstance(self.k_random, int) or self.k_random < 5:
            raise ValueError(f"k_random must be an integer >= 5, got {self.k_random!r}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 3:
            raise ValueError(f"seeds must be an integer >= 3 (a standard error needs them), got {self.seeds!r}")
        check_positive_int("epochs", self.epochs)
        check_device(self.device)


def _uniform_arch(space: SearchSpace, level: float) -> ArchConfig:
    """Every block quadratic (order 2 if allowed) with the largest kernel and MLP ratio; each
    stage's depth and width at the same fraction ``level`` of its choices."""
    def at(choices: tuple[int, ...]) -> int:
        return choices[round(level * (len(choices) - 1))]

    block = BlockArch(kernel_size=max(space.kernel_choices), mlp_ratio=max(space.mlp_ratio_choices),
                      order=max(space.order_choices))
    return ArchConfig(space=space.name, stages=tuple(StageArch(width=at(ws), blocks=(block,) * at(ds))
                                                     for ds, ws in zip(space.depth_choices, space.width_choices)))


def uniform_candidates(space: SearchSpace) -> list[ArchConfig]:
    """The space's uniform QuadraNets, smallest to largest (distinct)."""
    seen: dict[str, ArchConfig] = {}
    for level in np.linspace(0.0, 1.0, _UNIFORM_LEVELS):
        arch = _uniform_arch(space, float(level))
        seen.setdefault(arch.arch_id, arch)
    return list(seen.values())


def _measure(space: SearchSpace, arch: ArchConfig, search_cfg: dict[str, Any]) -> dict[str, Any]:
    """As the search's picks are measured: its device, batch size, threads and seed."""
    net = QuadraNet(space.to_net_config(arch)).eval()
    rec = profile(net, device=search_cfg["device"], batch_size=int(search_cfg["batch_size"]),
                  threads=search_cfg.get("threads"), with_ops=False, seed=int(search_cfg["seed"]))
    return {"latency_ms": rec.latency.median_ms, "peak_mem_mb": rec.peak_infer_mem_mb, "params": count_params(net),
            "suspect": rec.suspect}


def _candidates(space: SearchSpace, pick: dict[str, Any], budget: Budget, config: PicksBenchConfig,
                search_cfg: dict[str, Any], progress: bool) -> dict[str, Any]:
    """The random architectures and the uniform QuadraNet, each measured (see the module docstring)."""
    rng = random.Random(config.seed)
    randoms, draws, tried = [], 0, {pick["arch_id"]}
    bar = tqdm(total=config.k_random, desc="random archs meeting the budget", disable=not progress)
    while len(randoms) < config.k_random and draws < _MAX_DRAWS_PER_RANDOM * config.k_random:
        arch = space.sample(rng)
        draws += 1
        if arch.arch_id in tried:
            continue
        tried.add(arch.arch_id)
        m = _measure(space, arch, search_cfg)
        if budget.meets(m["latency_ms"], m["peak_mem_mb"]):
            randoms.append({"role": "random", "arch": arch.to_dict(), "arch_id": arch.arch_id, "measured": m})
            bar.update(1)
    bar.close()
    if len(randoms) < config.k_random:
        raise ValueError(f"only {len(randoms)} of {draws} random architectures of {space.name} meet {budget.label} "
                         f"when measured; k_random={config.k_random} needs a looser budget")
    target = pick["measured"]["latency_ms"]
    uniform = None
    for arch in uniform_candidates(space):
        m = _measure(space, arch, search_cfg)
        if budget.meets(m["latency_ms"], m["peak_mem_mb"]) and (
                uniform is None or abs(m["latency_ms"] - target) < abs(uniform["measured"]["latency_ms"] - target)):
            uniform = {"role": "uniform", "arch": arch.to_dict(), "arch_id": arch.arch_id, "measured": m}
    return {"random": randoms, "random_draws": draws, "uniform": uniform}


def _search(config: PicksBenchConfig, out: Path, progress: bool) -> tuple[dict[str, Any], Budget, dict[str, Any]]:
    """The search's pick for one budget (run, resumed or read back) and the search's config record."""
    search_dir = Path(config.search) if config.search is not None else out / "search"
    if config.search is not None and not (search_dir / "picks.json").is_file():
        raise FileNotFoundError(f"--search {search_dir} holds no picks.json: not a finished nas-search run")
    if not (search_dir / "picks.json").is_file():
        budgets = {}
        if config.latency_budget_ms is not None or config.memory_budget_mb is not None:
            budgets = {"latency_budgets_ms": () if config.latency_budget_ms is None else (config.latency_budget_ms,),
                       "memory_budgets_mb": () if config.memory_budget_mb is None else (config.memory_budget_mb,)}
        run_search(SearchConfig(space=config.space, dataset=config.dataset, data_dir=config.data_dir,
                                device=config.device, seed=config.seed, out=str(search_dir), threads=config.threads,
                                supernet_epochs=config.supernet_epochs, trials=config.trials, quick=config.quick,
                                resume=(search_dir / "config.json").is_file(), **budgets), progress=progress)
    picks = read_record_json(search_dir / "picks.json")["picks"]
    pick = picks[0]
    if pick["status"] != "met":
        raise ValueError(f"the search's pick for {pick['budget']['label']} is {pick['status']} ({pick['message']}); "
                         f"the benchmark compares a pick that meets its budget: give another budget")
    return pick, Budget.from_dict(pick["budget"]), read_run_config(search_dir)


def _train_all(networks: list[dict[str, Any]], config: PicksBenchConfig, search_cfg: dict[str, Any], space, out: Path,
               progress: bool) -> tuple[dict[tuple[str, int], dict[str, Any]], int]:
    runs_path = out / RUNS_FILE
    finished = finished_runs(runs_path)
    reused = len(finished)
    splits = load_dataset(search_cfg["dataset"], seed=search_cfg["data_seed"], data_dir=search_cfg.get("data_dir"),
                          **(search_cfg.get("data_options") or {}))
    todo = [(n, config.seed + s) for n in networks for s in range(config.seeds)
            if (n["arch_id"], config.seed + s) not in finished]
    for net_rec, seed in tqdm(todo, desc="train from scratch", unit="run", disable=not progress):
        arch = ArchConfig.from_dict(net_rec["arch"])
        set_seed(seed)
        net = QuadraNet(space.to_net_config(arch))
        result = train_model(net, splits, TrainConfig(epochs=config.epochs, seed=seed, device=config.device),
                             progress=False)
        row = {"arch_id": arch.arch_id, "seed": seed, "role": net_rec["role"], "test_acc": 100.0 * result.test_acc,
               "val_acc": 100.0 * result.history[-1].val_acc, "seconds": result.seconds}
        append_json_line(runs_path, row)
        finished[(arch.arch_id, seed)] = row
    return finished, reused


def run_picks_bench(config: PicksBenchConfig, *, out: str | Path, progress: bool = True,
                    resume: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = Path(out)
    prepare_bench_dir(out, {"kind": _KIND, **asdict(config)}, resume=resume, free=frozenset({"device", "threads"}))
    pick, budget, search_cfg = _search(config, out, progress)
    t_search = time.perf_counter() - t0
    space = create_space(search_cfg["space"])
    cand_path = out / CANDIDATES_FILE
    if cand_path.is_file():
        candidates = read_record_json(cand_path, writer="nas bench picks")
    else:
        candidates = _candidates(space, pick, budget, config, search_cfg, progress)
        write_json(cand_path, candidates)
    pick_arch = ArchConfig.from_dict(pick["arch"])
    pick_net = {"role": "pick", "arch": pick["arch"], "arch_id": pick["arch_id"],
                "measured": {"latency_ms": pick["measured"]["latency_ms"],
                             "peak_mem_mb": pick["measured"]["peak_mem_mb"],
                             "params": count_params(QuadraNet(space.to_net_config(pick_arch))),
                             "suspect": pick["measured"].get("suspect")}}
    networks = [pick_net, *candidates["random"]] + ([candidates["uniform"]] if candidates["uniform"] else [])
    runs, reused = _train_all(networks, config, search_cfg, space, out, progress)
    rows = []
    for n in networks:
        accs = [runs[(n["arch_id"], config.seed + s)]["test_acc"] for s in range(config.seeds)]
        rows.append({"role": n["role"], "arch_id": n["arch_id"], "describe": ArchConfig.from_dict(n["arch"]).describe(),
                     **n["measured"], "test_accs": accs, "mean_test_acc": statistics.mean(accs),
                     "se_test_acc": statistics.stdev(accs) / len(accs) ** 0.5})
    ranked = sorted(rows, key=lambda r: -r["mean_test_acc"])
    random_means = [r["mean_test_acc"] for r in rows if r["role"] == "random"]
    pick_row = rows[0]
    uniform_row = next((r for r in rows if r["role"] == "uniform"), None)
    record = {
        "space": space.name, "dataset": search_cfg["dataset"], "budget": budget.to_dict(),
        "epochs": config.epochs, "seeds": config.seeds, "networks": rows,
        "pick_mean_test_acc": pick_row["mean_test_acc"], "pick_se_test_acc": pick_row["se_test_acc"],
        "random_median_test_acc": statistics.median(random_means),
        "gap_to_random_median_points": pick_row["mean_test_acc"] - statistics.median(random_means),
        "pick_rank": 1 + ranked.index(pick_row), "n_networks": len(rows),
        "uniform_mean_test_acc": None if uniform_row is None else uniform_row["mean_test_acc"],
        "uniform_arch_id": None if uniform_row is None else uniform_row["arch_id"],
        "pick_at_least_random_median": pick_row["mean_test_acc"] >= statistics.median(random_means),
        "random_draws": candidates["random_draws"], "search_minutes": t_search / 60.0,
        "standalone_runs_reused": reused, "minutes": (time.perf_counter() - t0) / 60.0,
    }
    write_json(out / RECORD_FILE, record)
    return record
