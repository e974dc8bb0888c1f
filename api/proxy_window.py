"""The index proxy's bars of a POST /predict request, for models whose FeatureConfig uses index context.

The proxy's bars (`proxy_bars`) must sit at exactly the timestamps of the window's `bars` and pass the same
bar checks; otherwise a 422 names the field (`proxy_bars`, `proxy_bars[i].timestamp`, ...). A model without
index context ignores them. GET /predict/component reads the stored `index_proxy_bars` for its window.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from api.bar_windows import _iso, check_window, parse_timestamp
from api.errors import ApiError
from api.inference import BarWindow
from api.schemas import BarRequest
from market_master.lib.calendar import PARTITION_FMT, TZ


def uses_index_context(model) -> bool:
    config = getattr(model, "feature_config", None)
    return bool(getattr(config, "index_context", False))


def proxy_symbol_of(model) -> str:
    return str(model.feature_config.proxy_symbol)


def _error(code: str, message: str, field: str, reason: str, rows: list[int] | None = None) -> ApiError:
    return ApiError(422, code, message, field=field, reason=reason, rows=rows)


def with_proxy(window: BarWindow, proxy_bars: list[BarRequest] | None, symbol: str) -> BarWindow:
    """`window` carrying the proxy's values at its timestamps; 422 when they are missing or misaligned."""
    n = len(window)
    if not proxy_bars:
        raise _error(
            "missing_proxy_bars",
            f"proxy_bars: required: the served model's features use the index proxy {symbol}'s context; send "
            f"{symbol}'s bars at the same {n} timestamps as `bars`",
            "proxy_bars",
            "required by the model's index-context features",
        )
    ts = np.empty(len(proxy_bars), dtype=np.int64)
    values = np.empty((len(proxy_bars), 5), dtype=np.float64)
    for i, bar in enumerate(proxy_bars):
        field = f"proxy_bars[{i}].timestamp"
        if bar.timestamp is None:
            raise _error("invalid_bars", f"{field}: required (the bar start, ISO 8601)", field, "required")
        ts[i] = parse_timestamp(bar.timestamp, field)
        values[i] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    if len(ts) != n:
        raise _error(
            "misaligned_proxy_bars",
            f"proxy_bars: {len(ts)} bars of {symbol} for a window of {n} bars: send one proxy bar per bar, "
            f"at the same timestamps",
            "proxy_bars",
            f"needs {n} bars at the window's timestamps, has {len(ts)}",
        )
    off = np.flatnonzero(ts != window.ts_ns)
    if len(off):
        i = int(off[0])
        field = f"proxy_bars[{i}].timestamp"
        raise _error(
            "misaligned_proxy_bars",
            f"{field}: {symbol}'s bar starts at {_iso(int(ts[i]))} but bars[{i}] starts at "
            f"{_iso(int(window.ts_ns[i]))}: the proxy's bars must be at the window's timestamps",
            field,
            f"expected {_iso(int(window.ts_ns[i]))}",
            rows=[i],
        )
    proxy = BarWindow(symbol, ts, values)
    check_window(proxy, field_prefix="proxy_bars", check_gaps=False)  # aligned with the gap-checked bars
    return replace(window, proxy_values=values)


INDEX_PROXY_BARS = "index_proxy_bars"


def with_stored_proxy(window: BarWindow, store, symbol: str) -> BarWindow:
    """`window` (stored bars) carrying the stored `index_proxy_bars` at its timestamps; 422 naming the
    proxy symbol and the hours when some are not stored."""
    keys = [pd.Timestamp(int(t), tz="UTC").tz_convert(TZ).strftime(PARTITION_FMT) for t in window.ts_ns]
    values = np.full((len(window), 5), np.nan)
    missing = []
    for i, key in enumerate(keys):
        frame = store.read_partition(INDEX_PROXY_BARS, key, missing_ok=True)
        rows = frame[frame["symbol"] == symbol] if len(frame) else frame
        if len(rows) != 1:
            missing.append(_iso(int(window.ts_ns[i])))
            continue
        values[i] = rows[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)[0]
    if missing:
        raise _error(
            "missing_proxy_bars",
            f"{symbol}: the served model uses index context but index_proxy_bars has no {symbol} bar stored "
            f"at {len(missing)} of the window's hours: {missing[:10]}; materialize index_proxy_bars",
            "symbol",
            "stored proxy bars missing",
        )
    return replace(window, proxy_values=values)
