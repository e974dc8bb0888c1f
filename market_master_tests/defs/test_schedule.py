"""The hourly schedule requests the partition of the bar that just closed, and skips non-trading hours."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from market_master.definitions import defs
from market_master.defs.schedules import hourly_signal_schedule

NY = ZoneInfo("America/New_York")


def _evaluate(when: dt.datetime):
    ctx = dg.build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def())
    return hourly_signal_schedule.evaluate_tick(ctx)


def test_tick_after_a_bar_close_requests_that_bar():
    result = _evaluate(dt.datetime(2024, 3, 5, 11, 35, tzinfo=NY))
    assert [r.partition_key for r in result.run_requests] == ["2024-03-05-10:30"]


def test_tick_after_the_half_hour_last_bar():
    result = _evaluate(dt.datetime(2024, 3, 5, 16, 5, tzinfo=NY))
    assert [r.partition_key for r in result.run_requests] == ["2024-03-05-15:30"]


def test_holiday_and_half_day_afternoon_are_skipped():
    assert not _evaluate(dt.datetime(2024, 7, 4, 12, 35, tzinfo=NY)).run_requests  # Independence Day
    assert not _evaluate(
        dt.datetime(2024, 11, 29, 15, 35, tzinfo=NY)
    ).run_requests  # half-day, closed at 13:00
    half_day_last = _evaluate(dt.datetime(2024, 11, 29, 13, 35, tzinfo=NY))
    assert [r.partition_key for r in half_day_last.run_requests] == ["2024-11-29-12:30"]
