"""The additive cost models: ``flops``, ``lookup`` and ``linear``.

- ``flops`` — the FLOPs-proportional baseline: ``y = a·MACs + b``, one line per batch size,
  with ``a, b >= 0`` (a cost does not fall as compute grows, and the fixed cost is not negative).
- ``lookup`` — an additive per-block table in the spirit of once-for-all's latency lookup
  tables (Cai et al., ICLR 2020): ``y = c + Σ_stages base[stage, width] +
  Σ_blocks (kernel[stage, width, k] + mlp[stage, width, r] + order[stage, width, o])``, one
  table per batch size. OFA measures each entry in isolation; here the constant and the entries
  are fitted to whole-network profiles by non-negative least squares — the constant ``c`` too,
  so a prediction is never below the fixed cost ``c >= 0`` — with a vanishing ridge penalty on
  the entries (not on ``c``) that picks, among the tables that fit equally well, the one of least
  norm: cost the profiles share goes to ``c`` and the rest is spread over the entries they used,
  rather than piled on a few. An entry no profiled network used stays 0.
- ``linear`` — ridge regression (penalty chosen by leave-one-out CV) on the analytic features
  (MACs, bytes moved, operator counts, per stage): a roofline-like sum of compute, memory traffic
  and per-kernel overheads. scikit-learn fits it; the scaler's ``mean_`` / ``scale_`` and the
  ridge's ``coef_`` / ``intercept_`` are copied out, and it predicts from those arrays.

``flops`` and ``lookup`` fit one sub-model per batch size (:class:`_PerBatch`); ``linear`` is also
the additive part of the tree models (:mod:`predictors.trees`). Each registers itself in
:data:`predictors.costmodel.COST_MODELS`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
from scipy.optimize import nnls
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from predictors.costmodel import CostModel, Samples, feature_matrix, register_cost_model
from predictors.state import Arrays, Params, batch_size_list, check_keys, state_array, str_list
from search_spaces.arch import ArchConfig

__all__ = ["FlopsModel", "LinearModel", "LookupModel"]


class _PerBatch(CostModel):
    """Fits one sub-model per batch size seen; predicting another batch size is refused."""

    def _fit(self, samples: Samples, y: np.ndarray) -> None:
        self.per_batch = {}
        for b in np.unique(samples.batch_sizes):
            idx = np.nonzero(samples.batch_sizes == b)[0]
            self.per_batch[int(b)] = self._fit_one(samples.subset(idx), y[idx])

    def _predict(self, samples: Samples) -> np.ndarray:
        out = np.empty(len(samples))
        for b in np.unique(samples.batch_sizes):
            if int(b) not in self.per_batch:
                raise ValueError(f"{self.name} model was fitted for batch sizes {sorted(self.per_batch)}, "
                                 f"not {int(b)}; profile that batch size")
            idx = np.nonzero(samples.batch_sizes == b)[0]
            out[idx] = self._predict_one(self.per_batch[int(b)], samples.subset(idx))
        return out

    @abstractmethod
    def _fit_one(self, samples: Samples, y: np.ndarray): ...

    @abstractmethod
    def _predict_one(self, fitted, samples: Samples) -> np.ndarray: ...


def _nonneg_lstsq(x: np.ndarray, y: np.ndarray, *, tiebreak: float = 0.0) -> tuple[float, np.ndarray]:
    """``(c, w) = argmin ||y - c - x·w||² + tiebreak·||w||²`` subject to ``c >= 0, w >= 0``.

    The constant is a column of ones inside the non-negative fit — not scikit-learn's
    ``fit_intercept``, which leaves the intercept free (and negative where the entries alone
    overshoot). ``tiebreak`` > 0 penalises the entries (never ``c``), in the units of ``x``'s columns.
    """
    a = np.column_stack([np.ones(len(x)), x])
    b = np.asarray(y, dtype=float)
    if tiebreak > 0:
        pen = np.sqrt(tiebreak) * np.eye(a.shape[1])[1:]
        a, b = np.vstack([a, pen]), np.concatenate([b, np.zeros(len(pen))])
    coef, _ = nnls(a, b, maxiter=50 * a.shape[1])
    return float(coef[0]), coef[1:]


@register_cost_model
class FlopsModel(_PerBatch):
    """``per_batch[b] = (a, b)``, floats: the line ``a·MACs + b`` of batch size ``b``.

    State: params ``batch_sizes``; arrays ``slope``, ``intercept`` (one per batch size, >= 0).
    """

    name = "flops"
    description = "FLOPs-proportional baseline: a·MACs + b per batch size, a, b >= 0"

    def _fit_one(self, samples: Samples, y: np.ndarray):
        macs = samples.features["macs"].to_numpy(dtype=float)
        scale = float(np.max(np.abs(macs))) or 1.0  # MACs ~1e6..1e11: fit on a unit scale
        b, (a,) = _nonneg_lstsq(macs[:, None] / scale, y)
        return float(a) / scale, b

    def _predict_one(self, fitted, samples: Samples) -> np.ndarray:
        a, b = fitted
        return a * feature_matrix(samples, ["macs"], self.name)[:, 0] + b

    def _state(self) -> tuple[Params, Arrays]:
        batches = sorted(self.per_batch)
        return {"batch_sizes": batches}, {"slope": np.array([self.per_batch[b][0] for b in batches]),
                                          "intercept": np.array([self.per_batch[b][1] for b in batches])}

    def _set_state(self, params: Params, arrays: Arrays) -> None:
        check_keys(params, ["batch_sizes"], what=self.name, kind="params")
        check_keys(arrays, ["slope", "intercept"], what=self.name, kind="arrays")
        batches = batch_size_list(params["batch_sizes"], what=self.name)
        slope, intercept = (state_array(arrays, k, what=self.name, shape=(len(batches),), nonneg=True)
                            for k in ("slope", "intercept"))
        self.per_batch = {b: (float(a), float(c)) for b, a, c in zip(batches, slope, intercept)}


def _lookup_keys(arch: ArchConfig) -> list[str]:
    keys = []
    for i, stage in enumerate(arch.stages):
        w = stage.width
        keys.append(f"base:s{i}:w{w}")
        for b in stage.blocks:
            keys += [f"k:s{i}:w{w}:{b.kernel_size}", f"r:s{i}:w{w}:{b.mlp_ratio}", f"o:s{i}:w{w}:{b.order}"]
    return keys


@register_cost_model
class LookupModel(_PerBatch):
    """``per_batch[b] = (columns, c, entries)``: the lookup keys, the constant and their costs.

    State: params ``batch_sizes`` and ``columns`` (one key list per batch size); arrays ``const``
    (one per batch size) and ``entries.B`` per batch size ``B`` — all >= 0, as the fit keeps them.
    """

    name = "lookup"
    description = ("OFA-style additive per-block lookup table, constant and entries fitted by non-negative least "
                   "squares")

    # Ridge penalty on the entries (not the constant), in count units: small enough not to bias a
    # table the profiles determine (relative effect ~1e-8), large enough to choose, where they
    # do not (fewer networks than entries), the least-norm table instead of an arbitrary sparse
    # one with c = 0 — which predicts 0 for a network using only its zero entries.
    TIEBREAK: ClassVar[float] = 1e-8

    def _design(self, samples: Samples, columns: list[str]) -> np.ndarray:
        index = {c: j for j, c in enumerate(columns)}
        x = np.zeros((len(samples), len(columns)))
        for r, arch in enumerate(samples.archs):
            for key in _lookup_keys(arch):
                if key in index:
                    x[r, index[key]] += 1.0
        return x

    def _fit_one(self, samples: Samples, y: np.ndarray):
        columns = sorted({k for a in samples.archs for k in _lookup_keys(a)})
        const, entries = _nonneg_lstsq(self._design(samples, columns), y, tiebreak=self.TIEBREAK)
        return columns, const, entries

    def _predict_one(self, fitted, samples: Samples) -> np.ndarray:
        columns, const, entries = fitted
        return const + self._design(samples, columns) @ entries

    def table(self) -> dict[int, dict[str, float]]:
        """The fitted lookup table per batch size (entry -> cost; ``const`` the fixed cost)."""
        return {b: {"const": float(const), **{c: float(v) for c, v in zip(columns, entries)}}
                for b, (columns, const, entries) in self.per_batch.items()}

    def _state(self) -> tuple[Params, Arrays]:
        batches = sorted(self.per_batch)
        params = {"batch_sizes": batches, "columns": [list(self.per_batch[b][0]) for b in batches]}
        arrays = {"const": np.array([self.per_batch[b][1] for b in batches]),
                  **{f"entries.{b}": np.asarray(self.per_batch[b][2], dtype=float) for b in batches}}
        return params, arrays

    def _set_state(self, params: Params, arrays: Arrays) -> None:
        check_keys(params, ["batch_sizes", "columns"], what=self.name, kind="params")
        batches = batch_size_list(params["batch_sizes"], what=self.name)
        check_keys(arrays, ["const"] + [f"entries.{b}" for b in batches], what=self.name, kind="arrays")
        columns = params["columns"]
        if not isinstance(columns, list) or len(columns) != len(batches):
            raise ValueError(f"{self.name} state: columns must be one list of lookup keys per batch size "
                             f"({len(batches)}), got {columns!r:.80}")
        const = state_array(arrays, "const", what=self.name, shape=(len(batches),), nonneg=True)
        self.per_batch = {}
        for i, b in enumerate(batches):
            cols = str_list(columns[i], what=self.name, key=f"columns[{i}]")
            entries = state_array(arrays, f"entries.{b}", what=self.name, shape=(len(cols),), nonneg=True)
            self.per_batch[b] = (cols, float(const[i]), entries)


@register_cost_model
class LinearModel(CostModel):
    """Standardised features, then ridge: ``((x - mean) / scale) @ coef + intercept``.

    State: params ``columns``; arrays ``mean``, ``scale``, ``coef`` (one per column) and
    ``intercept`` (shape (1,)) — the fitted StandardScaler's ``mean_``, ``scale_`` and RidgeCV's
    ``coef_``, ``intercept_``.
    """

    name = "linear"
    description = "ridge regression on the analytic features (compute, traffic, operator counts per stage)"

    ARRAYS: ClassVar[tuple[str, ...]] = ("mean", "scale", "coef", "intercept")

    def _fit(self, samples: Samples, y: np.ndarray) -> None:
        columns = list(samples.features.columns)
        self.estimator = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-4, 3, 15)))
        self.estimator.fit(feature_matrix(samples, columns, self.name), y)
        scaler, ridge = self.estimator[0], self.estimator[-1]
        self._set_state({"columns": columns}, {"mean": scaler.mean_, "scale": scaler.scale_, "coef": ridge.coef_,
                                               "intercept": np.array([ridge.intercept_], dtype=float)})

    def _predict(self, samples: Samples) -> np.ndarray:
        x = feature_matrix(samples, self.columns, self.name)
        # as StandardScaler.transform (X -= mean_; X /= scale_), then Ridge's X @ coef_ + intercept_
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def _state(self) -> tuple[Params, Arrays]:
        return {"columns": list(self.columns)}, {"mean": self.mean, "scale": self.scale, "coef": self.coef,
                                                  "intercept": np.array([self.intercept])}

    def _set_state(self, params: Params, arrays: Arrays, *, what: str | None = None, prefix: str = "") -> None:
        """``what`` and ``prefix`` name this state in messages where it is another model's part."""
        what = what or self.name
        check_keys(params, ["columns"], what=what, kind="params")
        check_keys(arrays, self.ARRAYS, what=what, kind="arrays", prefix=prefix)
        self.columns = str_list(params["columns"], what=what, key="columns")
        n = (len(self.columns),)
        self.mean, self.scale, self.coef = (state_array(arrays, k, what=what, shape=n, prefix=prefix)
                                            for k in ("mean", "scale", "coef"))
        if np.any(self.scale == 0):
            raise ValueError(f"{what} state: array '{prefix}scale' must not hold 0 (StandardScaler keeps it "
                             f"non-zero)")
        self.intercept = float(state_array(arrays, "intercept", what=what, shape=(1,), prefix=prefix)[0])
