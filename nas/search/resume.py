"""Resuming a search: what the run directory recorded, and the checks before it goes on.

``--resume`` continues the run that ``config.json`` records: settings not given default to the
recorded ones (:func:`with_recorded_settings`: the study's storage and name, the reused
supernet and predictors, the data directory); settings that would change what the trials so far
mean are refused (:func:`check_run_dir`: space, dataset, device, batch size, seed, the reused
supernet and predictors; :func:`resumed_data_seed`: the data split). A new run never writes
into an occupied directory.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from nas.rundir import check_new_run_dir, read_run_config
from nas.search.config import SearchConfig
from nas.search.phases import data_seed
from nas.search.storage import check_storage_url, file_storage_path

__all__ = ["check_run_dir", "default_storage", "own_study_file", "read_search_record", "require_study_file",
           "resumed_data_seed", "sessions", "stored_storage", "with_recorded_settings"]


_OWN_STUDY_FILES = {"sqlite:///": "study.db", "journal:///": "study.journal"}


def own_study_file(storage: str, run_dir: Path) -> bool:
    """Whether ``storage`` is the run directory's own study file (``study.db`` / ``study.journal``)."""
    return any(storage == f"{scheme}{(run_dir / name).resolve()}" for scheme, name in _OWN_STUDY_FILES.items())


def stored_storage(stored: dict[str, Any], run_dir: Path) -> str | None:
    """The study storage a run directory's ``config.json`` records (``None`` before its study began).

    A run's own study file (``storage_in_run_dir``) is read from ``run_dir`` wherever the
    directory now lies: a moved or copied run goes on with its own study, never the original's.
    A recorded file storage that no longer exists but has a namesake in ``run_dir`` is read there.
    """
    url = stored.get("storage")
    if not isinstance(url, str):
        return None
    recorded = file_storage_path(url)
    if recorded is not None:
        here = run_dir / recorded.name
        if stored.get("storage_in_run_dir") or (not recorded.exists() and here.is_file()):
            return f"{check_storage_url(url)}{here.resolve()}"
    return url


def with_recorded_settings(config: SearchConfig, stored: dict[str, Any] | None) -> SearchConfig:
    """On ``--resume``, settings not given default to what the run directory recorded (``stored``):
    the study's storage and name (a run started with ``--workers``, ``--storage`` or
    ``--study-name`` resumes its own study, not a new empty one), the reused ``--supernet`` /
    ``--predictors`` (its trials were scored with them), ``--data-dir`` and the data options (those
    given are laid over the recorded ones; a change is then refused by :func:`check_run_dir`)."""
    if stored is None:
        return config
    return replace(config, storage=config.storage or stored_storage(stored, Path(config.out)),
                   study_name=config.study_name or stored.get("study_name"),
                   supernet=config.supernet or stored.get("supernet"),
                   predictors=config.predictors or stored.get("predictors"),
                   data_dir=config.data_dir or stored.get("data_dir"),
                   data_options={**dict(stored.get("data_options") or {}), **config.data_options})


def read_search_record(out: Path) -> dict[str, Any]:
    stored = read_run_config(out)
    if "space" not in stored or "trials" not in stored or not isinstance(stored.get("supernet"), (str, type(None))):
        raise ValueError(f"--resume refused: {out / 'config.json'} is not the record of a nas-search run")
    return stored


def require_study_file(storage: str, run_dir: Path) -> None:
    """A study file that should exist and does not is said, not created empty."""
    path = file_storage_path(storage)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"the study file {path} of {run_dir} does not exist; was it moved or deleted?")


def _same_path(a: str | None, b: str | None) -> bool:
    return a == b or (a is not None and b is not None and Path(a).resolve() == Path(b).resolve())


def check_run_dir(cfg: SearchConfig, out: Path, stored: dict[str, Any] | None) -> None:
    """Refuse a resume whose settings differ from the run's record ``stored``, or a new run in an
    occupied directory; creates nothing (the run directory is made once every input is checked)."""
    if stored is not None:
        for key in ("space", "dataset", "data_options", "accuracy_metric", "device", "runtime", "batch_size", "seed",
                    "confidence"):
            # runs recorded before these settings existed
            default = {"data_options": {}, "accuracy_metric": "acc", "runtime": "torch"}.get(key)
            if stored.get(key, default) != getattr(cfg, key):
                raise ValueError(f"--resume refused: {out} was run with {key}={stored.get(key)!r}, not "
                                 f"{getattr(cfg, key)!r}; resume with the same {key} or use a new --out")
        for key in ("supernet", "predictors"):  # the trials so far were scored with these
            if not _same_path(stored.get(key), getattr(cfg, key)):
                recorded = stored.get(key) or f"its own {key} (in {out / key})"
                raise ValueError(f"--resume refused: {out} was scored with {recorded}, not --{key} "
                                 f"{getattr(cfg, key)}; resume without --{key} or use a new --out")
        return
    check_new_run_dir(out, hint="pass --resume to continue that search, or choose another --out")



def resumed_data_seed(cfg: SearchConfig, recorded: dict[str, Any], out: Path) -> int:
    """The split a resumed run goes on scoring with: the one its trials so far were scored on."""
    if "data_seed" not in recorded:  # recorded before data_seed existed: its trials used the --seed split
        return cfg.seed
    seed = data_seed(cfg)
    if recorded["data_seed"] != seed:
        raise ValueError(f"--resume refused: {out} scored its trials on the data split of seed "
                         f"{recorded['data_seed']}, but its supernet {cfg.supernet} now records seed {seed} "
                         f"(retrained?); resume with the supernet it was run with or use a new --out")
    return seed


def sessions(recorded: dict[str, Any] | None) -> int:
    """How many sessions a run had before this one (0 for a new run)."""
    if recorded is None:
        return 0
    n = recorded.get("sessions", 1)
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1



def default_storage(cfg: SearchConfig, out: Path) -> str:
    """The run's own study file: a journal (:mod:`nas.search.journal`), for one process or several.
    A run begun on ``study.db`` (SQLite, earlier versions) resumes there: its ``config.json`` says so."""
    return f"journal:///{(out / 'study.journal').resolve()}"

