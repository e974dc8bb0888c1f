"""Backtest numbers on hand-computed toy series: positions, costs, Sharpe factor, drawdown, PSR, DSR."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from market_master.lib.backtest import (
    BARS_PER_YEAR,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    forward_returns,
    max_drawdown,
    probabilistic_sharpe_ratio,
    run_backtest,
    sharpe_ratio,
    sweep_thresholds,
    weighted_constituent_returns,
)

TZ = "America/New_York"
HOURS = pd.DatetimeIndex(
    ["2024-07-01 09:30", "2024-07-01 10:30", "2024-07-01 11:30", "2024-07-01 12:30", "2024-07-01 13:30"],
    tz=TZ,
)


def phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def hand_sharpe(r: list[float], factor: float) -> float:
    n = len(r)
    mean = sum(r) / n
    var = sum((x - mean) ** 2 for x in r) / (n - 1)
    return mean / math.sqrt(var) * math.sqrt(factor)


def hand_psr(r: list[float], sr_star: float) -> float:
    n = len(r)
    mean = sum(r) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / n)
    skew = sum(((x - mean) / sd) ** 3 for x in r) / n
    kurt = sum(((x - mean) / sd) ** 4 for x in r) / n
    sr = mean / sd
    return phi((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))


def toy():
    signal = pd.DataFrame({"hour": HOURS, "decision": ["BUY", "BUY", "SELL", "HOLD", "BUY"]})
    proxy = pd.Series([0.01, -0.02, 0.03, -0.01, np.nan], index=HOURS)
    return signal, proxy


def test_annualisation_factor_is_trading_bars_not_clock_hours():
    assert BARS_PER_YEAR == 7 * 252
    assert math.sqrt(8760 / BARS_PER_YEAR) == pytest.approx(2.23, abs=0.01)


def test_backtest_toy_series_by_hand():
    signal, proxy = toy()
    res = run_backtest(signal, proxy, cost_bps=10.0)
    c = 10.0 / 1e4
    # positions +1, +1, -1, 0 (last hour has no next-bar return -> not traded)
    net = [0.01 - c, -0.02, -0.03 - 2 * c, 0.0 - c]
    assert res.n_unpriced == 1
    assert res.frame["position"].tolist() == [1.0, 1.0, -1.0, 0.0]
    assert res.frame["strategy_return"].tolist() == pytest.approx(net)
    m = res.metrics["signal"]
    total = (1 + net[0]) * (1 + net[1]) * (1 + net[2]) * (1 + net[3]) - 1
    assert m["total_return"] == pytest.approx(total)
    assert m["annualized_return"] == pytest.approx((1 + total) ** (BARS_PER_YEAR / 4) - 1)
    assert m["sharpe"] == pytest.approx(hand_sharpe(net, 1764))
    assert m["annualization_factor"] == 1764 and res.annualization_factor == 1764
    eq = [1 + net[0]]
    for x in net[1:]:
        eq.append(eq[-1] * (1 + x))
    assert m["max_drawdown"] == pytest.approx(1 - eq[-1] / eq[0])
    assert m["hit_rate"] == pytest.approx(1 / 3)
    assert m["turnover_per_year"] == pytest.approx((1 + 0 + 2 + 1) / 4 * 1764)
    assert m["exposure"] == pytest.approx(0.75)
    assert m["n_position_changes"] == 3
    assert m["psr"] == pytest.approx(hand_psr(net, 0.0))

    bh = res.metrics["buy_and_hold"]
    bh_net = [0.01 - c, -0.02, 0.03, -0.01]
    assert bh["total_return"] == pytest.approx(np.prod([1 + x for x in bh_net]) - 1)
    assert bh["exposure"] == 1.0 and bh["hit_rate"] == pytest.approx(0.5)
    flat = res.metrics["flat"]
    assert flat["total_return"] == 0.0 and flat["exposure"] == 0.0 and flat["max_drawdown"] == 0.0
    assert math.isnan(flat["sharpe"])
    table = res.metrics_table()
    assert list(table.index) == ["signal", "buy_and_hold", "flat"]


def test_costs_scale_with_position_change():
    signal, proxy = toy()
    free = run_backtest(signal, proxy, cost_bps=0.0).metrics["signal"]["total_return"]
    paid = run_backtest(signal, proxy, cost_bps=1.0).metrics["signal"]["total_return"]
    assert paid < free
    with pytest.raises(ValueError):
        run_backtest(signal, proxy, cost_bps=-1.0)


def test_custom_factor_is_used_and_stated():
    signal, proxy = toy()
    res = run_backtest(signal, proxy, cost_bps=0.0, periods_per_year=252)
    net = [0.01, -0.02, -0.03, 0.0]
    assert res.metrics["signal"]["sharpe"] == pytest.approx(hand_sharpe(net, 252))
    assert res.annualization_factor == 252


def test_sharpe_ratio_edge_cases():
    assert math.isnan(sharpe_ratio([0.01]))
    assert math.isnan(sharpe_ratio([0.0, 0.0, 0.0]))
    r = [0.01, -0.005, 0.002, 0.007]
    assert sharpe_ratio(r, 1764) == pytest.approx(hand_sharpe(r, 1764))


def test_max_drawdown_by_hand():
    assert max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(0.5)
    assert max_drawdown([0.1, 0.1]) == 0.0
    # first bar loss counts from the starting equity 1.0
    assert max_drawdown([-0.1, 0.05]) == pytest.approx(0.1)


RETS = [0.012, -0.004, 0.007, 0.031, -0.015, 0.002, 0.009, -0.021, 0.016, 0.004, -0.001, 0.011]


def test_psr_matches_hand_formula_and_is_skew_kurtosis_adjusted():
    assert probabilistic_sharpe_ratio(RETS) == pytest.approx(hand_psr(RETS, 0.0))
    assert probabilistic_sharpe_ratio(RETS, 0.1) == pytest.approx(hand_psr(RETS, 0.1))
    # The naive (normal) version would differ: the moments matter.
    n = len(RETS)
    mean = sum(RETS) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in RETS) / n)
    naive = phi(mean / sd * math.sqrt(n - 1) / math.sqrt(1 + 0.5 * (mean / sd) ** 2))
    assert probabilistic_sharpe_ratio(RETS) != pytest.approx(naive, abs=1e-6)
    assert math.isnan(probabilistic_sharpe_ratio([0.01, 0.01, 0.01]))


def test_expected_max_sharpe_and_dsr_by_hand():
    gamma = 0.5772156649015329
    # Phi^-1(0.9) = 1.2815515655446004; Phi^-1(1 - 1/(10 e)) = 1.7894... computed from the erf inverse below
    z2 = _inv_phi(1 - 1 / (10 * math.e))
    sr0 = math.sqrt(0.04) * ((1 - gamma) * 1.2815515655446004 + gamma * z2)
    assert expected_max_sharpe(10, 0.04) == pytest.approx(sr0, rel=1e-9)
    assert deflated_sharpe_ratio(RETS, 10, 0.04) == pytest.approx(hand_psr(RETS, sr0))
    # one trial: nothing to deflate; more trials deflate more
    assert deflated_sharpe_ratio(RETS, 1, 0.04) == pytest.approx(probabilistic_sharpe_ratio(RETS))
    assert deflated_sharpe_ratio(RETS, 100, 0.04) < deflated_sharpe_ratio(RETS, 10, 0.04)
    with pytest.raises(ValueError):
        expected_max_sharpe(0, 0.04)


def _inv_phi(p: float) -> float:
    """Bisection on erf, independent of the library's NormalDist."""
    lo, hi = -10.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if phi(mid) < p else (lo, mid)
    return (lo + hi) / 2


def test_forward_and_weighted_constituent_returns():
    t = HOURS[:3]
    bars = pd.DataFrame(
        {
            "symbol": ["A", "A", "A", "B", "B"],
            "timestamp": [t[0], t[1], t[2], t[0], t[1]],
            "close": [100.0, 110.0, 99.0, 50.0, 45.0],
        }
    )
    fa = forward_returns(bars, "A")
    assert fa.tolist()[:2] == pytest.approx([0.1, -0.1]) and math.isnan(fa.iloc[2])
    idx = weighted_constituent_returns(bars, {"A": 3.0, "B": 1.0, "C": 4.0})
    # t0: both -> (0.75*0.1 + 0.25*-0.1) renormalised over A,B; t1: only A has a next bar; t2: none
    assert idx.loc[t[0]] == pytest.approx((3 / 8 * 0.1 + 1 / 8 * -0.1) / (4 / 8))
    assert idx.loc[t[1]] == pytest.approx(-0.1)
    assert math.isnan(idx.loc[t[2]])
    with pytest.raises(ValueError):
        forward_returns(bars, "ZZZ")


def test_sweep_picks_thresholds_that_filter_noise():
    rng = np.random.default_rng(0)
    n = 400
    hours = pd.date_range("2024-01-02 09:30", periods=n, freq="h", tz=TZ)
    strong = rng.random(n) < 0.3
    sign = rng.choice([-1.0, 1.0], size=n)
    wss = np.where(strong, 1.2 * sign, 0.3 * sign)
    # strong signals are right, weak ones are wrong
    ret = np.where(strong, 0.002 * sign, -0.002 * sign) + rng.normal(0, 0.0005, n)
    buy, sell, table = sweep_thresholds(
        pd.Series(wss, index=hours),
        pd.Series(ret, index=hours),
        [(0.25, -0.25), (1.0, -1.0), (1.5, -1.5)],
        cost_bps=0.0,
    )
    assert (buy, sell) == (1.0, -1.0)
    assert len(table) == 3 and table.loc[2, "exposure"] == 0.0 and table.loc[2, "sharpe"] == 0.0
    assert table.loc[0, "sharpe"] < 0 < table.loc[1, "sharpe"]


def test_sweep_rejects_empty_inputs():
    with pytest.raises(ValueError):
        sweep_thresholds(pd.Series([], dtype=float), pd.Series([], dtype=float))
