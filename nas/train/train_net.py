"""``nas train-net``: train one preset network from scratch on one dataset and record the run.

The run directory (default ``results/train-MODEL-DATASET-TIME``) holds ``config.json`` (model,
dataset, network and training config), ``history.csv`` (one row per epoch), ``result.json``
(test accuracy, time, parameters) and ``model.safetensors`` (the trained weights), each written
atomically (:mod:`nas.rundir`).
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from nas.data import load_dataset
from nas.rundir import default_run_dir, prepare_run_dir, write_json, write_rows
from nas.train.config import TrainConfig, set_seed
from nas.train.trainer import EpochRecord, TrainResult, train_model
from search_spaces.atomic import write_atomic
from search_spaces.presets import create_model, model_config

__all__ = ["train_net"]


def train_net(
    *,
    model: str,
    dataset: str,
    config: TrainConfig,
    data_dir: str | Path | None = None,
    data_options: dict[str, Any] | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> tuple[TrainResult, Path]:
    """Train preset ``model`` on ``dataset``; returns the result and the run directory."""
    data_options = dict(data_options or {})
    splits = load_dataset(dataset, seed=config.seed, data_dir=data_dir, **data_options)
    net_config = model_config(model, input_shape=splits.input_shape, num_classes=splits.num_classes)
    run_dir = prepare_run_dir(out if out is not None else default_run_dir("train", model, dataset))
    write_json(run_dir / "config.json", {
        "model": model, "dataset": dataset, "data_dir": None if data_dir is None else str(data_dir),
        "data_options": data_options,
        "net": net_config.to_dict(), "train": asdict(config), "splits": splits.sizes})
    set_seed(config.seed)
    net = create_model(model, input_shape=splits.input_shape, num_classes=splits.num_classes)
    result = train_model(net, splits, config, progress=progress)
    write_rows(run_dir / "history.csv", [asdict(r) for r in result.history],
               fieldnames=[f.name for f in fields(EpochRecord)])
    write_json(run_dir / "result.json", result.to_dict())
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    write_atomic(run_dir / "model.safetensors", lambda tmp: save_file(weights, str(tmp)))
    return result, run_dir
