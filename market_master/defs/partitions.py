"""Hourly trading-bar partitions (America/New_York) and the feature look-back mapping.

One key per bar start (09:30 ... 15:30 on weekdays, ~1,850 keys a year, ~3,700 over two years): the symbols
of the universe live INSIDE a partition. A time x symbol multi-partition would be ~3,700 x 100 = 370k keys
for the NASDAQ-100 over two years, far past Dagster's guidance of <= 100k partitions per asset.
Holidays and half-day afternoons are keys too (the cron cannot know them): such a partition holds an empty
slice, and the calendar (`lib.calendar`) says why in the metadata.
"""

from collections.abc import Mapping, Sequence

import dagster as dg
import pandas as pd

from market_master.lib.calendar import PARTITION_FMT, TZ
from market_master.lib.features import WARMUP_MAX

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

# Partition keys of bars read before a feature_table range. Keys include holidays and half-day afternoons
# (empty slices), so twice the largest warm-up leaves >= WARMUP_MAX real bars even across a holiday week:
# the first hour of a range gets the same features as in one pass over all history.
FEATURE_LOOKBACK_KEYS = 2 * WARMUP_MAX
feature_lookback = dg.TimeWindowPartitionMapping(start_offset=-FEATURE_LOOKBACK_KEYS)


def hourly_asset(partition_column: str, **kwargs):
    """`@dg.asset` of an hourly-partitioned DataFrame: one Parquet slice per trading-hour key (the IO manager
    splits the frame by `partition_column`), ranges backfilled in ONE run."""
    from market_master.defs.io_manager import PARTITION_COLUMN

    return dg.asset(
        partitions_def=hourly_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        metadata={PARTITION_COLUMN: partition_column},
        **kwargs,
    )


NON_TRADING = "holiday or half-day afternoon: no bar, empty slice"


def add_partition_metadata(
    context: dg.AssetExecutionContext,
    keys: Sequence[str],
    rows_per_key: pd.Series,
    counts: Mapping[str, pd.Series] | None = None,
    non_trading: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Give each key of a range run ITS OWN numbers (partition-scoped metadata): `rows`, the `counts`
    (name -> Series indexed by key) and why a key is empty. An Output's metadata is copied to every key's
    materialization, so it must only hold what describes the whole run."""
    rows = {str(k): int(v) for k, v in rows_per_key.items()}
    columns = {name: {str(k): int(v) for k, v in series.items()} for name, series in (counts or {}).items()}
    for key in keys:
        metadata: dict[str, int | str] = {"rows": rows.get(key, 0)}
        metadata.update({name: values.get(key, 0) for name, values in columns.items()})
        if key in non_trading:
            metadata["non_trading"] = NON_TRADING
        context.add_asset_metadata(metadata, partition_key=key)
