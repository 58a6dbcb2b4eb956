"""``nas bench …``: the benchmarks, each a JSON record (``--json`` prints it) and a short printout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nas.cli.base import Command
from nas.cli.options import Opt, add_config_options, config_values

__all__ = ["BenchMixer", "BenchPredictors", "BenchRanking", "BenchReliability", "BenchSearch", "BenchStaircase"]


def _out_options(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--json", action="store_true", help="print the JSON record")
    parser.add_argument("--out", default=None, help=f"run directory (default: {default})")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _print_fields(record: dict, keys, fmt: str = ".4f") -> None:
    for key in keys:
        print(f"{key}: {format(record[key], fmt)}")


class BenchMixer(Command):
    name = ("bench", "mixer")
    help = "quadratic vs gnConv vs first-order mixers: speed and memory"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.bench.mixer import MixerBenchConfig
        from profilers import BACKENDS

        parser.add_argument("--json", action="store_true", help="print the JSON record")
        parser.add_argument("--out", default=None, help="also write the JSON record to this file")
        parser.set_defaults(bench_fields=add_config_options(parser, MixerBenchConfig,
                                                            overrides={"device": Opt(choices=tuple(BACKENDS))}))
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def run(self, args: argparse.Namespace) -> int:
        from nas.bench.mixer import MIXER_VARIANTS, MixerBenchConfig, run_mixer_bench
        from nas.rundir import check_output_file, write_text

        config = MixerBenchConfig(**config_values(MixerBenchConfig, args, args.bench_fields))
        if args.out:
            check_output_file(args.out)  # before the benchmark runs, so that its result is not lost
        record = run_mixer_bench(config, progress=not args.no_progress)
        text = json.dumps(record, indent=2)
        if args.out:
            write_text(args.out, text + "\n")
        if args.json:
            print(text)
            return 0
        print(f"{'mixer':18s} {'train/s':>9s} {'infer/s':>9s} {'saved MB':>9s} {'peak MB':>9s} {'params':>9s}")
        for name in MIXER_VARIANTS:
            r = record[name]
            peak = "-" if r["peak_cuda_mb"] is None else f"{r['peak_cuda_mb']:.1f}"
            print(f"{name:18s} {r['train_samples_per_s']:9.1f} {r['infer_samples_per_s']:9.1f} "
                  f"{r['saved_activation_mb']:9.1f} {peak:>9s} {r['params']:9d}")
        _print_fields(record, ("memory_ratio_quadra_vs_gnconv", "throughput_ratio_quadra_vs_gnconv",
                               "infer_throughput_ratio_quadra_vs_gnconv", "memory_ratio_efficient_vs_plain"), ".3f")
        return 0


class BenchRanking(Command):
    name = ("bench", "ranking")
    help = "supernet ranking vs stand-alone training (Kendall tau)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.bench.ranking import RankingBenchConfig

        parser.set_defaults(bench_fields=add_config_options(parser, RankingBenchConfig, exclude=("n_random",)))
        _out_options(parser, "results/bench-ranking-SPACE-TIME")
        parser.add_argument("--resume", action="store_true", help="continue the stopped benchmark in --out")

    def run(self, args: argparse.Namespace) -> int:
        from nas.bench.ranking import SUMMARY_FIELDS, RankingBenchConfig, ranking_run_dir, run_ranking_bench
        from profilers import check_device

        check_device(args.device, name="--device", available=True)
        config = RankingBenchConfig(**config_values(RankingBenchConfig, args, args.bench_fields))
        args.out = str(ranking_run_dir(config, args.out, resume=args.resume))
        record = run_ranking_bench(config, out=args.out, progress=not args.no_progress, resume=args.resume)
        if args.json:
            print(json.dumps(record, indent=2))
            return 0
        for key in SUMMARY_FIELDS:
            value = record[key]
            print(f"{key}: {'n/a (needs two seeds that rank the subnets)' if value is None else f'{value:.4f}'}")
        print(f"standalone_runs_reused: {record['standalone_runs_reused']} (finished by an earlier invocation)")
        print(f"record: {Path(args.out) / 'ranking.json'}")
        return 0

    def interrupted(self, args: argparse.Namespace) -> str:
        out = getattr(args, "out", None)
        if out and Path(out).is_dir():
            return f"; the runs so far are in {out}: run the same command with --out {out} --resume"
        return ""


class BenchPredictors(Command):
    name = ("bench", "predictors")
    help = "predictor accuracy on held-out architectures"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.bench.predictors import PredictorBenchConfig

        parser.set_defaults(bench_fields=add_config_options(
            parser, PredictorBenchConfig, exclude=("targets",), overrides={"batch_sizes": Opt(flag="--batch-size")}))
        _out_options(parser, "results/bench-predictors-SPACE-DEVICE-TIME")

    def run(self, args: argparse.Namespace) -> int:
        from nas.bench.predictors import PredictorBenchConfig, run_predictor_bench
        from nas.rundir import default_run_dir
        from predictors import COST_MODELS

        config = PredictorBenchConfig(**config_values(PredictorBenchConfig, args, args.bench_fields))
        out = args.out or default_run_dir("bench-predictors", config.space, config.device)
        record = run_predictor_bench(config, out=out, progress=not args.no_progress)
        if args.json:
            print(json.dumps(record, indent=2))
            return 0
        for b, per in record["batch_sizes"].items():
            for target in config.targets:
                r = per[target]
                print(f"batch {b} {target} (default: {r['default']})")
                for name in COST_MODELS:
                    m = r[name]
                    print(f"  {name:7s} rmspe={m['rmspe']:7.2f}%  within5={m['within_5pct']:.2f}  "
                          f"within10={m['within_10pct']:.2f}  tau={m['kendall_tau']:.3f}")
            print(f"batch {b}: profiling {per['profiling_minutes_train']:.1f} min (train) + "
                  f"{per['profiling_minutes_test']:.1f} min (test); parity plot {per['parity_plot']}")
        print(f"record: {Path(out) / 'predictors.json'}")
        return 0


class BenchStaircase(Command):
    name = ("bench", "staircase")
    help = "latency vs one stage's width beside FLOPs (the GPU tail effect)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.bench.staircase import StaircaseBenchConfig

        parser.set_defaults(bench_fields=add_config_options(parser, StaircaseBenchConfig))
        _out_options(parser, "results/bench-staircase-SPACE-DEVICE-TIME")

    def run(self, args: argparse.Namespace) -> int:
        from nas.bench.staircase import StaircaseBenchConfig, run_staircase_bench
        from nas.rundir import default_run_dir

        config = StaircaseBenchConfig(**config_values(StaircaseBenchConfig, args, args.bench_fields))
        out = args.out or default_run_dir("bench-staircase", config.space, config.device)
        record = run_staircase_bench(config, out=out, progress=not args.no_progress)
        if args.json:
            print(json.dumps(record, indent=2))
            return 0
        print(f"{'width':>6s} {'measured ms':>12s} {'predicted ms':>13s} {'MMACs':>9s} {'waves':>6s}")
        for r in record["rows"]:
            waves = "-" if r["kernel_waves"] is None else f"{r['kernel_waves']:.0f}"
            print(f"{r['width']:6d} {r['latency_ms']:12.3f} {r['predicted_ms']:13.3f} {r['macs'] / 1e6:9.2f} "
                  f"{waves:>6s}")
        print(f"spearman(latency, MACs)={record['spearman_latency_vs_macs']:.3f}; "
              f"flat-or-down steps={record['flat_or_down_steps']}; plot {record['plot']}")
        return 0


class BenchSearch(Command):
    name = ("bench", "search")
    help = "default sampler vs random sampling: hypervolume and trials/s"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.bench.search import SearchBenchConfig

        parser.set_defaults(bench_fields=add_config_options(parser, SearchBenchConfig))
        _out_options(parser, "results/bench-search-SPACE-TIME")

    def run(self, args: argparse.Namespace) -> int:
        from nas.bench.search import SearchBenchConfig, run_search_bench
        from nas.rundir import default_run_dir

        config = SearchBenchConfig(**config_values(SearchBenchConfig, args, args.bench_fields))
        out = args.out or default_run_dir("bench-search", config.space)
        record = run_search_bench(config, out=out, progress=not args.no_progress)
        if args.json:
            print(json.dumps(record, indent=2))
            return 0
        _print_fields(record, ("hypervolume_default", "hypervolume_random", "hv_ratio", "trials_per_s",
                               "trials_per_s_sqlite", "trials_per_s_cached"))
        print(f"record: {Path(out) / 'search_bench.json'}")
        return 0


class BenchReliability(Command):
    name = ("bench", "reliability")
    help = "SIGKILL a search at random moments, resume, count lost trials"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.bench.reliability import ReliabilityBenchConfig

        parser.set_defaults(bench_fields=add_config_options(
            parser, ReliabilityBenchConfig, include=("cycles", "trials", "supernet", "predictors", "seed")))
        _out_options(parser, "results/bench-reliability-TIME")

    def run(self, args: argparse.Namespace) -> int:
        from nas.bench.reliability import ReliabilityBenchConfig, run_reliability_bench
        from nas.rundir import default_run_dir

        config = ReliabilityBenchConfig(**config_values(ReliabilityBenchConfig, args, args.bench_fields))
        out = args.out or default_run_dir("bench-reliability")
        record = run_reliability_bench(config, out=out, progress=not args.no_progress)
        if args.json:
            print(json.dumps({k: v for k, v in record.items() if k != "details"}, indent=2))
        else:
            _print_fields(record, ("cycles", "trials_requested", "trials_completed", "trials_lost", "duplicate_trials",
                                   "trials_failed"), "")
            print(f"record: {Path(out) / 'reliability.json'}")
        return 0 if record["trials_lost"] == 0 and record["duplicate_trials"] == 0 else 1
