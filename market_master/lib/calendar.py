"""XNYS trading-hour bars (exchange_calendars), all in America/New_York.

A bar starts at the session open + k hours while the start is before the session close: 7 bars on a
full day (09:30 ... 15:30, the last one lasts 30 minutes), 4 on a half-day (close 13:00: 09:30, 10:30,
11:30, 12:30). A bar ends at min(start + 1h, session close).

Every bar of the calendar's range is built once (lazily, cached) into sorted int64 arrays, so lookups are
`searchsorted` calls: `trading_bars` over five years takes well under a millisecond.

Inputs may be `str`, `datetime.date`, `datetime.datetime` or `pd.Timestamp`. Naive values are read as
America/New_York wall time; aware values are converted. A bare date (a `date` object or a date-only
string) as the `end` of a range covers the whole day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import exchange_calendars as xc
import numpy as np
import pandas as pd

TZ = "America/New_York"
EXCHANGE = "XNYS"
CALENDAR_START = "2000-01-03"
PARTITION_FMT = "%Y-%m-%d-%H:%M"
BAR_NS = 3_600 * 1_000_000_000
MAX_BARS_PER_SESSION = 7

TimeLike = str | dt.date | dt.datetime | pd.Timestamp


@dataclass(frozen=True)
class _BarTable:
    """All bars of the calendar range as sorted int64 UTC nanoseconds plus per-bar attributes."""

    starts: np.ndarray
    ends: np.ndarray
    bar_of_day: np.ndarray
    is_last: np.ndarray
    session_close: np.ndarray


@lru_cache(maxsize=1)
def exchange_calendar() -> xc.ExchangeCalendar:
    """The cached XNYS calendar (first call costs about half a second)."""
    return xc.get_calendar(EXCHANGE, start=CALENDAR_START)


@lru_cache(maxsize=1)
def _table() -> _BarTable:
    schedule = exchange_calendar().schedule
    opens = pd.DatetimeIndex(schedule["open"]).tz_convert("UTC").as_unit("ns").asi8
    closes = pd.DatetimeIndex(schedule["close"]).tz_convert("UTC").as_unit("ns").asi8
    k = np.arange(MAX_BARS_PER_SESSION, dtype=np.int64)
    starts = opens[:, None] + k[None, :] * BAR_NS
    valid = starts < closes[:, None]
    close_grid = np.broadcast_to(closes[:, None], starts.shape)
    ends = np.minimum(starts + BAR_NS, close_grid)
    n_per_session = valid.sum(axis=1)
    is_last = k[None, :] == (n_per_session[:, None] - 1)
    bar_k = np.broadcast_to(k[None, :], starts.shape)
    return _BarTable(
        starts=starts[valid],
        ends=ends[valid],
        bar_of_day=bar_k[valid].astype(np.int64),
        is_last=is_last[valid],
        session_close=close_grid[valid],
    )


def _is_date_only(value: TimeLike) -> bool:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return True
    return isinstance(value, str) and len(value.strip()) <= 10


def to_timestamp(value: TimeLike) -> pd.Timestamp:
    """Any accepted time-like value as a tz-aware America/New_York Timestamp (naive = NY wall time)."""
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"not a timestamp: {value!r}")
    if ts.tzinfo is None:
        return ts.tz_localize(TZ)
    return ts.tz_convert(TZ)


def _to_ns(value: TimeLike, end_of_day: bool = False) -> int:
    ts = to_timestamp(value)
    if end_of_day and _is_date_only(value):
        ts = ts + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return int(ts.value)


def _index_ns(index: pd.DatetimeIndex | pd.Series | np.ndarray | list) -> np.ndarray:
    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        idx = idx.tz_localize(TZ)
    return idx.tz_convert("UTC").as_unit("ns").asi8


def _from_ns(values: np.ndarray) -> pd.DatetimeIndex:
    return (
        pd.DatetimeIndex(np.asarray(values, dtype=np.int64).view("M8[ns]")).tz_localize("UTC").tz_convert(TZ)
    )


def _check_in_range(ns: int) -> None:
    table = _table()
    if ns < table.starts[0] or ns > table.ends[-1]:
        raise ValueError(
            f"{_from_ns(np.array([ns]))[0]} is outside the calendar range "
            f"{_from_ns(table.starts[:1])[0]} .. {_from_ns(table.ends[-1:])[0]}"
        )


def range_bounds(start: TimeLike, end: TimeLike) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Inclusive [start, end] as New York Timestamps; a date-only `end` is extended to the end of its day."""
    return to_timestamp(start), _from_ns(np.array([_to_ns(end, end_of_day=True)]))[0]


def trading_bars(start: TimeLike, end: TimeLike) -> pd.DatetimeIndex:
    """Bar starts b with start <= b <= end (a date-only `end` covers that whole day), tz New York."""
    table = _table()
    lo = np.searchsorted(table.starts, _to_ns(start), side="left")
    hi = np.searchsorted(table.starts, _to_ns(end, end_of_day=True), side="right")
    return _from_ns(table.starts[lo:hi]).rename("timestamp")


def trading_bar_mask(index: pd.DatetimeIndex | pd.Series | np.ndarray | list) -> np.ndarray:
    """Vectorised `is_trading_bar`: a bool array, True where the timestamp is exactly a bar start."""
    ns = _index_ns(index)
    table = _table()
    pos = np.searchsorted(table.starts, ns).clip(0, len(table.starts) - 1)
    return table.starts[pos] == ns


def is_trading_bar(ts: TimeLike) -> bool:
    """True if `ts` is exactly the start of a trading bar."""
    return bool(trading_bar_mask([to_timestamp(ts)])[0])


def _bar_start_near(ts: TimeLike, keys: np.ndarray, side: str, offset: int, what: str) -> pd.Timestamp:
    """``starts[searchsorted(keys, ts, side) + offset]``; ValueError "no <what> <ts>" outside the bars."""
    ns = _to_ns(ts)
    _check_in_range(ns)
    table = _table()
    pos = int(np.searchsorted(keys, ns, side=side)) + offset
    if not 0 <= pos < len(table.starts):
        raise ValueError(f"no {what} {to_timestamp(ts)} in the calendar range")
    return _from_ns(table.starts[pos : pos + 1])[0]


def next_bar_start(ts: TimeLike) -> pd.Timestamp:
    """The first bar start strictly after `ts` (skips nights, weekends, holidays, half-day afternoons)."""
    return _bar_start_near(ts, _table().starts, "right", 0, "trading bar after")


def previous_bar_start(ts: TimeLike) -> pd.Timestamp:
    """The last bar start strictly before `ts`."""
    return _bar_start_near(ts, _table().starts, "left", -1, "trading bar before")


def _positions(index: pd.DatetimeIndex | pd.Series | np.ndarray | list) -> np.ndarray:
    ns = _index_ns(index)
    table = _table()
    pos = np.searchsorted(table.starts, ns).clip(0, len(table.starts) - 1)
    bad = table.starts[pos] != ns
    if bad.any():
        offenders = _from_ns(ns[bad][:5])
        raise ValueError(f"{int(bad.sum())} timestamp(s) are not trading bar starts, e.g. {list(offenders)}")
    return pos


def bar_end(ts: TimeLike) -> pd.Timestamp:
    """End of the bar starting at `ts`: min(start + 1h, session close). Raises if `ts` is not a bar start."""
    pos = _positions([to_timestamp(ts)])
    return _from_ns(_table().ends[pos])[0]


def bar_ends(index: pd.DatetimeIndex | pd.Series | np.ndarray | list) -> pd.DatetimeIndex:
    """Vectorised `bar_end`."""
    return _from_ns(_table().ends[_positions(index)])


def bar_of_day(index: pd.DatetimeIndex | pd.Series | np.ndarray | list) -> np.ndarray:
    """Bar number within its session (0 = 09:30 ... 6 = 15:30). Raises on non-bar timestamps."""
    return _table().bar_of_day[_positions(index)].copy()


def is_last_bar_of_session(index: pd.DatetimeIndex | pd.Series | np.ndarray | list) -> np.ndarray:
    """True for the session's last bar (15:30 on full days, 12:30 on half-days)."""
    return _table().is_last[_positions(index)].copy()


def partition_key(ts: TimeLike) -> str:
    """Partition key of a bar start: `%Y-%m-%d-%H:%M` in New York time."""
    return to_timestamp(ts).strftime(PARTITION_FMT)


def key_to_timestamp(key: str) -> pd.Timestamp:
    """Inverse of `partition_key`: the New York bar-start Timestamp of a key."""
    try:
        naive = dt.datetime.strptime(key, PARTITION_FMT)
    except ValueError as exc:
        raise ValueError(f"partition key {key!r} does not match {PARTITION_FMT!r}") from exc
    return pd.Timestamp(naive).tz_localize(TZ)


def last_completed_bar(now: TimeLike) -> pd.Timestamp:
    """Start of the latest bar whose end <= `now`."""
    return _bar_start_near(now, _table().ends, "right", -1, "bar completed by")


def sessions_between(start: TimeLike, end: TimeLike) -> pd.DatetimeIndex:
    """Session dates (naive, midnight) with at least one bar in [start, end]."""
    return pd.DatetimeIndex(trading_bars(start, end).tz_localize(None).normalize().unique())


@lru_cache(maxsize=1)
def _session_first_bars() -> np.ndarray:
    """Positions (in the bar table) of every session's first bar."""
    return np.flatnonzero(_table().bar_of_day == 0)


def last_sessions_window(end: TimeLike, n_sessions: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(start, end) covering the last `n_sessions` sessions that have a bar starting at or before `end`.

    `start` is midnight (New York) of the first of those sessions; `end` is returned as a New York
    Timestamp (a date-only `end` covers that whole day, as in `range_bounds`). With fewer sessions in the
    calendar the window starts at its first session. Raises ValueError for `n_sessions` < 1 or no session
    up to `end`. The one "last N sessions" window of the pipeline, the CLI and the gates.
    """
    if n_sessions < 1:
        raise ValueError(f"n_sessions must be >= 1, got {n_sessions}")
    table = _table()
    n_bars = int(np.searchsorted(table.starts, _to_ns(end, end_of_day=True), side="right"))
    firsts = _session_first_bars()
    n_started = int(np.searchsorted(firsts, n_bars, side="left"))  # sessions whose first bar <= end
    if n_started == 0:
        raise ValueError(f"no trading session up to {to_timestamp(end)} in the calendar range")
    first = _from_ns(table.starts[firsts[max(0, n_started - n_sessions)]][None])[0]
    return range_bounds(first.normalize(), end)
