"""``nas train-net``: train one preset network from scratch on one dataset and record the run.

The run directory holds ``config.json`` (model, dataset, network and training config),
``history.csv`` (one row per epoch), ``result.json`` (test accuracy, time, parameters) and
``model.safetensors`` (the trained weights).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, fields
from pathlib import Path

from safetensors.torch import save_file

from nas.data import load_dataset
from nas.run_dir import prepare_run_dir
from nas.train import EpochRecord, TrainConfig, TrainResult, set_seed, train_model
from search_spaces.presets import create_model, model_config

__all__ = ["default_run_dir", "prepare_run_dir", "train_net"]


def default_run_dir(model: str, dataset: str, root: str | Path = "results") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"train-{model}-{dataset}-{stamp}"


def train_net(
    *,
    model: str,
    dataset: str,
    config: TrainConfig,
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> tuple[TrainResult, Path]:
    """Train preset ``model`` on ``dataset``; returns the result and the run directory."""
    splits = load_dataset(dataset, seed=config.seed, data_dir=data_dir)
    net_config = model_config(model, input_shape=splits.input_shape, num_classes=splits.num_classes)
    run_dir = prepare_run_dir(out if out is not None else default_run_dir(model, dataset))
    (run_dir / "config.json").write_text(json.dumps(
        {"model": model, "dataset": dataset, "data_dir": None if data_dir is None else str(data_dir),
         "net": net_config.to_dict(), "train": asdict(config), "splits": splits.sizes},
        indent=2,
    ))
    set_seed(config.seed)
    net = create_model(model, input_shape=splits.input_shape, num_classes=splits.num_classes)
    result = train_model(net, splits, config, progress=progress)
    with open(run_dir / "history.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(EpochRecord)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in result.history)
    (run_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
              str(run_dir / "model.safetensors"))
    return result, run_dir
