"""Index-context features: off by default, exact causality in the symbol AND the proxy, values, NaN where the
proxy bar is missing, the precise missing-proxy error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_master.lib.features import (
    FEATURE_COLUMNS,
    INDEX_CONTEXT_COLUMNS,
    FeatureConfig,
    compute_features,
)
from market_master.lib.proxy import MissingProxyError, require_proxy
from market_master.lib.sources.synthetic import SyntheticSource

SYMBOLS = ["AAA", "BBB"]
ON = FeatureConfig(index_context=True)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    # 2024-11-29 is a half-day (close 13:00) inside the range.
    bars = SyntheticSource(seed=7).fetch([*SYMBOLS, "QQQ"], "2024-11-01", "2024-12-06")
    proxy = bars[bars["symbol"] == "QQQ"].reset_index(drop=True)
    return bars[bars["symbol"] != "QQQ"].reset_index(drop=True), proxy


def test_config_default_off_round_trip_and_old_dicts() -> None:
    assert FeatureConfig().index_context is False
    assert FeatureConfig().columns == FEATURE_COLUMNS
    assert ON.columns == FEATURE_COLUMNS + INDEX_CONTEXT_COLUMNS
    assert FeatureConfig.from_dict(ON.to_dict()) == ON
    assert FeatureConfig.from_dict({"warmup": 16}) == FeatureConfig()  # stored before index context existed
    with pytest.raises(TypeError, match="index_context"):
        FeatureConfig(index_context="yes")


def test_off_is_unchanged_and_on_needs_the_proxy(data) -> None:
    bars, proxy = data
    off = compute_features(bars)
    assert list(off.columns) == ["symbol", "timestamp", "close", *FEATURE_COLUMNS, "warmup"]
    on = compute_features(bars, ON, proxy=proxy)
    assert list(on.columns) == ["symbol", "timestamp", "close", *ON.columns, "warmup"]
    pd.testing.assert_frame_equal(on[off.columns], off, check_exact=True)
    assert np.isfinite(on.loc[~on["warmup"], INDEX_CONTEXT_COLUMNS].to_numpy()).all()
    with pytest.raises(ValueError, match="index proxy"):
        compute_features(bars, ON)


@pytest.mark.parametrize("what", ["symbol", "proxy"])
def test_causal_when_future_bars_of_symbol_or_proxy_change(data, what) -> None:
    bars, proxy = data
    full = compute_features(bars, ON, proxy=proxy)
    hours = np.sort(bars["timestamp"].unique())
    cut = hours[len(hours) // 2]
    past = (bars["timestamp"] <= cut).to_numpy()
    bars2, proxy2 = bars.copy(), proxy.copy()
    target = bars2 if what == "symbol" else proxy2
    later = target["timestamp"] > cut
    target.loc[later, ["open", "high", "low", "close"]] *= 1.37
    again = compute_features(bars2, ON, proxy=proxy2)
    pd.testing.assert_frame_equal(again[past], full[past], check_exact=True)
    assert not np.allclose(again.loc[~past, "rel_ret_1"], full.loc[~past, "rel_ret_1"], equal_nan=True)
    # dropping the future altogether: the same past, bit for bit
    cut_bars = bars[past].reset_index(drop=True)
    cut_proxy = proxy[proxy["timestamp"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        compute_features(cut_bars, ON, proxy=cut_proxy), full[past].reset_index(drop=True), check_exact=True
    )


def test_values_against_a_hand_computation(data) -> None:
    bars, proxy = data
    f = compute_features(bars, ON, proxy=proxy)
    p = proxy.set_index("timestamp")
    ts = pd.Timestamp("2024-12-03 13:30", tz="America/New_York")
    open_bar = pd.Timestamp("2024-12-03 09:30", tz="America/New_York")
    prev_close = p.loc[pd.Timestamp("2024-12-02 15:30", tz="America/New_York"), "close"]
    row = f[(f["symbol"] == "AAA") & (f["timestamp"] == ts)].iloc[0]
    closes = p["close"]
    i = closes.index.get_loc(ts)
    assert row["idx_ret_1"] == pytest.approx(np.log(closes.iloc[i] / closes.iloc[i - 1]), abs=1e-15)
    assert row["idx_ret_6"] == pytest.approx(np.log(closes.iloc[i] / closes.iloc[i - 6]), abs=1e-15)
    assert row["idx_ret_day"] == pytest.approx(np.log(closes[ts] / p.loc[open_bar, "open"]), abs=1e-15)
    assert row["idx_gap"] == pytest.approx(np.log(p.loc[open_bar, "open"] / prev_close), abs=1e-15)
    first = np.log(closes[open_bar] / prev_close)
    assert row["idx_first_bar"] == pytest.approx(first, abs=1e-15)
    assert row["rel_ret_1"] == pytest.approx(row["ret_1"] - row["idx_ret_1"], abs=1e-15)
    assert row["rel_ret_6"] == pytest.approx(row["ret_6"] - row["idx_ret_6"], abs=1e-15)
    # the first bar's momentum is carried through the day; the interactions fire on the right bars only
    day = f[(f["symbol"] == "AAA") & (f["timestamp"].dt.date == ts.date())]
    assert np.allclose(day["idx_first_bar"], first, rtol=0, atol=1e-15)
    assert (day["idx_first_x_last"] != 0).tolist() == [False] * 6 + [True]
    assert (day["idx_first_x_next_last"] != 0).tolist() == [False] * 5 + [True, False]
    half = f[(f["symbol"] == "AAA") & (f["timestamp"].dt.date == pd.Timestamp("2024-11-29").date())]
    assert len(half) == 4
    assert (half["idx_first_x_next_last"] != 0).tolist() == [False, False, True, False]
    assert (half["idx_first_x_last"] != 0).tolist() == [False, False, False, True]


def test_missing_proxy_bar_gives_nan_there_and_a_named_error(data) -> None:
    bars, proxy = data
    gone = pd.Timestamp("2024-12-04 11:30", tz="America/New_York")
    holey = proxy[proxy["timestamp"] != gone].reset_index(drop=True)
    f = compute_features(bars, ON, proxy=holey)
    at = f["timestamp"] == gone
    assert f.loc[at, INDEX_CONTEXT_COLUMNS].isna().all().all()
    assert np.isfinite(f.loc[~at & ~f["warmup"], INDEX_CONTEXT_COLUMNS].to_numpy()).all()
    with pytest.raises(MissingProxyError) as err:
        require_proxy(bars, holey, "QQQ", context="feature_table")
    assert err.value.symbol == "QQQ" and list(err.value.hours) == [gone]
    assert "QQQ" in str(err.value) and gone.isoformat() in str(err.value)
    with pytest.raises(MissingProxyError, match=r"QQQ has no bar at \d+ hour"):
        require_proxy(bars, None, "QQQ")
    require_proxy(bars, proxy, "QQQ")
