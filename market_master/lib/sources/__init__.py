"""Market data sources: one protocol, three implementations (synthetic, yfinance, csv).

Every source returns canonical bars (see `market_master.lib.bars.BAR_COLUMNS`): long format, one row per
(symbol, bar start), timestamps tz-aware America/New_York.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from market_master.lib.calendar import TimeLike

SOURCE_KINDS = ("synthetic", "yfinance", "csv")


class DataSourceError(Exception):
    """A source could not deliver bars for `symbol` (None when the failure is not symbol-specific).

    `transient`: the same request may succeed later (rate limit, 5xx, connection); False (the default) for
    deterministic input errors (bad file, bad value, unknown symbol), which retrying cannot fix.
    """

    def __init__(self, symbol: str | None, message: str, transient: bool = False) -> None:
        self.symbol = symbol
        self.message = message
        self.transient = transient
        super().__init__(f"{symbol}: {message}" if symbol else message)


@runtime_checkable
class MarketDataSource(Protocol):
    """Anything that delivers canonical 1-hour bars for symbols over an inclusive time range."""

    name: str

    def fetch(self, symbols: Sequence[str], start: TimeLike, end: TimeLike) -> pd.DataFrame: ...


def get_source(kind: str, **kwargs: Any) -> MarketDataSource:
    """Build a source by kind: "synthetic" | "yfinance" | "csv" (kwargs go to its constructor)."""
    if kind == "synthetic":
        from market_master.lib.sources.synthetic import SyntheticSource

        return SyntheticSource(**kwargs)
    if kind == "yfinance":
        from market_master.lib.sources.yfinance_source import YFinanceSource

        return YFinanceSource(**kwargs)
    if kind == "csv":
        from market_master.lib.sources.csv_source import CsvSource

        return CsvSource(**kwargs)
    raise ValueError(f"unknown source kind {kind!r}; expected one of {SOURCE_KINDS}")
