"""The seven candidates fit, stay bounded, and the baselines behave as documented."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_master.lib.candidates import (
    CANDIDATE_NAMES,
    MajorityBaseline,
    MomentumBaseline,
    StratifiedBaseline,
    build_pipeline,
    candidate_specs,
)
from market_master.lib.evaluation import model_size_bytes
from market_master.lib.features import FEATURE_COLUMNS, compute_features
from market_master.lib.labels import LabelThresholds
from market_master.lib.sources.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, LabelThresholds]:
    bars = SyntheticSource(seed=5).fetch(["AAA", "BBB"], "2024-01-02", "2024-02-29")
    f = compute_features(bars)
    f = f[~f["warmup"]].reset_index(drop=True)
    th = LabelThresholds().fit(f)
    y = th.transform(f)
    keep = y >= 0
    return f[keep].reset_index(drop=True), y[keep], th


def test_seven_candidates_fit_bounded(data) -> None:
    f, y, _ = data
    specs = candidate_specs(svc_max_rows=300)
    assert tuple(specs) == CANDIDATE_NAMES
    assert specs["SVC"].max_train_rows == 300
    for name, spec in specs.items():
        pipe = build_pipeline(spec, FEATURE_COLUMNS, seed=0)
        pipe.fit(f[["symbol", *FEATURE_COLUMNS]], y)
        p = pipe.predict_proba(f[["symbol", *FEATURE_COLUMNS]].head(7))
        assert p.shape == (7, 5) and np.allclose(p.sum(axis=1), 1), name
        assert model_size_bytes(pipe) < 50e6, name
        clf = pipe.named_steps["clf"]
        if hasattr(clf, "max_depth") and name in ("RF", "ET", "GB"):
            assert clf.max_depth is not None and clf.max_depth <= 10


def test_unknown_symbol_is_ignored(data) -> None:
    f, y, _ = data
    pipe = build_pipeline(candidate_specs()["LogReg"], FEATURE_COLUMNS, seed=0).fit(
        f[["symbol", *FEATURE_COLUMNS]], y
    )
    row = f[["symbol", *FEATURE_COLUMNS]].head(1).assign(symbol="ZZZ")
    assert pipe.predict_proba(row).shape == (1, 5)


def test_baselines(data) -> None:
    f, y, th = data
    maj = MajorityBaseline().fit(f, y)
    assert (maj.predict_proba(f).argmax(1) == np.bincount(y).argmax()).all()
    strat = StratifiedBaseline(seed=1).fit(f, y)
    np.testing.assert_array_equal(strat.predict(f), StratifiedBaseline(seed=1).fit(f, y).predict(f))
    np.testing.assert_allclose(np.bincount(strat.predict(f), minlength=5) / len(f), strat.prior_, atol=0.05)
    mom = MomentumBaseline(th).predict_proba(f).argmax(1)
    big_up = (f["ret_1"] / f["vol_ewm_14"]) > 3
    assert (mom[big_up.to_numpy()] == 4).all()
