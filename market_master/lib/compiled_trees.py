"""Small-batch prediction for a fitted HistGradientBoostingClassifier: every tree evaluated at once.

Why: scikit-learn's HGBT predicts tree by tree. With 100 iterations x 5 classes that is 500 calls into
its Cython predictor per `predict_proba`, ~10 us each plus Python bookkeeping, and an OpenMP pool per
call: 7-12 ms for ONE row on a 2-core machine (measured here), whatever the row count, while the
arithmetic is a few hundred comparisons. The hourly path and the API predict one row per symbol, so the
latency was the per-tree overhead, not the model.

`StackedTrees` copies the fitted trees' node arrays into one flat table and walks all trees for all rows
together with numpy (one step per tree level, max depth ~14): same splits (`x <= threshold`, NaN to the
learned side), same leaf values, summed per class onto the baseline, through the estimator's own loss
for probabilities. Equal to `predict_proba` to float rounding (tested to 1e-12). Categorical splits are
not supported (our features are numeric); `compile_hgbt` returns None for such a model.
"""

from __future__ import annotations

import numpy as np


class StackedTrees:
    """All trees of one fitted HistGradientBoostingClassifier as flat node arrays."""

    def __init__(self, clf) -> None:
        predictors = clf._predictors  # [iteration][tree per class]
        self.n_per_iteration = len(predictors[0])
        trees = [tree for iteration in predictors for tree in iteration]
        offsets = np.cumsum([0] + [len(t.nodes) for t in trees[:-1]])
        nodes = np.concatenate([t.nodes for t in trees])
        shift = np.repeat(offsets, [len(t.nodes) for t in trees])
        self.roots = offsets.astype(np.intp)
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.is_leaf = nodes["is_leaf"].astype(bool)
        # child indices are local to a tree; leaves keep pointing at themselves
        self.left = np.where(self.is_leaf, np.arange(len(nodes)), nodes["left"] + shift).astype(np.intp)
        self.right = np.where(self.is_leaf, np.arange(len(nodes)), nodes["right"] + shift).astype(np.intp)
        self.value = nodes["value"].astype(np.float64)
        self.max_depth = int(nodes["depth"].max())
        self.baseline = np.asarray(clf._baseline_prediction, dtype=np.float64).reshape(1, -1)
        self.loss = clf._loss

    def raw_predict(self, x: np.ndarray) -> np.ndarray:
        """(n, trees per iteration) raw scores, as HGBT's `_raw_predict`."""
        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        rows = np.arange(n)[:, None]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        for _ in range(self.max_depth):
            values = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(values), self.missing_left[node], values <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        leaves = self.value[node].reshape(n, -1, self.n_per_iteration)
        return self.baseline + leaves.sum(axis=1)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.loss.predict_proba(self.raw_predict(x)))


def compile_hgbt(clf) -> StackedTrees | None:
    """StackedTrees for a fitted HistGradientBoostingClassifier without categorical splits, else None."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not isinstance(clf, HistGradientBoostingClassifier) or not getattr(clf, "_predictors", None):
        return None
    if any(t.nodes["is_categorical"].any() for it in clf._predictors for t in it):
        return None
    return StackedTrees(clf)
