"""``nas bench …``: the benchmarks, each a JSON record (``--json`` prints it) and a short printout."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from nas.cli.base import Command
from nas.cli.options import Opt, add_config_options, config_values

__all__ = ["BenchDeviceCheck", "BenchMixer", "BenchPicks", "BenchPredictors", "BenchRanking", "BenchReliability",
           "BenchRuntimes", "BenchSearch", "BenchStaircase"]


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


class _RunDirBench(Command):
    """A benchmark with a run directory: its config's options, ``--json``, ``--out`` (default
    ``results/KIND-FIELD-…-TIME``, from the config fields ``out_fields``), ``--no-progress``; the
    run, then the JSON record or a short printout."""

    kind: ClassVar[str]  # the run directory's name starts with it
    out_fields: ClassVar[tuple[str, ...]] = ("space",)
    record_file: ClassVar[str]  # the benchmark's record in its run directory

    def bench(self) -> tuple[type, Callable[..., dict[str, Any]]]:
        """The config class and the run function (imported when the command is chosen)."""
        raise NotImplementedError

    def options(self, parser: argparse.ArgumentParser, config_cls: type) -> list[str]:
        return add_config_options(parser, config_cls)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        config_cls, _ = self.bench()
        parser.set_defaults(bench_fields=self.options(parser, config_cls))
        parser.add_argument("--json", action="store_true", help="print the JSON record")
        named = "-".join([self.kind, *(f.upper() for f in self.out_fields), "TIME"])
        parser.add_argument("--out", default=None, help=f"run directory (default: results/{named})")
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    def run_dir(self, config: Any, args: argparse.Namespace) -> Path:
        from nas.rundir import default_run_dir

        if args.out:
            return Path(args.out)
        return default_run_dir(self.kind, *(getattr(config, f) for f in self.out_fields))

    def run(self, args: argparse.Namespace) -> int:
        config_cls, run_bench = self.bench()
        config = config_cls(**config_values(config_cls, args, args.bench_fields))
        out = self.run_dir(config, args)
        args.out = str(out)  # named now, so that an interrupted run can say where it is
        record = self.execute(run_bench, config, out, args)
        if args.json:
            print(json.dumps(self.shown(record), indent=2))
        else:
            self.summary(record, config)
            print(f"record: {out / self.record_file}")
        return self.exit_code(record)

    def execute(self, run_bench: Callable[..., dict[str, Any]], config: Any, out: Path,
                args: argparse.Namespace) -> dict[str, Any]:
        return run_bench(config, out=out, progress=not args.no_progress)

    def shown(self, record: dict[str, Any]) -> dict[str, Any]:
        """What ``--json`` prints."""
        return record

    def summary(self, record: dict[str, Any], config: Any) -> None:
        raise NotImplementedError

    def exit_code(self, record: dict[str, Any]) -> int:
        return 0


class _ResumableBench(_RunDirBench):
    """A run-directory benchmark that ``--resume`` continues: its run function takes ``resume``,
    and an interrupted run says how to continue it."""

    @staticmethod
    def add_resume(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--resume", action="store_true", help="continue the stopped benchmark in --out")

    def execute(self, run_bench, config, out, args):
        return run_bench(config, out=out, progress=not args.no_progress, resume=args.resume)

    def interrupted(self, args: argparse.Namespace) -> str:
        out = getattr(args, "out", None)
        if out and Path(out).is_dir():
            return f"; what was done is kept in {out}: run the same command with --out {out} --resume"
        return ""


class BenchRanking(_ResumableBench):
    name = ("bench", "ranking")
    help = "supernet ranking vs stand-alone training (Kendall tau)"
    kind = "bench-ranking"
    record_file = "ranking.json"

    def bench(self):
        from nas.bench.ranking import RankingBenchConfig, run_ranking_bench

        return RankingBenchConfig, run_ranking_bench

    def options(self, parser: argparse.ArgumentParser, config_cls: type) -> list[str]:
        self.add_resume(parser)
        return add_config_options(parser, config_cls, exclude=("n_random",))

    def run_dir(self, config: Any, args: argparse.Namespace) -> Path:
        from nas.bench.ranking import ranking_run_dir
        from profilers import check_device

        check_device(args.device, name="--device", available=True)
        return ranking_run_dir(config, args.out, resume=args.resume)

    def summary(self, record: dict[str, Any], config: Any) -> None:
        from nas.bench.ranking import SUMMARY_FIELDS

        for key in SUMMARY_FIELDS:
            value = record[key]
            print(f"{key}: {'n/a (needs two seeds that rank the subnets)' if value is None else f'{value:.4f}'}")
        print(f"standalone_runs_reused: {record['standalone_runs_reused']} (finished by an earlier invocation)")


class BenchPicks(_ResumableBench):
    name = ("bench", "picks")
    help = "the search's pick against random architectures and a uniform QuadraNet, trained from scratch"
    kind = "bench-picks"
    record_file = "picks_bench.json"

    def bench(self):
        from nas.bench.picks import PicksBenchConfig, run_picks_bench

        return PicksBenchConfig, run_picks_bench

    def options(self, parser: argparse.ArgumentParser, config_cls: type) -> list[str]:
        self.add_resume(parser)
        return add_config_options(parser, config_cls)

    def run_dir(self, config: Any, args: argparse.Namespace) -> Path:
        if args.resume and not args.out:
            raise ValueError("--resume needs --out: the benchmark's run directory to continue")
        return super().run_dir(config, args)

    def summary(self, record: dict[str, Any], config: Any) -> None:
        print(f"budget {record['budget']['label']}, {record['seeds']} seeds x {record['epochs']} epochs, "
              f"test accuracy:")
        for r in record["networks"]:
            print(f"  {r['role']:8s} {r['arch_id']}  {r['mean_test_acc']:6.2f} ± {r['se_test_acc']:.2f} %  "
                  f"{r['params']:>8,d} params  {r['latency_ms']:.3f} ms  {r['peak_mem_mb']:.2f} MB")
        print(f"pick rank {record['pick_rank']} of {record['n_networks']}; gap to the random median "
              f"{record['gap_to_random_median_points']:+.2f} points; {record['minutes']:.1f} min")


class BenchPredictors(_RunDirBench):
    name = ("bench", "predictors")
    help = "predictor accuracy on held-out architectures"
    kind = "bench-predictors"
    out_fields = ("space", "device")
    record_file = "predictors.json"

    def bench(self):
        from nas.bench.predictors import PredictorBenchConfig, run_predictor_bench

        return PredictorBenchConfig, run_predictor_bench

    def options(self, parser: argparse.ArgumentParser, config_cls: type) -> list[str]:
        return add_config_options(parser, config_cls, exclude=("targets",),
                                  overrides={"batch_sizes": Opt(flag="--batch-size")})

    def summary(self, record: dict[str, Any], config: Any) -> None:
        from predictors import COST_MODELS

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


class BenchRuntimes(_RunDirBench):
    name = ("bench", "runtimes")
    help = "latency in ONNX Runtime / TorchScript against PyTorch eager, timed interleaved, per thread count"
    kind = "bench-runtimes"
    out_fields = ("space", "device")
    record_file = "runtimes.json"

    def bench(self):
        from nas.bench.runtimes import RuntimeBenchConfig, run_runtime_bench

        return RuntimeBenchConfig, run_runtime_bench

    def summary(self, record: dict[str, Any], config: Any) -> None:
        for name, per in record["runtimes"].items():
            for threads, r in per["by_threads"].items():
                d = r["ratio"]
                print(f"{name} / torch at {threads} thread(s): median {d['median']:.3f} (p10 {d['p10']:.3f}, "
                      f"p90 {d['p90']:.3f}, {d['min']:.3f}-{d['max']:.3f}); faster on {100 * d['share_below_1']:.0f} % "
                      f"of {d['n']}; tau vs torch {r['kendall_tau_vs_torch']:.3f}")
        print(f"{record['minutes']:.1f} min")


class BenchDeviceCheck(_RunDirBench):
    name = ("bench", "device-check")
    help = ("the prepared GPU check: CUDA tests, Triton kernels, mixer bench, kernel records, ONNX Runtime's CUDA "
            "provider, staircase")
    kind = "bench-device-check"
    out_fields = ()
    record_file = "device_check.json"

    def bench(self):
        from nas.bench.device_check import DeviceCheckConfig, run_device_check

        return DeviceCheckConfig, run_device_check

    def summary(self, record: dict[str, Any], config: Any) -> None:
        for name, r in record["parts"].items():
            why = r.get("reason") or r.get("error") or ""
            print(f"{name:18s} {r['status']:8s} {r.get('seconds', 0.0):6.1f} s  {why}")
        print(f"{record['passed']} passed, {record['failed']} failed, {record['skipped']} skipped, "
              f"{record['not_run']} not run in {record['seconds']:.0f} s")

    def exit_code(self, record: dict[str, Any]) -> int:
        return 0 if record["ok"] else 1


class BenchStaircase(_RunDirBench):
    name = ("bench", "staircase")
    help = "latency vs one stage's width beside FLOPs (the GPU tail effect)"
    kind = "bench-staircase"
    out_fields = ("space", "device")
    record_file = "staircase.json"

    def bench(self):
        from nas.bench.staircase import StaircaseBenchConfig, run_staircase_bench

        return StaircaseBenchConfig, run_staircase_bench

    def summary(self, record: dict[str, Any], config: Any) -> None:
        print(f"{'width':>6s} {'measured ms':>12s} {'predicted ms':>13s} {'MMACs':>9s} {'waves':>6s}")
        for r in record["rows"]:
            waves = "-" if r["kernel_waves"] is None else f"{r['kernel_waves']:.0f}"
            print(f"{r['width']:6d} {r['latency_ms']:12.3f} {r['predicted_ms']:13.3f} {r['macs'] / 1e6:9.2f} "
                  f"{waves:>6s}")
        print(f"spearman(latency, MACs)={record['spearman_latency_vs_macs']:.3f}; "
              f"flat-or-down steps={record['flat_or_down_steps']}; plot {record['plot']}")


class BenchSearch(_RunDirBench):
    name = ("bench", "search")
    help = "default sampler vs random sampling: hypervolume and trials/s"
    kind = "bench-search"
    record_file = "search_bench.json"

    def bench(self):
        from nas.bench.search import SearchBenchConfig, run_search_bench

        return SearchBenchConfig, run_search_bench

    def summary(self, record: dict[str, Any], config: Any) -> None:
        _print_fields(record, ("hypervolume_default", "hypervolume_random", "hv_ratio", "trials_per_s",
                               "trials_per_s_own_storage", "trials_per_s_sqlite", "trials_per_s_cached",
                               "trials_per_s_own_storage_cached"))


class BenchReliability(_RunDirBench):
    name = ("bench", "reliability")
    help = "SIGKILL a search at random moments, resume, count lost trials"
    kind = "bench-reliability"
    out_fields = ()
    record_file = "reliability.json"

    def bench(self):
        from nas.bench.reliability import ReliabilityBenchConfig, run_reliability_bench

        return ReliabilityBenchConfig, run_reliability_bench

    def options(self, parser: argparse.ArgumentParser, config_cls: type) -> list[str]:
        return add_config_options(parser, config_cls, include=("cycles", "trials", "supernet", "predictors", "seed"))

    def shown(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k != "details"}

    def summary(self, record: dict[str, Any], config: Any) -> None:
        _print_fields(record, ("cycles", "trials_requested", "trials_completed", "trials_lost", "duplicate_trials",
                               "trials_failed"), "")

    def exit_code(self, record: dict[str, Any]) -> int:
        return 0 if record["trials_lost"] == 0 and record["duplicate_trials"] == 0 else 1
