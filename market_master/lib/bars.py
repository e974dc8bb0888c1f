"""Canonical bar frame (long format) and its quality checks.

Canonical bars: columns `BAR_COLUMNS` = symbol (str), timestamp (tz-aware America/New_York, bar start),
open, high, low, close, volume (float64); sorted by (symbol, timestamp); RangeIndex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_master.lib.calendar import TZ, trading_bar_mask, trading_bars

BAR_COLUMNS = ["symbol", "timestamp", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
VALUE_COLUMNS = [*PRICE_COLUMNS, "volume"]


def normalize_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical dtypes, column order and sort; never drops, fixes or deduplicates rows.

    Naive timestamps are read as America/New_York wall time, aware ones are converted to it.
    Extra columns are left out. Raises KeyError naming any missing column.
    """
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise KeyError(f"bars are missing column(s) {missing}; found {list(df.columns)}")
    out = pd.DataFrame(
        {
            "symbol": df["symbol"].astype(str).to_numpy(dtype=object),
            "timestamp": _to_ny(df["timestamp"]),
        }
    )
    for col in VALUE_COLUMNS:
        out[col] = pd.to_numeric(df[col], errors="raise").astype("float64").to_numpy()
    out = out.sort_values(["symbol", "timestamp"], kind="mergesort").reset_index(drop=True)
    return out


def _to_ny(values: pd.Series) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(values))
    if idx.tz is None:
        idx = idx.tz_localize(TZ)
    return idx.tz_convert(TZ).as_unit("ns")


ERROR = "ERROR"
WARN = "WARN"


@dataclass(frozen=True)
class CheckOutcome:
    """Result of one quality predicate: `offending` lists the rows (symbol, timestamp, values) at fault."""

    name: str
    passed: bool
    description: str
    offending: pd.DataFrame
    severity: str = ERROR

    @property
    def n_offending(self) -> int:
        return len(self.offending)


class BarValidationError(ValueError):
    """Bars rejected: `field` is the column at fault, `rows` the 0-based positions in the input frame."""

    def __init__(self, field: str, reason: str, rows: list[int]) -> None:
        self.field = field
        self.reason = reason
        self.rows = rows
        shown = rows[:10]
        more = f" (+{len(rows) - 10} more)" if len(rows) > 10 else ""
        super().__init__(f"{field}: {reason}; rows {shown}{more}")


def _outcome(
    name: str, description: str, df: pd.DataFrame, mask: np.ndarray, columns: list[str], severity: str = ERROR
) -> CheckOutcome:
    rows = df.loc[mask, ["symbol", "timestamp", *columns]].copy()
    rows.insert(0, "row", np.flatnonzero(mask))
    return CheckOutcome(name, not bool(mask.any()), description, rows.reset_index(drop=True), severity)


def _finite(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    return np.isfinite(df[cols].to_numpy(dtype="float64")).all(axis=1)


def high_is_at_least_open_and_close(df: pd.DataFrame) -> CheckOutcome:
    """high >= max(open, close) on every bar with finite prices."""
    ok = _finite(df, ["open", "high", "close"])
    bad = ok & (df["high"].to_numpy() < np.maximum(df["open"].to_numpy(), df["close"].to_numpy()))
    return _outcome(
        "high_is_at_least_open_and_close", "high >= max(open, close)", df, bad, ["open", "high", "close"]
    )


def low_is_at_most_open_and_close(df: pd.DataFrame) -> CheckOutcome:
    """low <= min(open, close) on every bar with finite prices."""
    ok = _finite(df, ["open", "low", "close"])
    bad = ok & (df["low"].to_numpy() > np.minimum(df["open"].to_numpy(), df["close"].to_numpy()))
    return _outcome(
        "low_is_at_most_open_and_close", "low <= min(open, close)", df, bad, ["open", "low", "close"]
    )


def prices_are_positive(df: pd.DataFrame) -> CheckOutcome:
    """open, high, low, close > 0."""
    prices = df[PRICE_COLUMNS].to_numpy(dtype="float64")
    bad = (prices <= 0).any(axis=1)
    return _outcome("prices_are_positive", "open, high, low, close > 0", df, bad, PRICE_COLUMNS)


def volume_is_non_negative(df: pd.DataFrame) -> CheckOutcome:
    """volume >= 0 (zero volume is real and allowed)."""
    bad = df["volume"].to_numpy(dtype="float64") < 0
    return _outcome("volume_is_non_negative", "volume >= 0", df, bad, ["volume"])


def timestamps_are_unique(df: pd.DataFrame) -> CheckOutcome:
    """One bar per (symbol, timestamp); every copy of a duplicate is listed."""
    bad = df.duplicated(["symbol", "timestamp"], keep=False).to_numpy()
    return _outcome("timestamps_are_unique", "one bar per (symbol, timestamp)", df, bad, VALUE_COLUMNS)


def timestamps_are_trading_bars(df: pd.DataFrame) -> CheckOutcome:
    """Every timestamp is an XNYS bar start (09:30 + k hours before the session close)."""
    ts = df["timestamp"]
    bad = ts.isna().to_numpy()
    valid = ~bad
    if valid.any():
        bad[valid] = ~trading_bar_mask(pd.DatetimeIndex(ts[valid]))
    return _outcome("timestamps_are_trading_bars", "timestamps are XNYS trading-bar starts", df, bad, [])


def values_are_finite(df: pd.DataFrame) -> CheckOutcome:
    """No NaN or infinite open/high/low/close/volume."""
    bad = ~_finite(df, VALUE_COLUMNS)
    return _outcome("values_are_finite", "open, high, low, close, volume are finite", df, bad, VALUE_COLUMNS)


MAX_ABS_LOG_RETURN = float(np.log(10.0))  # a bar 10x (or 1/10) the previous close is a data error


def returns_are_sane(df: pd.DataFrame) -> CheckOutcome:
    """|log(price / previous close of the same symbol)| <= log(10) for open, high, low and close.

    A bar 5,000x the last close is a unit or typing error, not a market move: scored as it is it would
    dominate the features (and the signal) with full confidence. Rows without a positive finite price or
    previous close are left to the other checks.
    """
    prices = df[PRICE_COLUMNS].to_numpy(dtype="float64")
    prev_close = df.groupby("symbol", sort=False)["close"].shift(1).to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(np.log(prices / prev_close[:, None]))
    usable = np.isfinite(ratio) & (prices > 0) & (prev_close[:, None] > 0)
    bad = (usable & (ratio > MAX_ABS_LOG_RETURN)).any(axis=1)
    outcome = _outcome(
        "returns_are_sane",
        "every price is within 10x (|log return| <= log 10) of the previous close of the same symbol",
        df.assign(previous_close=prev_close),
        bad,
        [*PRICE_COLUMNS, "previous_close"],
    )
    return outcome


def bars_are_complete(df: pd.DataFrame, expected_symbols: list[str] | None = None) -> CheckOutcome:
    """WARN: calendar bars between the frame's first and last timestamp that a symbol lacks.

    `offending` holds one row per missing (symbol, timestamp); expected symbols with no bars at all
    miss every bar of the range.
    """
    name, description = "bars_are_complete", "every expected symbol has every calendar bar of the range"
    empty = pd.DataFrame(
        {"symbol": pd.Series(dtype=object), "timestamp": pd.Series(dtype=f"datetime64[ns, {TZ}]")}
    )
    ts = df["timestamp"].dropna()
    if ts.empty:
        return CheckOutcome(name, True, description, empty, WARN)
    grid = trading_bars(ts.min(), ts.max())
    symbols = list(dict.fromkeys([*(expected_symbols or []), *df["symbol"].astype(str).unique()]))
    full = pd.MultiIndex.from_product([symbols, grid], names=["symbol", "timestamp"])
    have = pd.MultiIndex.from_arrays([df["symbol"].astype(str), pd.DatetimeIndex(df["timestamp"])])
    missing = full.difference(have)
    offending = missing.to_frame(index=False) if len(missing) else empty
    return CheckOutcome(name, len(missing) == 0, description, offending.reset_index(drop=True), WARN)


ERROR_CHECKS = (
    values_are_finite,
    prices_are_positive,
    volume_is_non_negative,
    high_is_at_least_open_and_close,
    low_is_at_most_open_and_close,
    timestamps_are_unique,
    timestamps_are_trading_bars,
    returns_are_sane,
)


def run_bar_checks(df: pd.DataFrame, expected_symbols: list[str] | None = None) -> list[CheckOutcome]:
    """All checks: the ERROR predicates, then the WARN completeness check."""
    return [check(df) for check in ERROR_CHECKS] + [bars_are_complete(df, expected_symbols)]


_FIELD_OF_CHECK = {
    "high_is_at_least_open_and_close": "high",
    "low_is_at_most_open_and_close": "low",
    "volume_is_non_negative": "volume",
    "timestamps_are_unique": "timestamp",
    "timestamps_are_trading_bars": "timestamp",
    "returns_are_sane": "close",
}


def _bad_field(outcome: CheckOutcome, df: pd.DataFrame) -> str:
    if outcome.name in _FIELD_OF_CHECK:
        return _FIELD_OF_CHECK[outcome.name]
    cols = PRICE_COLUMNS if outcome.name == "prices_are_positive" else VALUE_COLUMNS
    rows = df.iloc[outcome.offending["row"].to_numpy()][cols].to_numpy(dtype="float64")
    bad = rows <= 0 if outcome.name == "prices_are_positive" else ~np.isfinite(rows)
    return cols[int(np.argmax(bad.any(axis=0)))]


def validate_bars_or_raise(df: pd.DataFrame, check_calendar: bool = True) -> pd.DataFrame:
    """Strict gate: raise `BarValidationError(field, reason, rows)` on the first failing ERROR check.

    `rows` are 0-based positions in `df` as given. Returns the normalized frame when all checks pass.
    `check_calendar=False` skips the trading-bar check (e.g. for ad-hoc single bars).
    """
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise BarValidationError(missing[0], f"missing column (found {list(df.columns)})", [])
    for col in VALUE_COLUMNS:
        numeric = pd.to_numeric(df[col], errors="coerce")
        bad = numeric.isna() & df[col].notna()
        if bad.any():
            raise BarValidationError(col, "not a number", np.flatnonzero(bad.to_numpy()).tolist())
    try:
        stamps = pd.to_datetime(df["timestamp"])
    except (ValueError, TypeError) as exc:
        raise BarValidationError("timestamp", f"unparsable timestamp ({exc})", []) from exc
    work = df.reset_index(drop=True).copy()
    work["timestamp"] = _to_ny(stamps)
    for col in VALUE_COLUMNS:
        work[col] = pd.to_numeric(work[col]).astype("float64")
    for check in ERROR_CHECKS:
        if check is timestamps_are_trading_bars and not check_calendar:
            continue
        outcome = check(work)
        if not outcome.passed:
            raise BarValidationError(
                _bad_field(outcome, work),
                outcome.description + " violated",
                outcome.offending["row"].tolist(),
            )
    return normalize_bars(work)
