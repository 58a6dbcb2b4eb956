"""The ``nas`` command: a thin layer that parses, calls the library and prints.

    nas models                       list the network presets
    nas datasets                     list the datasets
    nas train-net --model M --dataset D [--epochs N …]
    nas bench mixer [--device cpu|cuda] [--json]

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"nas {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
