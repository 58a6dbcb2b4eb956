"""The cost-model contract, and the registry of cost models.

A cost model maps (architecture, batch size) features to a cost — latency in ms or memory in MB.
Every model is a :class:`CostModel`: ``fit(samples, y)`` and ``predict(samples)`` on a
:class:`Samples` (the architectures, their batch sizes and their feature table). Each model
class registers itself by name with :func:`register_cost_model` in its own module —
:mod:`predictors.linear` (``flops``, ``lookup``, ``linear``), :mod:`predictors.trees` (``gbt``,
``forest``) — so :data:`COST_MODELS`, filled as the package imports those modules, is the only
list of them; :func:`create_cost_model` makes one by name. Targets are positive; the learned
models work in log space so their errors are relative.

One prediction path. scikit-learn fits the learned models; right after fitting, each copies what
predicting needs out of the estimators into plain NumPy arrays and predicts from those with its
own NumPy code, as scikit-learn does, so its predictions equal scikit-learn's. The fitted
estimator stays in ``estimator`` for inspection and is never used to predict.

Data-only state. :meth:`CostModel.to_state` gives a fitted model as ``(params, arrays)`` — JSON
values (names, columns, batch sizes, hyper-parameters) and float64 / int64 NumPy arrays — and
:meth:`CostModel.from_state` rebuilds it, checking every value (:mod:`predictors.state`); the
rebuilt model predicts bit-identically to the one saved, on any scikit-learn. Neither part can
hold code, so an artifact stores them as JSON and safetensors (:mod:`predictors.artifact`) and
loads them without running anything from it.

Clamping. ``flops`` and ``lookup`` keep every coefficient, the constant included, non-negative,
so they predict at least their fixed cost (a state that says otherwise is refused). ``linear``
(and the tree models built on it) can still extrapolate below zero far from its table;
:meth:`CostModel.predict` clamps any non-positive prediction to :data:`COST_FLOOR` and warns
(:class:`ClampedCostWarning`): such a figure means "unknown", not "free". A search still scores
it as the floor (the warning says so); its picks are measured before they are kept, and a
clamped prediction is not used to rescale the others.
"""

from __future__ import annotations

import numbers
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
import pandas as pd

from predictors.state import Arrays, Params
from search_spaces.arch import ArchConfig

__all__ = ["COST_FLOOR", "COST_MODELS", "ClampedCostWarning", "CostModel", "Samples", "cost_model_names",
           "create_cost_model", "feature_matrix", "register_cost_model"]

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

    def subset(self, idx: np.ndarray) -> Samples:
        idx = np.asarray(idx)
        return Samples([self.archs[i] for i in idx], self.batch_sizes[idx], self.features.iloc[idx])


def feature_matrix(samples: Samples, columns: Sequence[str], what: str) -> np.ndarray:
    """The named feature columns of ``samples`` (float64, in ``columns``' order), all finite."""
    missing = [c for c in columns if c not in samples.features.columns]
    if missing:
        raise ValueError(f"{what} model was fitted on features the samples lack: {missing}")
    x = samples.features[list(columns)].to_numpy(dtype=float)
    bad = [c for c, ok in zip(columns, np.isfinite(x).all(axis=0)) if not ok]
    if bad:
        raise ValueError(f"{what} model: features must be finite; NaN or infinite values in {bad}")
    return x


class CostModel(ABC):
    """A fitted map from :class:`Samples` to positive costs.

    ``estimator`` is the scikit-learn estimator :meth:`fit` trained, kept for inspection only:
    predictions come from the arrays copied out of it, and it is ``None`` for the models
    scikit-learn does not fit (``flops``, ``lookup``) and for a model rebuilt by :meth:`from_state`.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self.fitted = False
        self.estimator = None

    @abstractmethod
    def _fit(self, samples: Samples, y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, samples: Samples) -> np.ndarray: ...

    @abstractmethod
    def _state(self) -> tuple[Params, Arrays]:
        """The fitted parameters: JSON values and float64 / int64 arrays."""

    @abstractmethod
    def _set_state(self, params: Params, arrays: Arrays) -> None:
        """Set the fitted parameters from :meth:`_state`'s output, checking every value (ValueError)."""

    def fit(self, samples: Samples, y) -> CostModel:
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

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{self.name} model is not fitted")

    def predict(self, samples: Samples) -> np.ndarray:
        self._require_fitted()
        return self._clamp(self._predict(samples), self.name, stacklevel=2)

    def to_state(self) -> tuple[Params, Arrays]:
        """The fitted model as data: ``(params, arrays)``.

        ``params`` holds JSON values only — ``model`` (the name), ``seed`` and the model's
        columns, batch sizes and hyper-parameters — and ``arrays`` float64 / int64 NumPy arrays
        (coefficients, tree nodes), as :func:`safetensors.numpy.save` stores them.
        :meth:`from_state` rebuilds a model predicting bit-identically to this one.
        """
        self._require_fitted()
        params, arrays = self._state()
        return {"model": self.name, "seed": self.seed, **params}, arrays

    @classmethod
    def from_state(cls, params: Params, arrays: Arrays) -> CostModel:
        """A fitted model rebuilt from :meth:`to_state`'s ``(params, arrays)``.

        Called on :class:`CostModel`, the class is the registered model ``params["model"]``
        names; on a model class, ``params`` must name that model. Every value is checked —
        names, types, shapes, finiteness, the trees' structure — and a state this code did not
        write is refused with a ``ValueError`` saying what is wrong. Nothing in it is executed.
        """
        if not isinstance(params, dict):
            raise ValueError(f"model state params must be a JSON object, got {type(params).__name__}")
        if not isinstance(arrays, dict) or not all(isinstance(k, str) for k in arrays):
            raise ValueError("model state arrays must be a dict of name -> NumPy array")
        name = params.get("model")
        model_cls = cls
        if cls is CostModel:
            if not isinstance(name, str) or name not in COST_MODELS:
                raise ValueError(f"model state names model {name!r}; valid: {', '.join(COST_MODELS)}")
            model_cls = COST_MODELS[name]
        elif name != cls.name:
            raise ValueError(f"model state is of model {name!r}, not {cls.name!r}")
        seed = params.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"{model_cls.name} state: seed must be a non-negative integer, got {seed!r}")
        model = model_cls(seed=int(seed))
        model._set_state({k: v for k, v in params.items() if k not in ("model", "seed")}, arrays)
        model.fitted = True
        return model

    @staticmethod
    def _clamp(raw, what: str, *, stacklevel: int) -> np.ndarray:
        """Costs are positive. The flops and lookup models cannot go below their non-negative fixed
        cost; a model extrapolating to <= 0 anyway (linear far outside its table, a lookup table
        whose entries are all 0 for a network) is clamped to a floor so logs and ratios downstream
        stay finite — and says so (:class:`ClampedCostWarning`): a clamped figure is not the cost
        of a free network. The message is fixed per model, so the default warning filter shows it
        once, not once per network of a search."""
        raw = np.asarray(raw, dtype=float)
        if np.any(raw <= 0):
            warnings.warn(f"{what} cost model predicted a non-positive cost (it extrapolates beyond its training "
                          f"table) and the prediction was clamped to {COST_FLOOR:g}: treat it as unknown, not as "
                          f"meeting a budget; profile more architectures like it and refit, or use another model",
                          ClampedCostWarning, stacklevel=stacklevel + 1)
        return np.maximum(raw, COST_FLOOR)


# --- the registry ---------------------------------------------------------------------------------
COST_MODELS: dict[str, type[CostModel]] = {}  # name -> class, in registration order; filled by the model modules

M = TypeVar("M", bound=type[CostModel])


def register_cost_model(cls: M) -> M:
    """Class decorator: add the cost model ``cls`` to :data:`COST_MODELS` under ``cls.name``.

    A name taken by another class is refused (re-registering the same class, as a module reload
    does, replaces it)."""
    name = getattr(cls, "name", None)
    if not (isinstance(cls, type) and issubclass(cls, CostModel)) or not isinstance(name, str) or not name:
        raise TypeError(f"register_cost_model takes a CostModel subclass with a name, got {cls!r}")
    known = COST_MODELS.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"cost model {name!r} is already registered ({known.__module__}.{known.__qualname__})")
    COST_MODELS[name] = cls
    return cls


def cost_model_names() -> list[str]:
    """The registered cost models' names, in registration order."""
    return list(COST_MODELS)


def create_cost_model(name: str, *, seed: int = 0) -> CostModel:
    """A fresh, unfitted cost model by name."""
    try:
        cls = COST_MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cost model {name!r}; valid: {', '.join(COST_MODELS)}") from None
    return cls(seed=seed)
