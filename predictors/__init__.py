"""Latency and memory predictors fitted on device profiles.

Owns: analytic features of an architecture (:mod:`predictors.features`), the profile table
(:mod:`predictors.table`), error measures (:mod:`predictors.metrics`), the cost-model contract and
registry (:mod:`predictors.costmodel`, state checks in :mod:`predictors.state`), the cost models
(:mod:`predictors.linear`: ``flops``, ``lookup``, ``linear``; :mod:`predictors.trees`: ``gbt``,
``forest``), device fingerprints compared (:mod:`predictors.device`), :class:`Predictor` —
fitting, prediction, evaluation (:mod:`predictors.predictor`) — and its data-only artifacts
(:mod:`predictors.artifact`).

Imports scikit-learn, SciPy, pandas, NumPy, safetensors, the standard library and
``search_spaces`` only — never ``nas`` or ``profilers``: device fingerprints arrive as plain dicts.
Importing the package imports every cost-model module, which fills :data:`COST_MODELS`.
"""

from predictors.costmodel import (
    COST_FLOOR,
    COST_MODELS,
    ClampedCostWarning,
    CostModel,
    Samples,
    cost_model_names,
    create_cost_model,
    register_cost_model,
)
from predictors.device import DeviceMismatch
from predictors.features import LayerCost, arch_features, feature_names, layer_costs
from predictors.linear import FlopsModel, LinearModel, LookupModel  # registers flops, lookup, linear
from predictors.metrics import kendall_tau, prediction_metrics, rmspe, within_pct
from predictors.predictor import Predictor, library_versions
from predictors.table import PROFILE_COLUMNS, TARGETS, aggregate_profiles, append_profile_row, read_profiles, rows_for
from predictors.trees import ForestModel, GBTModel, TreeArrays  # registers gbt, forest (after linear)

__all__ = [
    "COST_FLOOR", "COST_MODELS", "PROFILE_COLUMNS", "TARGETS", "ClampedCostWarning", "CostModel", "DeviceMismatch",
    "FlopsModel", "ForestModel", "GBTModel", "LayerCost", "LinearModel", "LookupModel", "Predictor", "Samples",
    "TreeArrays", "aggregate_profiles", "append_profile_row", "arch_features", "cost_model_names",
    "create_cost_model", "feature_names", "kendall_tau", "layer_costs", "library_versions", "prediction_metrics",
    "read_profiles", "register_cost_model", "rmspe", "rows_for", "within_pct",
]
