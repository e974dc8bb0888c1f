"""The feature table: lib.features.compute_features over each partition plus a causal look-back."""

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.partitions import hourly_partitions
from market_master.defs.resources import StorageResource
from market_master.lib import calendar
from market_master.lib.bars import normalize_bars
from market_master.lib.features import FeatureConfig, compute_features


class FeatureTableConfig(dg.Config):
    warmup: int = Field(default=16, description="first W bars of each symbol are warm-up (no features)")
    lookback_bars: int = Field(
        default=64, description="bars read before the range; must cover the longest feature window"
    )


def lookback_start(start: pd.Timestamp, n_bars: int) -> pd.Timestamp:
    """The bar start `n_bars` trading bars before `start` (calendar-aware)."""
    bars = calendar.trading_bars(start - pd.Timedelta(days=max(14, n_bars // 3 + 14)), start)
    bars = bars[bars < start]
    return bars[-n_bars] if len(bars) >= n_bars else bars[0]


@dg.asset(
    group_name="features",
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["hourly_bars"],
    kinds={"parquet", "numpy"},
)
def feature_table(
    context: dg.AssetExecutionContext, config: FeatureTableConfig, storage: StorageResource
) -> dg.MaterializeResult:
    """Causal features per (symbol, bar): row t uses bars <= t only. Warm-up rows are kept, flagged."""
    keys = context.partition_keys
    start, end = calendar.key_to_timestamp(keys[0]), calendar.key_to_timestamp(keys[-1])
    store = storage.partitions()
    history_start = lookback_start(start, config.lookback_bars)
    bars = normalize_bars(store.read_between("hourly_bars", history_start, end))
    if bars.empty:
        raise dg.Failure(
            f"no hourly_bars stored between {history_start} and {end}: materialize hourly_bars first"
        )
    features = compute_features(bars, FeatureConfig(warmup=config.warmup))
    in_range = features[(features["timestamp"] >= start) & (features["timestamp"] <= end)]
    store.write_many("feature_table", in_range, "timestamp", all_keys=keys)
    n_warm = int(in_range["warmup"].sum())
    return dg.MaterializeResult(
        metadata={
            "rows": len(in_range),
            "warmup_rows": n_warm,
            "partitions": len(keys),
            "history_bars_read": len(bars),
            "history_start": str(history_start),
            "n_features": int(
                len([c for c in features.columns if c not in ("symbol", "timestamp", "close", "warmup")])
            ),
            "preview": dg.MetadataValue.md(in_range.tail(5).round(4).astype(str).to_markdown(index=False)),
        }
    )
