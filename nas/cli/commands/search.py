"""The main job and what follows it: ``nas search`` (= ``nas-search``), ``nas export``, ``nas report``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas.cli.base import Command
from nas.cli.options import Opt, add_config_options, add_data_options, config_values, data_options

__all__ = ["Export", "Report", "Search"]


class Search(Command):
    name = ("search",)
    help = "the main job: supernet, predictors, multi-objective search, picks, report"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.export import FORMATS
        from nas.objectives import OBJECTIVES
        from nas.search import SAMPLERS, SearchConfig

        fields = add_config_options(parser, SearchConfig, exclude=("data_options",), overrides={
            "latency_budgets_ms": Opt(flag="--latency-budget-ms"),
            "memory_budgets_mb": Opt(flag="--memory-budget-mb"),
            "objectives": Opt(help=f"comma-separated subset of {','.join(OBJECTIVES)} (default: "
                                   f"{','.join(n for n, o in OBJECTIVES.items() if o.default)})"),
            "accuracy_metric": Opt(choices=("acc", "loss")),
            "sampler": Opt(help="the study's sampler: " + "; ".join(f"{s.name} = {s.description}"
                                                                    for s in SAMPLERS.values())),
            "formats": Opt(flag="--format", help=f"export formats of the picks, comma-separated: "
                                                 f"{', '.join(FORMATS)} (default: all)"),
        })
        parser.set_defaults(search_fields=fields)
        add_data_options(parser)
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    def run(self, args: argparse.Namespace) -> int:
        from nas.rundir import default_run_dir
        from nas.search import SearchConfig, run_search

        if args.out is None and not args.resume:  # named now, so that an interrupted run can say where it is
            args.out = str(default_run_dir("search", args.space))
        result = run_search(SearchConfig(**config_values(SearchConfig, args, args.search_fields),
                                         data_options=data_options(args)), progress=not args.no_progress)
        s = result.summary
        print(f"run directory: {result.run_dir}")
        print(f"{s['trials_completed']} trials ({s['trials_this_session']} this session, "
              f"{s['trials_per_s'] or 0:.1f}/s), {s['pareto_size']} Pareto-optimal architectures, "
              f"{s['minutes']:.1f} min")
        for p in result.picks:
            head = f"[{p['status']}] {p['budget']['label']}"
            if p["arch_id"] is None:
                print(f"{head}: {p['message']}")
                continue
            pr, me = p["predicted"], p["measured"]
            print(f"{head}: arch {p['arch_id']} ({p['describe']}) test_acc={100 * me['test_acc']:.2f}% "
                  f"latency {me['latency_ms']:.3f} ms (predicted {pr['latency_ms']:.3f}) "
                  f"memory {me['peak_mem_mb']:.2f} MB (predicted {pr['peak_mem_mb']:.2f}) -> {p['export_dir']}")
            if p["status"] != "met":
                print(f"  {p['message']}")
            if pr.get("val_acc_se") is not None:
                line = f"  inherited val_acc {100 * pr['val_acc']:.2f} ± {100 * pr['val_acc_se']:.2f}%"
                cheaper = p.get("vs_cheaper")
                if cheaper:
                    line += (f"; {'distinguishable' if cheaper['distinguishable'] else 'not distinguishable'} from "
                             f"the next cheaper Pareto-optimal {cheaper['arch_id']} ({cheaper['diff_points']:+.2f} "
                             f"points, z = {cheaper['z']:.2f})")
                print(line)
        noise = s.get("accuracy_noise") or {}
        if noise.get("statement"):
            print(f"accuracy: {noise['statement']}")
        print(f"report: {result.report.get('html')}")
        for p in result.infeasible:
            print(f"nas-search: error: {p['message']}", file=sys.stderr)
        return 2 if result.infeasible else 0

    def interrupted(self, args: argparse.Namespace) -> str:
        out = getattr(args, "out", None)
        if out and (Path(out) / "config.json").is_file():
            return f"; what was done is kept in {out}: continue with `nas-search --out {out} --resume`"
        return "; nothing was written"


class Export(Command):
    name = ("export",)
    help = "export an architecture of a search run (safetensors, TorchScript, ONNX)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.export import export_formats

        parser.add_argument("--run", required=True, help="nas-search run directory")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--arch-id", default=None, help="an arch_id from the run's trials.csv / pareto.csv")
        which.add_argument("--arch", default=None, help="an architecture JSON file of the run's space")
        parser.add_argument("--format", default=",".join(export_formats()), help="comma-separated formats")
        parser.add_argument("--out", default=None, help="export directory (default: RUN/exports/ARCH_ID)")
        parser.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
        parser.add_argument("--data-dir", default=None, help="where the dataset lies now, for the test accuracy "
                                                             "(default: where the supernet was trained from)")

    def run(self, args: argparse.Namespace) -> int:
        from nas.export import export_from_run

        written = export_from_run(args.run, arch_id=args.arch_id, arch_file=args.arch, formats=args.format,
                                  out=args.out, overwrite=args.overwrite, data_dir=args.data_dir)
        for name, path in written.items():
            print(f"{name}: {path}")
        return 0


class Report(Command):
    name = ("report",)
    help = "regenerate a search run's plots and report from its study and tables"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--run", required=True, help="nas-search run directory")

    def run(self, args: argparse.Namespace) -> int:
        from nas.search import rebuild_report

        for name, path in rebuild_report(args.run).items():
            print(f"{name}: {path}")
        return 0
