"""Trailing windows of trading sessions over the stored partitions (used by gates and monitoring)."""

import dagster as dg
import pandas as pd

from market_master.lib import calendar
from market_master.lib.storage import PartitionStore


def trailing_sessions_window(end: pd.Timestamp, days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start of the `days`-th last session up to `end`, end]; fewer sessions available -> from the first."""
    sessions = calendar.sessions_between(end - pd.Timedelta(days=days * 2 + 10), end)
    return pd.Timestamp(sessions[-min(days, len(sessions))].date(), tz=calendar.TZ), end


def latest_window(store: PartitionStore, asset: str, days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The last `days` sessions up to the asset's latest non-empty partition."""
    key = store.latest_key(asset, nonempty=True)
    if key is None:
        raise dg.Failure(f"{asset} has no stored rows yet")
    return trailing_sessions_window(calendar.key_to_timestamp(key), days)
