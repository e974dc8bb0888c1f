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


# ---------------------------------------------------------------- calendar-aware forward returns

ts = pd.Timestamp


def _bars(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "timestamp": [ts(r[1], tz=TZ) for r in rows],
            "close": [r[2] for r in rows],
        }
    )


def test_forward_return_over_a_missing_bar_is_nan():
    bars = _bars(
        [
            ("A", "2024-07-01 14:30", 100.0),
            ("A", "2024-07-01 15:30", 101.0),  # -> next session's 09:30: the overnight bar, priced
            ("A", "2024-07-02 09:30", 99.0),
            # 10:30 missing: the 09:30 return would span two bars
            ("A", "2024-07-02 11:30", 98.0),
            ("A", "2024-07-02 12:30", 98.98),
            ("A", "2024-11-29 11:30", 50.0),  # half-day: 12:30 missing (Yahoo), next row is Monday
            ("A", "2024-12-02 09:30", 51.0),
        ]
    )
    f = forward_returns(bars, "A")
    assert f.loc[ts("2024-07-01 14:30", tz=TZ)] == pytest.approx(0.01)
    assert f.loc[ts("2024-07-01 15:30", tz=TZ)] == pytest.approx(99 / 101 - 1)
    assert math.isnan(f.loc[ts("2024-07-02 09:30", tz=TZ)])
    assert f.loc[ts("2024-07-02 11:30", tz=TZ)] == pytest.approx(0.01)
    assert math.isnan(f.loc[ts("2024-07-02 12:30", tz=TZ)])  # next row is months later
    assert math.isnan(f.loc[ts("2024-11-29 11:30", tz=TZ)])
    assert math.isnan(f.loc[ts("2024-12-02 09:30", tz=TZ)])  # last bar


def test_weighted_proxy_skips_a_symbol_missing_its_next_bar():
    bars = _bars(
        [
            ("A", "2024-07-01 09:30", 100.0),
            ("A", "2024-07-01 11:30", 110.0),  # A lacks 10:30
            ("A", "2024-07-01 12:30", 121.0),
            ("B", "2024-07-01 09:30", 50.0),
            ("B", "2024-07-01 10:30", 51.0),
            ("B", "2024-07-01 11:30", 49.98),
            ("B", "2024-07-01 12:30", 50.0),
        ]
    )
    idx = weighted_constituent_returns(bars, {"A": 3.0, "B": 1.0})
    # 09:30: A's next row is 11:30, not the calendar's 10:30 -> only B counts (not a 2-bar A return)
    assert idx.loc[HOURS[0]] == pytest.approx(0.02)
    assert idx.loc[ts("2024-07-01 10:30", tz=TZ)] == pytest.approx(49.98 / 51 - 1)
    assert idx.loc[ts("2024-07-01 11:30", tz=TZ)] == pytest.approx(0.75 * 0.1 + 0.25 * (50 / 49.98 - 1))


# ---------------------------------------------------------------- point-in-time proxy weights


def _two_day_bars() -> pd.DataFrame:
    rows = []
    for day in ("2024-07-01", "2024-07-02"):
        for k, hour in enumerate(("09:30", "10:30", "11:30")):
            rows.append(("A", f"{day} {hour}", 100.0 * (1.01**k)))
            rows.append(("B", f"{day} {hour}", 100.0 * (0.98**k)))
    return _bars(rows).sort_values(["symbol", "timestamp"], ignore_index=True)


def test_weighted_proxy_uses_the_snapshot_in_force_each_hour():
    from market_master.lib.weights import WeightsHistory, WeightsSnapshot

    bars = _two_day_bars()
    day1, day2 = ts("2024-07-01").date(), ts("2024-07-02").date()

    def weights_at(hour: pd.Timestamp) -> dict[str, float]:
        return {"A": 3.0, "B": 1.0} if hour.date() == day1 else {"A": 1.0, "B": 3.0}

    got = weighted_constituent_returns(bars, weights_at)
    a, b = 0.01, -0.02
    assert got.loc[ts("2024-07-01 09:30", tz=TZ)] == pytest.approx(0.75 * a + 0.25 * b)
    assert got.loc[ts("2024-07-02 09:30", tz=TZ)] == pytest.approx(0.25 * a + 0.75 * b)
    history = WeightsHistory(
        [
            WeightsSnapshot(day1, {"A": 0.3, "B": 0.1}, "t"),
            WeightsSnapshot(day2, {"A": 0.1, "B": 0.3}, "t"),
        ]
    )
    pd.testing.assert_series_equal(weighted_constituent_returns(bars, history), got)
    # a single (latest) snapshot gives a different day-1 proxy: the history is really used
    latest = weighted_constituent_returns(bars, {"A": 1.0, "B": 3.0})
    assert latest.loc[ts("2024-07-01 09:30", tz=TZ)] != pytest.approx(got.loc[ts("2024-07-01 09:30", tz=TZ)])
    with pytest.raises(ValueError, match="weights at"):
        weighted_constituent_returns(bars, lambda hour: {"A": 0.0})


# ---------------------------------------------------------------- backtest_report


def test_backtest_report_matches_its_parts():
    import json

    from market_master.lib.backtest import backtest_report

    rng = np.random.default_rng(1)
    hours = pd.date_range("2024-01-02 09:30", periods=60, freq="h", tz=TZ)
    signal = pd.DataFrame({"hour": hours, "decision": rng.choice(["BUY", "SELL", "HOLD"], size=60)})
    proxy = pd.Series(rng.normal(0.0005, 0.003, 60), index=hours)
    proxy.iloc[-1] = np.nan
    rep = backtest_report(signal, proxy, 2.0, n_trials=12, trials_sr_variance=0.01)
    bt = run_backtest(signal, proxy, 2.0)
    net = bt.frame["strategy_return"].to_numpy()
    assert set(rep["metrics"]) == {"signal", "buy_and_hold", "flat"}
    assert rep["metrics"]["signal"]["sharpe"] == pytest.approx(bt.metrics["signal"]["sharpe"])
    assert rep["metrics"]["buy_and_hold"]["annualization_factor"] == BARS_PER_YEAR
    assert rep["annualization_factor"] == BARS_PER_YEAR and rep["n_unpriced"] == 1 and rep["n_bars"] == 59
    assert rep["psr"] == pytest.approx(hand_psr(list(net), 0.0))
    assert rep["dsr"] == pytest.approx(deflated_sharpe_ratio(net, 12, 0.01))
    assert rep["dsr"] < rep["psr"]
    json.dumps({k: v for k, v in rep.items() if k != "result"})  # JSON-able apart from the result object
    # no trial variance: one trial -> DSR = PSR; several -> null sampling variance 1/(n-1), stated
    one = backtest_report(signal, proxy, 2.0, n_trials=1)
    assert one["dsr"] == pytest.approx(one["psr"]) and one["trials_sr_variance"] == 0.0
    many = backtest_report(signal, proxy, 2.0, n_trials=36)
    assert many["trials_sr_variance"] == pytest.approx(1 / 58)
    assert many["dsr"] == pytest.approx(deflated_sharpe_ratio(net, 36, 1 / 58))
    assert "1 / (n_bars - 1)" in many["trials_sr_variance_source"]
    with pytest.raises(ValueError):
        backtest_report(signal, proxy, 2.0, n_trials=0)
