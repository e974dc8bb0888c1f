"""Causal, vectorised bar features for all symbols at once.

One numpy pass over the canonical bar frame (sorted by symbol, timestamp). Every window feature is a
finite trailing window of at most `MAX_LOOKBACK` bars computed with strided views (no cumulative sums),
so the value at row t depends only on the bars t-14 .. t of the same symbol: deleting or changing later
bars (or other symbols) leaves it bit-for-bit unchanged, and serving from the latest W bars reproduces the
training features exactly. Rows whose window would cross into another symbol are exactly the first
`warmup` bars of each symbol; they are flagged `warmup=True` and their features are NaN.

Session awareness: `bar_of_day` counts hours from the 09:30 open; `is_last_bar_of_day` comes from the XNYS
calendar (the 15:30 bar, or 12:30 on a half-day, lasts half an hour and its next return spans the night).

Index context (`FeatureConfig(index_context=True)`, off by default): `INDEX_CONTEXT_COLUMNS`, computed from
the index PROXY's own bars (QQQ by default, one series, `proxy=` of `compute_features`) and joined to each
row by its timestamp; every proxy value at bar t reads proxy bars <= t only (at most 8 proxy bars back):

    idx_ret_1           log return of the proxy's last bar (its previous close -> close_t)
    idx_ret_6           log return of the proxy over its last 6 bars
    idx_ret_day         since the day's open: first proxy bar of the session's open -> close_t
    idx_gap             overnight gap: the proxy's previous close (last bar before the session) -> the open
    idx_first_bar       intraday momentum (Gao, Han, Li & Zhou, JFE 2018, on 1-hour bars): previous close ->
                        close of the session's first bar (= gap + first-bar return); known from bar 0 on and
                        carried to every later bar of the session
    idx_first_x_last    idx_first_bar x is_last_bar_of_day
    idx_first_x_next_last  idx_first_bar x "the NEXT bar is the session's last": the label is the next
                        bar's return, so this is the feature that carries the paper's first-half-hour ->
                        last-half-hour effect to the bar whose outcome is the last bar
    rel_ret_1, rel_ret_6  the symbol's 1- and 6-bar log return minus the proxy's over the same bars

Missing proxy bar: a row whose hour has no proxy bar gets NaN in every index-context column (no fill from
another bar, no constituent average); "previous" proxy values are the proxy's previous AVAILABLE bar, as
for the symbol's own features. Callers that need every hour (feature_table, batch) check coverage first
with `lib.proxy.require_proxy` (an error naming the proxy symbol and the hours); `lib.prediction` refuses a
non-warm-up row with NaN features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_master.lib import calendar
from market_master.lib.proxy import DEFAULT_PROXY

# Longest trailing window any feature reads, in bars (RSI/ATR over 14 returns need 15 bars).
MAX_LOOKBACK = 15
WARMUP_DEFAULT = 16
WARMUP_MIN = MAX_LOOKBACK
WARMUP_MAX = 60
EWM_DECAY = 0.8

FEATURE_COLUMNS: list[str] = [
    "ret_1",
    "ret_3",
    "ret_6",
    "ret_12",
    "ret_mean_12",
    "vol_6",
    "vol_12",
    "vol_ratio_6_12",
    "vol_ewm_14",
    "ret_z_1",
    "rsi_14",
    "ma_ratio_4_12",
    "atr_ratio_14",
    "tr_ratio_14",
    "bb_width_12",
    "bb_pctb_12",
    "range_hl_c",
    "body_pos",
    "gap_open",
    "dist_high_12",
    "dist_low_12",
    "volume_z_12",
    "bar_of_day",
    "is_last_bar_of_day",
]

INDEX_CONTEXT_COLUMNS: list[str] = [
    "idx_ret_1",
    "idx_ret_6",
    "idx_ret_day",
    "idx_gap",
    "idx_first_bar",
    "idx_first_x_last",
    "idx_first_x_next_last",
    "rel_ret_1",
    "rel_ret_6",
]

OUTPUT_KEY_COLUMNS = ["symbol", "timestamp", "close"]
_PRICE_COLUMNS = ["open", "high", "low", "close", "volume"]


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings stored inside every model. `warmup`: bars per symbol without a signal;
    `index_context`: add INDEX_CONTEXT_COLUMNS (needs the bars of the proxy `proxy_symbol`)."""

    warmup: int = WARMUP_DEFAULT
    index_context: bool = False
    proxy_symbol: str = DEFAULT_PROXY

    def __post_init__(self) -> None:
        if not isinstance(self.index_context, bool | np.bool_):
            raise TypeError(
                f"FeatureConfig.index_context must be a bool, got {type(self.index_context).__name__}"
            )
        if not isinstance(self.proxy_symbol, str) or not self.proxy_symbol.strip():
            raise TypeError(f"FeatureConfig.proxy_symbol must be a non-empty str, got {self.proxy_symbol!r}")
        if not isinstance(self.warmup, int | np.integer) or isinstance(self.warmup, bool):
            raise TypeError(f"FeatureConfig.warmup must be an int, got {type(self.warmup).__name__}")
        if not WARMUP_MIN <= self.warmup <= WARMUP_MAX:
            raise ValueError(
                f"FeatureConfig.warmup={self.warmup} outside [{WARMUP_MIN}, {WARMUP_MAX}] "
                f"(features read up to {MAX_LOOKBACK} bars)"
            )

    @property
    def columns(self) -> list[str]:
        """The feature columns this config produces (what a model trained on it reads)."""
        return FEATURE_COLUMNS + (INDEX_CONTEXT_COLUMNS if self.index_context else [])

    def to_dict(self) -> dict:
        return {
            "warmup": int(self.warmup),
            "index_context": bool(self.index_context),
            "proxy_symbol": str(self.proxy_symbol),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        """From `to_dict`; a config stored before index context existed has none (False)."""
        return cls(
            warmup=int(data["warmup"]),
            index_context=bool(data.get("index_context", False)),
            proxy_symbol=str(data.get("proxy_symbol", DEFAULT_PROXY)),
        )


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    """x shifted down by k rows (NaN on top); rows crossing into another symbol are warm-up rows."""
    if k == 0:
        return x
    out = np.empty_like(x)
    out[:k] = np.nan
    out[k:] = x[:-k]
    return out


def _diff(x: np.ndarray, k: int) -> np.ndarray:
    """x[t] - x[t-k] (NaN for t < k)."""
    out = np.empty_like(x)
    out[:k] = np.nan
    np.subtract(x[k:], x[:-k], out=out[k:])
    return out


def _wreduce(x: np.ndarray, n: int, op: np.ufunc) -> np.ndarray:
    """op (add / maximum / minimum) over the trailing n rows x[t-n+1] .. x[t]; NaN for t < n-1.

    Built by doubling (windows of 1, 2, 4, 8 ... combined by the bits of n): O(log n) contiguous vector
    passes, and the same operations in the same order for every row, so a row's value never depends on its
    position in the frame or on later rows (unlike a global cumulative sum).
    """
    powers = {1: x}
    size = 1
    while size * 2 <= n:
        p = powers[size]
        doubled = p.copy()
        op(doubled[size:], p[:-size], out=doubled[size:])
        powers[size * 2] = doubled
        size *= 2
    out = None
    covered = 0
    for size in sorted(powers, reverse=True):
        if n - covered >= size:
            if out is None:
                out = powers[size].copy()
            else:
                op(out[covered:], powers[size][:-covered], out=out[covered:])
            covered += size
    out[: n - 1] = np.nan
    return out


def _ewm_vol(r: np.ndarray, n: int, decay: float) -> np.ndarray:
    """sqrt of the exponentially weighted mean of r^2 over the trailing n rows (weights decay^j, j=0 newest)."""
    w = decay ** np.arange(n)
    w /= w.sum()
    sq = r * r
    acc = w[0] * sq
    for j in range(1, n):
        acc[j:] += w[j] * sq[:-j]
    acc[: n - 1] = np.nan
    return np.sqrt(acc)


def _mean(x: np.ndarray, n: int) -> np.ndarray:
    return _wreduce(x, n, np.add) / n


def _std(x: np.ndarray, n: int, mean: np.ndarray | None = None) -> np.ndarray:
    """Population standard deviation over the trailing n rows (from windowed sums of x and x^2)."""
    m = _mean(x, n) if mean is None else mean
    var = _wreduce(x * x, n, np.add) / n - m * m
    return np.sqrt(np.maximum(var, 0.0))


def _safe_div(num: np.ndarray, den: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """num / den with `fill` where den == 0 (NaN stays NaN)."""
    out = num / den
    out[den == 0] = fill
    return out


def session_flags(timestamps: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(bar_of_day, is_last_bar_of_day) per row from the XNYS calendar; raises on non-bar timestamps."""
    index = pd.DatetimeIndex(timestamps)
    if index.tz is None:
        raise ValueError("compute_features: timestamp must be tz-aware (America/New_York)")
    bar_of_day = calendar.bar_of_day(index)
    # Only the 7th bar (15:30) or a half-day's 4th bar (12:30) can end a session: ask the calendar for those.
    is_last = bar_of_day == calendar.MAX_BARS_PER_SESSION - 1
    maybe = np.flatnonzero(bar_of_day == 3)
    is_last[maybe] = calendar.is_last_bar_of_session(index[maybe])
    return bar_of_day.astype(np.float64), is_last


def next_bar_is_last(timestamps: pd.Series | pd.DatetimeIndex, bar_of_day: np.ndarray) -> np.ndarray:
    """Whether the bar after each row's bar is its session's last (14:30 on full days, 11:30 on
    half-days): a calendar fact, known in advance."""
    out = bar_of_day == calendar.MAX_BARS_PER_SESSION - 2
    maybe = np.flatnonzero(bar_of_day == 2)
    if len(maybe):
        index = pd.DatetimeIndex(timestamps)
        out[maybe] = calendar.is_last_bar_of_session(index[maybe] + pd.Timedelta(hours=1))
    return out


def _proxy_frame(proxy: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ["timestamp", "open", "close"] if c not in proxy.columns]
    if missing:
        raise ValueError(f"compute_features: proxy bars lack columns {missing}")
    if "symbol" in proxy.columns and proxy["symbol"].nunique() > 1:
        raise ValueError(
            f"compute_features: proxy bars hold several symbols {sorted(proxy['symbol'].unique())}"
        )
    ts = pd.DatetimeIndex(proxy["timestamp"])
    if ts.tz is None:
        raise ValueError("compute_features: proxy timestamps must be tz-aware (America/New_York)")
    if len(ts) > 1 and not (np.diff(ts.asi8) > 0).all():
        raise ValueError("compute_features: proxy bars not sorted by timestamp / duplicated")
    return proxy


def _proxy_series_features(proxy: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(proxy bar starts as UTC ns, proxy-only features per proxy bar), on the proxy's own series."""
    ts = pd.DatetimeIndex(proxy["timestamp"])
    ns = ts.asi8
    n = len(ns)
    po = proxy["open"].to_numpy(np.float64)
    lpc = np.log(proxy["close"].to_numpy(np.float64))
    lpo = np.log(po)
    day = ts.tz_convert(calendar.TZ).normalize().asi8
    new_day = np.r_[True, day[1:] != day[:-1]] if n else np.array([], dtype=bool)
    first = np.maximum.accumulate(np.where(new_day, np.arange(n), 0)) if n else np.array([], dtype=np.int64)
    prev_close = _lag(lpc, 1)  # the proxy's previous available close
    gap = lpo[first] - prev_close[first]
    first_bar = lpc[first] - prev_close[first]
    out = {
        "idx_ret_1": lpc - prev_close,
        "idx_ret_6": _diff(lpc, 6),
        "idx_ret_day": lpc - lpo[first],
        "idx_gap": gap,
        "idx_first_bar": first_bar,
    }
    return ns, out


def index_context_features(
    timestamps: pd.Series | pd.DatetimeIndex,
    ret_1: np.ndarray,
    ret_6: np.ndarray,
    is_last: np.ndarray,
    next_last: np.ndarray,
    proxy: pd.DataFrame,
) -> dict[str, np.ndarray]:
    """INDEX_CONTEXT_COLUMNS for rows at `timestamps` (NaN where the proxy has no bar at that hour)."""
    pns, pf = _proxy_series_features(_proxy_frame(proxy))
    rows = pd.DatetimeIndex(timestamps).asi8
    pos = np.searchsorted(pns, rows)
    pos_c = np.minimum(pos, max(len(pns) - 1, 0))
    hit = (pos < len(pns)) & (pns[pos_c] == rows) if len(pns) else np.zeros(len(rows), dtype=bool)
    out: dict[str, np.ndarray] = {}
    for name, values in pf.items():
        col = np.full(len(rows), np.nan)
        col[hit] = values[pos_c[hit]]
        out[name] = col
    out["idx_first_x_last"] = out["idx_first_bar"] * is_last
    out["idx_first_x_next_last"] = out["idx_first_bar"] * next_last
    out["rel_ret_1"] = ret_1 - out["idx_ret_1"]
    out["rel_ret_6"] = ret_6 - out["idx_ret_6"]
    return out


def _check_bars(bars: pd.DataFrame) -> None:
    missing = [c for c in ["symbol", "timestamp", *_PRICE_COLUMNS] if c not in bars.columns]
    if missing:
        raise ValueError(f"compute_features: bars lack columns {missing}")
    if len(bars) == 0:
        return
    sym = bars["symbol"].to_numpy()
    ts = pd.DatetimeIndex(bars["timestamp"]).asi8
    same = sym[1:] == sym[:-1]
    order_bad = same & (ts[1:] <= ts[:-1])
    if order_bad.any():
        rows = (np.flatnonzero(order_bad) + 1)[:5].tolist()
        raise ValueError(
            f"compute_features: bars not sorted by (symbol, timestamp) / duplicated at rows {rows}"
        )
    starts = np.flatnonzero(np.r_[True, ~same])
    if len(pd.unique(sym[starts])) != len(starts):
        raise ValueError("compute_features: a symbol's bars are not contiguous (sort by symbol, timestamp)")


def compute_features(
    bars: pd.DataFrame, config: FeatureConfig | None = None, proxy: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Features per bar: same rows and order as `bars`; `symbol, timestamp, close, *config.columns, warmup`.

    `proxy`: canonical bars of the index proxy (one symbol, sorted by timestamp); required when
    `config.index_context`, ignored otherwise.
    """
    config = config or FeatureConfig()
    if config.index_context and proxy is None:
        raise ValueError(
            "compute_features: FeatureConfig(index_context=True) needs the index proxy's bars (`proxy=`)"
        )
    columns = config.columns
    _check_bars(bars)
    n = len(bars)
    if n == 0:
        empty = {col: np.array([], dtype=np.float64) for col in columns}
        return pd.DataFrame(
            {"symbol": bars["symbol"].to_numpy(), "timestamp": bars["timestamp"].array, "close": []}
            | empty
            | {"warmup": np.array([], dtype=bool)}
        )

    o, h, lo, c, v = (bars[col].to_numpy(np.float64) for col in _PRICE_COLUMNS)
    sym = bars["symbol"].to_numpy()
    new_group = np.r_[True, sym[1:] != sym[:-1]]
    starts = np.flatnonzero(new_group)
    warm = np.zeros(n, dtype=bool)
    for start in starts:  # a spill past a short group stays inside the next group's own warm-up
        warm[start : start + config.warmup] = True

    with np.errstate(divide="ignore", invalid="ignore"):
        lc = np.log(c)
        c_prev = _lag(c, 1)
        r1 = _diff(lc, 1)
        f: dict[str, np.ndarray] = {}
        f["ret_1"] = r1
        for k in (3, 6, 12):
            f[f"ret_{k}"] = _diff(lc, k)
        f["ret_mean_12"] = _mean(r1, 12)
        f["vol_6"] = _std(r1, 6)
        f["vol_12"] = _std(r1, 12)
        # Blend of squared returns and the Parkinson range estimator (h/l carries most of the volatility
        # information of a bar); the label scale, so that the size of the next move is hard to predict.
        parkinson = np.log(h / lo) ** 2 / (4.0 * np.log(2.0))
        f["vol_ewm_14"] = np.sqrt(
            0.5 * _ewm_vol(r1, 14, EWM_DECAY) ** 2 + 0.5 * _ewm_vol(np.sqrt(parkinson), 14, EWM_DECAY) ** 2
        )
        f["vol_ratio_6_12"] = _safe_div(f["vol_6"], f["vol_12"], 1.0)
        f["ret_z_1"] = _safe_div(r1, f["vol_12"])
        gain_w = _wreduce(np.maximum(r1, 0.0), 14, np.add)
        loss_w = _wreduce(np.maximum(-r1, 0.0), 14, np.add)
        f["rsi_14"] = 100.0 * _safe_div(gain_w, gain_w + loss_w, 0.5)
        ma12 = _mean(c, 12)
        f["ma_ratio_4_12"] = _mean(c, 4) / ma12 - 1.0
        tr = np.maximum(h - lo, np.maximum(np.abs(h - c_prev), np.abs(lo - c_prev)))
        atr = _mean(tr, 14)
        f["atr_ratio_14"] = atr / c
        f["tr_ratio_14"] = _safe_div(tr, atr, 1.0)
        sd12 = _std(c, 12, ma12)
        f["bb_width_12"] = 4.0 * sd12 / ma12
        f["bb_pctb_12"] = _safe_div(c - (ma12 - 2.0 * sd12), 4.0 * sd12, 0.5)
        f["range_hl_c"] = (h - lo) / c
        f["body_pos"] = _safe_div(c - o, h - lo)
        f["gap_open"] = np.log(o) - np.log(c_prev)
        f["dist_high_12"] = lc - np.log(_wreduce(h, 12, np.maximum))
        f["dist_low_12"] = lc - np.log(_wreduce(lo, 12, np.minimum))
        lv = np.log1p(np.maximum(v, 0.0))
        f["volume_z_12"] = _safe_div(lv - _mean(lv, 12), _std(lv, 12))
    bar_of_day, is_last = session_flags(bars["timestamp"])
    f["bar_of_day"] = bar_of_day
    f["is_last_bar_of_day"] = is_last.astype(np.float64)
    if config.index_context:
        next_last = next_bar_is_last(bars["timestamp"], bar_of_day.astype(np.int64)).astype(np.float64)
        with np.errstate(invalid="ignore"):
            f.update(
                index_context_features(
                    bars["timestamp"], f["ret_1"], f["ret_6"], f["is_last_bar_of_day"], next_last, proxy
                )
            )

    block = np.empty((len(columns), n))
    for i, col in enumerate(columns):
        block[i] = f[col]
    for start in starts:
        block[:, start : start + config.warmup] = np.nan
    out = pd.DataFrame(block.T, columns=columns, copy=False)
    out.insert(0, "symbol", sym)
    out.insert(1, "timestamp", bars["timestamp"].array)
    out.insert(2, "close", c)
    out["warmup"] = warm
    return out
