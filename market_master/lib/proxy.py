"""The index proxy: which symbols are index proxies (never constituents) and proxy coverage checks.

The product times the index (/NQ); its outcome is the PROXY's next-hour return (QQQ by default, NQ=F or
any configured symbol). One home for the set of symbols that are proxies, not constituents:
`DEFAULT_PROXY_SYMBOLS` plus the configured proxy symbol (`proxy_symbols(configured, extra)`); the Dagster
resource `market_data` (`proxy_symbol`, `extra_proxy_symbols`) and batch mode both call it.

A proxy symbol in a universe, a holdings file or a CSV directory is never treated as a constituent:
`split_constituents` drops it from the universe and says so; the callers report the message.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

DEFAULT_PROXY = "QQQ"
# Index ETFs / futures / index tickers of the NASDAQ-100 and the broad US market: proxies, not constituents.
DEFAULT_PROXY_SYMBOLS: frozenset[str] = frozenset(
    {
        "QQQ",
        "QQQM",
        "ONEQ",
        "TQQQ",
        "SQQQ",
        "NQ=F",
        "MNQ=F",
        "^NDX",
        "NDX",
        "SPY",
        "VOO",
        "IVV",
        "ES=F",
        "MES=F",
        "^GSPC",
        "DIA",
        "IWM",
    }
)
MAX_HOURS_NAMED = 10


class MissingProxyError(ValueError):
    """The index proxy has no bar at hours where constituents have one (named: `symbol`, `hours`)."""

    def __init__(self, symbol: str, hours: pd.DatetimeIndex, context: str = "") -> None:
        self.symbol = symbol
        self.hours = pd.DatetimeIndex(hours)
        shown = [h.isoformat() for h in self.hours[:MAX_HOURS_NAMED]]
        more = f" (+{len(self.hours) - MAX_HOURS_NAMED} more)" if len(self.hours) > MAX_HOURS_NAMED else ""
        where = f"{context}: " if context else ""
        super().__init__(
            f"{where}index proxy {symbol} has no bar at {len(self.hours)} hour(s) where constituents have "
            f"bars: {shown}{more}"
        )


def proxy_symbols(configured: str | None = DEFAULT_PROXY, extra: Iterable[str] = ()) -> frozenset[str]:
    """Every symbol treated as an index proxy: the default set, the configured proxy and `extra`."""
    more = {str(s).strip().upper() for s in extra if str(s).strip()}
    if configured:
        more.add(configured.strip().upper())
    return DEFAULT_PROXY_SYMBOLS | more


def is_proxy(symbol: str, proxies: Iterable[str] = DEFAULT_PROXY_SYMBOLS) -> bool:
    return str(symbol).strip().upper() in set(proxies)


def split_constituents(
    symbols: Iterable[str], proxies: Iterable[str] = DEFAULT_PROXY_SYMBOLS, what: str = "universe"
) -> tuple[list[str], list[str], str | None]:
    """(constituents in input order, excluded proxy symbols, message or None): proxies never count as
    constituents of the index they proxy."""
    proxy_set = {str(p).upper() for p in proxies}
    symbols = list(dict.fromkeys(symbols))
    excluded = [s for s in symbols if str(s).upper() in proxy_set]
    kept = [s for s in symbols if str(s).upper() not in proxy_set]
    message = None
    if excluded:
        message = (
            f"{what}: {excluded} are index proxies, not constituents: excluded (the proxy is read as its "
            f"own input, index_proxy_bars)"
        )
    return kept, excluded, message


def missing_proxy_hours(bars: pd.DataFrame, proxy: pd.DataFrame | None) -> pd.DatetimeIndex:
    """Hours where some constituent has a bar and the proxy has none (sorted, New York time)."""
    hours = pd.DatetimeIndex(pd.unique(bars["timestamp"])) if len(bars) else pd.DatetimeIndex([])
    if proxy is None or len(proxy) == 0:
        return hours.sort_values()
    have = pd.DatetimeIndex(proxy["timestamp"]).asi8
    return hours[~np.isin(hours.asi8, have)].sort_values()


def require_proxy(bars: pd.DataFrame, proxy: pd.DataFrame | None, symbol: str, context: str = "") -> None:
    """Raise MissingProxyError naming `symbol` and the hours when the proxy lacks a bar at an hour where
    any constituent of `bars` has one. Never a silent fallback (no forward fill, no constituent average)."""
    missing = missing_proxy_hours(bars, proxy)
    if len(missing):
        raise MissingProxyError(symbol, missing, context)
