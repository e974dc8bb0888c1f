"""The small-input numpy path of ComponentModel.predict_proba equals the sklearn Pipeline path."""

import numpy as np
import pytest

from market_master.lib.features import compute_features
from market_master.lib.model import FAST_PATH_MAX_ROWS
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.training import TrainingConfig, train_candidates


@pytest.fixture(scope="module")
def trained():
    bars = SyntheticSource().fetch(["AAPL", "MSFT", "NVDA"], "2024-01-02", "2024-03-29")
    features = compute_features(bars)
    result = train_candidates(features, TrainingConfig(latency_rows=0, candidates=("LogReg", "HGBT", "RF")))
    return result, features[~features["warmup"]].reset_index(drop=True)


@pytest.mark.parametrize("name", ["LogReg", "HGBT", "RF"])
def test_fast_path_equals_pipeline(trained, name):
    result, rows = trained
    model = result.candidates[name].model
    small = rows.iloc[:FAST_PATH_MAX_ROWS]
    fast = model.predict_proba(small)
    via_pipeline = model.estimator.predict_proba(small[["symbol", *model.feature_columns]])
    fitted = [int(c) for c in model.estimator.classes_]
    np.testing.assert_allclose(fast[:, fitted], via_pipeline, rtol=0, atol=1e-12)
    if name == "HGBT":  # the small-batch path walks all trees at once (lib.compiled_trees)
        from market_master.lib.compiled_trees import StackedTrees

        assert isinstance(model._fast_parts()[3], StackedTrees)
    # an unknown symbol one-hot encodes to zeros on both paths
    other = small.iloc[:3].assign(symbol="ZZZZ")
    np.testing.assert_allclose(
        model.predict_proba(other)[:, fitted],
        model.estimator.predict_proba(other[["symbol", *model.feature_columns]]),
        atol=1e-12,
    )
