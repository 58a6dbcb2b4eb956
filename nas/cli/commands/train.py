"""Training commands: one preset network, the supernet, and a supernet's inherited accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli.base import Command
from nas.cli.options import Opt, add_config_options, add_data_options, config_values, data_options

__all__ = ["SupernetEval", "TrainNet", "TrainSupernet"]


def _train_options(parser: argparse.ArgumentParser, **overrides: Opt) -> list[str]:
    from nas.data import AUGMENTATIONS
    from nas.train import TrainConfig

    return add_config_options(parser, TrainConfig, overrides={"augment": Opt(choices=AUGMENTATIONS), **overrides})


class TrainNet(Command):
    name = ("train-net",)
    help = "train one preset network from scratch"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", required=True, help="preset name (see `nas models`)")
        parser.add_argument("--dataset", required=True, help="dataset name (see `nas datasets`)")
        parser.add_argument("--data-dir", default=None, help="the dataset's folder or file (cifar10, imagefolder, "
                                                             "csv, npz)")
        add_data_options(parser)
        parser.set_defaults(train_fields=_train_options(parser))
        parser.add_argument("--out", default=None, help="run directory (default: results/train-MODEL-DATASET-TIME)")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def run(self, args: argparse.Namespace) -> int:
        from nas.train import TrainConfig, train_net
        from profilers import check_device

        check_device(args.device, name="--device", available=True)
        config = TrainConfig(**config_values(TrainConfig, args, args.train_fields))
        result, run_dir = train_net(model=args.model, dataset=args.dataset, config=config, data_dir=args.data_dir,
                                    data_options=data_options(args), out=args.out, progress=not args.no_progress)
        best_val = max(r.val_acc for r in result.history)
        print(f"run directory: {run_dir}")
        print(f"{args.model} on {args.dataset}: test_acc={100 * result.test_acc:.2f}% "
              f"(best val {100 * best_val:.2f}%) time={result.seconds:.1f}s params={result.params:,}")
        return 0


class TrainSupernet(Command):
    name = ("train-supernet",)
    help = "train a weight-sharing supernet (sandwich rule + in-place distillation)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.train import SupernetConfig

        parser.add_argument("--space", required=True, help="search space, or a template (s, m, l) fitted to "
                                                           "--dataset (see `nas space list`)")
        parser.add_argument("--dataset", required=True, help="dataset name (see `nas datasets`)")
        parser.add_argument("--data-dir", default=None, help="the dataset's folder or file (cifar10, imagefolder, "
                                                             "csv, npz)")
        add_data_options(parser)
        parser.add_argument("--out", required=True, help="run directory")
        parser.add_argument("--resume", action="store_true", help="continue from --out's last checkpoint")
        parser.set_defaults(train_fields=_train_options(parser, epochs=Opt(default=40)),
                            supernet_fields=add_config_options(parser, SupernetConfig, exclude=("train",)))
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def run(self, args: argparse.Namespace) -> int:
        from nas.train import SupernetConfig, TrainConfig, train_supernet
        from profilers import check_device

        check_device(args.device, name="--device", available=True)
        config = SupernetConfig(train=TrainConfig(**config_values(TrainConfig, args, args.train_fields)),
                                **config_values(SupernetConfig, args, args.supernet_fields))
        from nas.data.task import resolve_task

        task = resolve_task(args.space, args.dataset, data_dir=args.data_dir, data_options=data_options(args))
        result = train_supernet(space=task.space, dataset=task.dataset, config=config, out=args.out,
                                data_dir=args.data_dir, data_options=task.data_options, resume=args.resume,
                                progress=not args.no_progress)
        log = result.log
        if not result.is_main:
            return 0
        print(f"run directory: {result.run_dir}")
        print(f"supernet {task.space} on {task.dataset}: {log['steps']} steps, inherited val_acc "
              f"largest={100 * log['val_acc_max']:.2f}% smallest={100 * log['val_acc_min']:.2f}% "
              f"time={log['seconds_this_session']:.1f}s world_size={log['world_size']}")
        return 0

    def interrupted(self, args: argparse.Namespace) -> str:
        out = getattr(args, "out", None)
        if out and (Path(out) / "config.json").is_file():
            return f"; continue from the last checkpoint in {out}: run the same command with --resume"
        return ""


class SupernetEval(Command):
    name = ("supernet", "eval")
    help = "inherited-weight validation accuracy of one architecture"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--checkpoint", required=True, help="supernet run directory")
        parser.add_argument("--arch", required=True, help="architecture JSON file")
        parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
        parser.add_argument("--data-dir", default=None, help="where the dataset lies now (default: where the "
                                                             "supernet was trained from)")

    def run(self, args: argparse.Namespace) -> int:
        from nas.data import load_dataset
        from nas.train import evaluate_arch, load_supernet
        from profilers import check_device
        from search_spaces.space import load_arch

        check_device(args.device, name="--device", available=True)
        supernet, run_config = load_supernet(args.checkpoint)
        arch = load_arch(args.arch, supernet.space)
        data_dir = args.data_dir if args.data_dir is not None else run_config.get("data_dir")
        splits = load_dataset(run_config["dataset"], seed=run_config["seed"], data_dir=data_dir,
                              **(run_config.get("data_options") or {}))
        loss, acc = evaluate_arch(supernet, arch, splits.val, device=args.device)
        print(f"arch {arch.arch_id} ({arch.describe()}): inherited val_acc={100 * acc:.2f}% val_loss={loss:.4f} "
              f"on {run_config['dataset']} ({len(splits.val)} images)")
        return 0
