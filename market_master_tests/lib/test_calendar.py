"""XNYS bar grid: holidays, half-days, DST, navigation across nights/weekends, partition keys."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from market_master.lib import calendar as cal


def _hhmm(index: pd.DatetimeIndex) -> list[str]:
    return list(index.strftime("%H:%M"))


def test_full_day_has_seven_bars_and_last_is_half_hour():
    bars = cal.trading_bars("2024-07-02", "2024-07-02")
    assert _hhmm(bars) == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    assert str(bars.tz) == cal.TZ
    assert cal.bar_end(bars[-1]) == pd.Timestamp("2024-07-02 16:00", tz=cal.TZ)
    assert cal.bar_end(bars[0]) == pd.Timestamp("2024-07-02 10:30", tz=cal.TZ)


def test_holiday_has_no_bars():
    assert len(cal.trading_bars("2024-07-04", "2024-07-04")) == 0
    assert not cal.is_trading_bar("2024-07-04 09:30")


def test_half_day_has_four_bars_ending_1230():
    bars = cal.trading_bars(dt.date(2024, 11, 29), dt.date(2024, 11, 29))
    assert _hhmm(bars) == ["09:30", "10:30", "11:30", "12:30"]
    assert cal.bar_end(bars[-1]) == pd.Timestamp("2024-11-29 13:00", tz=cal.TZ)
    assert cal.is_last_bar_of_session(bars).tolist() == [False, False, False, True]
    assert cal.bar_of_day(bars).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("week", [("2024-03-08", "2024-03-12"), ("2024-11-01", "2024-11-05")])
def test_dst_change_weeks_keep_0930_new_york(week):
    bars = cal.trading_bars(*week)
    assert set(_hhmm(bars[bars.hour == 9])) == {"09:30"}
    assert len(bars) == 21
    utc_hours = sorted(set(bars.tz_convert("UTC").hour[cal.bar_of_day(bars) == 0]))
    assert utc_hours == [13, 14]  # the UTC open moves, the NY open does not


def test_next_bar_start_over_weekend_holiday_and_half_day():
    ny = cal.TZ
    assert cal.next_bar_start("2024-07-12 15:30") == pd.Timestamp("2024-07-15 09:30", tz=ny)  # weekend
    assert cal.next_bar_start("2024-07-03 12:30") == pd.Timestamp(
        "2024-07-05 09:30", tz=ny
    )  # half-day + holiday
    assert cal.next_bar_start("2024-11-29 12:30") == pd.Timestamp("2024-12-02 09:30", tz=ny)  # half-day
    assert cal.next_bar_start("2024-07-02 10:45") == pd.Timestamp("2024-07-02 11:30", tz=ny)
    assert cal.next_bar_start(pd.Timestamp("2024-07-02 14:30", tz="UTC")) == pd.Timestamp(
        "2024-07-02 11:30", tz=ny
    )
    assert cal.previous_bar_start("2024-07-05 09:30") == pd.Timestamp("2024-07-03 12:30", tz=ny)


def test_last_completed_bar():
    ny = cal.TZ
    assert cal.last_completed_bar("2024-07-02 11:29") == pd.Timestamp("2024-07-02 09:30", tz=ny)
    assert cal.last_completed_bar("2024-07-02 11:30") == pd.Timestamp("2024-07-02 10:30", tz=ny)
    assert cal.last_completed_bar("2024-07-06 12:00") == pd.Timestamp("2024-07-05 15:30", tz=ny)
    assert cal.last_completed_bar("2024-11-29 13:00") == pd.Timestamp("2024-11-29 12:30", tz=ny)


def test_partition_key_round_trip():
    ts = pd.Timestamp("2024-03-11 09:30", tz=cal.TZ)
    key = cal.partition_key(ts)
    assert key == "2024-03-11-09:30"
    assert cal.key_to_timestamp(key) == ts
    assert cal.partition_key(ts.tz_convert("UTC")) == key
    with pytest.raises(ValueError, match="does not match"):
        cal.key_to_timestamp("2024-03-11T09:30")


def test_non_bar_timestamps_are_rejected_by_name():
    assert not cal.is_trading_bar("2024-07-02 09:00")
    with pytest.raises(ValueError, match="not trading bar starts"):
        cal.bar_of_day(pd.DatetimeIndex([pd.Timestamp("2024-07-02 09:00", tz=cal.TZ)]))
    mask = cal.trading_bar_mask(
        pd.DatetimeIndex(["2024-07-02 09:30", "2024-07-02 16:30"]).tz_localize(cal.TZ)
    )
    assert mask.tolist() == [True, False]


def test_year_counts_and_speed():
    cal.trading_bars("2024-01-01", "2024-01-02")  # warm the cache
    t0 = time.perf_counter()
    bars = cal.trading_bars("2019-01-01", "2023-12-31")
    assert time.perf_counter() - t0 < 0.05
    assert bars.is_monotonic_increasing and bars.is_unique
    days = pd.Series(bars.tz_localize(None).normalize()).value_counts()
    assert set(days.unique()) <= {4, 7}
    assert (
        len(cal.trading_bars("2023-01-01", "2023-12-31")) == 250 * 7 - 2 * 3
    )  # 250 sessions, half-days 07-03 and 11-24
    assert np.all(cal.bar_of_day(bars) <= 6)


def test_sessions_and_range_bounds():
    sessions = cal.sessions_between("2024-07-01", "2024-07-08 09:30")
    assert [d.day for d in sessions] == [1, 2, 3, 5, 8]
    lo, hi = cal.range_bounds("2024-07-01", "2024-07-02")
    assert lo == pd.Timestamp("2024-07-01", tz=cal.TZ)
    assert hi > pd.Timestamp("2024-07-02 23:59:59", tz=cal.TZ) and hi.date() == dt.date(2024, 7, 2)
    assert cal.range_bounds("2024-07-01", "2024-07-02 10:30")[1] == pd.Timestamp(
        "2024-07-02 10:30", tz=cal.TZ
    )
    with pytest.raises(ValueError, match="outside the calendar range"):
        cal.next_bar_start("1990-01-02 10:00")


def test_last_sessions_window():
    # sessions 07-01, 07-02, 07-03 (half-day), 07-05, 07-08: the 4th of July is a holiday
    assert cal.last_sessions_window("2024-07-08 09:30", 5) == (
        pd.Timestamp("2024-07-01", tz=cal.TZ),
        pd.Timestamp("2024-07-08 09:30", tz=cal.TZ),
    )
    # 09:00 on 07-08 is before its first bar: 07-08 does not count yet
    assert cal.last_sessions_window("2024-07-08 09:00", 5)[0] == pd.Timestamp("2024-06-28", tz=cal.TZ)
    start, end = cal.last_sessions_window("2024-07-08", 2)  # a bare date covers the whole day
    assert start == pd.Timestamp("2024-07-05", tz=cal.TZ) and end.date() == dt.date(2024, 7, 8)
    assert end > pd.Timestamp("2024-07-08 23:59", tz=cal.TZ)
    # fewer sessions than asked: from the calendar's first session
    assert cal.last_sessions_window("2000-01-05 12:00", 50)[0] == pd.Timestamp(cal.CALENDAR_START, tz=cal.TZ)
    with pytest.raises(ValueError, match="n_sessions"):
        cal.last_sessions_window("2024-07-08", 0)
