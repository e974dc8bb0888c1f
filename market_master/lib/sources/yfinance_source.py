"""Yahoo Finance 1-hour bars, one symbol at a time through `yf.Ticker(symbol, session=...).history`.

Yahoo serves 1-hour bars for the last 730 days only: earlier starts are clamped (with a logged warning).
Ranges are fetched per symbol in chunks, restricted to regular-hours calendar bars (pre/post-market and
in-progress bars are left out and counted in the log), converted to America/New_York, and returned as
canonical bars. `Close` is split-adjusted but not dividend-adjusted (`auto_adjust=False`; `Adj Close` is
ignored), like the real-dev files. Yahoo's null bars are dropped by yfinance (`keepna=False`), so such an
hour is absent from the result, never a NaN row; the bars completeness check reports it.

Failures. yfinance 1.7 hides most HTTP failures: `yf.download` turns every per-ticker exception into an
empty frame, `history` keeps only 429 as its own exception (`YFRateLimitError`), a 5xx HTML page surfaces
as a JSON decode error, and a 404 on its timezone probe turns into a `quoteSummary` error or "possibly
delisted". So each attempt records the HTTP status and Yahoo's error text of every `/v8/finance/chart/`
response for the symbol at the session (`ChartRecorder`), and the attempt is judged on the last one:
transport errors, HTTP 429 and 5xx are transient (retried with exponential backoff; yfinance's in-process
GET cache is cleared first, or the retry would replay the cached failure), any other 4xx (Yahoo's
"Not Found", "Bad Request") is permanent and raised at once. Every `DataSourceError` names the symbol and
carries Yahoo's answer and yfinance's exception.

Test seams: `session=` (a `requests` or `curl_cffi` Session) is handed to yfinance, so a session that
replays recorded Yahoo responses runs yfinance's own code without network; `history=` replaces the
per-symbol yfinance call (`yahoo_history`) with a function `(symbol, session, **kwargs) -> frame`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from market_master.lib.bars import BAR_COLUMNS, VALUE_COLUMNS, normalize_bars
from market_master.lib.calendar import TZ, TimeLike, bar_ends, range_bounds, to_timestamp, trading_bar_mask
from market_master.lib.sources import DataSourceError

log = logging.getLogger(__name__)

MAX_HISTORY_DAYS = 730
INTERVAL = "1h"
CHART_PATH = "/v8/finance/chart/"
REASON_CHARS = 240

HistoryFn = Callable[..., pd.DataFrame | None]


def yahoo_history(symbol: str, session: object | None, **kwargs: Any) -> pd.DataFrame:
    """yfinance's per-symbol price history: `yf.Ticker(symbol, session=session).history(**kwargs)`."""
    import yfinance as yf

    return yf.Ticker(symbol, session=session).history(**kwargs)


def default_session() -> object:
    """The session yfinance would build itself: curl_cffi impersonating Chrome, else plain requests."""
    try:
        from curl_cffi import requests as curl_requests
    except ImportError:  # yfinance falls back to requests too
        import requests

        return requests.Session()
    return curl_requests.Session(impersonate="chrome")


def forget_cached_responses() -> None:
    """Clear yfinance's in-process GET cache (`YfData.cache_get`, an lru_cache keyed by URL+params).

    yfinance fetches its timezone probe and past-range charts through it, and it keeps a returned 5xx
    response, so without this a retry would re-read the cached failure instead of asking Yahoo again.
    """
    from yfinance import data as yf_data

    yf_data.YfData.cache_get.cache_clear()


def transient_exception_types() -> tuple[type[BaseException], ...]:
    """Exception classes meaning "try again later": rate limit, timeouts, dropped connections."""
    import requests
    from yfinance.exceptions import YFRateLimitError

    types: list[type[BaseException]] = [
        YFRateLimitError,
        TimeoutError,
        ConnectionError,
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
    ]
    try:
        from curl_cffi.requests import exceptions as curl_exc
    except ImportError:
        return tuple(types)
    return (*types, curl_exc.ConnectionError, curl_exc.Timeout, curl_exc.ChunkedEncodingError)


@dataclass(frozen=True)
class ChartOutcome:
    """One Yahoo chart response (or transport failure) seen for a symbol: HTTP status and what it said."""

    status: int | None  # None: no response (timeout, connection error)
    reason: str

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 400

    @property
    def transient(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


def describe_response(response: Any) -> str:
    """`HTTP <status> <Yahoo error code>: <description>` from a chart response (JSON error or page text)."""
    status = int(response.status_code)
    text = response.text or ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("chart", "finance"):
            error = (body.get(key) or {}).get("error") if isinstance(body.get(key), dict) else None
            if isinstance(error, dict):
                return f"HTTP {status} {error.get('code', '')}: {error.get('description', '')}".strip()
    words = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    return f"HTTP {status}: {words[:REASON_CHARS]}" if words else f"HTTP {status}"


class ChartRecorder:
    """Records the outcome of every `/v8/finance/chart/<symbol>` request made through `session`.

    Works for requests and curl_cffi sessions alike (both route `get` through `session.request`), by
    wrapping the session's `request` for the duration of the `with` block; a None session records nothing.
    """

    def __init__(self, session: object | None, symbol: str) -> None:
        self.session, self.symbol = session, symbol
        self.outcomes: list[ChartOutcome] = []
        self._had_own: bool = False
        self._own: Any = None

    def _is_chart(self, url: object) -> bool:
        return unquote(urlsplit(str(url)).path) == CHART_PATH + self.symbol

    def __enter__(self) -> ChartRecorder:
        if self.session is None:
            return self
        self._had_own = "request" in vars(self.session)
        self._own = vars(self.session).get("request")
        send = self.session.request  # type: ignore[attr-defined]

        def request(*args: Any, **kwargs: Any) -> Any:
            url = kwargs.get("url", args[1] if len(args) > 1 else "")
            try:
                response = send(*args, **kwargs)
            except Exception as exc:
                if self._is_chart(url):
                    self.outcomes.append(ChartOutcome(None, f"{type(exc).__name__}: {exc}"))
                raise
            if self._is_chart(url):
                self.outcomes.append(ChartOutcome(int(response.status_code), describe_response(response)))
            return response

        self.session.request = request  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.session is None:
            return
        if self._had_own:
            self.session.request = self._own  # type: ignore[attr-defined]
        else:
            del self.session.request  # type: ignore[attr-defined]

    @property
    def last(self) -> ChartOutcome | None:
        return self.outcomes[-1] if self.outcomes else None


def judge_attempt(error: Exception | None, outcomes: Sequence[ChartOutcome]) -> tuple[bool, str] | None:
    """None if the attempt succeeded, else (transient?, reason) from Yahoo's last chart answer and yfinance."""
    last = outcomes[-1] if outcomes else None
    raised = f"yfinance raised {type(error).__name__}: {str(error)[:REASON_CHARS]}" if error else ""
    if last is not None and last.failed:
        where = "no response" if last.status is None else "Yahoo answered"
        reason = f"{where} {last.reason}" + (f" ({raised})" if raised else "")
        return last.transient, reason
    if error is not None:
        return isinstance(error, transient_exception_types()), raised
    return None


class YFinanceSource:
    """1-hour bars from Yahoo Finance (`period` or start/end), per symbol, with retries on transient errors."""

    name = "yfinance"

    def __init__(
        self,
        history: HistoryFn | None = None,
        max_retries: int = 3,
        backoff_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        chunk_days: int = 180,
        clock: Callable[[], pd.Timestamp] | None = None,
        session: object | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.history = history or yahoo_history
        self.session = session
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.chunk_days = chunk_days
        self.clock = clock or (lambda: pd.Timestamp.now(tz=TZ))

    def fetch(
        self,
        symbols: Sequence[str],
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        period: str | None = None,
    ) -> pd.DataFrame:
        """Canonical completed regular-hours bars of `symbols` in [start, end], or over `period` (e.g. "60d")."""
        if not symbols:
            raise ValueError("no symbols requested")
        now = to_timestamp(self.clock())
        if period is None:
            if start is None:
                raise ValueError("give either start (and optionally end) or period")
            lo, hi = range_bounds(start, end if end is not None else now)
            lo = self.clamp_start(lo, now)
            windows = self._chunks(lo, min(hi, now))
        else:
            lo, hi = None, now
            windows: list[tuple[pd.Timestamp, pd.Timestamp] | None] = [None]
        if self.session is None and self.history is yahoo_history:
            self.session = default_session()  # one session (cookie, crumb) for all symbols
        frames = [self._fetch_symbol(str(s), windows, period, lo, hi, now) for s in symbols]
        return normalize_bars(pd.concat(frames, ignore_index=True))

    def clamp_start(self, start: pd.Timestamp, now: pd.Timestamp) -> pd.Timestamp:
        """Move `start` inside Yahoo's 730-day window for 1-hour bars (warning when it moves)."""
        earliest = (now - pd.Timedelta(days=MAX_HISTORY_DAYS - 1)).normalize()
        if start < earliest:
            log.warning(
                "yfinance serves 1h bars for the last %d days only: start %s clamped to %s",
                MAX_HISTORY_DAYS,
                start,
                earliest,
            )
            return earliest
        return start

    def _chunks(self, lo: pd.Timestamp, hi: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        if hi < lo:
            raise ValueError(f"end {hi} is before start {lo}")
        step = pd.Timedelta(days=self.chunk_days)
        edges = [lo]
        while edges[-1] + step <= hi:
            edges.append(edges[-1] + step)
        edges.append(hi + pd.Timedelta(1, "ns"))
        return list(zip(edges[:-1], edges[1:], strict=True))

    def _fetch_symbol(
        self,
        symbol: str,
        windows: list[tuple[pd.Timestamp, pd.Timestamp] | None],
        period: str | None,
        lo: pd.Timestamp | None,
        hi: pd.Timestamp,
        now: pd.Timestamp,
    ) -> pd.DataFrame:
        parts = []
        for window in windows:
            if window is None:
                kwargs = {"period": period}
            else:
                # yfinance takes an exclusive end; ask for whole days and cut to the window afterwards.
                kwargs = {
                    "start": window[0].strftime("%Y-%m-%d"),
                    "end": (window[1] - pd.Timedelta(1, "ns") + pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
                }
            raw = self._history_with_retries(symbol, kwargs)
            bars = to_canonical(raw, symbol)
            if window is not None:
                bars = bars[(bars["timestamp"] >= window[0]) & (bars["timestamp"] < window[1])]
            parts.append(bars)
        bars = pd.concat(parts, ignore_index=True)
        bars = regular_hours(bars, now, symbol)
        if lo is not None:
            bars = bars[(bars["timestamp"] >= lo) & (bars["timestamp"] <= hi)]
        if bars.empty:
            what = f"period={period}" if period else f"{lo} .. {hi}"
            raise DataSourceError(symbol, f"yfinance returned no regular-hours 1h bars for {what}")
        return bars

    def _history_with_retries(self, symbol: str, kwargs: dict[str, Any]) -> pd.DataFrame:
        call = dict(
            interval=INTERVAL, auto_adjust=False, prepost=False, actions=False, keepna=False, **kwargs
        )
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            error: Exception | None = None
            raw: pd.DataFrame | None = None
            with ChartRecorder(self.session, symbol) as recorder:
                try:
                    raw = self.history(symbol, self.session, **call)
                except Exception as exc:  # judged below: transient -> retry, permanent -> DataSourceError
                    error = exc
            verdict = judge_attempt(error, recorder.outcomes)
            if verdict is None:
                return pd.DataFrame() if raw is None or raw.empty else raw
            transient, reason = verdict
            if not transient:
                raise DataSourceError(
                    symbol, f"yfinance {INTERVAL} history failed (not retried): {reason}"
                ) from error
            if attempt + 1 < attempts:
                delay = self.backoff_seconds * 2**attempt
                log.warning(
                    "yfinance %s attempt %d/%d failed (%s); retrying in %.1fs",
                    symbol,
                    attempt + 1,
                    attempts,
                    reason,
                    delay,
                )
                if self.history is yahoo_history:
                    forget_cached_responses()
                self.sleep(delay)
        raise DataSourceError(
            symbol, f"yfinance {INTERVAL} history failed after {attempts} attempts: {reason}", transient=True
        ) from error


def to_canonical(raw: pd.DataFrame | None, symbol: str) -> pd.DataFrame:
    """A yfinance frame (flat `history` columns, or `download`'s MultiIndex in either level order) as canonical bars."""
    if raw is None or raw.empty:
        return normalize_bars(pd.DataFrame(columns=BAR_COLUMNS))
    frame = raw
    if isinstance(frame.columns, pd.MultiIndex):
        ticker_level = next(
            (i for i in range(frame.columns.nlevels) if symbol in frame.columns.get_level_values(i)), None
        )
        if ticker_level is None:
            raise DataSourceError(
                symbol, f"yfinance frame has no columns for {symbol}: {list(frame.columns)}"
            )
        frame = frame.xs(symbol, axis=1, level=ticker_level)
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in VALUE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataSourceError(
            symbol, f"yfinance frame lacks column(s) {missing}; found {list(frame.columns)}"
        )
    index = pd.DatetimeIndex(frame.index)
    index = index.tz_localize(TZ) if index.tz is None else index.tz_convert(TZ)
    out = pd.DataFrame(
        {"symbol": symbol, "timestamp": index, **{c: frame[c].to_numpy() for c in VALUE_COLUMNS}}
    )
    return normalize_bars(out)


def regular_hours(bars: pd.DataFrame, now: pd.Timestamp, symbol: str) -> pd.DataFrame:
    """Keep calendar trading bars that have completed by `now`; log how many rows were left out."""
    if bars.empty:
        return bars
    on_grid = trading_bar_mask(pd.DatetimeIndex(bars["timestamp"]))
    done = on_grid.copy()
    if on_grid.any():
        done[on_grid] = bar_ends(pd.DatetimeIndex(bars["timestamp"][on_grid])) <= now
    n_off, n_open = int((~on_grid).sum()), int((on_grid & ~done).sum())
    if n_off or n_open:
        log.info(
            "%s: left out %d pre/post-market or off-calendar row(s) and %d in-progress bar(s)",
            symbol,
            n_off,
            n_open,
        )
    return bars[done].reset_index(drop=True)
