"""Yahoo Finance 1-hour bars through `yfinance.download`.

Yahoo serves 1-hour bars for the last 730 days only: earlier starts are clamped (with a logged warning).
Ranges are fetched per symbol in chunks, retried with exponential backoff on errors, restricted to
regular-hours calendar bars (pre/post-market and in-progress bars are left out and counted in the log),
converted to America/New_York, and returned as canonical bars. `Close` is split-adjusted but not
dividend-adjusted (`auto_adjust=False`; `Adj Close` is ignored), like the real-dev files.

Yahoo's null bars (an hour with no trades: null open/high/low/close/volume) are dropped by yfinance
(`keepna=False`), so such an hour is absent from the result, never a NaN row; the bars completeness
check reports it.

Two test seams: `download=` replaces `yf.download` with a function returning a frame, and `session=`
(a `requests`/`curl_cffi` Session) is handed to `yf.download(session=...)`, so a session that replays
recorded Yahoo responses runs yfinance's own parsing without network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from market_master.lib.bars import BAR_COLUMNS, VALUE_COLUMNS, normalize_bars
from market_master.lib.calendar import TZ, TimeLike, bar_ends, range_bounds, to_timestamp, trading_bar_mask
from market_master.lib.sources import DataSourceError

log = logging.getLogger(__name__)

MAX_HISTORY_DAYS = 730
INTERVAL = "1h"

DownloadFn = Callable[..., pd.DataFrame | None]


def _default_download(**kwargs: Any) -> pd.DataFrame | None:
    import yfinance as yf

    return yf.download(**kwargs)


class YFinanceSource:
    """1-hour bars from Yahoo Finance (`period` or start/end), per symbol, with retries."""

    name = "yfinance"

    def __init__(
        self,
        download: DownloadFn | None = None,
        max_retries: int = 3,
        backoff_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        chunk_days: int = 180,
        clock: Callable[[], pd.Timestamp] | None = None,
        session: object | None = None,
    ) -> None:
        self.download = download or _default_download
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
            raw = self._download_with_retries(symbol, kwargs)
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

    def _download_with_retries(self, symbol: str, kwargs: dict[str, Any]) -> pd.DataFrame:
        call = dict(
            tickers=symbol,
            interval=INTERVAL,
            auto_adjust=False,
            prepost=False,
            progress=False,
            threads=False,
            multi_level_index=True,
            **kwargs,
        )
        if self.session is not None:
            call["session"] = self.session
        last_error: Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                raw = self.download(**call)
            except Exception as exc:  # yfinance surfaces transport and rate-limit failures as exceptions
                last_error = exc
                if attempt < self.max_retries:
                    delay = self.backoff_seconds * 2**attempt
                    log.warning(
                        "yfinance %s attempt %d failed (%s); retrying in %.1fs",
                        symbol,
                        attempt + 1,
                        exc,
                        delay,
                    )
                    self.sleep(delay)
                continue
            if raw is None or raw.empty:
                return pd.DataFrame()
            return raw
        raise DataSourceError(
            symbol, f"yfinance download failed after {self.max_retries + 1} attempts: {last_error}"
        ) from last_error


def to_canonical(raw: pd.DataFrame | None, symbol: str) -> pd.DataFrame:
    """A `yf.download` frame (flat or MultiIndex columns, either level order) as canonical bars."""
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
