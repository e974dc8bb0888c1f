"""Batch mode on the real 1-hour bars (../shared/data/real-dev): prints the test-window table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from market_master.lib import calendar
from market_master.lib.batch import run_batch
from market_master.lib.batch_report import metrics_markdown

pytestmark = pytest.mark.realdata

CANDIDATES = ("LogReg", "ET")  # the fast pair; docs/signal_and_backtest.md also quotes all seven


def test_real_dev_batch_test_window(real_dev_dir, tmp_path):
    res = run_batch(
        real_dev_dir,
        real_dev_dir / "qqq_holdings_2025-04-28.csv",
        tmp_path / "out",
        candidates=CANDIDATES,
        cost_bps=1.0,
    )
    print(f"\nreal-dev test window {res.segments['test']['start']} .. {res.segments['test']['end']}")
    print(
        f"model {res.model_name}; thresholds buy>={res.buy_threshold} sell<={res.sell_threshold} (validation sweep)"
    )
    print(metrics_markdown(res.test_backtest))
    print(f"PSR {res.psr:.3f}  DSR {res.dsr:.3f} over {res.n_trials} trials")

    assert res.proxy == "QQQ" and "QQQ" not in set(res.predictions["symbol"])
    ok = res.signal[res.signal["n_predicted"] > 0]
    assert (ok["unweighted_symbols"] == "TSM").all()
    assert res.n_trials == len(CANDIDATES) * 36
    assert pd.Timestamp(res.segments["validation"]["end"]) < pd.Timestamp(res.segments["test"]["start"])
    # buy-and-hold over the test window is QQQ's own close-to-close move over the bar pairs that are
    # calendar-consecutive (a missing half-day 12:30 bar leaves the 11:30 hour untraded), with the 1 bp
    # entry cost taken off the first traded bar's return
    qqq = pd.read_csv(real_dev_dir / "QQQ_1h.csv")
    qqq["ts"] = pd.to_datetime(qqq["Datetime"], utc=True).dt.tz_convert("America/New_York")
    test = qqq[qqq["ts"] >= pd.Timestamp(res.segments["test"]["start"])].reset_index(drop=True)
    rets = [
        test["close"][i + 1] / test["close"][i] - 1
        for i in range(len(test) - 1)
        if test["ts"][i + 1] == calendar.next_bar_start(test["ts"][i])
    ]
    assert len(rets) < len(test) - 1  # the window holds half-days with a missing 12:30 bar
    assert res.test_backtest.n_unpriced == len(test) - len(rets)
    expected = (1 + rets[0] - 1e-4) * math.prod(1 + r for r in rets[1:]) - 1
    assert res.test_backtest.metrics["buy_and_hold"]["total_return"] == pytest.approx(expected, rel=1e-9)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "today's weights were applied to all history" in text and "TSM" in text
