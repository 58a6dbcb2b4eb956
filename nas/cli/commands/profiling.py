"""Profiling commands: measure architectures into a profile table, and fit, refit, show and use
the latency / memory predictors fitted on such tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli.base import Command
from nas.cli.options import Opt, add_config_options, config_values

__all__ = ["PredictorsFit", "PredictorsPredict", "PredictorsRefit", "PredictorsShow", "Profile"]


class Profile(Command):
    name = ("profile",)
    help = "measure sampled architectures of a space on a device (resumable CSV table)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.profiling import ProfileRunConfig

        parser.add_argument("--out", required=True, help="profile table (CSV); an existing one is resumed / extended")
        fields = add_config_options(parser, ProfileRunConfig, include=(
            "space", "n", "device", "batch_size", "seed", "threads", "runtime", "passes", "max_passes",
            "adaptive_fraction", "with_ops"),
            overrides={"max_passes": Opt(default=None, help="cap on passes for architectures whose passes disagree "
                                                            "(default: max(passes, 7))")})
        parser.set_defaults(profile_fields=fields)
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def run(self, args: argparse.Namespace) -> int:
        from nas.profiling import ProfileRunConfig, collect_profiles

        values = config_values(ProfileRunConfig, args, args.profile_fields)
        values.setdefault("max_passes", max(args.passes, 7))
        config = ProfileRunConfig(**values)
        table = collect_profiles(config, args.out, progress=not args.no_progress)
        lat = table["latency_ms"]
        print(f"{args.out}: {len(table)} architectures of {args.space} at batch {args.batch_size} on "
              f"{table['device_name'].iloc[0]} [fingerprint {table['fingerprint_id'].iloc[0]}], {config.passes} "
              f"passes; latency {lat.min():.3f}-{lat.max():.3f} ms, peak inference memory "
              f"{table['peak_infer_mem_mb'].min():.2f}-{table['peak_infer_mem_mb'].max():.2f} MB; "
              f"{table.attrs['minutes']:.1f} min this run")
        suspect = int((table["suspect"].astype(str) != "").sum())
        if suspect:
            print(f"{suspect} architectures have a suspect measurement (see the suspect column)")
        return 0

    def interrupted(self, args: argparse.Namespace) -> str:
        return f"; every measurement so far is in {args.out}: run the same command again to continue"


class PredictorsFit(Command):
    name = ("predictors", "fit")
    help = "fit predictors on a profile table"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from nas.profiling import DEFAULT_TARGETS
        from predictors import COST_MODELS, TARGETS

        parser.add_argument("--profiles", required=True, help="profile table (CSV) from `nas profile`")
        parser.add_argument("--out", required=True, help="directory; one artifact per target is written under it")
        parser.add_argument("--target", action="append", choices=tuple(TARGETS),
                            help=f"what to predict (repeatable; default: {' and '.join(DEFAULT_TARGETS)})")
        parser.add_argument("--model", default="auto",
                            help=f"cost model: auto (best by cross-validation), {', '.join(COST_MODELS)}")
        parser.add_argument("--batch-size", type=int, action="append", help="only these batch sizes (repeatable)")
        parser.add_argument("--fingerprint-id", default=None, help="the device's rows, when the table holds several")
        parser.add_argument("--space", default=None, help="the search space's rows, when the table holds several")
        parser.add_argument("--overwrite", action="store_true", help="replace predictors already in --out")
        parser.add_argument("--seed", type=int, default=0, help="seed of the models and the cross-validation folds")

    def run(self, args: argparse.Namespace) -> int:
        from nas.profiling import DEFAULT_TARGETS, fit_predictors

        def fitted(target: str, pred, directory: Path) -> None:
            cv = "  ".join(f"{k}={v:.2f}" for k, v in sorted(pred.cv_scores.items(), key=lambda kv: kv[1]))
            print(f"{target}: model {pred.model_name} on {len(pred.table)} architectures, batch sizes "
                  f"{pred.batch_sizes}{', reference-normalised' if pred.normalization == 'reference' else ''} -> "
                  f"{directory}")
            if cv:
                print(f"  cross-validated RMSPE (%): {cv}")

        fit_predictors(args.profiles, args.out, targets=args.target or DEFAULT_TARGETS, model=args.model,
                       batch_sizes=args.batch_size, fingerprint_id=args.fingerprint_id, space=args.space,
                       overwrite=args.overwrite, seed=args.seed, on_fitted=fitted)
        return 0


class PredictorsRefit(Command):
    name = ("predictors", "refit")
    help = "rebuild artifacts from their stored training table (any scikit-learn)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", help="an artifact directory, or a directory of them")

    def run(self, args: argparse.Namespace) -> int:
        from nas.profiling import artifact_dirs
        from predictors import Predictor

        for d in artifact_dirs(args.dir):
            pred = Predictor.refit(d)
            print(f"refitted {d}: {pred.target} model {pred.model_name} on {len(pred.table)} rows "
                  f"(scikit-learn {pred.metadata()['versions']['scikit-learn']})")
        return 0


class PredictorsShow(Command):
    name = ("predictors", "show")
    help = "describe artifacts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", help="an artifact directory, or a directory of them")

    def run(self, args: argparse.Namespace) -> int:
        from nas.profiling import artifact_dirs
        from predictors import Predictor

        for d in artifact_dirs(args.dir):
            meta = Predictor.read_metadata(d)
            fp = meta["fingerprint"]
            print(f"{d}: {meta['target']} predictor, model {meta['model']}, space {meta['space']}, batch sizes "
                  f"{meta['batch_sizes']}, {meta.get('n_train')} training rows, fitted {meta.get('fitted_at')}")
            print(f"  device {fp.get('kind')} {fp.get('name')}; scikit-learn {meta['versions'].get('scikit-learn')}; "
                  f"normalisation {meta.get('normalization', 'none')}")
            for name, score in sorted((meta.get("cv_rmspe") or {}).items(), key=lambda kv: kv[1]):
                print(f"  CV RMSPE {name:7s} {score:7.2f} %")
        return 0


class PredictorsPredict(Command):
    name = ("predictors", "predict")
    help = "predict one architecture on this target (device, runtime, threads)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--predictor", required=True, help="an artifact directory, or a directory of them")
        parser.add_argument("--arch", required=True, help="architecture JSON file")
        parser.add_argument("--batch-size", type=int, default=1, help="batch size (default 1)")
        parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
        parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's setting)")
        parser.add_argument("--runtime", default="torch", help="the runtime deployed with: torch, torchscript or "
                                                               "onnxruntime (default torch)")
        parser.add_argument("--level", type=float, default=None,
                            help="also print the prediction interval of this level (e.g. 0.9)")
        parser.add_argument("--force", action="store_true", help="use a predictor fitted on another target")

    def run(self, args: argparse.Namespace) -> int:
        from nas.profiling import artifact_dirs
        from predictors import Predictor
        from predictors.predictor import check_level
        from profilers import check_device, check_runtime, device_fingerprint
        from search_spaces.space import load_arch

        check_device(args.device, name="--device", available=True)
        check_runtime(args.runtime, option="--runtime")
        if args.level is not None:
            check_level(args.level)
        fp = device_fingerprint(args.device, threads=args.threads, runtime=args.runtime)
        arch = load_arch(args.arch)
        for d in artifact_dirs(args.predictor):
            pred = Predictor.load(d, fingerprint=fp.to_dict(), force=args.force)
            value = float(pred.predict([arch], args.batch_size)[0])
            unit = "ms" if pred.target == "latency" else "MB"
            interval = ""
            if args.level is not None:
                iv = pred.predict([arch], args.batch_size, level=args.level)
                interval = f", {100 * args.level:.0f} % interval {float(iv.low[0]):.4f}–{float(iv.high[0]):.4f} {unit}"
            speed = " at the profiling run's speed" if pred.target == "latency" and pred.normalization == "reference" \
                else ""
            print(f"{pred.target}: {value:.4f} {unit}{speed}{interval} (arch {arch.arch_id}, batch {args.batch_size}, "
                  f"{pred.model_name})")
        return 0
