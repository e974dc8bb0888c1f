"""Ingestion: index weights and hourly bars (one Parquet slice per trading-hour partition)."""

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.ingestion.checks import BAR_CHECK_SPECS, check_results_for
from market_master.defs.partitions import add_partition_metadata, hourly_asset
from market_master.defs.resources import MarketDataResource, StorageResource
from market_master.lib import calendar
from market_master.lib.bars import normalize_bars, run_bar_checks
from market_master.lib.proxy import split_constituents
from market_master.lib.sources import DataSourceError
from market_master.lib.storage import AssetSlices
from market_master.lib.weights import (
    WeightsHistory,
    WeightsSnapshot,
    embedded_top10,
    load_holdings_csv,
    normalize_weights,
    raw_total,
    total_warning,
)


class IndexWeightsConfig(dg.Config):
    holdings_csv: str | None = Field(
        default=None,
        description="holdings CSV (symbol, weight_pct|weight[, as_of]); default: embedded top-10 QQQ",
    )


@dg.asset(group_name="ingestion", kinds={"pandas"})
def index_weights(
    context: dg.AssetExecutionContext,
    config: IndexWeightsConfig,
    market_data: MarketDataResource,
    hourly_bars: AssetSlices,
) -> dg.Output[WeightsHistory]:
    """Index weights normalised over the configured universe, one snapshot per holdings date (point in
    time); unused and missing symbols are reported."""
    snapshots = (
        load_holdings_csv(config.holdings_csv).snapshots if config.holdings_csv else [embedded_top10()]
    )
    universe, proxy_note = market_data.constituents()
    # a holdings file listing a proxy (QQQ, SPY, NQ=F ...): excluded with a message, never a constituent
    _, held_proxies, held_note = split_constituents(
        [s for snap in snapshots for s in snap.weights], market_data.proxy_symbols(), "holdings"
    )
    for note in (proxy_note, held_note):
        if note:
            context.log.warning(note)
    normalized = [normalize_weights(s, universe) for s in snapshots]
    latest = normalized[-1]
    history = WeightsHistory(
        [WeightsSnapshot(as_of=n.as_of, weights=n.weights, source=n.source) for n in normalized]
    )
    # Weighted symbols without stored bars stay in the weights (the signal's covered weight then shows the
    # gap) and are listed here; so are the snapshot's names outside the universe.
    last_key = hourly_bars.latest_key(nonempty=True)
    if last_key is None:
        without_bars: list[str] | str = "no hourly_bars stored yet"
    else:
        recent = hourly_bars.read_between(
            calendar.key_to_timestamp(last_key) - pd.Timedelta(days=7), last_key
        )
        have = set(recent["symbol"]) if len(recent) else set()
        without_bars = sorted(s for s in latest.weights if s not in have)
    outside = sorted(
        ((s, w) for s, w in snapshots[-1].weights.items() if s not in set(universe)), key=lambda x: -x[1]
    )
    unit_warnings = [w for w in (total_warning(s) for s in snapshots) if w]
    for warning in unit_warnings:
        context.log.warning(f"WEIGHTS LOOK WRONG: {warning}")
    if latest.missing_weight:
        context.log.warning(
            f"symbols in the universe without a weight (not in the index signal): {latest.missing_weight}"
        )
    return dg.Output(
        history,
        metadata={
            "as_of": str(latest.as_of),
            "n_snapshots": len(normalized),
            "source": snapshots[-1].source,
            "raw_weight_total_pct (latest snapshot)": round(raw_total(snapshots[-1]) * 100, 3),
            "weights_warning": dg.MetadataValue.json(unit_warnings),
            "weights": dg.MetadataValue.md(
                pd.Series(latest.weights, name="weight").round(4).to_frame().to_markdown()
            ),
            "missing_weight": dg.MetadataValue.json(latest.missing_weight),
            "excluded_proxy_symbols": dg.MetadataValue.json(
                sorted(set(held_proxies) | (set(market_data.symbols) - set(universe)))
            ),
            "outside_universe_weight": float(latest.outside_universe_weight),
            "without_bars (last 7 days)": dg.MetadataValue.json(without_bars),
            "n_outside_universe": len(outside),
            "outside_universe (largest 20)": dg.MetadataValue.json([f"{s} {w:.3f}" for s, w in outside[:20]]),
        },
    )


@hourly_asset(
    "timestamp",
    group_name="ingestion",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    check_specs=BAR_CHECK_SPECS,
    kinds={"parquet"},
)
def hourly_bars(
    context: dg.AssetExecutionContext,
    market_data: MarketDataResource,
    storage: StorageResource,
):
    """Completed 1-hour OHLCV bars of every universe symbol, one slice per trading-hour partition.

    Rows are stored as they came (bad ones too, so nothing is lost); the blocking checks stop downstream
    assets in the same run and name the offending rows. Rows whose timestamp is no partition key (out of
    session) go to a quarantine file named in the metadata.
    """
    keys = context.partition_keys
    start, end = calendar.key_to_timestamp(keys[0]), calendar.key_to_timestamp(keys[-1])
    symbols, proxy_note = market_data.constituents()
    if proxy_note:  # the proxy is its own input (index_proxy_bars), never a constituent
        context.log.warning(proxy_note)
    try:
        bars = normalize_bars(market_data.get_source().fetch(symbols, start, end))
    except DataSourceError as exc:
        # Only a transient source error (rate limit, 5xx, connection) is worth the RetryPolicy; a bad file
        # or value fails the same way every time, so it fails at once.
        kind = "transient error" if exc.transient else "input error (not retried)"
        raise dg.Failure(
            f"market data source {market_data.source!r} {kind}: {exc}", allow_retries=exc.transient
        ) from exc
    except (KeyError, ValueError, TypeError) as exc:  # a source's frame that is not canonical bars
        raise dg.Failure(
            f"market data source {market_data.source!r} input error (not retried): {exc}", allow_retries=False
        ) from exc
    row_keys = bars["timestamp"].dt.strftime(calendar.PARTITION_FMT)
    in_range = row_keys.isin(set(keys))
    quarantined = bars[~in_range]
    quarantine_path = None
    if len(quarantined):
        quarantine_path = storage.path("quarantine", "hourly_bars", f"{keys[0]}__{keys[-1]}.parquet")
        quarantined.to_parquet(quarantine_path)
    rows_per_key = row_keys[in_range].value_counts()
    symbols_per_key = bars.loc[in_range, "symbol"].groupby(row_keys[in_range]).nunique()
    non_trading = [
        k
        for k in keys
        if k not in rows_per_key.index and not calendar.is_trading_bar(calendar.key_to_timestamp(k))
    ]
    add_partition_metadata(context, keys, rows_per_key, {"symbols": symbols_per_key}, set(non_trading))
    outcomes = run_bar_checks(bars, expected_symbols=symbols)
    context.log.info(
        f"hourly_bars: {int(in_range.sum())} bars in {len(keys)} partitions ({keys[0]} .. {keys[-1]}), "
        f"{len(non_trading)} non-trading partitions, {len(quarantined)} quarantined rows"
    )
    # Metadata on EVERY key's materialization (Dagster copies an Output's metadata to each partition of
    # the range): only what describes the run. The key's own rows are partition-scoped (above).
    yield dg.Output(
        bars[in_range].reset_index(drop=True),
        metadata={
            "run_partitions": len(keys),
            "run_first_partition": keys[0],
            "run_last_partition": keys[-1],
            "source": market_data.source,
            "run_quarantined_out_of_session_rows": len(quarantined),
            "quarantine_path": dg.MetadataValue.path(str(quarantine_path)) if quarantine_path else "none",
        },
    )
    yield from check_results_for(outcomes)
