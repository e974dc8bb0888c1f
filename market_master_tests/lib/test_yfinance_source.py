"""yfinance source with its per-symbol history call replaced by replayed frames (never the network).

Shape, filters, clamp, chunking, and the retry policy on yfinance's own exception types. The same policy
against recorded HTTP answers running through yfinance's code is in test_yfinance_recorded.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import requests
from yfinance.exceptions import YFPricesMissingError, YFRateLimitError

from market_master.lib.calendar import TZ
from market_master.lib.sources import DataSourceError, get_source
from market_master.lib.sources.yfinance_source import (
    MAX_HISTORY_DAYS,
    ChartOutcome,
    ChartRecorder,
    YFinanceSource,
    judge_attempt,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "yfinance"


def load_payload(name: str) -> pd.DataFrame:
    spec = json.loads((FIXTURES / name).read_text())
    if spec["column_names"]:
        columns = pd.MultiIndex.from_tuples([tuple(c) for c in spec["columns"]], names=spec["column_names"])
    else:
        columns = pd.Index(spec["columns"])
    index = pd.DatetimeIndex(pd.to_datetime(spec["index"], utc=True), name=spec["index_name"])
    if "-05:00" in spec["index"][0] or "-04:00" in spec["index"][0]:
        index = index.tz_convert(TZ)
    return pd.DataFrame(spec["data"], index=index, columns=columns)


class Replay:
    """Stands in for the per-symbol yfinance history call: records each call, raises `error()` `failures`
    times (default: yfinance's own rate-limit exception), then returns the payload."""

    def __init__(self, payload: pd.DataFrame | None, failures: int = 0, error=YFRateLimitError) -> None:
        self.payload, self.failures, self.error, self.calls = payload, failures, error, []

    def __call__(self, symbol, session, **kwargs):
        self.calls.append({"symbol": symbol, **kwargs})
        if len(self.calls) <= self.failures:
            raise self.error()
        return None if self.payload is None else self.payload.copy()


def _source(replay, now="2024-12-10 12:00", **kw) -> YFinanceSource:
    sleeps: list[float] = []
    src = YFinanceSource(history=replay, sleep=sleeps.append, clock=lambda: pd.Timestamp(now, tz=TZ), **kw)
    src.sleeps = sleeps
    return src


def test_multiindex_payload_regular_hours_only():
    replay = Replay(load_payload("aapl_1h_prepost_2024-11-27.json"))
    bars = _source(replay).fetch(["AAPL"], "2024-11-27", "2024-12-02")
    assert len(bars) == 7 + 3 + 7  # pre/post rows (04:00, 08:00, 16:00, 19:00) left out
    assert set(bars["timestamp"].dt.strftime("%H:%M")) == {f"{h:02d}:30" for h in range(9, 16)}
    assert str(bars["timestamp"].dt.tz) == TZ and (bars["symbol"] == "AAPL").all()
    payload = load_payload("aapl_1h_prepost_2024-11-27.json")
    first = payload.loc[pd.Timestamp("2024-11-27 09:30", tz=TZ)]
    assert bars.loc[0, "close"] == first[("Close", "AAPL")] != first[("Adj Close", "AAPL")]
    call = replay.calls[0]
    assert call["interval"] == "1h" and call["symbol"] == "AAPL" and call["auto_adjust"] is False
    assert call["start"] == "2024-11-27" and call["end"] == "2024-12-03"


def test_utc_flat_payload_is_converted_to_new_york_across_dst():
    replay = Replay(load_payload("msft_1h_flat_utc_2024-03-08.json"))
    bars = get_source(
        "yfinance", history=replay, sleep=lambda s: None, clock=lambda: pd.Timestamp("2024-04-01", tz=TZ)
    ).fetch(["MSFT"], "2024-03-08", "2024-03-11")
    assert len(bars) == 14
    assert set(bars["timestamp"].dt.strftime("%H:%M")) == {f"{h:02d}:30" for h in range(9, 16)}
    assert bars["timestamp"].iloc[7] == pd.Timestamp("2024-03-11 09:30", tz=TZ)


def test_in_progress_bar_is_left_out():
    replay = Replay(load_payload("aapl_1h_prepost_2024-11-27.json"))
    bars = _source(replay, now="2024-12-02 11:00").fetch(["AAPL"], "2024-12-02", "2024-12-02")
    assert bars["timestamp"].dt.strftime("%H:%M").tolist() == ["09:30"]  # 10:30 ends at 11:30


def test_start_is_clamped_to_730_days_with_a_warning(caplog):
    replay = Replay(load_payload("aapl_1h_prepost_2024-11-27.json"))
    src = _source(replay, now="2024-12-10 12:00", chunk_days=400)
    with caplog.at_level(logging.WARNING):
        bars = src.fetch(["AAPL"], "2020-01-01", "2024-12-02")
    assert "clamped" in caplog.text
    starts = [pd.Timestamp(c["start"]) for c in replay.calls]
    earliest = pd.Timestamp("2024-12-10") - pd.Timedelta(days=MAX_HISTORY_DAYS - 1)
    assert min(starts) == earliest.normalize()
    assert len(replay.calls) == 2  # 730 days in 400-day chunks
    assert len(bars) == 17  # chunks do not duplicate bars


def test_transient_errors_are_retried_with_exponential_backoff():
    replay = Replay(load_payload("aapl_1h_prepost_2024-11-27.json"), failures=2)
    src = _source(replay, backoff_seconds=0.5)
    bars = src.fetch(["AAPL"], "2024-11-27", "2024-12-02")
    assert len(bars) == 17 and len(replay.calls) == 3
    assert src.sleeps == [0.5, 1.0]


def test_persistent_connection_failure_names_the_symbol_and_the_reason():
    replay = Replay(None, failures=99, error=lambda: requests.ConnectionError("connection reset by peer"))
    src = _source(replay, max_retries=2)
    with pytest.raises(DataSourceError, match="failed after 3 attempts") as err:
        src.fetch(["NVDA"], "2024-11-27", "2024-12-02")
    assert err.value.symbol == "NVDA" and src.sleeps == [2.0, 4.0]
    assert "ConnectionError: connection reset by peer" in err.value.message
    assert isinstance(err.value.__cause__, requests.ConnectionError)


def test_permanent_yfinance_error_is_raised_at_once_with_its_reason():
    def missing():
        return YFPricesMissingError("NVDA", "", yahoo_reason="Data doesn't exist for startDate = 1")

    src = _source(Replay(None, failures=99, error=missing), max_retries=3)
    with pytest.raises(DataSourceError, match="not retried") as err:
        src.fetch(["NVDA"], "2024-11-27", "2024-12-02")
    assert "Data doesn't exist for startDate = 1" in err.value.message and src.sleeps == []


@pytest.mark.parametrize(
    ("status", "transient"), [(None, True), (429, True), (500, True), (503, True), (404, False), (400, False)]
)
def test_last_failed_chart_answer_decides_transient_or_permanent(status, transient):
    outcome = ChartOutcome(status, f"HTTP {status}: recorded reason")
    verdict = judge_attempt(None, [ChartOutcome(200, "HTTP 200"), outcome])
    assert verdict is not None and verdict[0] is transient and "recorded reason" in verdict[1]
    assert judge_attempt(None, [outcome, ChartOutcome(200, "HTTP 200")]) is None  # recovered in-attempt


def test_chart_recorder_sees_only_the_symbols_chart_and_restores_the_session():
    session = requests.Session()
    original = session.request

    def fake_request(method, url, **kwargs):
        response = requests.Response()
        response.status_code, response._content = 503, b"<html><h1>Service Unavailable</h1></html>"
        return response

    session.request = fake_request
    with ChartRecorder(session, "AAPL") as recorder:
        session.get("https://query2.finance.yahoo.com/v8/finance/chart/AAPL", params={"range": "1d"})
        session.get("https://query2.finance.yahoo.com/v8/finance/chart/MSFT")
        session.get("https://fc.yahoo.com/")
    assert recorder.outcomes == [ChartOutcome(503, "HTTP 503: Service Unavailable")]
    assert session.request is fake_request
    del session.request
    assert session.request == original


@pytest.mark.parametrize("payload", [None, pd.DataFrame()])
def test_empty_result_is_an_error_naming_the_symbol(payload):
    with pytest.raises(DataSourceError, match="returned no regular-hours 1h bars") as err:
        _source(Replay(payload)).fetch(["ZZZZ"], "2024-11-27", "2024-12-02")
    assert err.value.symbol == "ZZZZ"


def test_period_request_and_wrong_ticker_columns():
    replay = Replay(load_payload("aapl_1h_prepost_2024-11-27.json"))
    bars = _source(replay).fetch(["AAPL"], period="60d")
    assert replay.calls[0]["period"] == "60d" and "start" not in replay.calls[0]
    assert len(bars) == 17
    with pytest.raises(DataSourceError, match="no columns for MSFT"):
        _source(Replay(load_payload("aapl_1h_prepost_2024-11-27.json"))).fetch(["MSFT"], period="5d")
