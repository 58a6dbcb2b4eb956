"""The run directory of ``nas train-supernet``: its files, the checks before training starts or
resumes, and loading a trained supernet back.

Files: ``config.json``, ``checkpoint.pt`` (latest: supernet, optimizer, schedule, RNG state,
counters, history, training time so far), ``history.csv``, ``train_log.json`` and last
``supernet.safetensors`` — each written atomically through :mod:`nas.rundir` /
:mod:`nas.train.checkpoint`. Temporary files left by a killed writer are ignored and removed; one
that a live process on this host is writing makes the run refuse to start (another run is
using it). A directory holding only ``config.json`` is a run stopped before its first checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch.utils.data import TensorDataset

from nas.data import DatasetSplits
from nas.rundir import check_new_run_dir, read_run_config, setting_changes, write_rows
from nas.train.checkpoint import load_checkpoint
from nas.train.trainer import evaluate
from search_spaces.arch import ArchConfig
from search_spaces.atomic import TempPath, temp_paths
from search_spaces.elastic import QuadraSupernet
from search_spaces.space import SearchSpace, create_space

__all__ = ["CHECKPOINT", "RUN_FILES", "WEIGHTS", "check_data", "evaluate_arch", "load_supernet", "prepare_run",
           "remove_dead_writers_files", "run_entries", "write_history"]

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "supernet.safetensors"
# The files a run writes (each atomically: a kill mid-write leaves a temporary file beside it).
RUN_FILES = ("config.json", CHECKPOINT, "history.csv", "train_log.json", WEIGHTS)


def evaluate_arch(supernet: QuadraSupernet, arch: ArchConfig, data: TensorDataset, *, device: str = "cpu"):
    """(loss, accuracy) of ``arch`` with inherited supernet weights on ``data``."""
    supernet.set_active(arch)
    return evaluate(supernet, data, device=device)




def check_data(space: SearchSpace, splits: DatasetSplits) -> None:
    """Refuse a dataset whose input shape or class count is not the space's."""
    if tuple(splits.input_shape) != space.input_shape or splits.num_classes != space.num_classes:
        raise ValueError(
            f"space {space.name!r} expects inputs {space.input_shape} with {space.num_classes} classes; "
            f"dataset {splits.name!r} gives {tuple(splits.input_shape)} with {splits.num_classes}; a space template "
            f"(s, m, l) fits itself to any dataset (e.g. --space s)"
        )


def write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``history.csv``, one row per finished epoch, written atomically."""
    if history:
        write_rows(run_dir / "history.csv", history)


def _stale_temp_files(out: Path) -> list[TempPath]:
    """The temporary files in ``out`` that killed writers of the run's files left; raise
    ``FileExistsError`` if a live process of this host is writing one (a run is going on there)."""
    found = temp_paths(out, RUN_FILES)
    for t in found:
        if t.alive:
            raise FileExistsError(f"{t.path} is being written by process {t.pid}: another run is using {out}; "
                                  f"wait for it to end (or stop it), or choose another --out")
    return found


def run_entries(out: Path) -> list[str] | None:
    """The names in run directory ``out`` without killed writers' temporary files (``None`` when
    ``out`` is not a directory); raises as :func:`_stale_temp_files` does."""
    if not out.is_dir():
        return None
    stale = {t.path.name for t in _stale_temp_files(out)}
    return sorted(p.name for p in out.iterdir() if p.name not in stale)


# May differ on resume: where it runs and how often it saves.
_RESUME_FREE = frozenset({"train.device", "checkpoint_every"})


def _check_same_run(stored: dict[str, Any], run_config: dict[str, Any], source: Path) -> None:
    """Refuse to continue a run recorded in ``source`` with another space, dataset, seed or recipe."""
    for key in ("space", "dataset", "seed"):
        if stored.get(key) != run_config[key]:
            raise ValueError(f"--resume: {source} was trained with {key}={stored.get(key)!r}, "
                             f"not {run_config[key]!r}; resume with the same {key} or use a new --out")
    changed = setting_changes(stored.get("supernet") or {}, run_config["supernet"], free=_RESUME_FREE)
    if changed:
        raise ValueError(f"--resume: {source} was trained with "
                         f"{', '.join(f'{k}={a!r}' for k, a, _ in changed)}, not "
                         f"{', '.join(f'{k}={b!r}' for k, _, b in changed)}; the weights and the schedule "
                         f"belong to that recipe: resume with the same settings or use a new --out")


def prepare_run(out: Path, resume: bool, run_config: dict[str, Any]) -> dict[str, Any] | None:
    """Check the run directory (every rank); return the checkpoint to resume from, if any.

    A run stopped before its first checkpoint left only ``config.json``: nothing was trained,
    so ``resume`` starts it over (with the same settings). The temporary files of writers killed
    mid-write (of the first checkpoint, say) do not count: the main rank removes them."""
    entries = run_entries(out)
    if resume:
        if entries == ["config.json"]:
            stored = read_run_config(out, kind="train-supernet")
            _check_same_run(stored, run_config, out / "config.json")
            return None
        state = load_checkpoint(out / CHECKPOINT, required=("supernet", "trainer", "rng", "config", "running"))
        _check_same_run(state["config"], run_config, out / CHECKPOINT)
        return state
    if entries == []:  # nothing but what killed writers left
        return None
    check_new_run_dir(out, hint="pass --resume to continue it or choose another --out")
    return None



def load_supernet(run_dir: str | Path) -> tuple[QuadraSupernet, dict[str, Any]]:
    """The trained supernet of a run directory (final weights, else the latest checkpoint)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a supernet run directory: no config.json")
    try:
        run_config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{cfg_path} is not a supernet run config: {err}") from None
    if isinstance(run_config, dict) and "trials" in run_config and "objectives" in run_config:
        raise ValueError(f"{run_dir} is a nas-search run directory, not a supernet's; its supernet is in "
                         f"{run_dir / 'supernet'}")
    if not isinstance(run_config, dict) or "space" not in run_config:
        raise ValueError(f"{cfg_path} is not a supernet run config: expected a JSON object with 'space'")
    space = create_space(run_config["space"])
    supernet = QuadraSupernet(space)
    if (run_dir / WEIGHTS).is_file():
        try:
            weights = load_file(str(run_dir / WEIGHTS))
        except Exception as err:
            raise ValueError(f"{run_dir / WEIGHTS} is unreadable: {err}") from None
    else:
        weights = load_checkpoint(run_dir / CHECKPOINT, required=("supernet",))["supernet"]
    try:
        supernet.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"weights in {run_dir} do not fit space {space.name!r}: {err}") from None
    return supernet.eval(), run_config


def remove_dead_writers_files(out: Path) -> None:
    """Remove the temporary files killed writers left in run directory ``out`` (the main rank does,
    once every rank has checked the directory: a live writer's file refused the run there)."""
    for t in temp_paths(out, RUN_FILES):
        if not t.alive:
            t.path.unlink(missing_ok=True)
