"""Latency and memory predictors fitted on device profiles.

Owns: analytic features of an architecture (:mod:`predictors.features`), the profile table
(:mod:`predictors.table`), cost models (:mod:`predictors.models`), error measures
(:mod:`predictors.metrics`) and :class:`Predictor` — fitting, evaluation and persistence.
Imports scikit-learn (and SciPy, which scikit-learn is built on: Kendall's τ), pandas and
``search_spaces`` only (see DESIGN.md); device fingerprints arrive as plain dicts.
"""

from predictors.features import LayerCost, arch_features, feature_names, layer_costs
from predictors.metrics import kendall_tau, prediction_metrics, rmspe, within_pct
from predictors.models import MODELS, CostModel, Samples, create_model, model_names
from predictors.predictor import DeviceMismatch, Predictor, library_versions
from predictors.table import (PROFILE_COLUMNS, TARGETS, aggregate_profiles, append_profile_row, read_profiles,
                              rows_for)

__all__ = [
    "MODELS", "PROFILE_COLUMNS", "TARGETS", "CostModel", "DeviceMismatch", "LayerCost", "Predictor", "Samples",
    "aggregate_profiles", "append_profile_row", "arch_features", "create_model", "feature_names", "kendall_tau",
    "layer_costs", "library_versions", "model_names", "prediction_metrics", "read_profiles", "rmspe", "rows_for",
    "within_pct",
]
