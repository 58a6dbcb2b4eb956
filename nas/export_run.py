"""``nas export``: export one architecture of a search run with the run's supernet weights.

The architecture is named by ``arch_id`` (looked up in the run's ``trials.csv``) or given as a
JSON file of the run's space (validated: errors name the field). Its weights are extracted from
the run's supernet (``RUN/supernet`` or the ``--supernet`` the run reused); the model card gets
the test accuracy, the trial's inherited accuracy and predicted latency / memory, and the
measured figures when the architecture was one of the run's picks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from nas.data import load_dataset
from nas.export import export_model, load_arch_json, parse_formats
from nas.run_dir import read_run_config
from nas.supernet_train import evaluate_arch, load_supernet
from search_spaces.arch import ArchConfig

__all__ = ["export_from_run"]


def _arch_by_id(run: Path, arch_id: str) -> tuple[ArchConfig, dict[str, Any]]:
    path = run / "trials.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{run} holds no trials.csv (the search did not finish its study); "
                                f"`nas report --run {run}` rebuilds it from the study")
    trials = pd.read_csv(path, dtype={"arch_id": str})
    rows = trials[trials["arch_id"] == arch_id]
    if len(rows) == 0:
        front = pd.read_csv(run / "pareto.csv", dtype={"arch_id": str})["arch_id"].tolist() \
            if (run / "pareto.csv").is_file() else []
        raise ValueError(f"arch_id {arch_id!r} is not among the {len(trials)} trials of {run}; "
                         f"Pareto-optimal ones: {', '.join(front[:20]) or '(none)'}")
    row = rows.iloc[0]
    return load_arch_json(row["arch_json"], source=f"{path} (arch_id {arch_id})"), row.to_dict()


def export_from_run(run: str | Path, *, arch_id: str | None = None, arch_file: str | Path | None = None,
                    formats: str | Sequence[str] | None = None, out: str | Path | None = None,
                    overwrite: bool = False) -> dict[str, Path]:
    """Export ``arch_id`` (or the architecture in ``arch_file``) of search run ``run``."""
    if (arch_id is None) == (arch_file is None):
        raise ValueError("give exactly one of arch_id and arch_file")
    fmts = parse_formats(formats)
    run = Path(run)
    cfg = read_run_config(run)
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
    supernet, sn_config = load_supernet(cfg.get("supernet") or run / "supernet")
    splits = load_dataset(sn_config["dataset"], seed=sn_config["seed"], data_dir=sn_config.get("data_dir"))
    _, test_acc = evaluate_arch(supernet, arch, splits.test)
    card: dict[str, Any] = {"test_acc": test_acc, "dataset": sn_config["dataset"], "device": cfg.get("device_name"),
                            "batch_size": cfg.get("batch_size")}
    if row:
        card.update({"val_acc": row.get("val_acc"), "predicted_latency_ms": row.get("pred_latency_ms"),
                     "predicted_peak_mem_mb": row.get("pred_peak_mem_mb")})
    picks_path = run / "picks.json"
    if picks_path.is_file():
        for p in json.loads(picks_path.read_text()).get("picks", []):
            if p.get("arch_id") == arch.arch_id and p.get("measured"):
                card.update({"latency_ms": p["measured"]["latency_ms"], "peak_mem_mb": p["measured"]["peak_mem_mb"],
                             "budget": p["budget"]["label"]})
                break
    target = Path(out) if out is not None else run / "exports" / arch.arch_id
    return export_model(supernet.extract(arch).eval(), arch, target, formats=fmts, card=card, overwrite=overwrite)
