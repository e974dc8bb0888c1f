"""Schedules. All STOPPED by default: offline they would only simulate bars (switch them on in the UI
when the market_data resource points at a live source). The promotion sensor is RUNNING by default."""

import dagster as dg
import pandas as pd

from market_master.defs.jobs import hourly_signal_job, monitoring_job, retrain_job
from market_master.lib import cadence, calendar


@dg.schedule(
    job=hourly_signal_job,
    cron_schedule=list(cadence.HOURLY_SIGNAL_CRONS),
    execution_timezone=calendar.TZ,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def hourly_signal_schedule(context: dg.ScheduleEvaluationContext):
    """Five minutes after each bar closes (bars close at 10:30 ... 15:30 and 16:00), run the hourly partition of the bar that just completed.
    Holidays and half-day afternoons (no bar completed since the last tick) are skipped by the calendar."""
    now = pd.Timestamp(context.scheduled_execution_time).tz_convert(calendar.TZ)
    bar = cadence.signal_tick_bar(now)  # the same rule the API's staleness flag uses
    if bar is None:
        return dg.SkipReason(f"no bar completed in the last hour before {now} (holiday, weekend or half-day)")
    key = calendar.partition_key(bar)
    return dg.RunRequest(run_key=f"hourly-{key}", partition_key=key)


retrain_schedule = dg.ScheduleDefinition(
    name=cadence.RETRAIN_SCHEDULE,
    job=retrain_job,
    cron_schedule=cadence.RETRAIN_CRON,
    execution_timezone=calendar.TZ,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Retrain after the close on its own cadence (not every hour); the sensor promotes if gates pass.",
)
monitoring_schedule = dg.ScheduleDefinition(
    name=cadence.MONITORING_SCHEDULE,
    job=monitoring_job,
    cron_schedule=cadence.MONITORING_CRON,
    execution_timezone=calendar.TZ,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

ALL_SCHEDULES = [hourly_signal_schedule, retrain_schedule, monitoring_schedule]
