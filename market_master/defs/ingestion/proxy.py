"""The index proxy's hourly bars (QQQ by default): an input of its own, partitioned like hourly_bars.

Same source (`market_data`: synthetic / csv / yfinance), same partitions, IO manager and bar checks as
`hourly_bars`; the symbol and the proxy-symbol set come from the same resource (`market_data.proxy_symbol`,
`extra_proxy_symbols`; the default set is `lib.proxy.DEFAULT_PROXY_SYMBOLS`). Gates and backtests judge the signal against this proxy's next-hour return;
`feature_table` reads it when `index_context` is on. Downstream code reads it as any hourly asset: an input
`index_proxy_bars: pd.DataFrame` in an hourly asset (the IO manager reads the run's keys), or
`AssetSlices` in a non-partitioned one (`read_between(start, end)`). Its symbol:
`market_data.proxy_symbol`.
"""

import dagster as dg

from market_master.defs.ingestion.checks import bar_check_specs, check_results_for
from market_master.defs.partitions import hourly_asset
from market_master.defs.resources import MarketDataResource
from market_master.lib import calendar
from market_master.lib.bars import normalize_bars, run_bar_checks
from market_master.lib.proxy import MissingProxyError
from market_master.lib.sources import DataSourceError

INDEX_PROXY_BARS = "index_proxy_bars"


@hourly_asset(
    "timestamp",
    group_name="ingestion",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    check_specs=bar_check_specs(INDEX_PROXY_BARS),
    kinds={"parquet"},
)
def index_proxy_bars(context: dg.AssetExecutionContext, market_data: MarketDataResource):
    """Completed 1-hour OHLCV bars of the index proxy (`market_data.proxy_symbol`), one slice per trading hour.

    The proxy is never a constituent: it is fetched on its own, from the same source as hourly_bars. A
    range with trading hours but no proxy bar at all fails, naming the symbol and the hours; single
    missing hours are the `bars_are_complete` warning (as for hourly_bars) and `feature_table` with index
    context refuses hours where constituents have a bar and the proxy has none.
    """
    keys = context.partition_keys
    start, end = calendar.key_to_timestamp(keys[0]), calendar.key_to_timestamp(keys[-1])
    symbol = market_data.proxy_symbol
    source = market_data.get_source(proxies=market_data.proxy_symbols())
    try:
        bars = normalize_bars(source.fetch([symbol], start, end))
    except DataSourceError as exc:
        kind = "transient error" if exc.transient else "input error (not retried)"
        raise dg.Failure(
            f"index proxy {symbol}: market data source {market_data.source!r} {kind}: {exc}",
            allow_retries=exc.transient,
        ) from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise dg.Failure(
            f"index proxy {symbol}: market data source {market_data.source!r} input error (not retried): {exc}",
            allow_retries=False,
        ) from exc
    other = sorted(set(bars["symbol"]) - {symbol})
    if other:
        raise dg.Failure(f"index proxy {symbol}: the source returned bars of other symbols {other}")
    row_keys = bars["timestamp"].dt.strftime(calendar.PARTITION_FMT)
    in_range = row_keys.isin(set(keys))
    trading = [
        calendar.key_to_timestamp(k) for k in keys if calendar.is_trading_bar(calendar.key_to_timestamp(k))
    ]
    if trading and not in_range.any():
        error = MissingProxyError(symbol, trading, f"index_proxy_bars {keys[0]} .. {keys[-1]}")
        raise dg.Failure(str(error), allow_retries=False)
    outcomes = run_bar_checks(bars[in_range].reset_index(drop=True), expected_symbols=[symbol])
    context.log.info(f"index_proxy_bars: {int(in_range.sum())} bars of {symbol}, {len(keys)} partitions")
    yield dg.Output(
        bars[in_range].reset_index(drop=True),
        metadata={
            "symbol": symbol,
            "rows": int(in_range.sum()),
            "partitions": len(keys),
            "first_partition": keys[0],
            "last_partition": keys[-1],
            "trading_hours_without_a_bar": len(trading) - int(in_range.sum()),
            "source": market_data.source,
            "dropped_out_of_range_rows": int((~in_range).sum()),
        },
    )
    yield from check_results_for(outcomes)
