"""compute_features: shape, warm-up, exact causality, session flags, values against a pandas reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_master.lib.features import FEATURE_COLUMNS, FeatureConfig, compute_features
from market_master.lib.sources.synthetic import SyntheticSource

SYMBOLS = ["AAA", "BBB", "CCC"]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    # 2024-11-29 is a half-day (close 13:00) inside the range.
    return SyntheticSource(seed=7).fetch(SYMBOLS, "2024-11-01", "2024-12-06")


def test_config_bounds() -> None:
    assert 12 <= FeatureConfig().warmup <= 20
    FeatureConfig(warmup=15)
    FeatureConfig(warmup=60)
    for bad in (14, 61):
        with pytest.raises(ValueError, match="warmup"):
            FeatureConfig(warmup=bad)


def test_shape_warmup_and_finiteness(bars) -> None:
    f = compute_features(bars, FeatureConfig(warmup=16))
    assert list(f.columns) == ["symbol", "timestamp", "close", *FEATURE_COLUMNS, "warmup"]
    assert len(f) == len(bars) and (f["symbol"].to_numpy() == bars["symbol"].to_numpy()).all()
    for _, g in f.groupby("symbol"):
        assert g["warmup"].iloc[:16].all() and not g["warmup"].iloc[16:].any()
        assert g[FEATURE_COLUMNS].iloc[:16].isna().all().all()
        assert np.isfinite(g[FEATURE_COLUMNS].iloc[16:].to_numpy()).all()


def test_causal_exactly_when_later_bars_change_or_vanish(bars) -> None:
    full = compute_features(bars)
    cut = bars["timestamp"].sort_values().unique()[len(bars) // (2 * len(SYMBOLS))]
    early = bars["timestamp"] <= cut
    truncated = compute_features(bars[early].reset_index(drop=True))
    pd.testing.assert_frame_equal(truncated, full[early.to_numpy()].reset_index(drop=True), check_exact=True)
    changed = bars.copy()
    later = ~early.to_numpy()
    changed.loc[later, ["open", "high", "low", "close"]] *= 1.37
    changed.loc[later, "volume"] *= 5
    again = compute_features(changed)
    pd.testing.assert_frame_equal(again[early.to_numpy()], full[early.to_numpy()], check_exact=True)
    assert not np.allclose(again.loc[later, "ret_1"], full.loc[later, "ret_1"], equal_nan=True)


def test_other_symbols_do_not_leak(bars) -> None:
    one = bars[bars["symbol"] == "BBB"].reset_index(drop=True)
    alone = compute_features(one)
    pooled = compute_features(bars)
    pd.testing.assert_frame_equal(
        alone, pooled[pooled["symbol"] == "BBB"].reset_index(drop=True), check_exact=True
    )


def test_latest_bar_has_features_from_its_window(bars) -> None:
    """The prediction row is the latest bar: it gets features, computed from the last W bars only."""
    f = compute_features(bars)
    last = f.groupby("symbol").tail(1)
    assert not last["warmup"].any() and np.isfinite(last[FEATURE_COLUMNS].to_numpy()).all()
    tail = bars.groupby("symbol").tail(FeatureConfig().warmup + 1).reset_index(drop=True)
    from_tail = compute_features(tail).groupby("symbol").tail(1)
    np.testing.assert_allclose(
        from_tail[FEATURE_COLUMNS].to_numpy(), last[FEATURE_COLUMNS].to_numpy(), rtol=1e-12
    )


def test_values_match_pandas_reference(bars) -> None:
    f = compute_features(bars)
    for sym, g in bars.groupby("symbol"):
        c = g["close"].reset_index(drop=True)
        r1 = np.log(c).diff()
        got = f[f["symbol"] == sym].reset_index(drop=True)
        w = ~got["warmup"]
        np.testing.assert_allclose(got.loc[w, "ret_3"], np.log(c / c.shift(3))[w], rtol=1e-9)
        np.testing.assert_allclose(got.loc[w, "vol_12"], r1.rolling(12).std(ddof=0)[w], rtol=1e-6)
        gain = r1.clip(lower=0).rolling(14).sum()
        loss = (-r1).clip(lower=0).rolling(14).sum()
        np.testing.assert_allclose(got.loc[w, "rsi_14"], (100 * gain / (gain + loss))[w], rtol=1e-9)
        ma = c.rolling(4).mean() / c.rolling(12).mean() - 1
        np.testing.assert_allclose(got.loc[w, "ma_ratio_4_12"], ma[w], rtol=1e-9, atol=1e-12)


def test_session_flags_full_and_half_day(bars) -> None:
    f = compute_features(bars)
    f = f[~f["warmup"]]
    local = pd.DatetimeIndex(f["timestamp"])
    assert (f.loc[(local.hour == 15), "is_last_bar_of_day"] == 1).all()
    half = f[local.normalize().tz_localize(None) == pd.Timestamp("2024-11-29")]
    assert half["bar_of_day"].max() == 3
    assert (half.loc[half["bar_of_day"] == 3, "is_last_bar_of_day"] == 1).all()
    assert (half.loc[half["bar_of_day"] < 3, "is_last_bar_of_day"] == 0).all()
    nine = local.hour == 9
    assert (f.loc[nine, "bar_of_day"] == 0).all()


def test_rejects_unsorted_and_off_grid(bars) -> None:
    with pytest.raises(ValueError, match="sorted"):
        compute_features(bars.iloc[::-1].reset_index(drop=True))
    bad = bars.copy()
    bad.loc[20, "timestamp"] = bad.loc[20, "timestamp"] + pd.Timedelta(minutes=7)
    with pytest.raises(ValueError, match="not trading bar starts"):
        compute_features(bad)
