"""POST /predict and GET /predict/component: happy paths (equal to predict_hours), 404s and 422s."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from market_master.lib.calendar import next_bar_start
from market_master.lib.features import compute_features
from market_master.lib.labels import CLASSES
from market_master.lib.prediction import predict_hours
from market_master.lib.storage import PartitionStore
from market_master_tests.api.conftest import window

SYMBOL = "NVDA"


def _expected(model, bars: pd.DataFrame, symbol: str) -> pd.Series:
    """predict_hours on compute_features of the same bars, for the last bar's hour."""
    feats = compute_features(bars.reset_index(drop=True), model.feature_config)
    hour = feats["timestamp"].iloc[-1]
    return predict_hours(feats, model, hours=[hour], universe=[symbol]).iloc[0]


def _bars_frame(symbol: str, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.tz_convert("America/New_York")
    frame.insert(0, "symbol", symbol)
    return frame


def _assert_same(body: dict, expected: pd.Series) -> None:
    for cls in CLASSES:
        assert body["probabilities"][cls] == pytest.approx(expected[f"p_{cls}"], abs=1e-9)
    assert body["action"] == expected["action"]
    assert body["confidence"] == pytest.approx(expected["confidence"], abs=1e-9)
    assert pd.Timestamp(body["timestamp_next"]) == expected["timestamp_next"]


@pytest.mark.parametrize("n_bars,end", [(20, -40), (17, -3), (60, None)])
def test_post_window_equals_predict_hours(client, api_env, n_bars, end):
    rows = window(api_env.bars, SYMBOL, n_bars, end=end if end is None else len(api_env.bars) // 10 + end)
    r = client.post("/predict", json={"symbol": SYMBOL, "interval": "1h", "bars": rows})
    assert r.status_code == 200, r.text
    body = r.json()
    _assert_same(body, _expected(api_env.v1_model, _bars_frame(SYMBOL, rows), SYMBOL))
    assert pd.Timestamp(body["bar_time"]) == pd.Timestamp(rows[-1]["timestamp"])
    assert pd.Timestamp(body["timestamp_next"]) == next_bar_start(rows[-1]["timestamp"])
    assert body["model_version"] == api_env.v1 and body["completed_from_history"] is False
    assert body["bars_used"] == 17


def test_naive_timestamps_are_new_york_time(client, api_env):
    rows = window(api_env.bars, "AAPL", 20)
    naive = [dict(r, timestamp=pd.Timestamp(r["timestamp"]).tz_localize(None).isoformat()) for r in rows]
    a = client.post("/predict", json={"symbol": "aapl", "bars": rows}).json()
    b = client.post("/predict", json={"symbol": "AAPL", "bars": naive}).json()
    assert a["probabilities"] == b["probabilities"] and a["bar_time"] == b["bar_time"]


def test_single_bar_without_symbol_says_how_many_bars_are_needed(client):
    r = client.post(
        "/predict", json={"open": 101.2, "high": 102.1, "low": 100.5, "close": 101.7, "volume": 1e5}
    )
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "insufficient_history" and body["field"] == "bars"
    assert "needs 17 bars" in body["message"] and "has 1" in body["message"]


def test_single_bar_completed_from_stored_history(client, api_env):
    stored = api_env.bars[
        api_env.bars["timestamp"].isin(pd.DatetimeIndex(api_env.bars["timestamp"].unique())[-30:])
    ]
    hist = stored[stored["symbol"] == SYMBOL]
    nxt = next_bar_start(hist["timestamp"].iloc[-1])
    bar = {"open": 101.2, "high": 102.1, "low": 100.5, "close": 101.7, "volume": 123456.0}
    for body_in in (
        {"symbol": SYMBOL, **bar},  # bare bar, no timestamp: placed after the stored history
        {"symbol": SYMBOL, "timestamp": nxt.isoformat(), **bar},
        {"symbol": SYMBOL, "interval": "1h", "bars": [bar]},  # the seed's list of one
    ):
        r = client.post("/predict", json=body_in)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["completed_from_history"] is True and body["history_bars_used"] == 16
        assert pd.Timestamp(body["bar_time"]) == nxt
        combined = pd.concat(
            [hist.tail(16), pd.DataFrame([{"symbol": SYMBOL, "timestamp": nxt, **bar}])], ignore_index=True
        )
        _assert_same(body, _expected(api_env.v1_model, combined, SYMBOL))


def test_single_bar_with_a_gap_after_stored_history_is_422(client, api_env):
    last = api_env.bars["timestamp"].max()
    later = next_bar_start(next_bar_start(last))
    bar = {"timestamp": later.isoformat(), "open": 10, "high": 11, "low": 9, "close": 10, "volume": 1}
    r = client.post("/predict", json={"symbol": SYMBOL, **bar})
    assert r.status_code == 422
    assert "missing" in r.json()["message"] and r.json()["field"] == "bars[0].timestamp"


def test_component_prediction_from_stored_history(client, api_env):
    r = client.get("/predict/component", params={"symbol": SYMBOL})
    assert r.status_code == 200, r.text
    body = r.json()
    hours = pd.DatetimeIndex(api_env.bars["timestamp"].unique()).sort_values()
    stored = api_env.bars[api_env.bars["timestamp"].isin(hours[-30:]) & (api_env.bars["symbol"] == SYMBOL)]
    _assert_same(body, _expected(api_env.v1_model, stored, SYMBOL))
    assert pd.Timestamp(body["bar_time"]) == hours[-1]
    assert body["latest_stored_hour"] == api_env.stored_keys[-1]
    assert body["model_version"] == api_env.v1


def test_component_unknown_symbol_is_404(client):
    r = client.get("/predict/component", params={"symbol": "ZZZZ"})
    assert r.status_code == 404
    assert r.json()["error"] == "unknown_symbol" and "ZZZZ" in r.json()["message"]


def test_component_too_little_history_is_422(api_env, tmp_path):
    src, dst = PartitionStore(api_env.root / "partitions"), PartitionStore(tmp_path / "partitions")
    for key in api_env.stored_keys[-5:]:
        dst.write("hourly_bars", key, src.read("hourly_bars", [key]))
    with TestClient(create_app(api_env.settings(data_root=tmp_path))) as c:
        # no local copy under tmp_path is needed: the registry serves
        r = c.get("/predict/component", params={"symbol": SYMBOL})
        assert r.status_code == 422
        assert r.json()["error"] == "insufficient_history"
        assert "needs 17" in r.json()["message"] and "has 5" in r.json()["message"]


def test_component_nothing_stored_is_404(api_env, tmp_path):
    with TestClient(create_app(api_env.settings(data_root=tmp_path))) as c:
        r = c.get("/predict/component", params={"symbol": SYMBOL})
        assert r.status_code == 404 and "run the pipeline first" in r.json()["message"]


def _post(client, api_env, mutate, symbol=SYMBOL, **extra):
    rows = window(api_env.bars, symbol, 20)
    mutate(rows)
    return client.post("/predict", json={"symbol": symbol, "bars": rows, **extra})


@pytest.mark.parametrize(
    "mutate,field,reason",
    [
        (lambda b: b[3].update(high=b[3]["low"] * 0.5), "bars[3].high", "high >= max(open, close)"),
        (lambda b: b[5].update(low=max(b[5]["open"], b[5]["close"]) * 1.01), "bars[5].low", "low <= min"),
        (lambda b: b.__setitem__(slice(4, 6), [b[5], b[4]]), "bars[5].timestamp", "strictly increasing"),
        (lambda b: b[7].update(timestamp=b[6]["timestamp"]), "bars[6].timestamp", "one bar per"),
        (lambda b: b[-1].update(timestamp="2024-03-28T17:30:00-04:00"), "bars[19].timestamp", "trading-bar"),
        (lambda b: b[2].update(timestamp="not a time"), "bars[2].timestamp", "ISO 8601"),
        (
            lambda b: b[2].update(timestamp="00011001000000000"),
            "bars[2].timestamp",
            "out of range",
        ),  # fuzz find
        (lambda b: b[1].update(close=-1.0), "bars[1].close", "greater than 0"),
        (lambda b: b[1].update(volume=-5), "bars[1].volume", "greater than or equal to 0"),
    ],
)
def test_invalid_bars_are_422_naming_field_and_reason(client, api_env, mutate, field, reason):
    r = _post(client, api_env, mutate)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == field
    assert reason in body["reason"] or reason in body["message"]


def test_non_finite_price_is_422(client, api_env):
    rows = window(api_env.bars, SYMBOL, 20)
    for value in (float("nan"), float("inf")):
        rows[4]["open"] = value
        text = json.dumps({"symbol": SYMBOL, "bars": rows})  # emits the NaN / Infinity tokens
        r = client.post("/predict", content=text, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["field"] == "bars[4].open", r.text


def test_too_many_bars_wrong_interval_unknown_symbol(api_env):
    with TestClient(create_app(api_env.settings(max_bars=25))) as c:
        rows = window(api_env.bars, SYMBOL, 26)
        r = c.post("/predict", json={"symbol": SYMBOL, "bars": rows})
        assert r.status_code == 422 and r.json()["error"] == "too_many_bars" and "25" in r.json()["message"]
        r = c.post("/predict", json={"symbol": SYMBOL, "interval": "5m", "bars": rows[:20]})
        assert r.status_code == 422 and r.json()["field"] == "interval"
        r = c.post("/predict", json={"symbol": "ZZZZ", "bars": rows[:20]})
        assert r.status_code == 404 and r.json()["field"] == "symbol"
        r = c.post("/predict", json={"bars": rows[:20]})
        assert r.status_code == 422 and r.json()["field"] == "symbol"


def test_extreme_prices_never_500(client, api_env):
    rows = window(api_env.bars, SYMBOL, 20)
    for r_ in rows:
        r_.update(open=1e300, high=1e308, low=1e-300, close=1e300)
    r = client.post("/predict", json={"symbol": SYMBOL, "bars": rows})
    assert r.status_code in (200, 422), r.text
    assert np.isfinite(list(r.json().get("probabilities", {"x": 0.0}).values())).all()


def test_window_with_a_gap_is_422_naming_the_row_and_both_timestamps(client, api_env):
    rows = window(api_env.bars, SYMBOL, 21)
    del rows[8]  # bar 8 now follows bar 7 with one trading bar missing in between
    r = client.post("/predict", json={"symbol": SYMBOL, "bars": rows})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_bars" and body["field"] == "bars[8].timestamp" and body["rows"] == [8]
    assert rows[7]["timestamp"] in body["message"] and rows[8]["timestamp"] in body["message"]
    expected = next_bar_start(rows[7]["timestamp"]).isoformat()
    assert f"expected {expected}" in body["reason"]
    # overnight and weekend steps are not gaps: the same bars without the hole are fine
    assert (
        client.post("/predict", json={"symbol": SYMBOL, "bars": window(api_env.bars, SYMBOL, 20)}).status_code
        == 200
    )


def test_short_window_with_a_gap_after_stored_history_is_422(client, api_env):
    first = next_bar_start(api_env.bars["timestamp"].max())
    third = next_bar_start(next_bar_start(first))
    bar = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 1.0}
    bars = [{"timestamp": first.isoformat(), **bar}, {"timestamp": third.isoformat(), **bar}]
    r = client.post("/predict", json={"symbol": SYMBOL, "bars": bars})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "bars[1].timestamp" and first.isoformat() in r.json()["message"]
    ok = client.post("/predict", json={"symbol": SYMBOL, "bars": bars[:1]})
    assert ok.status_code == 200 and ok.json()["history_bars_used"] == 16
