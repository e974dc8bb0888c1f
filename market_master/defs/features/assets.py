"""The feature table: lib.features.compute_features over each partition plus a causal look-back.

With `index_context` on, the index proxy's bars (`index_proxy_bars`, a declared dependency with the same
look-back mapping) are read for the same window from the data root the IO manager writes, and every hour
with a constituent bar must have a proxy bar (an error names the proxy symbol and the hours). With it off
(the default) the proxy is not read at all.
"""

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.ingestion.proxy import INDEX_PROXY_BARS
from market_master.defs.io_manager import LOOKBACK
from market_master.defs.partitions import add_partition_metadata, feature_lookback, hourly_asset
from market_master.defs.resources import MarketDataResource, StorageResource
from market_master.lib import calendar
from market_master.lib.bars import normalize_bars
from market_master.lib.features import (
    INDEX_CONTEXT_COLUMNS,
    WARMUP_DEFAULT,
    FeatureConfig,
    compute_features,
)
from market_master.lib.proxy import MissingProxyError, require_proxy

FEATURE_CONFIG_ATTR = "feature_config"


class FeatureTableConfig(dg.Config):
    warmup: int = Field(
        default=WARMUP_DEFAULT, description="first W bars of each symbol are warm-up (no features)"
    )
    index_context: bool = Field(
        default=False,
        description="add the index proxy's context features (reads index_proxy_bars; stored in the config)",
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
    deps=[dg.AssetDep(INDEX_PROXY_BARS, partition_mapping=feature_lookback)],
    kinds={"parquet", "numpy"},
)
def feature_table(
    context: dg.AssetExecutionContext,
    config: FeatureTableConfig,
    hourly_bars: pd.DataFrame,
    storage: StorageResource,
    market_data: MarketDataResource,
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
    feature_config = FeatureConfig(
        warmup=config.warmup, index_context=config.index_context, proxy_symbol=market_data.proxy_symbol
    )
    proxy = _proxy_for(bars, start, end, storage, market_data.proxy_symbol) if config.index_context else None
    features = compute_features(bars, feature_config, proxy=proxy)
    in_range = features[(features["timestamp"] >= start) & (features["timestamp"] <= end)].reset_index(
        drop=True
    )
    if config.index_context:
        _require_finite_context(in_range, market_data.proxy_symbol)
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
            "n_features": len(feature_config.columns),
            "index_context": feature_config.index_context,
            "proxy_symbol": feature_config.proxy_symbol if feature_config.index_context else "not used",
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


def _proxy_for(
    bars: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, storage: StorageResource, symbol: str
) -> pd.DataFrame:
    """The stored proxy bars over the window of `bars` (look-back included); raises dg.Failure naming the
    proxy symbol and the in-range hours where constituents have a bar and the proxy has none."""
    first = bars["timestamp"].min() if len(bars) else start
    proxy = normalize_bars(storage.partitions().read_between(INDEX_PROXY_BARS, min(first, start), end))
    other = sorted(set(proxy["symbol"]) - {symbol})
    if other:
        raise dg.Failure(
            f"stored index_proxy_bars hold {other} but market_data.proxy_symbol is {symbol!r}: rematerialize "
            f"index_proxy_bars over {min(first, start)} .. {end}"
        )
    try:
        require_proxy(bars[bars["timestamp"] >= start], proxy, symbol, "feature_table (index_context)")
    except MissingProxyError as exc:
        raise dg.Failure(f"{exc}: materialize index_proxy_bars for those hours first") from exc
    return proxy.reset_index(drop=True)


def _require_finite_context(in_range: pd.DataFrame, symbol: str) -> None:
    """Non-warm-up rows need the proxy's look-back too (its previous close, the day's open)."""
    bad = ~in_range["warmup"].to_numpy(bool) & in_range[INDEX_CONTEXT_COLUMNS].isna().any(axis=1).to_numpy()
    if bad.any():
        hours = pd.DatetimeIndex(pd.unique(in_range.loc[bad, "timestamp"]))
        error = MissingProxyError(symbol, hours, "feature_table (index_context)")
        raise dg.Failure(
            f"{error}: the proxy's look-back (previous close / the day's open) is not stored; materialize "
            f"index_proxy_bars over the look-back before those hours"
        )
