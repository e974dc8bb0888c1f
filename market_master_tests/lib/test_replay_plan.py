"""The replay's simulated clock: the schedules' ticks over a window, from the same cron strings."""

import pandas as pd
import pytest

from market_master.lib import cadence, calendar
from market_master.lib.replay_plan import (
    HOURLY,
    MONITORING,
    RETRAIN,
    history_window,
    plan_replay,
    progress_bar,
)

NY = calendar.TZ


def test_ticks_follow_the_crons_across_dst_holiday_and_half_day():
    plan = plan_replay("2023-11-03", "2023-11-24")
    hourly = plan.of_kind(HOURLY)
    # every weekday gets 7 ticks (the schedule, not the plan, skips closed hours): 16 weekdays (Nov 3 + three weeks)
    assert len(hourly) == 16 * 7
    assert hourly[0].at == pd.Timestamp("2023-11-03 10:35", tz=NY)  # EDT
    assert pd.Timestamp("2023-11-06 10:35", tz=NY) in {t.at for t in hourly}  # EST, same wall clock
    hours = plan.trading_hours()
    days = set(hours.tz_convert(NY).normalize())
    assert pd.Timestamp("2023-11-23", tz=NY) not in days  # Thanksgiving
    assert len(hours) == 14 * 7 + 4  # 14 full sessions + the half-day's 09:30 .. 12:30
    assert hours[-1] == pd.Timestamp("2023-11-24 12:30", tz=NY)
    assert [t.at.hour for t in plan.of_kind(RETRAIN)] == [17] * 16
    assert [t.at.hour for t in plan.of_kind(MONITORING)] == [18] * 16
    assert [t.at for t in plan.ticks] == sorted(t.at for t in plan.ticks)


def test_thinning_retrain_and_monitoring_never_hourly():
    plan = plan_replay("2023-11-03", "2023-11-24", retrain_every=5, monitoring_every=0)
    assert [f"{t.at:%m-%d}" for t in plan.of_kind(RETRAIN)] == ["11-09", "11-16", "11-23"]
    assert plan.of_kind(MONITORING) == []
    assert len(plan.of_kind(HOURLY)) == 16 * 7
    with pytest.raises(ValueError):
        plan_replay("2023-11-03", "2023-11-24", retrain_every=-1)
    with pytest.raises(ValueError):
        plan_replay("2023-11-24", "2023-11-03")


def test_plan_hours_are_what_the_schedule_requests():
    plan = plan_replay("2023-11-20", "2023-11-24")
    requested = [cadence.signal_tick_bar(t.at) for t in plan.of_kind(HOURLY)]
    assert [b for b in requested if b is not None] == list(plan.trading_hours())


def test_history_window_ends_at_the_bar_before_the_first_replayed_hour():
    plan = plan_replay("2023-11-06", "2023-11-07")
    first, last = history_window(plan, 10)
    assert last == pd.Timestamp("2023-11-03 15:30", tz=NY)
    assert len(calendar.sessions_between(first, last)) == 10


def test_progress_bar():
    assert progress_bar(0, 10, 0.0).endswith("ETA ?")
    line = progress_bar(5, 10, 50.0, width=10)
    assert line.startswith("[#####-----] 5/10") and "50%" in line and line.endswith("ETA 50 s")
