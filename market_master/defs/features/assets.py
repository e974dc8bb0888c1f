"""The feature table: lib.features.compute_features over each partition plus a causal look-back."""

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.io_manager import LOOKBACK
from market_master.defs.partitions import add_partition_metadata, feature_lookback, hourly_asset
from market_master.lib import calendar
from market_master.lib.bars import normalize_bars
from market_master.lib.features import FEATURE_COLUMNS, WARMUP_DEFAULT, FeatureConfig, compute_features

FEATURE_CONFIG_ATTR = "feature_config"


class FeatureTableConfig(dg.Config):
    warmup: int = Field(
        default=WARMUP_DEFAULT, description="first W bars of each symbol are warm-up (no features)"
    )


@hourly_asset(
    "timestamp",
    group_name="features",
    ins={
        "hourly_bars": dg.AssetIn(
            partition_mapping=feature_lookback,
            metadata={LOOKBACK: True},
        )
    },
    kinds={"parquet", "numpy"},
)
def feature_table(
    context: dg.AssetExecutionContext, config: FeatureTableConfig, hourly_bars: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """Causal features per (symbol, bar): row t uses bars <= t only. Warm-up rows are kept, flagged.
    The FeatureConfig travels with the slices (`attrs`), so training and serving use the same warm-up."""
    keys = context.partition_keys
    start, end = calendar.key_to_timestamp(keys[0]), calendar.key_to_timestamp(keys[-1])
    bars = normalize_bars(hourly_bars)
    if not (bars["timestamp"] >= start).any() and any(
        calendar.is_trading_bar(calendar.key_to_timestamp(k)) for k in keys
    ):
        raise dg.Failure(f"no hourly_bars stored between {start} and {end}: materialize hourly_bars first")
    feature_config = FeatureConfig(warmup=config.warmup)
    features = compute_features(bars, feature_config)
    in_range = features[(features["timestamp"] >= start) & (features["timestamp"] <= end)].reset_index(
        drop=True
    )
    in_range.attrs[FEATURE_CONFIG_ATTR] = feature_config.to_dict()
    history = bars[bars["timestamp"] < start]
    row_keys = in_range["timestamp"].dt.strftime(calendar.PARTITION_FMT)
    warmup_per_key = in_range["warmup"].groupby(row_keys).sum()
    add_partition_metadata(context, keys, row_keys.value_counts(), {"warmup_rows": warmup_per_key})
    if len(in_range):  # a preview on the last key with rows only (not copied to every key of the range)
        context.add_asset_metadata(
            {"preview": dg.MetadataValue.md(in_range.tail(5).round(4).astype(str).to_markdown(index=False))},
            partition_key=row_keys.iloc[-1],
        )
    return dg.Output(
        in_range,
        metadata={  # copied to every key of the range: the run's settings, not its totals
            "warmup": feature_config.warmup,
            "n_features": len(FEATURE_COLUMNS),
            "run_partitions": len(keys),
            "run_history_bars_read": len(history),
            "history_start": str(history["timestamp"].min()) if len(history) else "none stored",
        },
    )


def stored_feature_config(features: pd.DataFrame) -> FeatureConfig:
    """The FeatureConfig a feature_table frame was computed with (stored in its attrs)."""
    stored = features.attrs.get(FEATURE_CONFIG_ATTR)
    if stored is None:
        raise dg.Failure("feature_table rows carry no feature_config: rematerialize feature_table")
    return FeatureConfig.from_dict(stored)
