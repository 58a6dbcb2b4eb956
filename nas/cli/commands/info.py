"""Commands that describe what the workbench has: network presets, datasets, search spaces."""

from __future__ import annotations

import argparse

from nas.cli.base import Command

__all__ = ["Datasets", "Models", "SpaceList", "SpaceSample", "SpaceShow"]


class Models(Command):
    name = ("models",)
    help = "list the network presets"

    def run(self, args: argparse.Namespace) -> int:
        from search_spaces.presets import model_config, model_names

        print(f"{'name':20s} {'input':12s} {'classes':>7s}  {'depths':14s} {'widths':20s} mixers")
        for name in model_names():
            cfg = model_config(name)
            mixers = sorted({b.mixer for s in cfg.stages for b in s.blocks})
            shape = "x".join(str(v) for v in cfg.input_shape)
            print(f"{name:20s} {shape:12s} {cfg.num_classes:7d}  {'-'.join(map(str, cfg.depths)):14s} "
                  f"{'-'.join(map(str, cfg.widths)):20s} {','.join(mixers)}")
        return 0


class Datasets(Command):
    name = ("datasets",)
    help = "list the datasets"

    def run(self, args: argparse.Namespace) -> int:
        from nas.data import DATASETS

        for name in sorted(DATASETS):
            print(f"{name:17s} {DATASETS[name].description}")
        return 0


class SpaceList(Command):
    name = ("space", "list")
    help = "list the search spaces"

    def run(self, args: argparse.Namespace) -> int:
        from search_spaces.space import create_space, space_names
        from search_spaces.templates import TEMPLATES

        for name in space_names():
            sp = create_space(name)
            print(f"{name:22s} {sp.size():>12.3e} architectures  {sp.description}")
        for name, t in sorted(TEMPLATES.items()):
            print(f"{name:22s} {'template':>12s} (native {t.native_px}px) {t.description}; fitted to --dataset")
        return 0


class SpaceShow(Command):
    name = ("space", "show")
    help = "print a space's dimensions and size"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.cli.options import add_data_options

        parser.add_argument("name", help="a space, or a template (s, m, l) with --dataset to fit it to")
        parser.add_argument("--dataset", default=None, help="the dataset a template is fitted to (see `nas datasets`)")
        parser.add_argument("--data-dir", default=None, help="the dataset's folder or file")
        add_data_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        from nas.cli.options import data_options
        from nas.data.task import resolve_task
        from search_spaces.space import create_space

        given = data_options(args)
        if args.dataset is None and not given:  # a space as it is (a template needs its dataset: resolve_task says so)
            from search_spaces.templates import TEMPLATES

            if args.name not in TEMPLATES:
                print(create_space(args.name).describe())
                return 0
        task = resolve_task(args.name, args.dataset, data_dir=args.data_dir, data_options=given)
        print(create_space(task.space).describe())
        if task.data_options:
            print(f"  data options: {', '.join(f'{k}={v}' for k, v in task.data_options.items())}")
        return 0


class SpaceSample(Command):
    name = ("space", "sample")
    help = "print (or write) one architecture of a space as JSON"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--seed", type=int, default=0, help="seed of a random architecture")
        which.add_argument("--max", action="store_true", help="the largest architecture")
        which.add_argument("--min", action="store_true", help="the smallest architecture")
        parser.add_argument("--out", default=None, help="write the JSON here")

    def run(self, args: argparse.Namespace) -> int:
        import random

        from nas.rundir import check_output_file, write_text
        from search_spaces.space import create_space

        sp = create_space(args.name)
        if args.out:
            check_output_file(args.out)
        arch = sp.max_arch() if args.max else sp.min_arch() if args.min else sp.sample(random.Random(args.seed))
        text = arch.to_json(indent=2)
        if args.out:
            write_text(args.out, text + "\n")
            print(f"wrote {args.out} (arch_id {arch.arch_id}): {arch.describe()}")
        else:
            print(text)
        return 0
