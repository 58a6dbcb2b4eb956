"""``Predictor``: one target (latency or memory) of one device, fitted on a profile table.

    pred = Predictor(target="latency").fit(table)       # picks the best cost model by CV
    pred.predict([arch, …], batch_size=1)                # -> np.ndarray, ms
    pred.predict([arch, …], batch_size=1, level=0.9)     # -> PredictionInterval(median, low, high)
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

**Intervals** (``predict(..., level=)``) are split-conformal on cross-validated residuals: the
out-of-fold predictions of the chosen model on its training table (the same K folds that chose
it) give log-ratio residuals ``log(measured / predicted)``, and the interval of level ``q`` is
the prediction times the exponentials of their ``(1 − q)/2`` and ``(1 + q)/2`` quantiles, with
the finite-sample correction of conformal prediction (order statistic ``⌈(n + 1)(1 + q)/2⌉`` of
``n``). Conformal rather than quantile models because it needs no second model, holds for
every cost model in the registry alike, and its coverage is guaranteed for exchangeable
architectures however good or bad the model is; log ratios because errors scale with the
cost. A latency predictor also adds the machine's speed drift: the log ratio of the
reference's latency between consecutive measurements of the training run (``drift_log``) —
the change a stated speed (:meth:`at_speed`) suffers by the time an architecture is timed —
is convolved with the residuals, so the interval of a prediction stated at the speed of the
moment covers the measurement that follows it.

Persistence — :meth:`save`, :meth:`load`, :meth:`refit`, :meth:`read_metadata` — is
:mod:`predictors.artifact`'s: a data-only directory (``predictor.json``, ``model.safetensors``,
``train.csv``) that loading never executes anything from.
"""

from __future__ import annotations

import json
import math
import numbers
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
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

__all__ = ["DeviceMismatch", "MAX_SEED", "PredictionInterval", "Predictor", "library_versions"]  # the first and
# last re-exported

NORMALIZE = ("auto", "reference", "none")
MAX_SEED = 2**32 - 1  # scikit-learn's random_state takes [0, 2**32 - 1]


@dataclass(frozen=True)
class PredictionInterval:
    """Predictions with a central interval of ``level``: ``median`` (the cost model's estimate),
    ``low`` and ``high``, one entry per architecture, in the target's unit."""

    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float

    def scaled(self, factor: float) -> PredictionInterval:
        """All three times ``factor`` (a latency stated at another machine speed)."""
        return PredictionInterval(self.median * factor, self.low * factor, self.high * factor, self.level)


def check_level(level: object) -> float:
    """An interval level: a number strictly between 0 and 1 (0.9 for 90 %)."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be a number strictly between 0 and 1 (0.9 for a 90 % interval), got {level!r}")
    return float(level)


def conformal_log_bounds(residual_log: np.ndarray, drift_log: np.ndarray | None, level: float) -> tuple[float, float]:
    """``(low, high)`` log-ratio bounds of a ``level`` interval from residuals (and speed drift,
    convolved with them): order statistics with the split-conformal finite-sample correction."""
    r = np.asarray(residual_log, dtype=float)
    n = len(r)
    if n == 0:
        raise ValueError("no residuals to calibrate an interval on")
    scores = r if drift_log is None or len(drift_log) == 0 else (r[:, None] + np.asarray(drift_log)[None, :]).ravel()
    scores = np.sort(scores)
    m = len(scores)
    alpha = 1.0 - level
    eps = 1e-9  # (n + 1) · q in binary floating point: 100 · 0.1 must count as 10, not 9.999…
    k_hi = math.ceil((n + 1) * (1.0 - alpha / 2.0) - eps)  # the k-th smallest of n (1-based), at most the largest
    k_lo = math.floor((n + 1) * (alpha / 2.0) + eps)  # 0: below the smallest, which bounds it here
    # of the m = n × drifts convolved scores, the same share of order statistics
    hi = scores[min(m, math.ceil(k_hi * m / n - eps)) - 1]
    lo = scores[max(1, math.floor(k_lo * m / n + eps)) - 1]
    return float(lo), float(hi)


def speed_drift_log(table: pd.DataFrame) -> np.ndarray:
    """Log ratios of the reference's latency between consecutive rows of a raw profile table (in
    the order measured, per batch size): how much the machine's speed moves between one
    measurement and the next."""
    if "ref_latency_ms" not in table or "batch_size" not in table:
        return np.zeros(0)
    out = []
    for _, rows in table.groupby("batch_size", sort=True):
        ref = pd.to_numeric(rows["ref_latency_ms"], errors="coerce").to_numpy(dtype=float)
        ref = ref[np.isfinite(ref) & (ref > 0)]
        if len(ref) > 1:
            out.append(np.diff(np.log(ref)))
    return np.concatenate(out) if out else np.zeros(0)


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
        self.residual_log: np.ndarray = np.zeros(0)  # out-of-fold log(measured / predicted) on the training table
        self.drift_log: np.ndarray = np.zeros(0)  # the speed's drift between consecutive measurements (latency)

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
    def fit(self, table: pd.DataFrame, *, drift_log: Sequence[float] | None = None) -> Predictor:
        """Fit on a profile table of one device and one space (see :mod:`predictors.table`).

        The speed drift of a latency predictor's intervals is read from the table's rows in the
        order measured (several passes per architecture, as ``nas profile`` writes them);
        ``drift_log`` gives it instead (a refit from an aggregated ``train.csv``)."""
        if not isinstance(table, pd.DataFrame) or len(table) == 0:
            raise ValueError("fit needs a non-empty profile table (a pandas DataFrame)")
        missing = [c for c in ("arch_json", "batch_size", "fingerprint", "space", self.column) if c not in table]
        if missing:
            raise ValueError(f"profile table lacks columns {missing}")
        raw = table
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
        oof = {name: self._cv_predictions(name, samples, y) for name in names}
        scores = {name: rmspe(p, y) if p is not None else float("inf") for name, p in oof.items()}
        self.cv_scores = scores if len(names) > 1 else {}
        self.model_name = min(scores, key=scores.get) if self.cv_scores else names[0]
        self.model = create_cost_model(self.model_name, seed=self.seed).fit(samples, y)
        chosen = oof[self.model_name]
        if chosen is None:  # a batch size only in one fold: no out-of-fold prediction for it
            self.residual_log = np.zeros(0)
        else:
            ok = (chosen > 0) & (y > 0)
            self.residual_log = np.log(y[ok] / chosen[ok])
        if self.normalization != "reference":
            self.drift_log = np.zeros(0)  # measured latencies (or memory): no speed is stated
        elif drift_log is not None:
            self.drift_log = np.asarray(list(drift_log), dtype=float)
        else:
            self.drift_log = speed_drift_log(raw)
        self.batch_sizes = sorted(int(b) for b in np.unique(samples.batch_sizes))
        self.fitted_at = time.strftime("%Y-%m-%dT%H:%M:%S")
        return self

    def _cv_predictions(self, name: str, samples: Samples, y: np.ndarray) -> np.ndarray | None:
        """Out-of-fold predictions of cost model ``name`` on the training samples (``None`` where a
        fold cannot be fitted, e.g. a batch size only in the held-out fold)."""
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
                return None
        return pred

    # --- use --------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if self.model is None:
            raise RuntimeError("predictor is not fitted: call fit(table) or Predictor.load(dir)")

    def predict(self, archs: ArchConfig | Sequence[ArchConfig], batch_size: int, *,
                space: SearchSpace | None = None, level: float | None = None) -> np.ndarray | PredictionInterval:
        """Predicted cost of each architecture at ``batch_size`` (ms for latency — at the training
        run's reference speed when normalised, see :meth:`at_speed` —, MB for memory).

        With ``level`` (0.9: a 90 % interval) a :class:`PredictionInterval` of median, low and
        high (see the module docstring: split-conformal on cross-validated residuals, a latency's
        speed drift included). ``space`` widens the fitted space (same name and stages, more
        choices) to ask about architectures outside it — an extrapolation, as the staircase
        bench does.
        """
        self._require_fitted()
        if level is not None:
            level = check_level(level)
            median = self.predict(archs, batch_size, space=space)
            low, high = self.log_bounds(level)
            return PredictionInterval(median, median * math.exp(low), median * math.exp(high), level)
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

    def log_bounds(self, level: float, *, with_drift: bool = True) -> tuple[float, float]:
        """The ``level`` interval's bounds as log ratios to the prediction (see the module
        docstring); ``with_drift=False`` leaves the speed's drift out (a latency compared at the
        training run's reference speed, as :meth:`evaluate` compares it)."""
        self._require_fitted()
        level = check_level(level)
        if len(self.residual_log) < 2:
            raise ValueError(f"this {self.target} predictor has no cross-validated residuals to state an interval "
                             f"from (an artifact saved before intervals were recorded?); refit it: "
                             f"nas predictors refit DIR")
        drift = self.drift_log if with_drift and len(self.drift_log) else None
        return conformal_log_bounds(self.residual_log, drift, level)

    def speed_factor(self, ref_latency_ms: float, batch_size: int) -> float:
        """The factor that states a prediction at the speed a reference latency of
        ``ref_latency_ms`` (the space's reference architecture timed now) shows: that latency over
        the training run's reference median (1.0 for a predictor that is not normalised)."""
        if self.normalization != "reference":
            return 1.0
        if batch_size not in (self.ref_baseline_ms or {}):
            raise ValueError(f"no reference speed for batch size {batch_size}; this predictor has "
                             f"{sorted(self.ref_baseline_ms or {})}")
        if not (isinstance(ref_latency_ms, numbers.Real) and math.isfinite(ref_latency_ms) and ref_latency_ms > 0):
            raise ValueError(f"ref_latency_ms must be a positive number of ms, got {ref_latency_ms!r}")
        return float(ref_latency_ms) / self.ref_baseline_ms[batch_size]

    @property
    def target_record(self) -> dict[str, Any]:
        """The deployment target this predictor speaks for: device kind, runtime, threads, batch sizes."""
        fp = self.fingerprint or {}
        return {"device": fp.get("kind"), "runtime": fp.get("runtime", "torch"),
                "runtime_version": fp.get("runtime_version"), "threads": fp.get("threads"),
                "batch_sizes": list(self.batch_sizes)}

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
            "target_record": self.target_record,
            "interval": {"method": "split-conformal on out-of-fold log-ratio residuals"
                                   + (", convolved with the speed drift" if len(self.drift_log) else ""),
                         "residual_log": [float(v) for v in self.residual_log],
                         "drift_log": [float(v) for v in self.drift_log]},
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
