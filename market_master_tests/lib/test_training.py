"""Time split with embargo, all seven candidates end to end on tiny data, champion and latest-bar pin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_master.lib.candidates import CANDIDATE_NAMES
from market_master.lib.features import FEATURE_COLUMNS, compute_features
from market_master.lib.labels import CLASSES
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.training import TrainingConfig, time_split, train_candidates


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return compute_features(SyntheticSource(seed=11).fetch(["AAA", "BBB", "CCC"], "2024-01-02", "2024-02-16"))


@pytest.fixture(scope="module")
def result(features):
    return train_candidates(features, TrainingConfig(svc_max_rows=300, latency_rows=5, latency_rounds=1))


def test_time_split_orders_hours_with_embargo(features) -> None:
    cfg = TrainingConfig(embargo_bars=7)
    s = time_split(features, cfg)
    hours = pd.DatetimeIndex(pd.unique(features.loc[~features["warmup"], "timestamp"])).sort_values()
    assert s.train_end < s.valid_start
    gap = hours[(hours > s.train_end) & (hours < s.valid_start)]
    assert len(gap) == 7 and s.n_valid_hours == int(np.ceil(0.3 * len(hours)))
    train, valid = s.masks(features["timestamp"])
    assert not (train & valid).any()
    with pytest.raises(ValueError, match="embargo"):
        TrainingConfig(embargo_bars=0)


def test_all_seven_train_and_champion_is_best(result) -> None:
    assert tuple(result.candidates) == CANDIDATE_NAMES
    assert tuple(result.baselines) == ("majority", "stratified", "momentum")
    table = result.table()
    best = table.loc[list(CANDIDATE_NAMES), "macro_f1"].max()
    assert table.loc[result.champion_name, "macro_f1"] == best
    assert result.champion_beats_best_baseline == (result.margin > 0)
    for name, cand in result.candidates.items():
        m = cand.metrics
        assert 0 <= m["macro_f1"] <= 1 and m["model_size_mb"] < 50, name
        assert {
            "log_loss",
            "f1_strong_buy",
            "intraday_macro_f1",
            "overnight_macro_f1",
            "ic",
            "latency_p99_ms",
        } <= set(m)
    assert result.candidates["SVC"].metrics["train_rows"] == 300


def test_training_window_precedes_validation(result) -> None:
    v = result.validation
    assert pd.Timestamp(result.champion.training_window[1]) < v["timestamp"].min()
    assert set(v["label"]) <= set(range(5)) and {f"pred_{c}" for c in CANDIDATE_NAMES} <= set(v.columns)


def test_prediction_uses_latest_bar(result, features) -> None:
    """The newest bar of each symbol has no label yet, but it is what the model predicts from."""
    latest = features.groupby("symbol").tail(1)
    assert latest["timestamp"].max() > result.validation["timestamp"].max()
    frame = result.champion.predict_frame(latest[["symbol", *FEATURE_COLUMNS]])
    assert list(frame["action"].unique()) and set(frame["action"]) <= set(CLASSES)
    np.testing.assert_allclose(frame[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="non-finite"):
        result.champion.predict_proba(features.head(3))
