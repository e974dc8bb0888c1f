"""compiled_trees.StackedTrees predicts exactly what scikit-learn's HistGradientBoostingClassifier does."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from market_master.lib.compiled_trees import compile_hgbt


@pytest.mark.parametrize("n_classes", [2, 5])
def test_stacked_trees_equal_sklearn_including_missing_values(n_classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 12))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=3000)).argsort().argsort() * n_classes // 3000
    x[rng.random(x.shape) < 0.05] = np.nan  # HGBT learns a side for missing values per split
    clf = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, early_stopping=False, random_state=0)
    clf.fit(x, y)
    compiled = compile_hgbt(clf)
    assert compiled is not None
    probe = rng.normal(size=(400, 12))
    probe[rng.random(probe.shape) < 0.1] = np.nan
    np.testing.assert_allclose(compiled.predict_proba(probe), clf.predict_proba(probe), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        compiled.predict_proba(probe[:1]), clf.predict_proba(probe[:1]), rtol=0, atol=1e-12
    )


def test_models_it_does_not_understand_are_left_to_sklearn():
    from sklearn.linear_model import LogisticRegression

    assert compile_hgbt(LogisticRegression()) is None
    assert compile_hgbt(HistGradientBoostingClassifier()) is None  # not fitted
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.integers(0, 4, 500), rng.normal(size=500)])
    y = (x[:, 0] >= 2).astype(int)
    categorical = HistGradientBoostingClassifier(categorical_features=[0], max_iter=5).fit(x, y)
    assert compile_hgbt(categorical) is None
