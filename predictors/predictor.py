"""``Predictor``: one target (latency or memory) of one device, fitted on a profile table.

    pred = Predictor(target="latency").fit(table)       # picks the best cost model by CV
    pred.predict([arch, …], batch_size=1)                # -> np.ndarray, ms
    pred.evaluate(held_out_table)                        # rmspe, within_5/10pct, kendall_tau
    pred.save("predictors/latency");  Predictor.load("predictors/latency", fingerprint=fp)

A shared machine's speed moves (by tens of percent from one second to the next on the 2-core
CI machine). Tables from ``nas profile`` record the latency of a fixed reference architecture
timed interleaved with each row's measurement, call by call; with ``normalize="auto"``
(default) a latency predictor learns each architecture's latency in units of that reference,
times the reference's median latency over the training table (``ref_baseline_ms``, per batch
size) — latency at one machine speed — and :meth:`evaluate` brings held-out measurements to
that same speed (raw figures are reported beside, as ``*_raw``).

``fit`` with ``model="auto"`` scores every registered cost model by K-fold cross-validated
RMSPE on the table and keeps the best as the default (the scores are kept in
``cv_scores``). A predictor belongs to the device its table was measured on: the table must hold
one device fingerprint, which the predictor keeps; :meth:`check_device` (and ``load`` given the
current fingerprint) refuses another device unless forced, and :meth:`evaluate`,
:meth:`predict_table` and :meth:`measured` refuse a table measured on another device (unless
forced) or at batch sizes the predictor was not fitted on.

An artifact directory holds ``predictor.json`` (target, model, feature schema, fingerprint,
batch sizes, CV scores, library versions), ``model.pkl`` (the fitted model, pickled) and
``train.csv`` (the training table). Pickles only load on the scikit-learn they were written
with; :meth:`Predictor.refit` rebuilds the model from ``train.csv`` on whatever is installed.
Only load artifacts you trust: unpickling runs code.
"""

from __future__ import annotations

import json
import numbers
import os
import pickle
import platform
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import sklearn

from predictors.features import arch_features, feature_names
from predictors.metrics import prediction_metrics, rmspe
from predictors.models import MODELS, ClampedCostWarning, Samples, create_model
from predictors.table import PROFILE_COLUMNS, TARGETS, aggregate_profiles
from search_spaces.arch import ArchConfig
from search_spaces.layers import check_positive_int, plain_int
from search_spaces.space import SearchSpace, as_space, create_space

__all__ = ["DeviceMismatch", "MAX_SEED", "Predictor", "library_versions"]

ARTIFACT_VERSION = 1
NORMALIZE = ("auto", "reference", "none")
MAX_SEED = 2**32 - 1  # scikit-learn's random_state takes [0, 2**32 - 1]
ARTIFACT_FILES = ("predictor.json", "model.pkl", "train.csv")


class DeviceMismatch(ValueError):
    """A predictor is being used for a device other than the one it was fitted on."""


def library_versions() -> dict[str, str]:
    import scipy

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "pandas": pd.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__}


def _fingerprint_diffs(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _describe_fp(fp: dict[str, Any]) -> str:
    return f"{fp.get('kind', '?')} {fp.get('name', '?')}"


def _check_fingerprint_arg(fingerprint: object) -> dict[str, Any]:
    """``fingerprint`` as given to :meth:`Predictor.check_device` / ``load``: a dict of identity fields."""
    if not isinstance(fingerprint, dict):
        hint = " (pass fingerprint.to_dict())" if callable(getattr(fingerprint, "to_dict", None)) else ""
        raise TypeError(f"fingerprint must be a dict of the device's identity fields, as DeviceFingerprint.to_dict() "
                        f"gives, got {type(fingerprint).__name__} {fingerprint!r}{hint}")
    return fingerprint


class Predictor:
    """Predicts one cost of architectures on one profiled device."""

    def __init__(self, *, target: str = "latency", model: str = "auto", folds: int = 5, seed: int = 0,
                 normalize: str = "auto") -> None:
        if normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {normalize!r}; valid: {', '.join(NORMALIZE)}")
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
        if model != "auto" and model not in MODELS:
            raise ValueError(f"unknown model {model!r}; valid: auto, {', '.join(MODELS)}")
        if isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2:
            raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be a non-negative integer (at most 2**32 - 1, the range scikit-learn's "
                             f"random_state takes), got {seed!r}")
        self.target = target
        self.column = TARGETS[target]
        self.model_choice = model
        self.folds = int(folds)
        self.seed = int(seed)
        self.model = None
        self.model_name: str | None = None
        self.cv_scores: dict[str, float] = {}
        self.fingerprint: dict[str, Any] | None = None
        self.space: str | None = None
        self.batch_sizes: list[int] = []
        self.feature_schema: list[str] = []
        self.table: pd.DataFrame | None = None
        self.fitted_at: str | None = None
        self.normalize = normalize
        self.normalization = "none"
        self.ref_arch_id: str | None = None
        self.ref_baseline_ms: dict[int, float] | None = None  # per batch size

    # --- features -------------------------------------------------------------------------
    @property
    def sm_count(self) -> int | None:
        if self.fingerprint and self.fingerprint.get("kind") == "cuda":
            return self.fingerprint.get("sm_count")
        return None

    def _samples(self, archs: Sequence[ArchConfig], batch_sizes: Sequence[int],
                 space: SearchSpace | None = None) -> Samples:
        space = space or create_space(self.space)
        rows = [arch_features(a, int(b), space=space, sm_count=self.sm_count) for a, b in zip(archs, batch_sizes)]
        return Samples(list(archs), np.asarray(batch_sizes, dtype=int), pd.DataFrame(rows, columns=self.feature_schema))

    def _table_samples(self, table: pd.DataFrame) -> Samples:
        archs = []
        for i, text in enumerate(table["arch_json"]):
            try:
                archs.append(ArchConfig.from_json(text))
            except ValueError as err:
                raise ValueError(f"profile table row {i}: bad arch_json: {err}") from None
        return self._samples(archs, table["batch_size"].to_numpy())

    def _has_reference(self, table: pd.DataFrame) -> bool:
        return ("ref_ratio" in table and "ref_arch_id" in table and table["ref_ratio"].notna().all()
                and table["ref_arch_id"].nunique() == 1)

    def _target_values(self, table: pd.DataFrame) -> np.ndarray:
        """The target per row: measured, or at the reference speed when normalising."""
        if self.normalization != "reference":
            return table[self.column].to_numpy(dtype=float)
        if not self._has_reference(table) or str(table["ref_arch_id"].iloc[0]) != self.ref_arch_id:
            raise ValueError(f"this latency predictor is normalised by reference architecture {self.ref_arch_id}; "
                             f"the table's rows need ref_latency_ms measured with that reference")
        batches = table["batch_size"].astype(int)
        unknown = sorted(set(batches) - set(self.ref_baseline_ms))
        if unknown:
            raise ValueError(f"no reference speed for batch sizes {unknown}; this predictor has "
                             f"{sorted(self.ref_baseline_ms)}")
        baseline = batches.map(self.ref_baseline_ms).to_numpy(dtype=float)
        return table["ref_ratio"].to_numpy(dtype=float) * baseline

    # --- fitting ----------------------------------------------------------------------------
    def fit(self, table: pd.DataFrame) -> "Predictor":
        """Fit on a profile table of one device and one space (see :mod:`predictors.table`)."""
        if not isinstance(table, pd.DataFrame) or len(table) == 0:
            raise ValueError("fit needs a non-empty profile table (a pandas DataFrame)")
        missing = [c for c in ("arch_json", "batch_size", "fingerprint", "space", self.column) if c not in table]
        if missing:
            raise ValueError(f"profile table lacks columns {missing}")
        if "fingerprint_id" in table and "arch_id" in table:
            table = aggregate_profiles(table)  # one row per architecture: the median over passes
        fps = table["fingerprint"].unique()
        if len(fps) != 1:
            ids = sorted(table["fingerprint_id"].astype(str).unique()) if "fingerprint_id" in table else []
            raise ValueError(f"profile table holds {len(fps)} devices (fingerprints {ids}); a predictor is for "
                             f"one device: select its rows first")
        spaces = table["space"].unique()
        if len(spaces) != 1:
            raise ValueError(f"profile table holds several spaces {sorted(spaces)}; fit one predictor per space")
        min_rows = max(self.folds, 4)
        if len(table) < min_rows:
            raise ValueError(f"need at least {min_rows} profiled architectures to fit, got {len(table)}")
        self.fingerprint = json.loads(fps[0])
        self.space = str(spaces[0])
        use_ref = self.target == "latency" and self.normalize != "none" and self._has_reference(table)
        if self.normalize == "reference" and not use_ref:
            raise ValueError("normalize='reference' needs a latency table whose rows all carry ref_latency_ms "
                             "of one reference architecture (tables written by `nas profile` do)")
        self.normalization = "reference" if use_ref else "none"
        if use_ref:
            self.ref_arch_id = str(table["ref_arch_id"].iloc[0])
            self.ref_baseline_ms = {int(b): float(v) for b, v in
                                    table.groupby("batch_size")["ref_latency_ms"].median().items()}
        self.feature_schema = feature_names(create_space(self.space), cuda=self.sm_count is not None)
        self.table = table.reset_index(drop=True).copy()
        samples, y = self._table_samples(self.table), self._target_values(self.table)
        names = list(MODELS) if self.model_choice == "auto" else [self.model_choice]
        self.cv_scores = {name: self._cv_rmspe(name, samples, y) for name in names} if len(names) > 1 else {}
        self.model_name = min(self.cv_scores, key=self.cv_scores.get) if self.cv_scores else names[0]
        self.model = create_model(self.model_name, seed=self.seed).fit(samples, y)
        self.batch_sizes = sorted(int(b) for b in np.unique(samples.batch_sizes))
        self.fitted_at = time.strftime("%Y-%m-%dT%H:%M:%S")
        return self

    def _cv_rmspe(self, name: str, samples: Samples, y: np.ndarray) -> float:
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(samples))
        folds = np.array_split(order, self.folds)
        pred = np.empty(len(samples))
        for k, test in enumerate(folds):
            train = np.concatenate([f for j, f in enumerate(folds) if j != k])
            try:
                model = create_model(name, seed=self.seed).fit(samples.subset(train), y[train])
                with warnings.catch_warnings():  # a clamped fold prediction shows in the score, not as a warning
                    warnings.simplefilter("ignore", ClampedCostWarning)
                    pred[test] = model.predict(samples.subset(test))
            except ValueError:  # e.g. a batch size only in the held-out fold
                return float("inf")
        return rmspe(pred, y)

    # --- use --------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.model is None:
            raise RuntimeError("predictor is not fitted: call fit(table) or Predictor.load(dir)")

    def predict(self, archs: ArchConfig | Sequence[ArchConfig], batch_size: int, *,
                space: SearchSpace | None = None) -> np.ndarray:
        """Predicted cost of each architecture at ``batch_size`` (ms for latency, MB for memory).

        ``space`` widens the fitted space (same name and stages, more choices) to ask about
        architectures outside it — an extrapolation, as the staircase bench does.
        """
        self._require_fitted()
        space = as_space(space)
        if space is not None and (space.name != self.space or
                                  feature_names(space, cuda=self.sm_count is not None) != self.feature_schema):
            raise ValueError(f"space {space.name!r} does not share this predictor's space {self.space!r} and features")
        if isinstance(archs, ArchConfig):
            archs = [archs]
        batch_size = check_positive_int("batch_size", plain_int(batch_size))
        self._check_batch_sizes([batch_size])
        for a in archs:
            if a.space != self.space:
                raise ValueError(f"architecture {a.arch_id} is from space {a.space!r}; this predictor is for "
                                 f"{self.space!r}")
        if not archs:
            return np.zeros(0)
        return self.model.predict(self._samples(list(archs), [batch_size] * len(archs), space))

    def _check_batch_sizes(self, batch_sizes: Sequence[int], *, what: str | None = None) -> None:
        """Refuse batch sizes this predictor was not fitted on (every model: the learned ones would
        extrapolate silently where the per-batch ones refuse). ``what`` names a table's use."""
        unknown = sorted({int(b) for b in batch_sizes} - set(self.batch_sizes))
        if not unknown:
            return
        values = ", ".join(map(str, unknown))
        shown = f"batch size{'s' if len(unknown) > 1 else ''} {values}"
        fitted = f"this {self.target} predictor was fitted on batch sizes {self.batch_sizes}"
        if what is None:
            raise ValueError(f"{fitted}, not {values}; profile {shown} and refit")
        raise ValueError(f"{what}: {fitted}, but the table has rows at {shown}; profile {shown} and refit, or "
                         f"select the table's rows at batch sizes {self.batch_sizes}")

    def _check_table(self, table: object, *, what: str, force: bool, need_target: bool = False) -> pd.DataFrame:
        """A profile table this predictor can speak for, aggregated over passes (one row per arch).

        Refused: not a DataFrame, missing columns, rows of another space, batch sizes it was not
        fitted on, and rows of another device (unless ``force``) — compared as :meth:`check_device`
        compares, field by field over the fingerprint's identity fields.
        """
        self._require_fitted()
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"{what} needs a profile table (a pandas DataFrame), got {type(table).__name__}")
        need = ["arch_id", "arch_json", "batch_size", "space", "fingerprint_id", "fingerprint"]
        missing = [c for c in need + ([self.column] if need_target else []) if c not in table]
        if missing:
            raise ValueError(f"{what}: the profile table lacks columns {missing}")
        if len(table) == 0:
            return aggregate_profiles(table).reset_index(drop=True)
        spaces = sorted(str(v) for v in table["space"].unique())
        if spaces != [self.space]:
            raise ValueError(f"{what}: the table's rows are from space(s) {spaces}; this {self.target} predictor is "
                             f"for space {self.space!r}: select its rows first")
        if not force:
            self._check_table_device(table, what=what)
        self._check_batch_sizes(table["batch_size"].to_numpy(), what=what)
        return aggregate_profiles(table).reset_index(drop=True)

    def _check_table_device(self, table: pd.DataFrame, *, what: str) -> None:
        ids = sorted(table["fingerprint_id"].astype(str).unique())
        texts = table["fingerprint"].astype(str).unique()
        fps = []
        for text in texts:
            try:
                fp = json.loads(text)
            except ValueError:
                fp = None
            if not isinstance(fp, dict):
                raise ValueError(f"{what}: column fingerprint must hold the device's fingerprint as a JSON object "
                                 f"(as `nas profile` writes it), got {text[:60]!r}")
            if fp not in fps:
                fps.append(fp)
        if len(fps) > 1:
            raise DeviceMismatch(f"{what}: the table holds rows of {len(fps)} devices (fingerprint_id {ids}); this "
                                 f"{self.target} predictor is for {_describe_fp(self.fingerprint)}: select that "
                                 f"device's rows first")
        diffs = _fingerprint_diffs(self.fingerprint, fps[0])
        if diffs:
            raise DeviceMismatch(
                f"{what}: this {self.target} predictor was fitted on {_describe_fp(self.fingerprint)}, but the "
                f"table was measured on {_describe_fp(fps[0])} (fingerprint_id {', '.join(ids)}); differing: "
                f"{'; '.join(diffs)}. Use a table measured on the predictor's device, or pass force=True to use "
                f"this one anyway")

    def _predict_rows(self, rows: pd.DataFrame) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros(0)
        return self.model.predict(self._table_samples(rows))

    def predict_table(self, table: pd.DataFrame, *, force: bool = False) -> np.ndarray:
        """Predictions for every row of a profile table (its archs at its batch sizes), one per
        aggregated row. The table must be of this predictor's space, batch sizes and device
        (``force`` lets another device's rows through)."""
        return self._predict_rows(self._check_table(table, what="predict_table", force=force))

    def measured(self, table: pd.DataFrame, *, force: bool = False) -> np.ndarray:
        """A profile table's measured targets as this predictor sees them (per aggregated row)."""
        rows = self._check_table(table, what="measured", force=force, need_target=True)
        return self._target_values(rows) if len(rows) else np.zeros(0)

    def evaluate(self, table: pd.DataFrame, *, force: bool = False) -> dict[str, float]:
        """Error measures on a (held-out) profile table of the same device, space and batch sizes.

        A table from another device is refused (:class:`DeviceMismatch`) unless ``force``; batch
        sizes the predictor was not fitted on are refused whatever the model. A
        reference-normalised predictor is scored against the held-out latencies brought to
        the same reference speed; ``*_raw`` measures compare with the raw medians as measured.
        """
        self._require_fitted()
        if isinstance(table, pd.DataFrame) and len(table) == 0:
            raise ValueError("evaluate needs a non-empty held-out profile table; the table given has no rows")
        table = self._check_table(table, what="evaluate", force=force, need_target=True)
        predicted = self._predict_rows(table)
        out = prediction_metrics(predicted, self._target_values(table))
        if self.normalization == "reference":
            raw = prediction_metrics(predicted, table[self.column].to_numpy(dtype=float))
            out.update({f"{k}_raw": v for k, v in raw.items() if k != "n_test"})
        out["n_train"] = len(self.table)
        return out

    def check_device(self, fingerprint: dict[str, Any], *, force: bool = False) -> None:
        """Refuse (raise :class:`DeviceMismatch`) if ``fingerprint`` is not this predictor's device."""
        self._require_fitted()
        diffs = _fingerprint_diffs(self.fingerprint, _check_fingerprint_arg(fingerprint))
        if diffs and not force:
            raise DeviceMismatch(
                f"this {self.target} predictor was fitted on {_describe_fp(self.fingerprint)}, but the device is "
                f"{_describe_fp(fingerprint)}; differing: {'; '.join(diffs)}. Profile this device and fit a "
                f"predictor for it, or force its use (--force)")

    # --- persistence ------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "artifact_version": ARTIFACT_VERSION, "target": self.target, "column": self.column,
            "model": self.model_name, "model_choice": self.model_choice, "folds": self.folds, "seed": self.seed,
            "cv_rmspe": self.cv_scores, "space": self.space, "batch_sizes": self.batch_sizes,
            "feature_schema": self.feature_schema, "fingerprint": self.fingerprint,
            "n_train": len(self.table) if self.table is not None else 0,
            "fitted_at": self.fitted_at, "versions": library_versions(), "normalize": self.normalize,
            "normalization": self.normalization, "ref_arch_id": self.ref_arch_id,
            "ref_baseline_ms": ({str(b): v for b, v in self.ref_baseline_ms.items()}
                                if self.ref_baseline_ms is not None else None),
        }

    def save(self, directory: str | Path) -> Path:
        """Write the artifact (``predictor.json``, ``model.pkl``, ``train.csv``) atomically per file."""
        self._require_fitted()
        directory = Path(directory)
        for path in (directory, *directory.parents):
            if path.exists() or path.is_symlink():  # a dangling link blocks as a file would
                if path.is_dir():
                    break
                if path == directory:
                    raise FileExistsError(f"predictor artifact directory {directory} exists and is not a directory; "
                                          f"give a directory to write {', '.join(ARTIFACT_FILES)} into")
                raise FileExistsError(f"predictor artifact directory {directory} cannot be created: {path} is a "
                                      f"file, not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        columns = [c for c in PROFILE_COLUMNS if c in self.table.columns] + [
            c for c in ("passes", "latency_pass_spread", "latency_pass_mad", "ref_ratio", "ref_ratio_pass_mad")
            if c in self.table.columns]
        _atomic_write(directory / "train.csv", self.table[columns].to_csv(index=False).encode())
        _atomic_write(directory / "model.pkl", pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL))
        _atomic_write(directory / "predictor.json", (json.dumps(self.metadata(), indent=2) + "\n").encode())
        return directory

    @staticmethod
    def _read_meta(directory: Path) -> dict[str, Any]:
        if directory.is_file():
            hint = (f"; the artifact directory holding it is {directory.parent}" if directory.name in ARTIFACT_FILES
                    else "")
            raise ValueError(f"{directory} is a file; a predictor artifact is a directory (holding "
                             f"{', '.join(ARTIFACT_FILES)}){hint}")
        path = directory / "predictor.json"
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{directory} is not a predictor artifact (no predictor.json)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"predictor metadata {path} is unreadable or corrupted: {err}") from None
        if not isinstance(meta, dict):
            raise ValueError(f"predictor metadata {path} is not a JSON object")
        need = ("artifact_version", "target", "model", "space", "batch_sizes", "feature_schema", "fingerprint",
                "versions", "folds", "seed", "model_choice")
        missing = [k for k in need if k not in meta]
        if missing:
            raise ValueError(f"predictor metadata {path} lacks {missing}")
        for key, kind in (("versions", dict), ("batch_sizes", list), ("feature_schema", list), ("fingerprint", dict)):
            if not isinstance(meta[key], kind):
                raise ValueError(f"predictor metadata {path}: {key} must be a JSON {'object' if kind is dict else 'list'}")
        if meta["artifact_version"] != ARTIFACT_VERSION:
            raise ValueError(f"{path}: artifact version {meta['artifact_version']} is not {ARTIFACT_VERSION}")
        if meta["target"] not in TARGETS or meta["model"] not in MODELS:
            raise ValueError(f"{path}: unknown target {meta['target']!r} or model {meta['model']!r}")
        return meta

    @staticmethod
    def _read_table(directory: Path) -> pd.DataFrame:
        from predictors.table import read_profiles

        table = read_profiles(directory / "train.csv")
        if len(table) == 0:
            raise ValueError(f"predictor training table {directory / 'train.csv'} has no rows; the artifact cannot "
                             f"be rebuilt from it: fit a new one with `nas predictors fit`")
        return table

    @classmethod
    def load(cls, directory: str | Path, *, fingerprint: dict[str, Any] | None = None,
             force: bool = False) -> "Predictor":
        """Load an artifact; with ``fingerprint`` (a dict, as ``DeviceFingerprint.to_dict()`` gives),
        refuse another device unless ``force``."""
        if fingerprint is not None:
            _check_fingerprint_arg(fingerprint)
        directory = Path(directory)
        meta = cls._read_meta(directory)
        installed = sklearn.__version__
        if meta["versions"].get("scikit-learn") != installed:
            raise ValueError(
                f"predictor {directory} was saved with scikit-learn {meta['versions'].get('scikit-learn')}, "
                f"this is {installed}: rebuild it from its stored table with `nas predictors refit {directory}`")
        pred = cls._from_meta(meta)
        try:
            pred.model = pickle.loads((directory / "model.pkl").read_bytes())
        except FileNotFoundError:
            raise FileNotFoundError(f"predictor {directory} has no model.pkl; `nas predictors refit {directory}` "
                                    f"rebuilds it from train.csv") from None
        except Exception as err:  # a truncated or corrupted pickle raises many kinds
            raise ValueError(f"predictor model {directory / 'model.pkl'} is corrupted ({type(err).__name__}: "
                             f"{err}); `nas predictors refit {directory}` rebuilds it from train.csv") from None
        if getattr(pred.model, "name", None) != meta["model"]:
            raise ValueError(f"{directory / 'model.pkl'} holds {getattr(pred.model, 'name', '?')!r}, metadata says "
                             f"{meta['model']!r}")
        pred.table = cls._read_table(directory)
        if fingerprint is not None:
            pred.check_device(fingerprint, force=force)
        return pred

    @classmethod
    def _from_meta(cls, meta: dict[str, Any]) -> "Predictor":
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
        return pred

    @classmethod
    def refit(cls, directory: str | Path) -> "Predictor":
        """Rebuild an artifact's model from its stored ``train.csv`` with the installed libraries, and save."""
        directory = Path(directory)
        meta = cls._read_meta(directory)
        table = cls._read_table(directory)
        pred = cls(target=meta["target"], model=meta["model_choice"], folds=meta["folds"], seed=meta["seed"],
                   normalize=meta.get("normalize", "auto"))
        pred.fit(table)
        pred.save(directory)
        return pred


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
