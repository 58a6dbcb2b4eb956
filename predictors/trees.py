"""The tree cost models, ``gbt`` and ``forest``, and the trees they predict with.

Both are fitted to the *log ratio* of the cost to the ``linear`` model's prediction
(:class:`_ResidualTrees`), so the trees learn what the additive model misses (operator fusion,
cache effects, the GPU tail) while the linear part carries scale:

- ``gbt`` — gradient-boosted trees (scikit-learn's ``GradientBoostingRegressor``);
- ``forest`` — a random forest (``RandomForestRegressor``), whose trees' spread is its
  uncertainty (:meth:`ForestModel.tree_spread`, used by adaptive profiling).

Right after fitting, every tree's ``children_left``, ``children_right``, ``feature``,
``threshold`` and ``value`` are copied into :class:`TreeArrays`, which predicts with NumPy as
scikit-learn does (features cast to float32 before a tree compares them with its thresholds;
boosting stages and forest trees accumulated in scikit-learn's order), so predictions equal
scikit-learn's and a model rebuilt from its stored arrays predicts bit-identically on any
scikit-learn. Each model registers itself in :data:`predictors.costmodel.COST_MODELS`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

from predictors.costmodel import CostModel, Samples, feature_matrix, register_cost_model
from predictors.linear import LinearModel
from predictors.state import Arrays, Params, check_keys, positive_float, prefixed, state_array, unprefixed

__all__ = ["ForestModel", "GBTModel", "TreeArrays"]


class TreeArrays:
    """Regression trees as flat node arrays, evaluated with NumPy.

    The nodes of every tree, concatenated: tree ``t`` owns ``node_counts[t]`` consecutive nodes.
    Per node, as scikit-learn's ``tree_`` holds them: ``children_left`` / ``children_right`` (node
    ids within the tree, -1 at a leaf), ``feature`` (-2 at a leaf), ``threshold`` and ``value``
    (the node's mean target). A sample goes left where ``x[feature] <= threshold``, its features
    cast to float32 first, as scikit-learn casts them.

    The constructor checks the structure (each tree a tree: a root, children after their parent,
    every other node the child of exactly one, features in range) and prepares one walk over all
    trees at once: leaves point to themselves, so ``depth`` steps of ``node = left or right``
    bring every (tree, sample) to its leaf.
    """

    KEYS: ClassVar[tuple[str, ...]] = ("node_counts", "children_left", "children_right", "feature", "threshold",
                                       "value")

    def __init__(self, *, node_counts: np.ndarray, children_left: np.ndarray, children_right: np.ndarray,
                 feature: np.ndarray, threshold: np.ndarray, value: np.ndarray, n_features: int,
                 what: str = "trees", prefix: str = "") -> None:
        arrays = {"node_counts": node_counts, "children_left": children_left, "children_right": children_right,
                  "feature": feature, "threshold": threshold, "value": value}
        counts = state_array(arrays, "node_counts", what=what, kind="i", prefix=prefix)
        if len(counts) == 0 or np.any(counts < 1):
            raise ValueError(f"{what} state: {prefix}node_counts must list at least one tree, each of >= 1 node")
        total = (int(counts.sum()),)
        kinds = {"children_left": "i", "children_right": "i", "feature": "i", "threshold": "f", "value": "f"}
        self.node_counts = counts
        for key, kind in kinds.items():
            setattr(self, key, state_array(arrays, key, what=what, kind=kind, shape=total, prefix=prefix))
        self.n_features = int(n_features)
        self._prepare(what)

    def _prepare(self, what: str) -> None:
        """Check the structure, then lay out the walk: global node ids, leaves pointing to themselves."""
        left, right = self.children_left, self.children_right
        starts = np.concatenate([[0], np.cumsum(self.node_counts)[:-1]])  # each tree's root
        tree = np.repeat(np.arange(self.n_trees), self.node_counts)
        leaf = left == -1
        self._check_nodes(tree, leaf, np.arange(len(left)) - starts[tree], what=what)
        nodes = np.arange(len(left))
        self._left = np.where(leaf, nodes, left + starts[tree])
        self._right = np.where(leaf, nodes, right + starts[tree])
        children = np.sort(np.concatenate([self._left[~leaf], self._right[~leaf]]))
        if not np.array_equal(children, np.setdiff1d(nodes, starts)):
            raise ValueError(f"{what} state: every node but a root must be the child of exactly one node")
        self._roots, self._feature = starts, np.where(leaf, 0, self.feature)
        self.depth, frontier = 0, starts
        while np.any(~leaf[frontier]):  # ends: children lie after their parent
            inner = frontier[~leaf[frontier]]
            frontier, self.depth = np.concatenate([self._left[inner], self._right[inner]]), self.depth + 1

    def _check_nodes(self, tree: np.ndarray, leaf: np.ndarray, local: np.ndarray, *, what: str) -> None:
        """A leaf has no children; an inner node has both after it in its own tree and a feature in range."""
        left, right, feature, count = self.children_left, self.children_right, self.feature, self.node_counts[tree]
        inner_bad = (left <= local) | (right <= local) | (left >= count) | (right >= count)
        inner_bad |= (feature < 0) | (feature >= self.n_features)
        bad = np.where(leaf, right != -1, inner_bad)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(f"{what} state: node {i} (tree {tree[i]}) is not a tree node: children "
                             f"({left[i]}, {right[i]}) must both be -1 or lie after it in its tree, feature "
                             f"{feature[i]} in [0, {self.n_features})")

    @classmethod
    def from_estimators(cls, estimators: Sequence[Any], *, n_features: int) -> TreeArrays:
        """The arrays of fitted scikit-learn regression trees (single output), in their order."""
        trees = [e.tree_ for e in estimators]
        if any(t.n_outputs != 1 or t.value.shape[1:] != (1, 1) for t in trees):
            raise ValueError("TreeArrays holds single-output regression trees")

        def cat(key: str, dtype) -> np.ndarray:
            return np.concatenate([np.asarray(getattr(t, key), dtype=dtype) for t in trees])

        return cls(node_counts=np.array([t.node_count for t in trees], dtype=np.int64),
                   children_left=cat("children_left", np.int64), children_right=cat("children_right", np.int64),
                   feature=cat("feature", np.int64), threshold=cat("threshold", np.float64),
                   value=np.concatenate([t.value[:, 0, 0] for t in trees]).astype(np.float64), n_features=n_features)

    @classmethod
    def from_arrays(cls, arrays: Arrays, *, n_features: int, what: str, prefix: str = "") -> TreeArrays:
        """Trees from :meth:`arrays`' output, checked; ``what`` and ``prefix`` name them in messages."""
        check_keys(arrays, cls.KEYS, what=what, kind="tree arrays", prefix=prefix)
        return cls(**arrays, n_features=n_features, what=what, prefix=prefix)

    def arrays(self) -> Arrays:
        return {k: getattr(self, k) for k in self.KEYS}

    @property
    def n_trees(self) -> int:
        return len(self.node_counts)

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """``(n_trees, n_samples)``: each tree's prediction for each row of ``x``."""
        x32 = np.asarray(x, dtype=np.float32)  # as scikit-learn compares: float32 features, float64 thresholds
        if x32.ndim != 2 or x32.shape[1] != self.n_features:
            raise ValueError(f"trees take {self.n_features} features per sample, got shape {x32.shape}")
        n = len(x32)
        flat, cols = np.ascontiguousarray(x32.T).ravel(), np.arange(n)
        node = np.repeat(self._roots[:, None], n, axis=1)
        for _ in range(self.depth):
            go_left = flat[self._feature[node] * n + cols] <= self.threshold[node]
            node = np.where(go_left, self._left[node], self._right[node])
        return self.value[node]


class _ResidualTrees(CostModel):
    """Trees on log(y / linear(x)) with the features and the linear prediction as inputs.

    State: params ``columns`` (the features, the linear part's too) and the model's own; arrays
    ``base.*`` (the linear part, :class:`LinearModel`) and ``trees.*`` (:class:`TreeArrays`,
    ``n_features`` = the columns + the log of the linear prediction) and the model's own.
    """

    def _make(self):
        raise NotImplementedError

    def _base(self, samples: Samples) -> np.ndarray:
        """The linear part's prediction, clamped (and reported) under this model's name."""
        return self._clamp(self.base._predict(samples), f"the linear part of the {self.name}", stacklevel=4)

    def _inputs(self, samples: Samples) -> tuple[np.ndarray, np.ndarray]:
        """The trees' inputs (the features, then log of the linear prediction) and that prediction."""
        base = self._base(samples)
        return np.column_stack([feature_matrix(samples, self.columns, self.name), np.log(base)]), base

    def _fit(self, samples: Samples, y: np.ndarray) -> None:
        self.base = LinearModel(seed=self.seed).fit(samples, y)
        self.columns = self.base.columns
        x, base = self._inputs(samples)
        self.estimator = self._make().fit(x, np.log(y / base))
        self._extract(self.estimator)

    def _predict(self, samples: Samples) -> np.ndarray:
        x, base = self._inputs(samples)
        return base * np.exp(self.log_ratio(x))

    @abstractmethod
    def _extract(self, estimator) -> None:
        """Copy what predicting needs out of the fitted estimator (``trees`` and the model's own)."""

    @abstractmethod
    def log_ratio(self, x: np.ndarray) -> np.ndarray:
        """The trees' prediction of log(cost / linear) for inputs ``x`` (as :meth:`_inputs` builds)."""

    def _own_state(self) -> tuple[Params, Arrays]:
        return {}, {}

    def _set_own_state(self, params: Params, arrays: Arrays) -> None:
        check_keys(params, [], what=self.name, kind="params besides columns")
        check_keys(arrays, [], what=self.name, kind="arrays besides base.* and trees.*")

    def _state(self) -> tuple[Params, Arrays]:
        base_params, base_arrays = self.base._state()
        params, arrays = self._own_state()
        return ({"columns": base_params["columns"], **params},
                {**prefixed("base", base_arrays), **prefixed("trees", self.trees.arrays()), **arrays})

    def _set_state(self, params: Params, arrays: Arrays) -> None:
        if "columns" not in params:
            raise ValueError(f"{self.name} state: params lack 'columns'")
        self.base = LinearModel(seed=self.seed)
        self.base._set_state({"columns": params["columns"]}, unprefixed("base", arrays), what=self.name,
                             prefix="base.")
        self.columns = self.base.columns
        self.trees = TreeArrays.from_arrays(unprefixed("trees", arrays), n_features=len(self.columns) + 1,
                                            what=self.name, prefix="trees.")
        self._set_own_state({k: v for k, v in params.items() if k != "columns"},
                            {k: v for k, v in arrays.items() if not k.startswith(("base.", "trees."))})


@register_cost_model
class GBTModel(_ResidualTrees):
    """Boosting: ``init + learning_rate · Σ_stages tree value``, accumulated stage by stage.

    State besides the residual form's: params ``learning_rate``; arrays ``init`` (shape (1,),
    the initial constant: the mean target, squared-error loss).
    """

    name = "gbt"
    description = "gradient-boosted trees on the log ratio to the linear model"

    def _make(self):
        return GradientBoostingRegressor(n_estimators=300, learning_rate=0.03, max_depth=3, subsample=0.8,
                                         min_samples_leaf=3, random_state=self.seed)

    def _extract(self, estimator: GradientBoostingRegressor) -> None:
        if estimator.loss != "squared_error" or estimator.estimators_.shape[1] != 1:
            raise ValueError("gbt exports a squared-error regressor only")
        n_features = estimator.n_features_in_
        self.trees = TreeArrays.from_estimators(estimator.estimators_[:, 0], n_features=n_features)
        self.learning_rate = float(estimator.learning_rate)
        self.init = float(estimator.init_.predict(np.zeros((1, n_features)))[0])  # a constant: the mean target

    def log_ratio(self, x: np.ndarray) -> np.ndarray:
        steps = self.learning_rate * self.trees.leaf_values(x)
        # init, then each stage added in turn: scikit-learn's order of the float additions
        return np.cumsum(np.vstack([np.full((1, len(x)), self.init), steps]), axis=0)[-1]

    def _own_state(self) -> tuple[Params, Arrays]:
        return {"learning_rate": self.learning_rate}, {"init": np.array([self.init])}

    def _set_own_state(self, params: Params, arrays: Arrays) -> None:
        check_keys(params, ["learning_rate"], what=self.name, kind="params besides columns")
        check_keys(arrays, ["init"], what=self.name, kind="arrays besides base.* and trees.*")
        self.learning_rate = positive_float(params["learning_rate"], what=self.name, key="learning_rate")
        self.init = float(state_array(arrays, "init", what=self.name, shape=(1,))[0])


@register_cost_model
class ForestModel(_ResidualTrees):
    """Bagging: the mean of the trees' values (summed in tree order, then divided)."""

    name = "forest"
    description = "random forest on the log ratio to the linear model"

    def _make(self):
        return RandomForestRegressor(n_estimators=300, min_samples_leaf=2, max_features=0.5, random_state=self.seed,
                                     n_jobs=1)

    def _extract(self, estimator: RandomForestRegressor) -> None:
        self.trees = TreeArrays.from_estimators(estimator.estimators_, n_features=estimator.n_features_in_)

    def log_ratio(self, x: np.ndarray) -> np.ndarray:
        return np.cumsum(self.trees.leaf_values(x), axis=0)[-1] / self.trees.n_trees

    def tree_spread(self, samples: Samples) -> np.ndarray:
        """Standard deviation of the trees' log-ratio predictions: the forest's uncertainty."""
        if not self.fitted:
            raise RuntimeError("forest model is not fitted")
        x, _ = self._inputs(samples)
        return np.std(self.trees.leaf_values(x), axis=0)
