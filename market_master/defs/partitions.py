"""Hourly trading-bar partitions (America/New_York).

One key per bar start (09:30 ... 15:30 on weekdays, ~1,850 keys a year, ~3,700 over two years): the symbols
of the universe live INSIDE a partition. A time x symbol multi-partition would be ~3,700 x 100 = 370k keys
for the NASDAQ-100 over two years, far past Dagster's guidance of <= 100k partitions per asset.
Holidays and half-day afternoons are keys too (the cron cannot know them): such a partition holds an empty
slice, and the calendar (`lib.calendar`) says why in the metadata.
"""

import dagster as dg

from market_master.lib.calendar import PARTITION_FMT, TZ

PARTITIONS_START = "2023-01-03-09:30"
HOURLY_CRON = "30 9-15 * * 1-5"

hourly_partitions = dg.TimeWindowPartitionsDefinition(
    cron_schedule=HOURLY_CRON,
    fmt=PARTITION_FMT,
    timezone=TZ,
    start=PARTITIONS_START,
    # The 15:30 bar closes at 16:00 but its cron window runs to the next 09:30: without end_offset=1 its key
    # would not exist until the next morning. The extra (in-progress) key is never requested by the schedule,
    # which asks the calendar for the last COMPLETED bar.
    end_offset=1,
)
