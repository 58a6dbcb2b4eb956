"""The ``nas`` command: a thin layer that parses, calls the library and prints.

    nas models                       list the network presets
    nas datasets                     list the datasets
    nas train-net --model M --dataset D [--epochs N …]
    nas space list | show NAME | sample NAME [--seed S | --max | --min]
    nas train-supernet --space NAME --dataset D --epochs N --out DIR [--resume]
    nas supernet eval --checkpoint DIR --arch FILE.json
    nas profile --space NAME --n N --device cpu|cuda --batch-size B --out FILE.csv
    nas predictors fit --profiles FILE.csv --out DIR [--space NAME] [--overwrite] | refit DIR | show DIR
    nas predictors predict --predictor DIR --arch FILE.json --batch-size B
    nas bench mixer [--device cpu|cuda] [--json]
    nas bench ranking --space NAME [--json]
    nas bench predictors --space NAME --device cpu [--json]
    nas bench staircase --device cuda|cpu [--json]
    nas search [options]             the main job (also installed as `nas-search`)
    nas export --run DIR --arch-id ID [--format safetensors,torchscript,onnx]
    nas report --run DIR
    nas bench search --space NAME [--json]
    nas bench reliability [--cycles 10] [--json]

Bad input (unknown names, missing files, an occupied run directory) exits with code 2 and a
message that says what was wrong and what is valid.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
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
    from nas.train import TrainConfig, check_device
    from nas.train_net import train_net

    check_device(args.device, name="--device", available=True)
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

    from nas.run_dir import check_output_file
    from search_spaces.space import create_space

    sp = create_space(args.name)
    if args.out:
        check_output_file(args.out)
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
    from nas.train import TrainConfig, check_device

    check_device(args.device, name="--device", available=True)
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
    from nas.train import check_device
    from search_spaces.space import load_arch

    check_device(args.device, name="--device", available=True)
    supernet, run_config = load_supernet(args.checkpoint)
    arch = load_arch(args.arch, supernet.space)
    data_dir = args.data_dir if args.data_dir is not None else run_config.get("data_dir")
    splits = load_dataset(run_config["dataset"], seed=run_config["seed"], data_dir=data_dir)
    loss, acc = evaluate_arch(supernet, arch, splits.val, device=args.device)
    print(f"arch {arch.arch_id} ({arch.describe()}): inherited val_acc={100 * acc:.2f}% val_loss={loss:.4f} "
          f"on {run_config['dataset']} ({len(splits.val)} images)")
    return 0


def _cmd_bench_ranking(args: argparse.Namespace) -> int:
    from nas.bench.ranking import RankingBenchConfig, run_ranking_bench
    from nas.run_dir import file_in_the_way
    from nas.train import check_device

    check_device(args.device, name="--device", available=True)
    config = RankingBenchConfig(space=args.space, dataset=args.dataset, data_dir=args.data_dir, k=args.k,
                                epochs=args.epochs, seed=args.seed, seeds=args.seeds,
                                distill=not args.no_distill, device=args.device)
    if args.resume and not args.out:
        raise ValueError("--resume needs --out: the benchmark's run directory to continue")
    out = args.out = args.out or f"results/bench-ranking-{args.space}-{time.strftime('%Y%m%d-%H%M%S')}"
    blocker = file_in_the_way(out)
    if blocker is not None:
        raise ValueError(f"--out {out} cannot be a run directory: {blocker} is a file, not a directory")
    record = run_ranking_bench(config, out=out, progress=not args.no_progress, resume=args.resume)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        for key in ("kendall_tau", "spearman", "largest_inherited_acc", "largest_standalone_acc",
                    "largest_inherited_test_acc", "largest_standalone_test_acc", "mean_abs_gap",
                    "standalone_seed_range", "standalone_seed_tau", "standalone_split_half_tau",
                    "standalone_arch_std", "standalone_seed_std", "standalone_mean_reliability",
                    "kendall_tau_ceiling", "kendall_tau_params",
                    "kendall_tau_val_loss", "standalone_seed_tau_val_loss", "minutes"):
            value = record[key]
            print(f"{key}: {'n/a (needs two seeds that rank the subnets)' if value is None else f'{value:.4f}'}")
        print(f"standalone_runs_reused: {record['standalone_runs_reused']} (finished by an earlier invocation)")
        print(f"record: {Path(out) / 'ranking.json'}")
    return 0


def _cmd_bench_mixer(args: argparse.Namespace) -> int:
    from nas.bench.mixer import MixerBenchConfig, run_mixer_bench
    from nas.run_dir import check_output_file

    config = MixerBenchConfig(
        device=args.device, batch_size=args.batch_size, width=args.width, depth=args.depth,
        image_size=args.image_size, kernel_size=args.kernel_size, repeats=args.repeats, warmup=args.warmup,
        threads=args.threads, seed=args.seed,
    )
    if args.out:
        check_output_file(args.out)  # before the benchmark runs, so that its result is not lost
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


def _cmd_profile(args: argparse.Namespace) -> int:
    from nas.profiling import ProfileRunConfig, collect_profiles

    config = ProfileRunConfig(space=args.space, n=args.n, device=args.device, batch_size=args.batch_size,
                              seed=args.seed, threads=args.threads, passes=args.passes,
                              max_passes=args.max_passes if args.max_passes is not None else max(args.passes, 7),
                              adaptive_fraction=args.adaptive_fraction, with_ops=True if args.with_ops else None)
    table = collect_profiles(config, args.out, progress=not args.no_progress)
    lat = table["latency_ms"]
    print(f"{args.out}: {len(table)} architectures of {args.space} at batch {args.batch_size} on "
          f"{table['device_name'].iloc[0]} [fingerprint {table['fingerprint_id'].iloc[0]}], {config.passes} passes; "
          f"latency {lat.min():.3f}-{lat.max():.3f} ms, peak inference memory "
          f"{table['peak_infer_mem_mb'].min():.2f}-{table['peak_infer_mem_mb'].max():.2f} MB; "
          f"{table.attrs['minutes']:.1f} min this run")
    suspect = int((table["suspect"].astype(str) != "").sum())
    if suspect:
        print(f"{suspect} architectures have a suspect measurement (see the suspect column)")
    return 0


def _artifact_dirs(path: Path) -> list[Path]:
    if (path / "predictor.json").exists():
        return [path]
    found = sorted(p.parent for p in path.glob("*/predictor.json"))
    if not found:
        raise FileNotFoundError(f"{path} holds no predictor artifact (no predictor.json in it or its subdirectories)")
    return found


def _cmd_predictors_fit(args: argparse.Namespace) -> int:
    from nas.run_dir import file_in_the_way
    from predictors.predictor import Predictor
    from predictors.table import read_profiles, rows_for

    if args.seed < 0:  # as the configs of the other commands check their seed
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed!r}")
    out = Path(args.out)
    blocker = file_in_the_way(out)
    if blocker == out:
        raise ValueError(f"--out {out} is a file; give a directory (one artifact per target is written under it)")
    if blocker is not None:
        raise ValueError(f"--out {out} cannot be created: {blocker} is a file, not a directory")
    table = read_profiles(args.profiles)
    if len(table) == 0:
        raise ValueError(f"profile table {args.profiles} has no rows; profile some architectures with `nas profile`")
    ids = sorted(table["fingerprint_id"].astype(str).unique())
    if args.fingerprint_id:
        if args.fingerprint_id not in ids:
            raise ValueError(f"{args.profiles} has no rows of fingerprint {args.fingerprint_id!r}; it has {ids}")
    elif len(ids) > 1:
        raise ValueError(f"{args.profiles} holds {len(ids)} devices {ids}; choose one with --fingerprint-id")
    table = rows_for(table, fingerprint_id=args.fingerprint_id or ids[0])
    spaces = sorted(table["space"].astype(str).unique())
    if args.space:
        if args.space not in spaces:
            raise ValueError(f"{args.profiles} has no rows of space {args.space!r}; it has {spaces}")
    elif len(spaces) > 1:
        raise ValueError(f"{args.profiles} holds {len(spaces)} spaces {spaces}; choose one with --space "
                         f"(one predictor per space)")
    table = rows_for(table, batch_sizes=args.batch_size or None, space=args.space)
    if len(table) == 0:
        raise ValueError(f"no rows of {args.profiles} match batch sizes {args.batch_size}")
    held = [out / t for t in args.target if (out / t / "predictor.json").exists()]
    if held and not args.overwrite:
        what, it = ("holds a predictor", "it") if len(held) == 1 else ("hold predictors", "them")
        missing = [t for t in args.target if not (out / t / "predictor.json").exists()]
        rest = f", --target {','.join(missing)} to fit only the missing one(s)," if missing else ""
        raise ValueError(f"{', '.join(map(str, held))} already {what}; pass --overwrite to replace {it}{rest} "
                         f"or choose another --out")
    for target in args.target:
        pred = Predictor(target=target, model=args.model, seed=args.seed).fit(table)
        pred.save(out / target)
        cv = "  ".join(f"{k}={v:.2f}" for k, v in sorted(pred.cv_scores.items(), key=lambda kv: kv[1]))
        print(f"{target}: model {pred.model_name} on {len(pred.table)} architectures, batch sizes {pred.batch_sizes}"
              f"{', reference-normalised' if pred.normalization == 'reference' else ''} -> {out / target}")
        if cv:
            print(f"  cross-validated RMSPE (%): {cv}")
    return 0


def _cmd_predictors_refit(args: argparse.Namespace) -> int:
    from predictors.predictor import Predictor

    for d in _artifact_dirs(Path(args.dir)):
        pred = Predictor.refit(d)
        print(f"refitted {d}: {pred.target} model {pred.model_name} on {len(pred.table)} rows "
              f"(scikit-learn {pred.metadata()['versions']['scikit-learn']})")
    return 0


def _cmd_predictors_show(args: argparse.Namespace) -> int:
    from predictors.predictor import Predictor

    for d in _artifact_dirs(Path(args.dir)):
        meta = Predictor._read_meta(d)
        fp = meta["fingerprint"]
        print(f"{d}: {meta['target']} predictor, model {meta['model']}, space {meta['space']}, batch sizes "
              f"{meta['batch_sizes']}, {meta.get('n_train')} training rows, fitted {meta.get('fitted_at')}")
        print(f"  device {fp.get('kind')} {fp.get('name')}; scikit-learn {meta['versions'].get('scikit-learn')}; "
              f"normalisation {meta.get('normalization', 'none')}")
        for name, score in sorted((meta.get("cv_rmspe") or {}).items(), key=lambda kv: kv[1]):
            print(f"  CV RMSPE {name:7s} {score:7.2f} %")
    return 0


def _cmd_predictors_predict(args: argparse.Namespace) -> int:
    from nas.train import check_device
    from predictors.predictor import Predictor
    from profilers.fingerprint import device_fingerprint
    from search_spaces.space import load_arch

    check_device(args.device, name="--device", available=True)
    fp = device_fingerprint(args.device, threads=args.threads)
    arch = load_arch(args.arch)
    for d in _artifact_dirs(Path(args.predictor)):
        pred = Predictor.load(d, fingerprint=fp.to_dict(), force=args.force)
        value = float(pred.predict([arch], args.batch_size)[0])
        unit = "ms" if pred.target == "latency" else "MB"
        print(f"{pred.target}: {value:.4f} {unit} (arch {arch.arch_id}, batch {args.batch_size}, {pred.model_name})")
    return 0


def _cmd_bench_predictors(args: argparse.Namespace) -> int:
    from nas.bench.predictors import PredictorBenchConfig, run_predictor_bench

    config = PredictorBenchConfig(space=args.space, device=args.device, batch_sizes=tuple(args.batch_size or [1]),
                                  n_train=args.n_train, n_test=args.n_test, seed=args.seed,
                                  test_seed=args.test_seed, threads=args.threads)
    out = args.out or f"results/bench-predictors-{args.space}-{args.device}-{time.strftime('%Y%m%d-%H%M%S')}"
    record = run_predictor_bench(config, out=out, progress=not args.no_progress)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    for b, per in record["batch_sizes"].items():
        for target in config.targets:
            r = per[target]
            print(f"batch {b} {target} (default: {r['default']})")
            for name in ("flops", "lookup", "linear", "gbt", "forest"):
                m = r[name]
                print(f"  {name:7s} rmspe={m['rmspe']:7.2f}%  within5={m['within_5pct']:.2f}  "
                      f"within10={m['within_10pct']:.2f}  tau={m['kendall_tau']:.3f}")
        print(f"batch {b}: profiling {per['profiling_minutes_train']:.1f} min (train) + "
              f"{per['profiling_minutes_test']:.1f} min (test); parity plot {per['parity_plot']}")
    print(f"record: {Path(out) / 'predictors.json'}")
    return 0


def _cmd_bench_staircase(args: argparse.Namespace) -> int:
    from nas.bench.staircase import StaircaseBenchConfig, run_staircase_bench

    config = StaircaseBenchConfig(space=args.space, device=args.device, batch_size=args.batch_size, stage=args.stage,
                                  max_width=args.max_width, repeats=args.repeats, predictor=args.predictor,
                                  n_train=args.n_train, seed=args.seed, threads=args.threads, force=args.force)
    out = args.out or f"results/bench-staircase-{args.space}-{args.device}-{time.strftime('%Y%m%d-%H%M%S')}"
    record = run_staircase_bench(config, out=out, progress=not args.no_progress)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(f"{'width':>6s} {'measured ms':>12s} {'predicted ms':>13s} {'MMACs':>9s} {'waves':>6s}")
    for r in record["rows"]:
        waves = "-" if r["kernel_waves"] is None else f"{r['kernel_waves']:.0f}"
        print(f"{r['width']:6d} {r['latency_ms']:12.3f} {r['predicted_ms']:13.3f} {r['macs'] / 1e6:9.2f} {waves:>6s}")
    print(f"spearman(latency, MACs)={record['spearman_latency_vs_macs']:.3f}; "
          f"flat-or-down steps={record['flat_or_down_steps']}; plot {record['plot']}")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from nas.search import SearchConfig, run_search

    if args.out is None and not args.resume:  # named now, so that an interrupted run can say where it is
        args.out = f"results/search-{args.space}-{time.strftime('%Y%m%d-%H%M%S')}"

    config = SearchConfig(
        space=args.space, dataset=args.dataset, data_dir=args.data_dir, device=args.device, batch_size=args.batch_size,
        latency_budgets_ms=tuple(args.latency_budget_ms or ()), memory_budgets_mb=tuple(args.memory_budget_mb or ()),
        objectives=args.objectives, trials=args.trials, sampler=args.sampler, population_size=args.population_size,
        storage=args.storage, study_name=args.study_name, resume=args.resume, join=args.join, workers=args.workers,
        seed=args.seed, out=args.out,
        quick=args.quick, supernet=args.supernet, supernet_epochs=args.supernet_epochs, predictors=args.predictors,
        force=args.force, profile_n=args.profile_n, profile_passes=args.profile_passes, threads=args.threads,
        formats=args.format, measure_candidates=args.measure_candidates,
    )
    result = run_search(config, progress=not args.no_progress)
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
    print(f"report: {result.report.get('html')}")
    if result.infeasible:
        for p in result.infeasible:
            print(f"nas-search: error: {p['message']}", file=sys.stderr)
        return 2
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from nas.export_run import export_from_run

    written = export_from_run(args.run, arch_id=args.arch_id, arch_file=args.arch, formats=args.format,
                              out=args.out, overwrite=args.overwrite, data_dir=args.data_dir)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from nas.search import rebuild_report

    for name, path in rebuild_report(args.run).items():
        print(f"{name}: {path}")
    return 0


def _cmd_bench_search(args: argparse.Namespace) -> int:
    from nas.bench.search import SearchBenchConfig, run_search_bench

    config = SearchBenchConfig(space=args.space, trials=args.trials, seeds=args.seeds, sampler=args.sampler,
                               population_size=args.population_size,
                               supernet=args.supernet, predictors=args.predictors, force=args.force,
                               supernet_epochs=args.supernet_epochs, profile_n=args.profile_n, seed=args.seed,
                               data_dir=args.data_dir)
    out = args.out or f"results/bench-search-{args.space}-{time.strftime('%Y%m%d-%H%M%S')}"
    record = run_search_bench(config, out=out, progress=not args.no_progress)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    for key in ("hypervolume_default", "hypervolume_random", "hv_ratio", "trials_per_s", "trials_per_s_sqlite",
                "trials_per_s_cached"):
        print(f"{key}: {record[key]:.4f}")
    print(f"record: {Path(out) / 'search_bench.json'}")
    return 0


def _cmd_bench_reliability(args: argparse.Namespace) -> int:
    from nas.bench.reliability import ReliabilityBenchConfig, run_reliability_bench

    config = ReliabilityBenchConfig(cycles=args.cycles, trials=args.trials, seed=args.seed, supernet=args.supernet,
                                    predictors=args.predictors)
    out = args.out or f"results/bench-reliability-{time.strftime('%Y%m%d-%H%M%S')}"
    record = run_reliability_bench(config, out=out, progress=not args.no_progress)
    if args.json:
        print(json.dumps({k: v for k, v in record.items() if k != "details"}, indent=2))
    else:
        for key in ("cycles", "trials_requested", "trials_completed", "trials_lost", "duplicate_trials",
                    "trials_failed"):
            print(f"{key}: {record[key]}")
        print(f"record: {Path(out) / 'reliability.json'}")
    return 0 if record["trials_lost"] == 0 and record["duplicate_trials"] == 0 else 1


def add_search_args(p: argparse.ArgumentParser) -> None:
    """The options of ``nas-search`` / ``nas search``."""
    p.add_argument("--space", default="digits-s", help="search space (see `nas space list`; default digits-s)")
    p.add_argument("--dataset", default=None, help="dataset (default: the space's own; see `nas datasets`)")
    p.add_argument("--data-dir", default=None, help="directory holding the dataset files (cifar10)")
    p.add_argument("--device", default="cpu", help="target device: cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=1, help="deployment batch size (latency/memory are at it)")
    p.add_argument("--latency-budget-ms", type=float, action="append",
                   help="latency limit in ms (repeatable: one result per budget pair)")
    p.add_argument("--memory-budget-mb", type=float, action="append",
                   help="peak inference memory limit in MB (repeatable; paired in order with latency budgets)")
    p.add_argument("--objectives", default=None, help="comma-separated subset of accuracy,latency,memory (default all)")
    p.add_argument("--trials", type=int, default=None, help="completed trials in the study (default 300; quick 60)")
    p.add_argument("--sampler", default="nsga2", help="nsga2 (default), tpe or random")
    p.add_argument("--population-size", type=int, default=None, help="NSGA-II population (default 16; quick 12)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage: sqlite:///PATH, journal:///PATH or postgresql://USER@HOST/DB "
                        "(default: SQLite study.db in the run directory)")
    p.add_argument("--study-name", default=None, help="default: nas-search-SPACE")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--join", action="store_true",
                   help="join the study of the same name in --storage if another worker created it (multi-machine)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes running trials on this machine (default 1; >1 uses a journal file by default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directory (default: results/search-SPACE-TIME)")
    p.add_argument("--quick", action="store_true", help="small settings for a first look (about a minute on a CPU)")
    p.add_argument("--supernet", default=None, help="reuse this trained supernet run directory")
    p.add_argument("--supernet-epochs", type=int, default=None, help="supernet training epochs (default 30; quick 3)")
    p.add_argument("--predictors", default=None,
                   help="reuse predictor artifacts from this directory (its latency/ and memory/)")
    p.add_argument("--force", action="store_true", help="use predictors fitted on another device")
    p.add_argument("--profile-n", type=int, default=None, help="architectures to profile (default 80; quick 16)")
    p.add_argument("--profile-passes", type=int, default=None, help="passes per architecture (default 3; quick 1)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for measuring (default: torch's setting)")
    p.add_argument("--format", default="safetensors,torchscript,onnx", help="export formats of the picks")
    p.add_argument("--measure-candidates", type=int, default=3,
                   help="per budget, measure up to this many candidates until one meets the budget")
    p.add_argument("--no-progress", action="store_true")


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
    p.add_argument("--data-dir", default=None, help="where the dataset lies now (default: where the supernet "
                                                     "was trained from)")
    p.set_defaults(func=_cmd_supernet_eval)

    p = sub.add_parser("profile", help="measure sampled architectures of a space on a device (resumable CSV table)")
    p.add_argument("--space", required=True, help="search space (see `nas space list`)")
    p.add_argument("--n", type=int, required=True, help="number of architectures")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--out", required=True, help="profile table (CSV); an existing one is resumed / extended")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's setting)")
    p.add_argument("--passes", type=int, default=3, help="measurements per architecture, spread over the run")
    p.add_argument("--max-passes", type=int, default=None,
                   help="cap on passes for architectures whose passes disagree (default: max(passes, 7))")
    p.add_argument("--adaptive-fraction", type=float, default=0.25,
                   help="share of architectures chosen where the current predictor errs most")
    p.add_argument("--with-ops", action="store_true",
                   help="also on CPU, write per-op records to FILE.records.jsonl (always on CUDA, with kernels)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_profile)

    preds = sub.add_parser("predictors", help="latency / memory predictors: fit, refit, show, predict")
    preds_sub = preds.add_subparsers(dest="predictors_command", required=True, metavar="ACTION")
    p = preds_sub.add_parser("fit", help="fit predictors on a profile table")
    p.add_argument("--profiles", required=True, help="profile table (CSV) from `nas profile`")
    p.add_argument("--out", required=True, help="directory; one artifact per target is written under it")
    p.add_argument("--target", action="append", choices=("latency", "memory", "train_memory"),
                   help="what to predict (repeatable; default: latency and memory)")
    p.add_argument("--model", default="auto", help="auto (best by cross-validation), flops, lookup, linear, gbt, forest")
    p.add_argument("--batch-size", type=int, action="append", help="only these batch sizes (repeatable)")
    p.add_argument("--fingerprint-id", default=None, help="the device's rows, when the table holds several")
    p.add_argument("--space", default=None, help="the search space's rows, when the table holds several")
    p.add_argument("--overwrite", action="store_true", help="replace predictors already in --out")
    p.add_argument("--seed", type=int, default=0, help="seed of the models and the cross-validation folds")
    p.set_defaults(func=_cmd_predictors_fit)
    p = preds_sub.add_parser("refit", help="rebuild artifacts from their stored training table (any scikit-learn)")
    p.add_argument("dir", help="an artifact directory, or a directory of them")
    p.set_defaults(func=_cmd_predictors_refit)
    p = preds_sub.add_parser("show", help="describe artifacts")
    p.add_argument("dir")
    p.set_defaults(func=_cmd_predictors_show)
    p = preds_sub.add_parser("predict", help="predict one architecture on this device")
    p.add_argument("--predictor", required=True, help="an artifact directory, or a directory of them")
    p.add_argument("--arch", required=True, help="architecture JSON file")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--force", action="store_true", help="use a predictor fitted on another device")
    p.set_defaults(func=_cmd_predictors_predict)

    p = sub.add_parser("search", help="the main job: supernet, predictors, multi-objective search, picks, report")
    add_search_args(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("export", help="export an architecture of a search run (safetensors, TorchScript, ONNX)")
    p.add_argument("--run", required=True, help="nas-search run directory")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--arch-id", default=None, help="an arch_id from the run's trials.csv / pareto.csv")
    which.add_argument("--arch", default=None, help="an architecture JSON file of the run's space")
    p.add_argument("--format", default="safetensors,torchscript,onnx", help="comma-separated formats")
    p.add_argument("--out", default=None, help="export directory (default: RUN/exports/ARCH_ID)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    p.add_argument("--data-dir", default=None, help="where the dataset lies now, for the test accuracy "
                                                     "(default: where the supernet was trained from)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("report", help="regenerate a search run's plots and report from its study and tables")
    p.add_argument("--run", required=True, help="nas-search run directory")
    p.set_defaults(func=_cmd_report)

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
    p.add_argument("--resume", action="store_true", help="continue the stopped benchmark in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bench_ranking)
    p = bench_sub.add_parser("predictors", help="predictor accuracy on held-out architectures")
    p.add_argument("--space", default="digits-s")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, action="append", help="repeatable (default: 1)")
    p.add_argument("--n-train", type=int, default=150)
    p.add_argument("--n-test", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="run directory (default: results/bench-predictors-SPACE-DEVICE-TIME)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bench_predictors)
    p = bench_sub.add_parser("staircase", help="latency vs one stage's width beside FLOPs (the GPU tail effect)")
    p.add_argument("--space", default="cifar10-m")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--stage", type=int, default=2)
    p.add_argument("--max-width", type=int, default=None, help="sweep to this width (default: the stage's largest)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved sweeps; the fastest is kept")
    p.add_argument("--predictor", default=None, help="latency predictor artifact (default: fit one)")
    p.add_argument("--n-train", type=int, default=60, help="profiles for the fitted predictor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--force", action="store_true", help="use a predictor fitted on another device")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="run directory (default: results/bench-staircase-SPACE-DEVICE-TIME)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bench_staircase)
    p = bench_sub.add_parser("search", help="default sampler vs random sampling: hypervolume and trials/s")
    p.add_argument("--space", default="digits-s")
    p.add_argument("--trials", type=int, default=300, help="trials per study")
    p.add_argument("--seeds", type=int, default=5, help="studies per sampler (medians reported)")
    p.add_argument("--sampler", default="nsga2", help="the default sampler to compare with random")
    p.add_argument("--population-size", type=int, default=16, help="NSGA-II population (the search's default)")
    p.add_argument("--supernet", default=None, help="trained supernet run directory (default: train one)")
    p.add_argument("--predictors", default=None, help="predictor artifacts (default: profile and fit)")
    p.add_argument("--force", action="store_true", help="use predictors fitted on another device")
    p.add_argument("--supernet-epochs", type=int, default=30)
    p.add_argument("--profile-n", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="dataset directory (CIFAR-10 for cifar10-m)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="run directory (default: results/bench-search-SPACE-TIME)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bench_search)
    p = bench_sub.add_parser("reliability", help="SIGKILL a search at random moments, resume, count lost trials")
    p.add_argument("--cycles", type=int, default=10, help="kill/resume cycles")
    p.add_argument("--trials", type=int, default=400, help="trials the search asks for")
    p.add_argument("--supernet", default=None, help="trained supernet run directory (default: train a small one)")
    p.add_argument("--predictors", default=None, help="predictor artifacts (default: profile and fit a few)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="run directory (default: results/bench-reliability-TIME)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bench_reliability)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "target", "unset") is None:
        args.target = ["latency", "memory"]
    return _run(args, prog=f"nas {args.command}")


def _interrupted_hint(args: argparse.Namespace) -> str:
    """What a Ctrl-C left behind and how to go on, for the commands that can continue."""
    command, out = getattr(args, "command", None), getattr(args, "out", None)
    if command == "search":
        if out and (Path(out) / "config.json").is_file():
            return f"; what was done is kept in {out}: continue with `nas-search --out {out} --resume`"
        return "; nothing was written"
    if command == "train-supernet" and out and (Path(out) / "config.json").is_file():
        return f"; continue from the last checkpoint in {out}: run the same command with --resume"
    if command == "profile":
        return f"; every measurement so far is in {args.out}: run the same command again to continue"
    if command == "bench" and getattr(args, "bench", None) == "ranking" and out and Path(out).is_dir():
        return f"; the runs so far are in {out}: run the same command with --out {out} --resume"
    return ""


def _run(args: argparse.Namespace, *, prog: str) -> int:
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback from deep inside torch or optuna
        print(f"\n{prog}: interrupted{_interrupted_hint(args)}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file or directory in the way, no permission, …: bad --out and the like
        where = f"{err.filename}: " if err.filename is not None else ""
        print(f"{prog}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # training diverged; checkpoints already written are kept
        print(f"{prog}: training stopped: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        from nas.storage import StorageUnavailable

        if isinstance(err, StorageUnavailable):  # the database went away: the worker stops, nothing is lost
            print(f"{prog}: error: {err}", file=sys.stderr)
            return 3
        raise


def search_main(argv: Sequence[str] | None = None) -> int:
    """The ``nas-search`` command: ``nas search`` under its own name."""
    parser = argparse.ArgumentParser(
        prog="nas-search", description="QuadraNAS search: Pareto-optimal QuadraNet models under hardware budgets")
    add_search_args(parser)
    parser.set_defaults(func=_cmd_search, command="search")
    args = parser.parse_args(argv)
    return _run(args, prog="nas-search")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
