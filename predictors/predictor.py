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

``fit`` with ``model="auto"`` scores every registered cost model (:data:`COST_MODELS`) by K-fold
cross-validated RMSPE on the table and keeps the best as the default (the scores are kept in
``cv_scores``). A predictor belongs to the device its table was measured on: the table must hold
one device fingerprint, which the predictor keeps; :meth:`check_device` (and ``load`` given the
current fingerprint) refuses another device unless forced (:mod:`predictors.device`), and
:meth:`evaluate`, :meth:`predict_table` and :meth:`measured` refuse a table measured on another
device (unless forced) or at batch sizes the predictor was not fitted on.

Persistence — :meth:`save`, :meth:`load`, :meth:`refit`, :meth:`read_metadata` — is
:mod:`predictors.artifact`'s: a data-only directory (``predictor.json``, ``model.safetensors``,
``train.csv``) that loading never executes anything from.
"""

from __future__ import annotations

import json
import numbers
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictors import artifact
from predictors.artifact import ARTIFACT_VERSION, library_versions
from predictors.costmodel import COST_MODELS, ClampedCostWarning, Samples, create_cost_model
from predictors.device import (
    DeviceMismatch,
    check_fingerprint_arg,
    check_table_device,
    describe_fingerprint,
    fingerprint_diffs,
)
from predictors.features import arch_features, feature_names
from predictors.metrics import prediction_metrics, rmspe
from predictors.table import TARGETS, aggregate_profiles
from search_spaces.arch import ArchConfig
from search_spaces.layers import check_positive_int, plain_int
from search_spaces.space import SearchSpace, as_space, create_space

__all__ = ["DeviceMismatch", "MAX_SEED", "Predictor", "library_versions"]  # the first and last re-exported

NORMALIZE = ("auto", "reference", "none")
MAX_SEED = 2**32 - 1  # scikit-learn's random_state takes [0, 2**32 - 1]


class Predictor:
    """Predicts one cost of architectures on one profiled device."""

    def __init__(self, *, target: str = "latency", model: str = "auto", folds: int = 5, seed: int = 0,
                 normalize: str = "auto") -> None:
        if normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {normalize!r}; valid: {', '.join(NORMALIZE)}")
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
        if model != "auto" and model not in COST_MODELS:
            raise ValueError(f"unknown model {model!r}; valid: auto, {', '.join(COST_MODELS)}")
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
    def fit(self, table: pd.DataFrame) -> Predictor:
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
        names = list(COST_MODELS) if self.model_choice == "auto" else [self.model_choice]
        self.cv_scores = {name: self._cv_rmspe(name, samples, y) for name in names} if len(names) > 1 else {}
        self.model_name = min(self.cv_scores, key=self.cv_scores.get) if self.cv_scores else names[0]
        self.model = create_cost_model(self.model_name, seed=self.seed).fit(samples, y)
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
                model = create_cost_model(name, seed=self.seed).fit(samples.subset(train), y[train])
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
            check_table_device(self.fingerprint, table, what=what, target=self.target)
        self._check_batch_sizes(table["batch_size"].to_numpy(), what=what)
        return aggregate_profiles(table).reset_index(drop=True)

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
        diffs = fingerprint_diffs(self.fingerprint, check_fingerprint_arg(fingerprint))
        if diffs and not force:
            raise DeviceMismatch(
                f"this {self.target} predictor was fitted on {describe_fingerprint(self.fingerprint)}, but the device "
                f"is {describe_fingerprint(fingerprint)}; differing: {'; '.join(diffs)}. Profile this device and fit a "
                f"predictor for it, or force its use (--force)")

    # --- persistence (predictors.artifact) -----------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """What ``predictor.json`` records of this predictor (all but ``model_state``, which
        :meth:`save` adds): its settings, what it was fitted on, and the library versions."""
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
        """Write the artifact (``predictor.json``, ``model.safetensors``, ``train.csv``) into
        ``directory``, atomically per file; ``predictor.json`` last (it records the digest of the
        arrays just written), then a leftover ``model.pkl`` of an old artifact is removed."""
        self._require_fitted()
        return artifact.save(self, directory)

    @classmethod
    def load(cls, directory: str | Path, *, fingerprint: dict[str, Any] | None = None,
             force: bool = False) -> Predictor:
        """Load an artifact; with ``fingerprint`` (a dict, as ``DeviceFingerprint.to_dict()`` gives),
        refuse another device unless ``force``.

        Reads only JSON, safetensors and CSV: an artifact of the old pickle format (``model.pkl``)
        is refused, its pickle unread, with the command that rebuilds it. Whatever scikit-learn
        saved it, it predicts as it did when saved."""
        return artifact.load(cls, directory, fingerprint=fingerprint, force=force)

    @classmethod
    def refit(cls, directory: str | Path) -> Predictor:
        """Rebuild an artifact's model from its ``predictor.json`` and ``train.csv`` with the installed
        libraries, and save it in this format. Takes an artifact of the old pickle format too: its
        ``model.pkl`` is never read, and is removed."""
        return artifact.refit(cls, directory)

    @staticmethod
    def read_metadata(directory: str | Path) -> dict[str, Any]:
        """The ``predictor.json`` of the artifact ``directory``, validated, without loading the model
        or the training table: a dict with at least ``artifact_version``, ``target``, ``model``,
        ``model_choice``, ``space``, ``batch_sizes``, ``feature_schema``, ``fingerprint``,
        ``versions``, ``folds`` and ``seed`` (as :meth:`metadata` wrote them, plus ``model_state``).

        An artifact of the old pickle format (version 1) is described too, its ``model.pkl``
        unread; :meth:`load` refuses it until :meth:`refit` rebuilds it. Raises
        ``FileNotFoundError`` where ``directory`` has no ``predictor.json``, and ``ValueError``
        where it is a file, or the metadata is unreadable, incomplete or of an unknown version,
        target or model."""
        return artifact.read_metadata(directory)
