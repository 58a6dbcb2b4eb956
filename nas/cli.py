"""The ``nas`` command: a thin layer that parses, calls the library and prints.

    nas models                       list the network presets
    nas datasets                     list the datasets
    nas train-net --model M --dataset D [--epochs N …]
    nas space list | show NAME | sample NAME [--seed S | --max | --min]
    nas train-supernet --space NAME --dataset D --epochs N --out DIR [--resume]
    nas supernet eval --checkpoint DIR --arch FILE.json
    nas bench mixer [--device cpu|cuda] [--json]
    nas bench ranking --space NAME [--json]

Bad input (unknown names, missing files, an occupied run directory) exits with code 2 and a
message that says what was wrong and what is valid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["build_parser", "main"]


def _cmd_models(args: argparse.Namespace) -> int:
    from search_spaces.presets import model_config, model_names

    print(f"{'name':20s} {'input':12s} {'classes':>7s}  {'depths':14s} {'widths':20s} mixers")
    for name in model_names():
        cfg = model_config(name)
        mixers = sorted({b.mixer for s in cfg.stages for b in s.blocks})
        shape = "x".join(str(v) for v in cfg.input_shape)
        print(f"{name:20s} {shape:12s} {cfg.num_classes:7d}  {'-'.join(map(str, cfg.depths)):14s} "
              f"{'-'.join(map(str, cfg.widths)):20s} {','.join(mixers)}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from nas.data import DATASETS

    for name in sorted(DATASETS):
        print(f"{name:10s} {DATASETS[name].description}")
    return 0


def _cmd_train_net(args: argparse.Namespace) -> int:
    from nas.train import TrainConfig
    from nas.train_net import train_net

    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, seed=args.seed, device=args.device,
    )
    result, run_dir = train_net(
        model=args.model, dataset=args.dataset, config=config, data_dir=args.data_dir, out=args.out,
        progress=not args.no_progress,
    )
    best_val = max(r.val_acc for r in result.history)
    print(f"run directory: {run_dir}")
    print(f"{args.model} on {args.dataset}: test_acc={100 * result.test_acc:.2f}% "
          f"(best val {100 * best_val:.2f}%) time={result.seconds:.1f}s params={result.params:,}")
    return 0


def _cmd_space_list(args: argparse.Namespace) -> int:
    from search_spaces.space import create_space, space_names

    for name in space_names():
        sp = create_space(name)
        print(f"{name:22s} {sp.size():>12.3e} architectures  {sp.description}")
    return 0


def _cmd_space_show(args: argparse.Namespace) -> int:
    from search_spaces.space import create_space

    print(create_space(args.name).describe())
    return 0


def _cmd_space_sample(args: argparse.Namespace) -> int:
    import random

    from search_spaces.space import create_space

    sp = create_space(args.name)
    arch = sp.max_arch() if args.max else sp.min_arch() if args.min else sp.sample(random.Random(args.seed))
    text = arch.to_json(indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
        print(f"wrote {args.out} (arch_id {arch.arch_id}): {arch.describe()}")
    else:
        print(text)
    return 0


def _cmd_train_supernet(args: argparse.Namespace) -> int:
    from nas.supernet_train import SupernetConfig, train_supernet
    from nas.train import TrainConfig

    config = SupernetConfig(
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                          seed=args.seed, device=args.device),
        n_random=args.n_random, distill=not args.no_distill, checkpoint_every=args.checkpoint_every,
    )
    result = train_supernet(space=args.space, dataset=args.dataset, config=config, out=args.out,
                            data_dir=args.data_dir, resume=args.resume, progress=not args.no_progress)
    log = result.log
    if not result.is_main:
        return 0
    print(f"run directory: {result.run_dir}")
    print(f"supernet {args.space} on {args.dataset}: {log['steps']} steps, inherited val_acc "
          f"largest={100 * log['val_acc_max']:.2f}% smallest={100 * log['val_acc_min']:.2f}% "
          f"time={log['seconds_this_session']:.1f}s world_size={log['world_size']}")
    return 0


def _cmd_supernet_eval(args: argparse.Namespace) -> int:
    from nas.data import load_dataset
    from nas.supernet_train import evaluate_arch, load_supernet
    from search_spaces.space import load_arch

    supernet, run_config = load_supernet(args.checkpoint)
    arch = load_arch(args.arch, supernet.space)
    splits = load_dataset(run_config["dataset"], seed=run_config["seed"], data_dir=run_config.get("data_dir"))
    loss, acc = evaluate_arch(supernet, arch, splits.val, device=args.device)
    print(f"arch {arch.arch_id} ({arch.describe()}): inherited val_acc={100 * acc:.2f}% val_loss={loss:.4f} "
          f"on {run_config['dataset']} ({len(splits.val)} images)")
    return 0


def _cmd_bench_ranking(args: argparse.Namespace) -> int:
    import time

    from nas.bench.ranking import RankingBenchConfig, run_ranking_bench

    config = RankingBenchConfig(space=args.space, dataset=args.dataset, data_dir=args.data_dir, k=args.k,
                                epochs=args.epochs, seed=args.seed, seeds=args.seeds,
                                distill=not args.no_distill, device=args.device)
    out = args.out or f"results/bench-ranking-{args.space}-{time.strftime('%Y%m%d-%H%M%S')}"
    record = run_ranking_bench(config, out=out, progress=not args.no_progress)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        for key in ("kendall_tau", "spearman", "largest_inherited_acc", "largest_standalone_acc",
                    "largest_inherited_test_acc", "largest_standalone_test_acc", "mean_abs_gap",
                    "standalone_seed_range", "kendall_tau_val_loss", "minutes"):
            print(f"{key}: {record[key]:.4f}")
        print(f"record: {Path(out) / 'ranking.json'}")
    return 0


def _cmd_bench_mixer(args: argparse.Namespace) -> int:
    from nas.bench.mixer import MixerBenchConfig, run_mixer_bench

    config = MixerBenchConfig(
        device=args.device, batch_size=args.batch_size, width=args.width, depth=args.depth,
        image_size=args.image_size, kernel_size=args.kernel_size, repeats=args.repeats, warmup=args.warmup,
        threads=args.threads, seed=args.seed,
    )
    record = run_mixer_bench(config, progress=not args.no_progress)
    text = json.dumps(record, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    if args.json:
        print(text)
    else:
        print(f"{'mixer':18s} {'train/s':>9s} {'infer/s':>9s} {'saved MB':>9s} {'peak MB':>9s} {'params':>9s}")
        for name in ("quadra_efficient", "quadra_plain", "gnconv", "first_order"):
            r = record[name]
            peak = "-" if r["peak_cuda_mb"] is None else f"{r['peak_cuda_mb']:.1f}"
            print(f"{name:18s} {r['train_samples_per_s']:9.1f} {r['infer_samples_per_s']:9.1f} "
                  f"{r['saved_activation_mb']:9.1f} {peak:>9s} {r['params']:9d}")
        for key in ("memory_ratio_quadra_vs_gnconv", "throughput_ratio_quadra_vs_gnconv",
                    "infer_throughput_ratio_quadra_vs_gnconv", "memory_ratio_efficient_vs_plain"):
            print(f"{key}: {record[key]:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="QuadraNAS: hardware-aware NAS for quadratic networks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list the network presets")
    p.set_defaults(func=_cmd_models)
    p = sub.add_parser("datasets", help="list the datasets")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("train-net", help="train one preset network from scratch")
    p.add_argument("--model", required=True, help="preset name (see `nas models`)")
    p.add_argument("--dataset", required=True, help="dataset name (see `nas datasets`)")
    p.add_argument("--data-dir", default=None, help="directory holding the dataset files (cifar10)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="run directory (default: results/train-MODEL-DATASET-TIME)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_train_net)

    space = sub.add_parser("space", help="search spaces: list, show, sample")
    space_sub = space.add_subparsers(dest="space_command", required=True, metavar="ACTION")
    p = space_sub.add_parser("list", help="list the search spaces")
    p.set_defaults(func=_cmd_space_list)
    p = space_sub.add_parser("show", help="print a space's dimensions and size")
    p.add_argument("name")
    p.set_defaults(func=_cmd_space_show)
    p = space_sub.add_parser("sample", help="print (or write) one architecture of a space as JSON")
    p.add_argument("name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, default=0, help="seed of a random architecture")
    which.add_argument("--max", action="store_true", help="the largest architecture")
    which.add_argument("--min", action="store_true", help="the smallest architecture")
    p.add_argument("--out", default=None, help="write the JSON here")
    p.set_defaults(func=_cmd_space_sample)

    p = sub.add_parser("train-supernet", help="train a weight-sharing supernet (sandwich rule + in-place distillation)")
    p.add_argument("--space", required=True, help="search space (see `nas space list`)")
    p.add_argument("--dataset", required=True, help="dataset name (see `nas datasets`)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from --out's last checkpoint")
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-random", type=int, default=2, help="random subnets per step besides largest and smallest")
    p.add_argument("--no-distill", action="store_true", help="train every subnet on the labels")
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: epoch ends)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_train_supernet)

    supernet = sub.add_parser("supernet", help="use a trained supernet")
    supernet_sub = supernet.add_subparsers(dest="supernet_command", required=True, metavar="ACTION")
    p = supernet_sub.add_parser("eval", help="inherited-weight validation accuracy of one architecture")
    p.add_argument("--checkpoint", required=True, help="supernet run directory")
    p.add_argument("--arch", required=True, help="architecture JSON file")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_supernet_eval)

    bench = sub.add_parser("bench", help="benchmarks (JSON output)")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    p = bench_sub.add_parser("mixer", help="quadratic vs gnConv vs first-order mixers: speed and memory")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--json", action="store_true", help="print the JSON record")
    p.add_argument("--out", default=None, help="also write the JSON record to this file")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--kernel-size", type=int, default=7)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's setting)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bench_mixer)
    p = bench_sub.add_parser("ranking", help="supernet ranking vs stand-alone training (Kendall tau)")
    p.add_argument("--space", default="digits-s")
    p.add_argument("--dataset", default=None, help="default: the space's own dataset")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--k", type=int, default=10, help="number of subnets")
    p.add_argument("--epochs", type=int, default=40, help="supernet and stand-alone epochs")
    p.add_argument("--seeds", type=int, default=3, help="stand-alone training runs per subnet (accuracy averaged)")
    p.add_argument("--no-distill", action="store_true", help="train the supernet without in-place distillation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="run directory (default: results/bench-ranking-SPACE-TIME)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bench_ranking)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"nas {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # training diverged; checkpoints already written are kept
        print(f"nas {args.command}: training stopped: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
