"""yfinance 1.7 itself parses recorded Yahoo v8 chart responses: real yfinance code, replayed HTTP, no network.

The seam is the HTTP transport: a real `requests.Session` (yfinance accepts requests or curl_cffi sessions)
with a transport adapter that answers from recorded bodies, handed to `YFinanceSource(session=...)`.
Everything above the socket runs for real: yfinance's cookie/crumb handshake and its cookie-strategy retry
on HTTP errors, its timezone probe, `PriceHistory.history` (JSON -> DataFrame, UTC -> exchange tz,
unrequested pre/post bars, null bars), its GET cache, then our failure classification, `to_canonical` and
regular-hours filter. The 429 and 500 bodies are Yahoo's as quoted in public issue reports (see each
fixture's `provenance`); the chart and "Not Found" bodies are Yahoo v8 JSON.
"""

from __future__ import annotations

import json
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
JSON = "application/json;charset=utf-8"

Recorded = tuple[int, str, str]  # (HTTP status, body text, content type)


class RecordedYahoo(BaseAdapter):
    """Transport adapter replaying Yahoo: chart requests get the symbol's recorded responses in order.

    Each symbol maps to a list of recorded responses; the n-th chart request for it gets the n-th one, and
    the last one repeats. The cookie endpoint answers an empty 200, `getcrumb` a fixed crumb, anything
    unrecorded a 404 in Yahoo's error shape. Every request is kept in `requests` for the tests.
    """

    def __init__(self, charts: dict[str, list[Recorded]]) -> None:
        super().__init__()
        self.charts = {symbol: list(answers) for symbol, answers in charts.items()}
        self.served: dict[str, int] = {symbol: 0 for symbol in charts}
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs) -> requests.Response:
        self.requests.append(request)
        url = urlsplit(request.url)
        symbol = url.path[len(CHART_PATH) :] if url.path.startswith(CHART_PATH) else None
        if symbol in self.charts:
            answers = self.charts[symbol]
            status, text, content_type = answers[min(self.served[symbol], len(answers) - 1)]
            self.served[symbol] += 1
            return self._response(request, status, text, content_type)
        if url.hostname == "fc.yahoo.com":
            return self._response(request, 200, "", "text/html")
        if url.path == "/v1/test/getcrumb":
            return self._response(request, 200, CRUMB, "text/plain")
        error = {"finance": {"result": None, "error": {"code": "Not Found", "description": "not recorded"}}}
        return self._response(request, 404, json.dumps(error), JSON)

    @staticmethod
    def _response(request, status: int, text: str, content_type: str) -> requests.Response:
        response = requests.Response()
        response.status_code, response.url, response.request = status, request.url, request
        response._content = text.encode()
        response.headers["Content-Type"] = content_type
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


def replay_session(charts: dict[str, list[Recorded]]) -> tuple[requests.Session, RecordedYahoo]:
    session = requests.Session()
    adapter = RecordedYahoo(charts)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, adapter


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def chart(status: int, name: str) -> Recorded:
    """A recorded Yahoo v8 JSON chart body served with `status`."""
    return status, (FIXTURES / name).read_text(), JSON


def http_error(name: str) -> Recorded:
    """A recorded non-JSON Yahoo answer (status, body, content type from the fixture)."""
    spec = load(name)
    return spec["status"], spec["body"], spec["content_type"]


@pytest.fixture(autouse=True)
def fresh_yfinance_state(monkeypatch):
    """Isolate yfinance's process-wide state: a new YfData singleton (session, cookie, crumb) per test,
    its shipped no-op caches instead of the sqlite tz/cookie caches under ~/.cache, a reset tz-fallback
    counter. All restored after the test."""
    monkeypatch.setattr(yf_data.SingletonMeta, "_instances", {})
    monkeypatch.setattr(yf_cache._TzCacheManager, "_tz_cache", yf_cache._TzCacheDummy())
    monkeypatch.setattr(yf_cache._CookieCacheManager, "_Cookie_cache", yf_cache._CookieCacheDummy())
    monkeypatch.setattr(yf_base, "_tz_info_fetch_ctr", 0)


def _source(session: requests.Session, **kwargs) -> YFinanceSource:
    sleeps: list[float] = []
    src = YFinanceSource(
        session=session,
        sleep=sleeps.append,
        clock=lambda: pd.Timestamp("2024-11-05 08:00", tz=TZ),
        **kwargs,
    )
    src.sleeps = sleeps
    return src


def test_recorded_v8_chart_is_parsed_by_yfinance_into_canonical_bars():
    recorded = load("chart_v8_AAPL_1h.json")
    session, yahoo = replay_session({"AAPL": [chart(200, "chart_v8_AAPL_1h.json")]})

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


def test_recorded_429_is_retried_with_backoff_then_bars_are_returned():
    # yfinance retries an HTTP error once itself (other cookie strategy), then raises YFRateLimitError on
    # the second 429; our retry after the backoff gets the recorded chart.
    rate_limited = http_error("http_429_rate_limited.json")
    ok = chart(200, "chart_v8_AAPL_1h.json")
    session, yahoo = replay_session({"AAPL": [rate_limited, rate_limited, ok]})
    src = _source(session, backoff_seconds=1.5)

    bars = src.fetch(["AAPL"], "2024-10-31", "2024-11-04")

    assert src.sleeps == [1.5]  # one retry, after the first backoff
    calls = yahoo.chart_calls("AAPL")
    assert [c.get("range") for c in calls] == [["1d"], ["1d"], ["1d"], None]  # 429, 429, probe ok, history
    assert calls[-1]["interval"] == ["1h"]
    assert len(bars) == 20 and (bars["symbol"] == "AAPL").all()


def test_recorded_persistent_500_is_retried_then_raised_with_yahoo_reason():
    session, yahoo = replay_session({"MSFT": [http_error("http_500_error_page.json")]})
    src = _source(session, max_retries=2, backoff_seconds=0.25)

    with pytest.raises(DataSourceError, match="failed after 3 attempts") as err:
        src.fetch(["MSFT"], "2024-10-31", "2024-11-04")

    assert err.value.symbol == "MSFT"
    assert "HTTP 500" in err.value.message and "Internal Server Error" in err.value.message
    assert src.sleeps == [0.25, 0.5]
    # Each attempt really asked Yahoo again (twice: yfinance's own cookie-strategy retry); without clearing
    # yfinance's GET cache the retries would have re-read the cached 500 without any request.
    assert len(yahoo.chart_calls("MSFT")) == 3 * 2


def test_recorded_yahoo_not_found_is_raised_with_yahoo_description_and_not_retried():
    session, yahoo = replay_session({"ZZZZ": [chart(404, "chart_v8_error_not_found.json")]})
    src = _source(session, max_retries=3)

    with pytest.raises(DataSourceError, match="not retried") as err:
        src.fetch(["ZZZZ"], "2024-10-31", "2024-11-04")

    assert err.value.symbol == "ZZZZ" and str(err.value).startswith("ZZZZ: ")
    assert "HTTP 404 Not Found: No data found, symbol may be delisted" in err.value.message
    assert src.sleeps == []
    # One attempt: yfinance's tz probe and its own cookie-strategy retry, then its quoteSummary fallback.
    assert len(yahoo.chart_calls("ZZZZ")) == 2
    assert any("/quoteSummary/ZZZZ" in r.url for r in yahoo.requests)
