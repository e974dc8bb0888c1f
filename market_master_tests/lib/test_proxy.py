"""The index proxy: synthetic proxy consistent with its constituents, the proxy-symbol set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_master.lib.proxy import DEFAULT_PROXY_SYMBOLS, proxy_symbols, split_constituents
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.weights import DEFAULT_UNIVERSE, embedded_top10


def _log_returns(bars: pd.DataFrame) -> pd.DataFrame:
    close = bars.pivot(index="timestamp", columns="symbol", values="close")
    return np.log(close).diff().dropna()


def test_synthetic_proxy_regresses_on_weighted_constituents() -> None:
    weights = pd.Series(embedded_top10().weights)
    bars = SyntheticSource(seed=3).fetch(["QQQ", *DEFAULT_UNIVERSE], "2023-01-03", "2023-12-29")
    r = _log_returns(bars)
    x = r[weights.index] @ (weights / weights.sum())
    y = r["QQQ"]
    r2 = np.corrcoef(x, y)[0, 1] ** 2
    slope = np.cov(x, y)[0, 1] / np.var(x, ddof=1)
    assert r2 > 0.85, r2
    assert 0.7 < slope < 1.3, slope
    # the constituents' part is exactly their weighted log return: the residual is the rest of the index
    rest = 1.0 - weights.sum()
    resid = y - r[weights.index] @ weights
    assert resid.std() < 1.2 * rest * r["QQQ"].std() / weights.sum() + 1e-12


def test_synthetic_proxy_is_deterministic_and_independent_of_the_request() -> None:
    a = SyntheticSource(seed=5).fetch(["QQQ"], "2024-03-01", "2024-03-29")
    b = SyntheticSource(seed=5).fetch(["MSFT", "QQQ", "AAPL"], "2024-02-01", "2024-04-30")
    pd.testing.assert_frame_equal(
        a,
        b[(b["symbol"] == "QQQ") & b["timestamp"].isin(a["timestamp"])].reset_index(drop=True),
        check_exact=True,
    )
    c = SyntheticSource(seed=6).fetch(["QQQ"], "2024-03-01", "2024-03-29")
    assert not np.allclose(a["close"], c["close"])
    # adding the proxy leaves the constituents' paths bit for bit as they were
    alone = SyntheticSource(seed=5).fetch(["AAPL", "MSFT"], "2024-02-01", "2024-04-30")
    pd.testing.assert_frame_equal(alone, b[b["symbol"] != "QQQ"].reset_index(drop=True), check_exact=True)


def test_synthetic_nq_future_is_a_proxy_too_and_bars_are_consistent() -> None:
    bars = SyntheticSource().fetch(["NQ=F", "QQQ"], "2024-05-01", "2024-05-31")
    for _, g in bars.groupby("symbol"):
        assert (g["high"] >= g[["open", "close"]].max(axis=1)).all()
        assert (g["low"] <= g[["open", "close"]].min(axis=1)).all()
        assert (g["volume"] >= 0).all()
    r = _log_returns(bars)
    assert np.corrcoef(r["NQ=F"], r["QQQ"])[0, 1] > 0.9  # same index, separate residual


def test_proxy_weights_must_not_hold_a_proxy() -> None:
    with pytest.raises(ValueError, match="proxy_weights"):
        SyntheticSource(proxy_weights={"QQQ": 0.5, "AAPL": 0.1})


def test_proxy_symbol_set_and_split() -> None:
    assert {"QQQ", "NQ=F", "SPY"} <= DEFAULT_PROXY_SYMBOLS
    assert "^XYZ" in proxy_symbols("^xyz") and "FOO" in proxy_symbols(extra=["foo"])
    kept, excluded, message = split_constituents(["AAPL", "QQQ", "MSFT", "SPY"], what="holdings")
    assert kept == ["AAPL", "MSFT"] and excluded == ["QQQ", "SPY"]
    assert "holdings" in message and "QQQ" in message
    assert split_constituents(["AAPL"])[2] is None
