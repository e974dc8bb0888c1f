"""WSS arithmetic, coverage, renormalisation, threshold edges and point-in-time weights."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from market_master.lib.signal import (
    DEFAULT_THRESHOLDS,
    SignalThresholds,
    compute_wss,
    decisions_from_wss,
    validate_thresholds,
    weights_long,
    wss_contributions,
)
from market_master.lib.weights import WeightsHistory, WeightsSnapshot

TZ = "America/New_York"
H0 = pd.Timestamp("2024-07-01 09:30", tz=TZ)
H1 = pd.Timestamp("2024-07-01 10:30", tz=TZ)


def preds(rows: list[tuple[pd.Timestamp, str, str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["hour", "symbol", "status", "action"])


def test_wss_is_weighted_sum_of_scores():
    p = preds([(H0, "A", "ok", "strong_buy"), (H0, "B", "ok", "sell"), (H0, "C", "ok", "hold")])
    out = compute_wss(p, {"A": 0.5, "B": 0.3, "C": 0.2})
    row = out.iloc[0]
    assert row["wss"] == pytest.approx(2 * 0.5 - 1 * 0.3 + 0 * 0.2)
    assert row["decision"] == "BUY"
    assert row["covered_weight"] == pytest.approx(1.0)
    assert (row["n_predicted"], row["n_symbols"]) == (3, 3)
    assert row["missing_symbols"] == "" and row["unweighted_symbols"] == "" and row["reason"] == ""


def test_unnormalised_weights_are_scaled_first():
    p = preds([(H0, "A", "ok", "buy"), (H0, "B", "ok", "strong_sell")])
    out = compute_wss(p, {"A": 8.0, "B": 2.0})  # weight_pct style
    assert out.loc[0, "wss"] == pytest.approx(0.8 * 1 + 0.2 * -2)


def test_missing_and_warmup_symbols_are_renormalised_out():
    p = preds(
        [
            (H0, "A", "ok", "strong_buy"),
            (H0, "B", "missing_bar", None),
            (H0, "C", "warmup", None),
            (H0, "D", "ok", "sell"),
        ]
    )
    out = compute_wss(p, {"A": 0.4, "B": 0.3, "C": 0.2, "D": 0.1})
    row = out.iloc[0]
    # covered A (0.4) and D (0.1): WSS = (2*0.4 - 1*0.1) / 0.5
    assert row["wss"] == pytest.approx((0.8 - 0.1) / 0.5)
    assert row["covered_weight"] == pytest.approx(0.5)
    assert row["n_predicted"] == 2 and row["n_symbols"] == 4
    assert row["missing_symbols"] == "B,C"


def test_weighted_symbol_absent_from_predictions_counts_as_missing_and_unweighted_is_listed():
    p = preds([(H0, "A", "ok", "buy"), (H0, "TSM", "ok", "strong_sell")])
    out = compute_wss(p, {"A": 0.6, "NFLX": 0.4})
    row = out.iloc[0]
    assert row["wss"] == pytest.approx(1.0)  # TSM has no weight: ignored
    assert row["covered_weight"] == pytest.approx(0.6)
    assert row["missing_symbols"] == "NFLX"
    assert row["unweighted_symbols"] == "TSM"


def test_no_covered_symbol_gives_no_signal_never_a_hold():
    p = preds([(H0, "A", "warmup", None), (H0, "B", "missing_bar", None)])
    row = compute_wss(p, {"A": 1, "B": 1}).iloc[0]
    assert math.isnan(row["wss"])
    assert row["decision"] == "NO_SIGNAL"
    from market_master.lib.backtest import POSITION_OF

    assert POSITION_OF["NO_SIGNAL"] == 0.0  # traded as flat, reported as what it is
    assert row["covered_weight"] == 0.0 and row["n_predicted"] == 0
    assert row["reason"]


@pytest.mark.parametrize(
    ("wss", "decision"),
    [
        (0.5, "BUY"),
        (0.4999, "HOLD"),
        (-0.5, "SELL"),
        (-0.4999, "HOLD"),
        (2.0, "BUY"),
        (-2.0, "SELL"),
        (0.0, "HOLD"),
    ],
)
def test_threshold_edges_are_inclusive(wss, decision):
    assert decisions_from_wss(np.array([wss]), 0.5, -0.5)[0] == decision


def test_exact_plus_half_from_actions_is_buy():
    # A buy (1) at 0.5 weight and hold at 0.5 -> exactly +0.5
    p = preds([(H0, "A", "ok", "buy"), (H0, "B", "ok", "hold")])
    assert compute_wss(p, {"A": 1, "B": 1}).loc[0, "decision"] == "BUY"
    q = preds([(H0, "A", "ok", "sell"), (H0, "B", "ok", "hold")])
    assert compute_wss(q, {"A": 1, "B": 1}).loc[0, "decision"] == "SELL"


@pytest.mark.parametrize(("buy", "sell"), [(0.5, 0.5), (0.1, 0.2), (float("nan"), -0.5), (0.5, float("inf"))])
def test_invalid_thresholds_raise(buy, sell):
    with pytest.raises(ValueError):
        validate_thresholds(buy, sell)
    with pytest.raises(ValueError):
        compute_wss(preds([(H0, "A", "ok", "buy")]), {"A": 1}, buy, sell)


def test_point_in_time_weights_callable():
    p = preds(
        [
            (H0, "A", "ok", "strong_buy"),
            (H0, "B", "ok", "strong_sell"),
            (H1, "A", "ok", "strong_buy"),
            (H1, "B", "ok", "strong_sell"),
        ]
    )
    seen = []

    def weights_at(hour):
        seen.append(hour)
        return {"A": 0.9, "B": 0.1} if hour < H1 else {"A": 0.1, "B": 0.9}

    out = compute_wss(p, weights_at)
    assert out["wss"].tolist() == pytest.approx([2 * 0.8, -2 * 0.8])
    assert out["decision"].tolist() == ["BUY", "SELL"]
    assert sorted(seen) == [H0, H1]


def test_one_row_per_hour_sorted_and_columns():
    p = preds([(H1, "A", "ok", "hold"), (H0, "A", "ok", "buy")])
    out = compute_wss(p, pd.Series({"A": 1.0}))
    assert out["hour"].tolist() == [H0, H1]
    assert list(out.columns) == [
        "hour",
        "wss",
        "decision",
        "covered_weight",
        "n_predicted",
        "n_symbols",
        "missing_symbols",
        "unweighted_symbols",
        "reason",
    ]


@pytest.mark.parametrize("weights", [{"A": -1.0, "B": 2.0}, {"A": 0.0}, {"A": float("nan")}])
def test_bad_weights_raise(weights):
    with pytest.raises(ValueError):
        compute_wss(preds([(H0, "A", "ok", "buy")]), weights)


def test_ok_row_with_unknown_action_raises():
    with pytest.raises(ValueError, match="outside"):
        compute_wss(preds([(H0, "A", "ok", "moon")]), {"A": 1})


def test_duplicate_prediction_rows_raise():
    with pytest.raises(ValueError, match="duplicate"):
        compute_wss(preds([(H0, "A", "ok", "buy"), (H0, "A", "ok", "sell")]), {"A": 1})


def test_default_thresholds_are_the_compute_wss_defaults():
    assert (DEFAULT_THRESHOLDS.buy, DEFAULT_THRESHOLDS.sell) == (0.5, -0.5)
    p = preds([(H0, "A", "ok", "buy"), (H0, "B", "ok", "hold")])  # WSS exactly +0.5
    assert compute_wss(p, {"A": 1, "B": 1}).loc[0, "decision"] == "BUY"
    with pytest.raises(ValueError, match="strictly below"):
        SignalThresholds(buy=0.2, sell=0.3)


def test_contributions_sum_to_the_wss_and_skip_non_ok_rows():
    p = preds(
        [
            (H0, "A", "ok", "strong_buy"),
            (H0, "B", "missing_bar", None),
            (H0, "D", "ok", "sell"),
            (H0, "TSM", "ok", "strong_sell"),  # predicted, no weight
        ]
    )
    p["confidence"] = [0.4, float("nan"), 0.3, 0.9]
    weights = {"A": 4.0, "B": 3.0, "C": 2.0, "D": 1.0}  # C: weighted, no prediction row
    row = compute_wss(p, weights).iloc[0]
    parts = {c["symbol"]: c for c in wss_contributions(p.to_dict("records"), weights, row["covered_weight"])}
    assert list(parts) == ["A", "B", "C", "D", "TSM"]
    assert sum(c["contribution"] for c in parts.values()) == pytest.approx(row["wss"])
    assert parts["A"]["contribution"] == pytest.approx(2 * 0.4 / 0.5)
    assert parts["A"]["score"] == 2 and parts["A"]["confidence"] == 0.4 and parts["A"]["weight"] == 0.4
    assert parts["B"] == {
        "symbol": "B",
        "status": "missing_bar",
        "action": None,
        "score": None,
        "weight": pytest.approx(0.3),
        "contribution": 0.0,
        "confidence": None,
    }
    assert parts["C"]["status"] is None and parts["C"]["contribution"] == 0.0
    assert parts["TSM"]["weight"] == 0.0 and parts["TSM"]["contribution"] == 0.0


def test_contributions_without_coverage_are_zero():
    p = preds([(H0, "A", "warmup", None)])
    assert [c["contribution"] for c in wss_contributions(p.to_dict("records"), {"A": 1.0}, 0.0)] == [0.0]


def test_weights_long_accepts_a_history_and_keeps_the_hour_dtype():
    history = WeightsHistory(
        [
            WeightsSnapshot(as_of=H0.date(), weights={"A": 3.0, "B": 1.0}, source="t"),
            WeightsSnapshot(as_of=(H0 + pd.Timedelta(days=1)).date(), weights={"B": 1.0}, source="t"),
        ]
    )
    hours = pd.DatetimeIndex([H0, H1, H0 + pd.Timedelta(days=1)])
    frame = weights_long(hours, history)
    assert frame["hour"].dtype == hours.dtype
    assert frame["symbol"].tolist() == ["A", "B", "A", "B", "B"]
    assert frame["weight"].tolist() == pytest.approx([0.75, 0.25, 0.75, 0.25, 1.0])
    static = weights_long(hours, {"A": 1.0, "B": 1.0})
    assert len(static) == 6 and static["weight"].tolist() == pytest.approx([0.5] * 6)
