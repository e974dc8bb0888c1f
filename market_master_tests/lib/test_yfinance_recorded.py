"""yfinance 1.7 itself parses recorded Yahoo v8 chart responses: real `yf.download`, replayed HTTP, no network.

The seam is the HTTP transport: a real `requests.Session` (yfinance accepts requests or curl_cffi sessions)
with a transport adapter that answers from recorded bodies, handed to `YFinanceSource(session=...)`.
Everything above the socket runs for real: yfinance's cookie/crumb handshake, its timezone probe,
`PriceHistory.history` (JSON -> DataFrame, UTC -> exchange tz, unrequested pre/post bars, null bars),
`yf.download`'s MultiIndex assembly, then our `to_canonical` and regular-hours filter.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import requests
from requests.adapters import BaseAdapter
from yfinance import base as yf_base
from yfinance import cache as yf_cache
from yfinance import data as yf_data

from market_master.lib.calendar import TZ
from market_master.lib.sources import DataSourceError
from market_master.lib.sources.yfinance_source import YFinanceSource

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "yfinance"
CHART_PATH = "/v8/finance/chart/"
CRUMB = "rEpLaYcRuMb1"


class RecordedYahoo(BaseAdapter):
    """Transport adapter replaying Yahoo: chart requests get the symbol's recorded (status, body).

    The cookie endpoint answers an empty 200, `getcrumb` a fixed crumb, anything unrecorded a 404 in
    Yahoo's error shape. Every request is kept in `requests` so tests can check what yfinance asked for.
    """

    def __init__(self, charts: dict[str, tuple[int, dict]]) -> None:
        super().__init__()
        self.charts = charts
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs) -> requests.Response:
        self.requests.append(request)
        url = urlsplit(request.url)
        if url.path.startswith(CHART_PATH) and url.path[len(CHART_PATH) :] in self.charts:
            status, body = self.charts[url.path[len(CHART_PATH) :]]
            return self._response(request, status, json.dumps(body))
        if url.hostname == "fc.yahoo.com":
            return self._response(request, 200, "")
        if url.path == "/v1/test/getcrumb":
            return self._response(request, 200, CRUMB)
        error = {"finance": {"result": None, "error": {"code": "Not Found", "description": "not recorded"}}}
        return self._response(request, 404, json.dumps(error))

    @staticmethod
    def _response(request, status: int, text: str) -> requests.Response:
        response = requests.Response()
        response.status_code, response.url, response.request = status, request.url, request
        response._content = text.encode()
        response.headers["Content-Type"] = "application/json;charset=utf-8"
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass

    def chart_calls(self, symbol: str) -> list[dict[str, list[str]]]:
        """Query parameters of every chart request for `symbol`, in order."""
        return [
            parse_qs(urlsplit(r.url).query)
            for r in self.requests
            if urlsplit(r.url).path == CHART_PATH + symbol
        ]


def replay_session(charts: dict[str, tuple[int, dict]]) -> tuple[requests.Session, RecordedYahoo]:
    session = requests.Session()
    adapter = RecordedYahoo(charts)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, adapter


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def fresh_yfinance_state(monkeypatch):
    """Isolate yfinance's process-wide state: a new YfData singleton (session, cookie, crumb) per test,
    its shipped no-op caches instead of the sqlite tz/cookie caches under ~/.cache, a reset tz-fallback
    counter. All restored after the test."""
    monkeypatch.setattr(yf_data.SingletonMeta, "_instances", {})
    monkeypatch.setattr(yf_cache._TzCacheManager, "_tz_cache", yf_cache._TzCacheDummy())
    monkeypatch.setattr(yf_cache._CookieCacheManager, "_Cookie_cache", yf_cache._CookieCacheDummy())
    monkeypatch.setattr(yf_base, "_tz_info_fetch_ctr", 0)


def _source(session: requests.Session) -> YFinanceSource:
    return YFinanceSource(
        session=session, sleep=lambda s: None, clock=lambda: pd.Timestamp("2024-11-05 08:00", tz=TZ)
    )


def test_recorded_v8_chart_is_parsed_by_yfinance_into_canonical_bars():
    recorded = load("chart_v8_AAPL_1h.json")
    session, yahoo = replay_session({"AAPL": (200, recorded)})

    bars = _source(session).fetch(["AAPL"], "2024-10-31", "2024-11-04")

    # yfinance really went through the transport: cookie, crumb, tz probe, then the 1h history request.
    hosts = [urlsplit(r.url).hostname for r in yahoo.requests]
    assert "fc.yahoo.com" in hosts and any("/v1/test/getcrumb" in r.url for r in yahoo.requests)
    probe, history = yahoo.chart_calls("AAPL")
    assert probe["range"] == ["1d"] and probe["interval"] == ["1d"]
    assert history["interval"] == ["1h"] and history["includePrePost"] == ["False"]
    assert history["period1"] == ["1730347200"] and history["period2"] == ["1730782800"]  # 10-31 .. 11-05 NY
    assert history["crumb"] == [CRUMB]

    assert str(bars["timestamp"].dt.tz) == TZ and (bars["symbol"] == "AAPL").all()
    assert list(bars.columns) == ["symbol", "timestamp", "open", "high", "low", "close", "volume"]
    per_day = bars.groupby(bars["timestamp"].dt.strftime("%Y-%m-%d"))["timestamp"]
    starts = per_day.apply(lambda s: list(s.dt.strftime("%H:%M"))).to_dict()
    full_day = [f"{h:02d}:30" for h in range(9, 16)]
    assert starts["2024-10-31"] == full_day  # EDT: 09:30 is 13:30 UTC
    assert starts["2024-11-01"] == [t for t in full_day if t != "12:30"]  # 08:30 pre bar and null bar gone
    assert starts["2024-11-04"] == full_day  # EST after the DST change: 09:30 is 14:30 UTC; 16:00 bar gone
    assert len(bars) == 20

    # Every bar carries exactly the recorded values of the epoch it came from (tz conversion is right).
    result = recorded["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    position = {ts: i for i, ts in enumerate(result["timestamp"])}
    for row in bars.itertuples():
        i = position[int(row.timestamp.timestamp())]
        got = (row.open, row.high, row.low, row.close, row.volume)
        assert got == tuple(quote[k][i] for k in ("open", "high", "low", "close", "volume"))
    assert bars.loc[0, "timestamp"] == pd.Timestamp("2024-10-31 13:30", tz="UTC")
    assert bars["timestamp"].iloc[13] == pd.Timestamp("2024-11-04 14:30", tz="UTC")
    assert not bars[["open", "high", "low", "close", "volume"]].isna().any().any()


def test_recorded_yahoo_not_found_is_a_source_error_naming_the_symbol(caplog):
    session, yahoo = replay_session({"ZZZZ": (404, load("chart_v8_error_not_found.json"))})
    src = YFinanceSource(
        session=session,
        max_retries=0,
        sleep=lambda s: None,
        clock=lambda: pd.Timestamp("2024-11-05 08:00", tz=TZ),
    )
    with caplog.at_level(logging.ERROR, logger="yfinance"), pytest.raises(DataSourceError) as err:
        src.fetch(["ZZZZ"], "2024-10-31", "2024-11-04")
    assert err.value.symbol == "ZZZZ" and "ZZZZ" in str(err.value)
    # yfinance asked the replay for the chart (its tz probe), got Yahoo's 404 error body, retried with its
    # other cookie strategy, fell back to quoteSummary (unrecorded: 404) and logged the failed download.
    assert len(yahoo.chart_calls("ZZZZ")) >= 1
    assert any("/quoteSummary/ZZZZ" in r.url for r in yahoo.requests)
    assert "Failed download" in caplog.text and "['ZZZZ']" in caplog.text
