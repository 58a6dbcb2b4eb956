"""Cost models: map (architecture, batch size) features to a cost (latency ms or memory MB).

Every model implements :class:`CostModel` — ``fit(samples, y)`` and ``predict(samples)`` on a
:class:`Samples` (the architectures, their batch sizes and their feature table) — and is
registered by name in :data:`MODELS`:

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
- ``linear`` — ridge regression (penalty chosen by leave-one-out CV) on the analytic features (MACs, bytes moved, operator counts,
  per stage): a roofline-like sum of compute, memory traffic and per-kernel overheads.
- ``gbt`` — gradient-boosted trees (scikit-learn) on the features, fitted to the *log ratio* of
  the cost to the ``linear`` model's prediction, so the trees learn what the additive model
  misses (operator fusion, cache effects, the GPU tail) while the linear part carries scale.
- ``forest`` — a random forest in the same residual form.

Targets are positive; the learned models work in log space so their errors are relative.

``flops`` and ``lookup`` keep every coefficient, the constant included, non-negative, so they
predict at least their fixed cost. ``linear`` (and the tree models built on it) can still
extrapolate below zero far from its table; :meth:`CostModel.predict` clamps any non-positive
prediction to :data:`COST_FLOOR` and warns (:class:`ClampedCostWarning`): such a figure means
"unknown", not "free". A search still scores it as the floor (the warning says so); its picks
are measured before they are kept, and a clamped prediction is not used to rescale the others.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from search_spaces.arch import ArchConfig

__all__ = ["COST_FLOOR", "MODELS", "ClampedCostWarning", "CostModel", "Samples", "create_model", "model_names"]

COST_FLOOR = 1e-6  # what a non-positive prediction is clamped to (the last guard; see CostModel.predict)


class ClampedCostWarning(RuntimeWarning):
    """A cost model predicted a cost <= 0, which was clamped to :data:`COST_FLOOR`."""


@dataclass
class Samples:
    """Architectures, their batch sizes and their features (one row each, same order)."""

    archs: list[ArchConfig]
    batch_sizes: np.ndarray  # (n,) int
    features: pd.DataFrame  # (n, n_features)

    def __post_init__(self) -> None:
        self.batch_sizes = np.asarray(self.batch_sizes, dtype=int)
        if not (len(self.archs) == len(self.batch_sizes) == len(self.features)):
            raise ValueError(f"Samples need as many archs ({len(self.archs)}), batch sizes "
                             f"({len(self.batch_sizes)}) and feature rows ({len(self.features)})")

    def __len__(self) -> int:
        return len(self.archs)

    def subset(self, idx: np.ndarray) -> "Samples":
        idx = np.asarray(idx)
        return Samples([self.archs[i] for i in idx], self.batch_sizes[idx], self.features.iloc[idx])


class CostModel(ABC):
    """A fitted map from :class:`Samples` to positive costs."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self.fitted = False

    @abstractmethod
    def _fit(self, samples: Samples, y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, samples: Samples) -> np.ndarray: ...

    def fit(self, samples: Samples, y) -> "CostModel":
        y = np.asarray(y, dtype=float)
        if y.shape != (len(samples),):
            raise ValueError(f"{self.name}: need one target per sample, got {y.shape} for {len(samples)} samples")
        if len(samples) < 2:
            raise ValueError(f"{self.name}: need at least 2 samples to fit, got {len(samples)}")
        if not np.all(np.isfinite(y)) or not np.all(y > 0):
            raise ValueError(f"{self.name}: targets must be finite and positive")
        self._fit(samples, y)
        self.fitted = True
        return self

    def predict(self, samples: Samples) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError(f"{self.name} model is not fitted")
        return self._clamp(self._predict(samples), self.name, stacklevel=2)

    @staticmethod
    def _clamp(raw, what: str, *, stacklevel: int) -> np.ndarray:
        """Costs are positive. The flops and lookup models cannot go below their non-negative fixed
        cost; a model extrapolating to <= 0 anyway (linear far outside its table, a lookup table
        whose entries are all 0 for a network, a model pickled before those fits) is clamped to a
        floor so logs and ratios downstream stay finite — and says so (:class:`ClampedCostWarning`):
        a clamped figure is not the cost of a free network. The message is fixed per model, so the
        default warning filter shows it once, not once per network of a search."""
        raw = np.asarray(raw, dtype=float)
        if np.any(raw <= 0):
            warnings.warn(f"{what} cost model predicted a non-positive cost (it extrapolates beyond its training "
                          f"table) and the prediction was clamped to {COST_FLOOR:g}: treat it as unknown, not as "
                          f"meeting a budget; profile more architectures like it and refit, or use another model",
                          ClampedCostWarning, stacklevel=stacklevel + 1)
        return np.maximum(raw, COST_FLOOR)


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


class FlopsModel(_PerBatch):
    name = "flops"
    description = "FLOPs-proportional baseline: a·MACs + b per batch size, a, b >= 0"

    # A fitted line is ``(a, b)``, floats. Artifacts pickled before a, b were constrained hold a
    # scikit-learn LinearRegression instead; those still predict as they did.

    def _fit_one(self, samples: Samples, y: np.ndarray):
        macs = samples.features["macs"].to_numpy(dtype=float)
        scale = float(np.max(np.abs(macs))) or 1.0  # MACs ~1e6..1e11: fit on a unit scale
        b, (a,) = _nonneg_lstsq(macs[:, None] / scale, y)
        return float(a) / scale, b

    def _predict_one(self, fitted, samples: Samples) -> np.ndarray:
        if not isinstance(fitted, tuple):  # legacy: LinearRegression on [[macs]]
            return fitted.predict(samples.features[["macs"]].to_numpy())
        a, b = fitted
        return a * samples.features["macs"].to_numpy(dtype=float) + b


def _lookup_keys(arch: ArchConfig) -> list[str]:
    keys = []
    for i, stage in enumerate(arch.stages):
        w = stage.width
        keys.append(f"base:s{i}:w{w}")
        for b in stage.blocks:
            keys += [f"k:s{i}:w{w}:{b.kernel_size}", f"r:s{i}:w{w}:{b.mlp_ratio}", f"o:s{i}:w{w}:{b.order}"]
    return keys


class LookupModel(_PerBatch):
    name = "lookup"
    description = ("OFA-style additive per-block lookup table, constant and entries fitted by non-negative least "
                   "squares")

    # Ridge penalty on the entries (not the constant), in count units: small enough not to bias a
    # table the profiles determine (relative effect ~1e-8), large enough to choose, where they
    # do not (fewer networks than entries), the least-norm table instead of an arbitrary sparse
    # one with c = 0 — which predicts 0 for a network using only its zero entries.
    TIEBREAK: ClassVar[float] = 1e-8

    # A fitted table is ``(columns, c, entries)``. Artifacts pickled before the constant was
    # constrained hold ``(columns, LinearRegression)`` instead; those still predict as they did
    # (their intercept may be negative: refit them, ``nas predictors refit DIR``).

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

    @staticmethod
    def _unpack(fitted) -> tuple[list[str], float, np.ndarray]:
        if len(fitted) == 2:  # legacy: (columns, LinearRegression(positive=True)), intercept unconstrained
            columns, reg = fitted
            return columns, float(reg.intercept_), np.asarray(reg.coef_, dtype=float)
        return fitted

    def _predict_one(self, fitted, samples: Samples) -> np.ndarray:
        columns, const, entries = self._unpack(fitted)
        if const < 0:
            warnings.warn("this lookup model was fitted (and pickled) before its constant was constrained, and its "
                          "constant is negative: it underestimates small networks, down to non-positive costs; "
                          "rebuild it with `nas predictors refit DIR`", RuntimeWarning, stacklevel=4)
        return const + self._design(samples, columns) @ entries

    def table(self) -> dict[int, dict[str, float]]:
        """The fitted lookup table per batch size (entry -> cost; ``const`` the fixed cost)."""
        out = {}
        for b, fitted in self.per_batch.items():
            columns, const, entries = self._unpack(fitted)
            out[b] = {"const": float(const), **{c: float(v) for c, v in zip(columns, entries)}}
        return out


class LinearModel(CostModel):
    name = "linear"
    description = "ridge regression on the analytic features (compute, traffic, operator counts per stage)"

    def _fit(self, samples: Samples, y: np.ndarray) -> None:
        self.columns = list(samples.features.columns)
        self.reg = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-4, 3, 15))).fit(samples.features.to_numpy(), y)

    def _predict(self, samples: Samples) -> np.ndarray:
        return self.reg.predict(samples.features[self.columns].to_numpy())


class _ResidualTrees(CostModel):
    """Trees on log(y / linear(x)) with the features and the linear prediction as inputs."""

    def _make(self):
        raise NotImplementedError

    def _base(self, samples: Samples) -> np.ndarray:
        """The linear part's prediction, clamped (and reported) under this model's name."""
        return self._clamp(self.base._predict(samples), f"the linear part of the {self.name}", stacklevel=4)

    def _fit(self, samples: Samples, y: np.ndarray) -> None:
        self.base = LinearModel(seed=self.seed).fit(samples, y)
        self.columns = list(samples.features.columns)
        base = self._base(samples)
        x = np.column_stack([samples.features.to_numpy(), np.log(base)])
        self.trees = self._make().fit(x, np.log(y / base))

    def _predict(self, samples: Samples) -> np.ndarray:
        base = self._base(samples)
        x = np.column_stack([samples.features[self.columns].to_numpy(), np.log(base)])
        return base * np.exp(self.trees.predict(x))


class GBTModel(_ResidualTrees):
    name = "gbt"
    description = "gradient-boosted trees on the log ratio to the linear model"

    def _make(self):
        return GradientBoostingRegressor(n_estimators=300, learning_rate=0.03, max_depth=3, subsample=0.8,
                                         min_samples_leaf=3, random_state=self.seed)


class ForestModel(_ResidualTrees):
    name = "forest"
    description = "random forest on the log ratio to the linear model"

    def tree_spread(self, samples: Samples) -> np.ndarray:
        """Standard deviation of the trees' log-ratio predictions: the forest's uncertainty."""
        if not self.fitted:
            raise RuntimeError("forest model is not fitted")
        base = self._base(samples)
        x = np.column_stack([samples.features[self.columns].to_numpy(), np.log(base)])
        return np.std([t.predict(x) for t in self.trees.estimators_], axis=0)

    def _make(self):
        return RandomForestRegressor(n_estimators=300, min_samples_leaf=2, max_features=0.5, random_state=self.seed,
                                     n_jobs=1)


MODELS: dict[str, type[CostModel]] = {m.name: m for m in (FlopsModel, LookupModel, LinearModel, GBTModel, ForestModel)}


def model_names() -> list[str]:
    return list(MODELS)


def create_model(name: str, *, seed: int = 0) -> CostModel:
    """A fresh, unfitted cost model by name."""
    try:
        cls = MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cost model {name!r}; valid: {', '.join(MODELS)}") from None
    return cls(seed=seed)
