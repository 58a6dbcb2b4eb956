"""Predictor artifacts: the directory a :class:`~predictors.predictor.Predictor` is saved to and
loaded from.

An artifact directory holds data only: ``predictor.json`` (target, model, feature schema,
fingerprint, batch sizes, CV scores, library versions, and ``model_state``: the fitted model's
JSON parameters and the SHA-256 of its arrays), ``model.safetensors`` (the model's float64 /
int64 arrays: coefficients, tree nodes; see :meth:`predictors.costmodel.CostModel.to_state`) and
``train.csv`` (the training table). Each file is written by the repository's one atomic writer,
:func:`search_spaces.atomic.write_atomic`, ``predictor.json`` last.

Loading parses JSON, CSV and safetensors — none of which can carry code — and checks every
value, so loading an artifact from a shared directory runs nothing from it. Predictions come
from the stored arrays through this package's NumPy code, so an artifact loads and predicts
identically whatever scikit-learn is installed (``versions`` only records what fitted it).
Artifacts of version 1 held ``model.pkl``, the model pickled; it is never read (unpickling can
run code): :func:`load` refuses such an artifact, and :func:`refit` (``nas predictors refit
DIR``) rebuilds it from ``predictor.json`` and ``train.csv`` in this format, removing the pickle.

The functions here back :meth:`Predictor.save`, :meth:`Predictor.load`, :meth:`Predictor.refit`
and :meth:`Predictor.read_metadata`; those that build a predictor take its class as an argument,
so this module does not import :mod:`predictors.predictor`.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import safetensors.numpy
import sklearn

from predictors.costmodel import COST_MODELS, CostModel
from predictors.device import check_fingerprint_arg
from predictors.table import PROFILE_COLUMNS, TARGETS, read_profiles
from search_spaces.atomic import file_in_the_way, write_atomic

if TYPE_CHECKING:
    from predictors.predictor import Predictor

__all__ = ["ARTIFACT_FILES", "ARTIFACT_VERSION", "LEGACY_MODEL_FILE", "MODEL_FILE", "library_versions", "load",
           "read_metadata", "refit", "save"]

ARTIFACT_VERSION = 2  # 2: the model as JSON parameters + safetensors arrays; 1: model.pkl (never loaded)
LEGACY_VERSIONS = (1,)  # refit reads their predictor.json and train.csv (not their pickle)
META_FILE = "predictor.json"
MODEL_FILE = "model.safetensors"
TABLE_FILE = "train.csv"
LEGACY_MODEL_FILE = "model.pkl"
ARTIFACT_FILES = (META_FILE, MODEL_FILE, TABLE_FILE)
# train.csv: the profile columns, then these where the (aggregated) table has them
_EXTRA_COLUMNS = ("passes", "latency_pass_spread", "latency_pass_mad", "ref_ratio", "ref_ratio_pass_mad")
_REQUIRED = ("artifact_version", "target", "model", "space", "batch_sizes", "feature_schema", "fingerprint",
             "versions", "folds", "seed", "model_choice")


def library_versions() -> dict[str, str]:
    """The versions of Python and the libraries that fit a predictor (recorded, never required)."""
    import scipy

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "pandas": pd.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__}


# --- writing ----------------------------------------------------------------------------------------
def save(pred: Predictor, directory: str | Path) -> Path:
    """Write the fitted ``pred``'s artifact into ``directory``: ``train.csv``, ``model.safetensors``,
    then ``predictor.json`` (it records the digest of the arrays just written), each atomically;
    then a leftover ``model.pkl`` of an old artifact is removed."""
    directory = Path(directory)
    blocker = file_in_the_way(directory)
    if blocker == directory:
        raise FileExistsError(f"predictor artifact directory {directory} exists and is not a directory; "
                              f"give a directory to write {', '.join(ARTIFACT_FILES)} into")
    if blocker is not None:
        raise FileExistsError(f"predictor artifact directory {directory} cannot be created: {blocker} is a "
                              f"file, not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    columns = ([c for c in PROFILE_COLUMNS if c in pred.table.columns]
               + [c for c in _EXTRA_COLUMNS if c in pred.table.columns])
    blob, state = model_state(pred.model)
    meta = {**pred.metadata(), "model_state": state}
    write_atomic(directory / TABLE_FILE, pred.table[columns].to_csv(index=False).encode())
    write_atomic(directory / MODEL_FILE, blob)
    write_atomic(directory / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    (directory / LEGACY_MODEL_FILE).unlink(missing_ok=True)
    return directory


def model_state(model: CostModel) -> tuple[bytes, dict[str, Any]]:
    """``model.safetensors``' bytes (the model's arrays) and ``predictor.json``'s ``model_state``
    (the model's JSON parameters and the SHA-256 of those bytes)."""
    params, arrays = model.to_state()
    blob = safetensors.numpy.save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return blob, {"params": params, "sha256": hashlib.sha256(blob).hexdigest()}


# --- reading ----------------------------------------------------------------------------------------
def read_metadata(directory: str | Path) -> dict[str, Any]:
    """``predictor.json`` of the artifact ``directory``, checked (required keys, their JSON types,
    a known target and model, the artifact version); the model and table are not read. Of this
    artifact version or a legacy one (which only :func:`refit` rebuilds; :func:`load` refuses it).
    Raises ``FileNotFoundError`` where there is no ``predictor.json``, ``ValueError`` where it is
    unreadable or not a predictor's."""
    directory = Path(directory)
    if directory.is_file():
        names = (*ARTIFACT_FILES, LEGACY_MODEL_FILE)
        hint = (f"; the artifact directory holding it is {directory.parent}" if directory.name in names else "")
        raise ValueError(f"{directory} is a file; a predictor artifact is a directory (holding "
                         f"{', '.join(ARTIFACT_FILES)}){hint}")
    path = directory / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{directory} is not a predictor artifact (no {META_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"predictor metadata {path} is unreadable or corrupted: {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"predictor metadata {path} is not a JSON object")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise ValueError(f"predictor metadata {path} lacks {missing}")
    for key, kind in (("versions", dict), ("batch_sizes", list), ("feature_schema", list), ("fingerprint", dict)):
        if not isinstance(meta[key], kind):
            raise ValueError(f"predictor metadata {path}: {key} must be a JSON {'object' if kind is dict else 'list'}")
    version = meta["artifact_version"]
    if version != ARTIFACT_VERSION and version not in LEGACY_VERSIONS:
        raise ValueError(f"{path}: artifact version {version!r} is not {ARTIFACT_VERSION} (nor "
                         f"{', '.join(map(str, LEGACY_VERSIONS))}, which `nas predictors refit {directory}` "
                         f"rebuilds)")
    if meta["target"] not in TARGETS or meta["model"] not in COST_MODELS:
        raise ValueError(f"{path}: unknown target {meta['target']!r} or model {meta['model']!r}")
    return meta


def refuse_legacy(directory: Path, meta: dict[str, Any]) -> None:
    """An artifact of the pickle format (a ``model.pkl``, or a version-1 ``predictor.json``) is
    not loaded; the message gives the command that rebuilds it without reading the pickle."""
    legacy = directory / LEGACY_MODEL_FILE
    why = []
    if legacy.exists() or legacy.is_symlink():
        why.append(f"it holds {legacy}")
    if meta["artifact_version"] in LEGACY_VERSIONS:
        why.append(f"{directory / META_FILE} is artifact version {meta['artifact_version']}")
    if why:
        raise ValueError(
            f"predictor {directory} is in the old pickle format ({'; '.join(why)}), which is not loaded because "
            f"unpickling can run code; rebuild it from its predictor.json and train.csv (the pickle is not read, "
            f"and is removed) with: nas predictors refit {directory}")


def read_model(directory: Path, meta: dict[str, Any]) -> CostModel:
    """The cost model from ``model_state`` in ``predictor.json`` and the arrays in
    ``model.safetensors``, each checked; nothing read is executed."""
    path, meta_path = directory / MODEL_FILE, directory / META_FILE
    refit_hint = f"`nas predictors refit {directory}` rebuilds it from train.csv"
    state = meta.get("model_state")
    if (not isinstance(state, dict) or not isinstance(state.get("params"), dict)
            or not isinstance(state.get("sha256"), str)):
        raise ValueError(f"predictor metadata {meta_path}: model_state must be a JSON object with params (an "
                         f"object) and sha256 (a string); {refit_hint}")
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"predictor {directory} has no {MODEL_FILE}; {refit_hint}") from None
    except OSError as err:
        raise ValueError(f"predictor model {path} is unreadable ({err}); {refit_hint}") from None
    if hashlib.sha256(blob).hexdigest() != state["sha256"]:
        raise ValueError(f"predictor model {path} is corrupted or not the one {meta_path} was saved with (its "
                         f"SHA-256 differs from the recorded one); {refit_hint}")
    try:
        arrays = safetensors.numpy.load(blob)
    except Exception as err:  # the parser's own error type; a digest-matching file parses
        raise ValueError(f"predictor model {path} is corrupted ({type(err).__name__}: {err}); {refit_hint}") from None
    try:
        model = CostModel.from_state(state["params"], arrays)
    except ValueError as err:
        raise ValueError(f"predictor model {path} with the model_state of {meta_path} is not a valid model "
                         f"({err}); {refit_hint}") from None
    if model.name != meta["model"]:
        raise ValueError(f"{path} holds {model.name!r}, metadata says {meta['model']!r}")
    return model


def read_table(directory: Path) -> pd.DataFrame:
    """``train.csv``, which must have rows (a refit fits on it)."""
    table = read_profiles(directory / TABLE_FILE)
    if len(table) == 0:
        raise ValueError(f"predictor training table {directory / TABLE_FILE} has no rows; the artifact cannot "
                         f"be rebuilt from it: fit a new one with `nas predictors fit`")
    return table


def from_meta(cls: type[Predictor], meta: dict[str, Any]) -> Predictor:
    """A ``cls`` predictor with the settings and fitted attributes ``meta`` records (no model, no table)."""
    pred = cls(target=meta["target"], model=meta["model_choice"], folds=meta["folds"], seed=meta["seed"],
               normalize=meta.get("normalize", "auto"))
    pred.normalization = meta.get("normalization", "none")
    pred.ref_arch_id = meta.get("ref_arch_id")
    base = meta.get("ref_baseline_ms")
    if isinstance(base, (int, float)) and not isinstance(base, bool):  # one speed for all batch sizes
        base = {b: base for b in meta["batch_sizes"]}
    if base is not None and not isinstance(base, dict):
        raise ValueError(f"predictor metadata: ref_baseline_ms must be an object of batch size -> ms, got {base!r}")
    pred.ref_baseline_ms = {int(b): float(v) for b, v in base.items()} if base is not None else None
    pred.model_name = meta["model"]
    pred.cv_scores = dict(meta.get("cv_rmspe") or {})
    pred.space = meta["space"]
    pred.batch_sizes = [int(b) for b in meta["batch_sizes"]]
    pred.feature_schema = list(meta["feature_schema"])
    pred.fingerprint = meta["fingerprint"]
    pred.fitted_at = meta.get("fitted_at")
    interval = meta.get("interval") or {}
    if not isinstance(interval, dict):
        raise ValueError(f"predictor metadata: interval must be an object, got {interval!r}")
    for key in ("residual_log", "drift_log"):
        values = interval.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   and math.isfinite(v) for v in values):
            raise ValueError(f"predictor metadata: interval.{key} must be a list of finite numbers")
        setattr(pred, key, np.asarray(values, dtype=float))
    return pred


def load(cls: type[Predictor], directory: str | Path, *, fingerprint: dict[str, Any] | None = None,
         force: bool = False) -> Predictor:
    """The ``cls`` predictor saved in ``directory`` (see :meth:`Predictor.load`)."""
    if fingerprint is not None:
        check_fingerprint_arg(fingerprint)
    directory = Path(directory)
    meta = read_metadata(directory)
    refuse_legacy(directory, meta)
    pred = from_meta(cls, meta)
    pred.model = read_model(directory, meta)
    pred.table = read_table(directory)
    if fingerprint is not None:
        pred.check_device(fingerprint, force=force)
    return pred


def refit(cls: type[Predictor], directory: str | Path) -> Predictor:
    """A ``cls`` predictor fitted anew on ``directory``'s ``train.csv`` with the settings of its
    ``predictor.json``, saved over it (see :meth:`Predictor.refit`); a ``model.pkl`` is never read."""
    directory = Path(directory)
    meta = read_metadata(directory)
    table = read_table(directory)
    pred = cls(target=meta["target"], model=meta["model_choice"], folds=meta["folds"], seed=meta["seed"],
               normalize=meta.get("normalize", "auto"))
    drift = (meta.get("interval") or {}).get("drift_log") if isinstance(meta.get("interval"), dict) else None
    pred.fit(table, drift_log=drift or None)  # train.csv holds one row per architecture: no speed drift in it
    pred.save(directory)
    return pred
