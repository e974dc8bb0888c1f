"""Schedule ticks on the XNYS calendar: the same ticks as Dagster's cron iterator, holidays skipped for the
next retrain, and the staleness rule of GET /signal/index mirroring the hourly schedule."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from dagster._utils.schedules import cron_string_iterator

from market_master.defs.schedules import hourly_signal_schedule, monitoring_schedule, retrain_schedule
from market_master.lib import cadence, calendar


def _ny(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=calendar.TZ)


def test_the_schedules_are_built_from_the_cadence_crons():
    assert retrain_schedule.cron_schedule == cadence.RETRAIN_CRON
    assert retrain_schedule.name == cadence.RETRAIN_SCHEDULE
    assert list(hourly_signal_schedule.cron_schedule) == list(cadence.HOURLY_SIGNAL_CRONS)
    assert monitoring_schedule.cron_schedule == cadence.MONITORING_CRON
    assert retrain_schedule.execution_timezone == calendar.TZ


@pytest.mark.parametrize("cron", [cadence.RETRAIN_CRON, *cadence.HOURLY_SIGNAL_CRONS, "*/20 9 * * 0,6"])
def test_ticks_equal_dagsters_cron_iterator_over_a_year_with_dst(cron):
    start = _ny("2024-01-01 00:00")
    dagster_ticks = cron_string_iterator(start.timestamp(), cron, calendar.TZ)
    ours = cadence.cron_ticks_after(cron, start - pd.Timedelta(seconds=1))
    n = 400
    expected = [pd.Timestamp(t).tz_convert(calendar.TZ) for t in itertools.islice(dagster_ticks, n)]
    assert list(itertools.islice(ours, n)) == expected


def test_next_retrain_skips_weekends_and_holidays():
    assert cadence.next_retrain(_ny("2024-07-03 18:00")) == _ny("2024-07-05 17:30")  # July 4th closed
    assert cadence.next_retrain(_ny("2024-03-08 18:00")) == _ny("2024-03-11 17:30")  # Friday -> Monday
    assert cadence.next_retrain(_ny("2024-03-11 17:29")) == _ny("2024-03-11 17:30")
    assert cadence.next_retrain(pd.Timestamp("2024-03-11 21:30", tz="UTC")) == _ny("2024-03-12 17:30")


def test_unsupported_cron_is_refused():
    with pytest.raises(ValueError, match="day-of-week"):
        list(itertools.islice(cadence.cron_ticks_after("0 0 1 * *", _ny("2024-01-01")), 1))


@pytest.mark.parametrize(
    ("now", "bar"),
    [
        ("2024-03-05 11:36", "2024-03-05 10:30"),  # the 11:35 tick ran the 10:30 bar
        ("2024-03-05 11:34", "2024-03-05 09:30"),  # not yet: the 10:35 tick's bar
        ("2024-03-05 09:00", "2024-03-04 15:30"),  # before the open: yesterday's last bar (16:05 tick)
        ("2024-11-29 13:10", "2024-11-29 11:30"),  # half-day: the 12:30 bar closes 13:00, ticked 13:35
        ("2024-11-29 15:40", "2024-11-29 12:30"),  # half-day afternoon ticks are skipped
        ("2024-07-04 12:00", "2024-07-03 12:30"),  # holiday after the July 3rd half-day
        ("2024-03-09 12:00", "2024-03-08 15:30"),  # Saturday
    ],
)
def test_expected_signal_bar_follows_the_hourly_schedule(now, bar):
    assert cadence.expected_signal_bar(_ny(now)) == _ny(bar)


def test_expected_bar_is_what_the_schedule_requests_at_its_tick():
    for tick in cadence.cron_ticks_after(cadence.HOURLY_SIGNAL_CRONS, _ny("2024-11-27 09:00")):
        if tick > _ny("2024-12-03 00:00"):
            break
        bar = cadence.signal_tick_bar(tick)
        if bar is not None:
            assert cadence.expected_signal_bar(tick) == bar


def test_signal_freshness_flags_a_signal_older_than_the_schedule_allows():
    hour = _ny("2024-03-05 10:30")  # closes 11:30, ticked 11:35
    stale, age, expected = cadence.signal_freshness(hour, _ny("2024-03-05 11:40"))
    assert (stale, age, expected) == (False, 10.0, hour)
    stale, age, expected = cadence.signal_freshness(hour, _ny("2024-03-05 12:36"))
    assert stale and age == 66.0 and expected == _ny("2024-03-05 11:30")
    # the grace allows for the run itself after the 12:35 tick
    assert not cadence.signal_freshness(hour, _ny("2024-03-05 12:36"), pd.Timedelta(minutes=10))[0]
    # over a weekend the Friday 15:30 signal stays fresh until Monday's first tick
    friday_last = _ny("2024-03-08 15:30")
    assert not cadence.signal_freshness(friday_last, _ny("2024-03-11 10:30"))[0]
    assert cadence.signal_freshness(friday_last, _ny("2024-03-11 10:36"))[0]
