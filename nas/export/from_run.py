"""``nas export``: export one architecture of a search run with the run's supernet weights.

The architecture is named by ``arch_id`` (looked up in the run's ``trials.csv``) or given as a
JSON file of the run's space (validated: errors name the field). Its weights are extracted from
the run's supernet (``RUN/supernet`` or the ``--supernet`` the run reused); the model card gets
the test accuracy, the trial's inherited accuracy and predicted latency / memory, and the
measured figures when the architecture was one of the run's picks.

The export directory (``--out``, default ``RUN/exports/ARCH_ID``) may not be the run directory,
one that contains it, or one among its records (inside the run, exports go under ``RUN/exports/``),
nor the supernet or predictors directory the run reused; ``--overwrite`` replaces only a previous
export there (see :func:`nas.export.model.check_out_dir`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.data import load_dataset
from nas.export.formats import parse_formats
from nas.export.model import check_out_dir, export_model, load_arch_json
from nas.rundir import PARETO, PICKS, TRIALS, read_record_json, read_record_table, read_run_config
from nas.train import evaluate_arch, load_supernet
from search_spaces.arch import ArchConfig

__all__ = ["export_from_run"]


def _arch_by_id(run: Path, arch_id: str) -> tuple[ArchConfig, dict[str, Any]]:
    path = run / TRIALS
    if not path.is_file():
        raise FileNotFoundError(f"{run} holds no {TRIALS} (the search did not finish its study); "
                                f"`nas report --run {run}` rebuilds it from the study")
    trials = read_record_table(path, text_columns=("arch_id",))
    rows = trials[trials["arch_id"] == arch_id]
    if len(rows) == 0:  # a pick need not be a trial: the space's smallest
        for pick in _picks(run, strict=False):
            if pick.get("arch_id") == arch_id and isinstance(pick.get("arch"), dict):
                row = {"val_acc": (pick.get("predicted") or {}).get("val_acc"),
                       "pred_latency_ms": (pick.get("predicted") or {}).get("latency_ms"),
                       "pred_peak_mem_mb": (pick.get("predicted") or {}).get("peak_mem_mb")}
                return load_arch_json(pick["arch"], source=f"{run / PICKS} (arch_id {arch_id})"), row
        front = read_record_table(run / PARETO, text_columns=("arch_id",))["arch_id"].tolist() \
            if (run / PARETO).is_file() else []
        raise ValueError(f"arch_id {arch_id!r} is not among the {len(trials)} trials of {run}; "
                         f"Pareto-optimal ones: {', '.join(front[:20]) or '(none)'}")
    row = rows.iloc[0]
    return load_arch_json(row["arch_json"], source=f"{path} (arch_id {arch_id})"), row.to_dict()


def _picks(run: Path, *, strict: bool) -> list[dict[str, Any]]:
    """The picks a run's ``picks.json`` records (none when it is absent). An unreadable one is
    skipped where ``strict`` is false (looking an architecture up) and raises, naming it, where
    true (the model card's measured figures would be missing without a word)."""
    try:
        picks = read_record_json(run / PICKS, required=False)
    except ValueError:
        if strict:
            raise
        return []
    picks = picks.get("picks") if isinstance(picks, dict) else None
    return [p for p in picks if isinstance(p, dict)] if isinstance(picks, list) else []


def _check_target(target: Path, run: Path, cfg: dict[str, Any], arch_id: str) -> None:
    """Refuse an export directory that is, contains or lies among the files of search run ``run``
    (anywhere in it but ``RUN/exports/NAME``) or of the supernet / predictors directory it reused."""
    out, run_dir = target.resolve(), run.resolve()
    exports = run_dir / "exports"
    valid = f"give a new directory outside the run or under {run / 'exports'}/ (default: {run / 'exports' / arch_id})"
    if out == run_dir or out in run_dir.parents:
        what = "is" if out == run_dir else "contains"
        raise ValueError(f"export directory {target} {what} the search run directory {run}; {valid}")
    if out == exports:
        raise ValueError(f"export directory {target} is the directory of all exports of search run {run}; {valid}")
    if out.is_relative_to(run_dir) and not out.is_relative_to(exports):
        part = run / out.relative_to(run_dir).parts[0]
        raise ValueError(f"export directory {target} lies among the records of search run {run} (in {part}); {valid}")
    for key in ("supernet", "predictors"):
        if not cfg.get(key):
            continue
        reused = Path(cfg[key]).resolve()
        if out == reused or out in reused.parents or out.is_relative_to(reused):
            raise ValueError(f"export directory {target} overlaps the {key} directory {cfg[key]} that run {run} "
                             f"reused; {valid}")


def export_from_run(run: str | Path, *, arch_id: str | None = None, arch_file: str | Path | None = None,
                    formats: str | Sequence[str] | None = None, out: str | Path | None = None,
                    overwrite: bool = False, data_dir: str | Path | None = None) -> dict[str, Path]:
    """Export ``arch_id`` (or the architecture in ``arch_file``) of search run ``run`` into ``out``
    (default ``RUN/exports/ARCH_ID``). An ``out`` that is, contains or lies among the run's records
    is refused (``ValueError``), and so is an occupied one unless ``overwrite`` and it holds a
    previous export (``FileExistsError``), all before the supernet is loaded. The test accuracy
    is measured on the supernet's split of its dataset, read from ``data_dir`` if given (the data
    moved since), else from the directory its record names."""
    if (arch_id is None) == (arch_file is None):
        raise ValueError("give exactly one of arch_id and arch_file")
    fmts = parse_formats(formats)
    run = Path(run)
    cfg = read_run_config(run)
    if "trials" not in cfg or "objectives" not in cfg:
        raise ValueError(f"{run} is not a nas-search run directory: its config.json is the record of another "
                         f"command (a search run's records its trials and objectives)")
    if arch_id is not None:
        arch, row = _arch_by_id(run, arch_id)
    else:
        path = Path(arch_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise FileNotFoundError(f"cannot read architecture file {path}: {err.strerror}") from None
        arch, row = load_arch_json(text, source=str(path)), {}
    if arch.space != cfg.get("space"):
        raise ValueError(f"architecture {arch.arch_id} is for space {arch.space!r}; run {run} searched "
                         f"{cfg.get('space')!r}")
    target = Path(out) if out is not None else run / "exports" / arch.arch_id
    _check_target(target, run, cfg, arch.arch_id)
    check_out_dir(target, overwrite=overwrite)  # now, not only after the test set is evaluated
    supernet, sn_config = load_supernet(cfg.get("supernet") or run / "supernet")
    splits = load_dataset(sn_config["dataset"], seed=sn_config["seed"],
                          data_dir=data_dir if data_dir is not None else sn_config.get("data_dir"),
                          **(sn_config.get("data_options") or {}))
    _, test_acc = evaluate_arch(supernet, arch, splits.test)
    card: dict[str, Any] = {"test_acc": test_acc, "dataset": sn_config["dataset"], "device": cfg.get("device_name"),
                            "batch_size": cfg.get("batch_size"), "input": splits.input_spec()}
    if splits.license:
        card["data_license"] = splits.license
    if row:
        card.update({"val_acc": row.get("val_acc"), "predicted_latency_ms": row.get("pred_latency_ms"),
                     "predicted_peak_mem_mb": row.get("pred_peak_mem_mb")})
    for p in _picks(run, strict=True):
        if p.get("arch_id") == arch.arch_id and p.get("measured"):
            card.update({"latency_ms": p["measured"]["latency_ms"], "peak_mem_mb": p["measured"]["peak_mem_mb"],
                         "budget": p["budget"]["label"]})
            break
    return export_model(supernet.extract(arch).eval(), arch, target, formats=fmts, card=card, overwrite=overwrite)
