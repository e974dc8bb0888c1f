"""When things run: the schedules' cron strings (the one home; defs/schedules.py builds its Dagster
schedules from them) and their ticks on the XNYS calendar, for code that must not import Dagster (the
API answers "when is the next retrain?" and "is this signal stale?" from here).

The crons are plain `minute hour * * day-of-week` strings in New York time. `cron_ticks_after` expands
them day by day (numbers, ranges `a-b`, lists `a,b`, steps `*/n`; day-of-month and month must be `*`);
the tests check it against Dagster's own `cron_string_iterator` over a year of ticks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from functools import lru_cache

import pandas as pd

from market_master.lib import calendar

# Five minutes after each bar closes (bars close at 10:30 ... 15:30 and 16:00 on full days).
HOURLY_SIGNAL_CRONS: tuple[str, ...] = ("35 10-15 * * 1-5", "5 16 * * 1-5")
HOURLY_SIGNAL_SCHEDULE = "hourly_signal_schedule"
RETRAIN_CRON = "30 17 * * 1-5"
RETRAIN_SCHEDULE = "daily_retrain_schedule"
MONITORING_CRON = "0 18 * * 1-5"
MONITORING_SCHEDULE = "daily_monitoring_schedule"
# A tick processes the bar that completed within this look-back (else: holiday / half-day afternoon).
SIGNAL_TICK_LOOKBACK = pd.Timedelta(minutes=60)
NO_GRACE = pd.Timedelta(0)
# time allowed for the hourly run itself after its tick before a signal counts as stale (API default,
# MM_API_SIGNAL_GRACE_MINUTES; `market-master status` uses it too)
SIGNAL_GRACE_MINUTES = 10.0
_MAX_DAYS = 40  # far more than any XNYS closure (the longest since 2000: 4 sessions after 9/11)


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part == "*":
            lo, hi = low, high
        elif "-" in part:
            lo, hi = (int(x) for x in part.split("-", 1))
        else:
            lo = hi = int(part)
        if not (low <= lo <= hi <= high) or step < 1:
            raise ValueError(f"cron field {text!r} is outside {low}..{high}")
        values.update(range(lo, hi + 1, step))
    return frozenset(values)


@lru_cache(maxsize=32)
def _parse(cron: str) -> tuple[tuple[tuple[int, int], ...], frozenset[int]]:
    """((hour, minute) pairs sorted, cron days of week with Sunday = 0)."""
    fields = cron.split()
    if len(fields) != 5 or fields[2] != "*" or fields[3] != "*":
        raise ValueError(f"only 'minute hour * * day-of-week' crons are supported, got {cron!r}")
    minutes, hours = _field(fields[0], 0, 59), _field(fields[1], 0, 23)
    days = frozenset(d % 7 for d in _field(fields[4], 0, 7))
    return tuple(sorted((h, m) for h in hours for m in minutes)), days


def _cron_weekday(day: dt.date) -> int:
    return (day.weekday() + 1) % 7  # Python Monday = 0 -> cron Monday = 1, Sunday = 0


def _is_session(day: dt.date) -> bool:
    return len(calendar.sessions_between(day, day)) > 0


def _day_ticks(crons: Sequence[str], day: dt.date, sessions_only: bool) -> list[pd.Timestamp]:
    if sessions_only and not _is_session(day):
        return []
    ticks = set()
    for cron in crons:
        times, days = _parse(cron)
        if _cron_weekday(day) in days:
            ticks.update(times)
    return [
        pd.Timestamp(dt.datetime(day.year, day.month, day.day, h, m)).tz_localize(calendar.TZ)
        for h, m in sorted(ticks)
    ]


def cron_ticks_after(
    crons: str | Sequence[str], after: calendar.TimeLike, sessions_only: bool = False
) -> Iterator[pd.Timestamp]:
    """Ticks (New York) strictly after `after`, in order; `sessions_only`: on XNYS session days only."""
    crons = (crons,) if isinstance(crons, str) else tuple(crons)
    start = calendar.to_timestamp(after)
    day = start.date()
    while True:
        for tick in _day_ticks(crons, day, sessions_only):
            if tick > start:
                yield tick
        day += dt.timedelta(days=1)


def cron_ticks_before(
    crons: str | Sequence[str], before: calendar.TimeLike, sessions_only: bool = False
) -> Iterator[pd.Timestamp]:
    """Ticks (New York) at or before `before`, newest first, over the last `_MAX_DAYS` days."""
    crons = (crons,) if isinstance(crons, str) else tuple(crons)
    end = calendar.to_timestamp(before)
    day = end.date()
    for _ in range(_MAX_DAYS):
        for tick in reversed(_day_ticks(crons, day, sessions_only)):
            if tick <= end:
                yield tick
        day -= dt.timedelta(days=1)


def next_retrain(after: calendar.TimeLike) -> pd.Timestamp:
    """The next tick of the retrain schedule on an XNYS session day (a retrain on a holiday would see no
    new bar, so it is not the one that can change the verdict)."""
    return next(cron_ticks_after(RETRAIN_CRON, after, sessions_only=True))


def signal_tick_bar(tick: calendar.TimeLike) -> pd.Timestamp | None:
    """The bar the hourly signal schedule processes at `tick`: the last completed bar, if it completed in
    the last hour; None on holidays, weekends and half-day afternoons (the schedule skips those ticks)."""
    now = calendar.to_timestamp(tick)
    bar = calendar.last_completed_bar(now)
    if calendar.bar_end(bar) < now - SIGNAL_TICK_LOOKBACK:
        return None
    return bar


def expected_signal_bar(now: calendar.TimeLike) -> pd.Timestamp | None:
    """The newest bar the hourly schedule should have produced a signal for by `now` (the bar of its
    latest tick that requested a run), None when no tick in the look-back did."""
    for tick in cron_ticks_before(HOURLY_SIGNAL_CRONS, now):
        bar = signal_tick_bar(tick)
        if bar is not None:
            return bar
    return None


def describe_retrain(at: pd.Timestamp) -> str:
    """'2026-12-07 17:30 EST (daily_retrain_schedule)'."""
    return f"{at:%Y-%m-%d %H:%M %Z} ({RETRAIN_SCHEDULE}, cron '{RETRAIN_CRON}' New York on XNYS sessions)"


MINUTE_NS = 60_000_000_000


@lru_cache(maxsize=256)
def _expected_at_minute(minute_ns: int) -> int | None:
    bar = expected_signal_bar(pd.Timestamp(minute_ns, tz="UTC"))
    return None if bar is None else int(bar.value)


@lru_cache(maxsize=256)
def _bar_close_ns(hour_ns: int) -> int:
    hour = pd.Timestamp(hour_ns, tz="UTC")
    try:
        return int(calendar.bar_end(hour).value)
    except ValueError:  # not a bar start (should not happen for stored signals): a full hour
        return hour_ns + 60 * MINUTE_NS


def signal_freshness_ns(hour_ns: int, now_ns: int, grace_ns: int = 0) -> tuple[bool, float, int | None]:
    """`signal_freshness` on UTC epoch nanoseconds (the API's per-request path: integer arithmetic and
    two cache lookups, the calendar work is cached per minute and per signal hour)."""
    expected = _expected_at_minute((now_ns - grace_ns) // MINUTE_NS * MINUTE_NS)
    age = round(max(0.0, (now_ns - _bar_close_ns(hour_ns)) / MINUTE_NS), 1)
    return expected is not None and hour_ns < expected, age, expected


def signal_freshness(
    hour: calendar.TimeLike, now: calendar.TimeLike, grace: pd.Timedelta = NO_GRACE
) -> tuple[bool, float, pd.Timestamp | None]:
    """(stale, age in minutes, expected hour) of a signal computed at bar `hour`.

    Expected hour: the bar the hourly schedule's latest tick at or before `now - grace` processed (its
    cron delay after the bar close is in HOURLY_SIGNAL_CRONS; `grace` allows for the run itself), judged
    to the minute (ticks fall on whole minutes). The signal is stale when it is older than that bar.
    Age: minutes since the signal's bar closed."""
    stale, age, expected = signal_freshness_ns(
        calendar.to_timestamp(hour).value, calendar.to_timestamp(now).value, grace.value
    )
    return stale, age, None if expected is None else pd.Timestamp(expected, tz="UTC").tz_convert(calendar.TZ)
