"""Labels: next-bar return, thresholds fit on the training window only, balanced classes, round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_master.lib.features import compute_features
from market_master.lib.labels import CLASSES, SCORES, LabelThresholds, next_bar_log_return
from market_master.lib.sources.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    bars = SyntheticSource(seed=3, predictability=0.0).fetch(
        ["AAA", "BBB", "CCC", "DDD"], "2024-01-02", "2024-04-30"
    )
    return compute_features(bars)


def test_classes_and_scores() -> None:
    assert CLASSES == ("strong_sell", "sell", "hold", "buy", "strong_buy")
    assert [SCORES[c] for c in CLASSES] == [-2, -1, 0, 1, 2]


def test_next_return_nan_on_last_bar_and_gaps(features) -> None:
    r = next_bar_log_return(features)
    last = features.groupby("symbol").tail(1).index
    assert r[last].isna().all()
    g = features[features["symbol"] == "AAA"]
    np.testing.assert_allclose(r[g.index[:-1]], np.diff(np.log(g["close"].to_numpy())))
    gapped = features.drop(index=g.index[40]).reset_index(drop=True)
    r2 = next_bar_log_return(gapped)
    assert np.isnan(r2.iloc[39]) and np.isfinite(r2.iloc[38]) and np.isfinite(r2.iloc[40])


@pytest.mark.parametrize("method", ["quantile", "volatility", "session_volatility"])
def test_thresholds_balanced_and_training_only(features, method) -> None:
    cut = features["timestamp"].quantile(0.6)
    train = features[(features["timestamp"] <= cut) & ~features["warmup"]].copy()
    train["next_return"] = next_bar_log_return(features)[train.index]
    th = LabelThresholds(method=method).fit(train)
    y = th.transform(train)
    counts = np.bincount(y[y >= 0], minlength=5) / (y >= 0).sum()
    np.testing.assert_allclose(counts, 0.2, atol=0.03)

    perturbed = features.copy()
    later = perturbed["timestamp"] > cut
    perturbed.loc[later, "close"] *= np.exp(np.random.default_rng(0).normal(0, 0.05, int(later.sum())))
    train2 = perturbed[(perturbed["timestamp"] <= cut) & ~perturbed["warmup"]].copy()
    train2["next_return"] = next_bar_log_return(perturbed)[train2.index]
    # the last training bar's label reads the first bar after the cut: the embargo drops it in training
    train2.loc[train2["timestamp"] == train2["timestamp"].max(), "next_return"] = np.nan
    train.loc[train["timestamp"] == train["timestamp"].max(), "next_return"] = np.nan
    assert (
        LabelThresholds(method=method).fit(train2).to_dict()
        == LabelThresholds(method=method).fit(train).to_dict()
    )


def test_session_slots_have_own_cuts_and_round_trip(features) -> None:
    train = features[~features["warmup"]]
    th = LabelThresholds().fit(train)
    assert {"overnight", "bar_0", "bar_5"} <= set(th.cuts)
    again = LabelThresholds.from_dict(th.to_dict())
    np.testing.assert_array_equal(again.transform(train), th.transform(train))
    y = th.transform(features)
    assert (y[features.groupby("symbol").tail(1).index] == -1).all()
    assert set(np.unique(y)) <= {-1, 0, 1, 2, 3, 4}


def test_unfitted_and_bad_method_raise(features) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        LabelThresholds().transform(features)
    with pytest.raises(ValueError, match="method"):
        LabelThresholds(method="raw")


def test_fitted_volatility_forecast_round_trip_and_legacy_dicts(features) -> None:
    train = features[~features["warmup"]]
    th = LabelThresholds().fit(train)
    assert th.vol_model == "fitted" and len(th.vol_coef) == 8
    assert th.vol_coef[4] > 0  # log range_hl_c: the current bar's range carries the next bar's size
    vol = th.volatility(train)
    assert np.isfinite(vol).all() and (vol > 0).all()
    again = LabelThresholds.from_dict(th.to_dict())
    np.testing.assert_array_equal(again.transform(train), th.transform(train))
    legacy = {k: v for k, v in th.to_dict().items() if k not in ("vol_model", "vol_coef", "vol_coef_names")}
    old = LabelThresholds.from_dict(legacy)
    assert old.vol_model == "column"
    np.testing.assert_array_equal(old.volatility(train), train["vol_ewm_14"].to_numpy())
    with pytest.raises(RuntimeError, match="not fitted"):
        LabelThresholds().volatility(train)
    with pytest.raises(ValueError, match="vol_model"):
        LabelThresholds(vol_model="garch")
