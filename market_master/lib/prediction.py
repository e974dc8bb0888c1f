"""Per-symbol predictions for trading hours: THE prediction path of the asset graph, batch mode and API.

For each requested hour and each universe symbol one row with a status:

* ``ok``: the symbol has a bar starting exactly at that hour and it is past the feature warm-up ->
  ``action`` (the model's decision: expected-score band, or argmax), the five class probabilities and ``confidence`` (max probability);
* ``missing_bar``: no bar for that symbol at that hour;
* ``unknown_symbol``: the model was never trained on the symbol (not in ``model.trained_symbols``, when
  the model has that attribute): its one-hot would be all zeros, so no prediction is made;
* ``warmup``: the bar exists but lies within the symbol's first ``warmup`` bars (features undefined).

Non-ok rows never carry an action (``action`` None, probabilities and confidence NaN). All ok rows go to
the model in ONE ``predict_proba`` call. ``timestamp_next`` is the calendar's next bar start after the
hour (the bar the prediction is about).

``predict_hours`` works on a feature table (the asset graph, batch mode); ``predict_windows`` predicts the
LAST bar of each of several bar windows with one ``compute_features`` pass and one ``predict_proba`` call
(the API's micro-batches, ``predict_latest``). Both share the status / model / action code below.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import pandas as pd

from market_master.lib import calendar
from market_master.lib.features import FeatureConfig, compute_features
from market_master.lib.labels import CLASSES

OK, WARMUP, MISSING_BAR, UNKNOWN_SYMBOL = "ok", "warmup", "missing_bar", "unknown_symbol"
PROB_COLUMNS = [f"p_{c}" for c in CLASSES]
PREDICTION_COLUMNS = [
    "hour",
    "symbol",
    "status",
    "action",
    *PROB_COLUMNS,
    "confidence",
    "timestamp_next",
    "model_name",
    "model_version",
    "model_alias",
]
_WINDOW_COLUMNS = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
_CLASS_ARRAY = np.asarray(CLASSES, dtype=object)
_FEW_HOURS = 8


class ProbaModel(Protocol):
    """What prediction needs from a model (``lib.model.ComponentModel`` satisfies it).

    ``trained_symbols`` (optional) marks every other symbol ``unknown_symbol``; ``feature_config``
    (needed by ``predict_windows`` only) is the config the model's features were computed with.
    """

    feature_columns: list[str]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced a prediction (registry name, version, alias); any part may be None."""

    name: str | None = None
    version: str | None = None
    alias: str | None = None


class NonFiniteFeaturesError(ValueError):
    """Rows past the warm-up have NaN/inf features (e.g. prices so extreme that the maths overflows).

    ``positions``: the offending rows' positions in the ``predict_hours`` output, or the offending
    windows' indices in the ``predict_windows`` input.
    """

    def __init__(self, message: str, positions: list[int]) -> None:
        super().__init__(message)
        self.positions = positions


@lru_cache(maxsize=8192)
def _next_bar_after(ns: int) -> pd.Timestamp:
    return calendar.next_bar_start(pd.Timestamp(ns, tz="UTC"))


def next_bar_starts(hours: pd.DatetimeIndex | pd.Series | Iterable[Any]) -> pd.DatetimeIndex:
    """Vectorised ``calendar.next_bar_start``: one calendar slice + searchsorted over the unique hours
    (a few unique hours, e.g. one serving batch: ``calendar.next_bar_start`` per hour, memoised)."""
    idx = pd.DatetimeIndex(hours)
    if len(idx) == 0:
        return pd.DatetimeIndex([], tz=calendar.TZ, name="timestamp_next")
    if idx.tz is None:
        idx = idx.tz_localize(calendar.TZ)
    idx = idx.tz_convert(calendar.TZ)
    uniq = idx.unique().sort_values()
    if len(uniq) <= _FEW_HOURS:
        nxt = [_next_bar_after(int(ns)) for ns in uniq.as_unit("ns").asi8]
    else:
        bars = calendar.trading_bars(uniq[0], uniq[-1] + pd.Timedelta(days=14))
        pos = bars.searchsorted(uniq, side="right")
        nxt = [
            bars[p] if p < len(bars) else calendar.next_bar_start(h) for p, h in zip(pos, uniq, strict=True)
        ]
    nxt_idx = pd.DatetimeIndex(nxt).tz_convert(calendar.TZ)
    return nxt_idx[uniq.get_indexer(idx)].rename("timestamp_next")


def _model_feature_columns(model: ProbaModel, columns: Iterable[str]) -> list[str]:
    cols = list(getattr(model, "feature_columns", None) or [])
    if not cols:
        raise ValueError("model has no feature_columns")
    present = set(columns)
    absent = [c for c in cols if c not in present]
    if absent:
        raise ValueError(f"features lack the model's feature columns {absent}")
    return cols


def _trained_symbols(model: ProbaModel) -> np.ndarray | None:
    """The model's ``trained_symbols`` as an array, or None when the model does not say."""
    trained = getattr(model, "trained_symbols", None)
    return None if trained is None else np.asarray([str(s) for s in trained], dtype=object)


def _classify(
    hours: pd.DatetimeIndex,
    symbols: np.ndarray,
    has_bar: np.ndarray,
    warm: np.ndarray,
    x: np.ndarray,
    model: ProbaModel,
    cols: list[str],
    what: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(status, action, probs (n, 5)) for aligned rows; ONE predict_proba call for the ok rows.

    ``x`` holds the model's feature columns (any values where the row is not ok). ``what`` names a row
    position in error messages ("row", "window").
    """
    trained = _trained_symbols(model)
    unknown = np.zeros(len(symbols), dtype=bool) if trained is None else ~np.isin(symbols, trained)
    status = np.where(
        ~has_bar, MISSING_BAR, np.where(unknown, UNKNOWN_SYMBOL, np.where(warm, WARMUP, OK))
    ).astype(object)
    ok = status == OK
    n = len(status)
    probs = np.full((n, len(CLASSES)), np.nan)
    action = np.full(n, None, dtype=object)
    if not ok.any():
        return status, action, probs
    ok_pos = np.flatnonzero(ok)
    xo = np.asarray(x[ok_pos], dtype=np.float64)
    finite = np.isfinite(xo).all(axis=1)
    if not finite.all():
        bad = ok_pos[~finite]
        examples = [
            f"{what} {p}: {symbols[p]} at {hours[p].isoformat()} "
            f"{[c for c, v in zip(cols, x[p], strict=True) if not np.isfinite(v)][:5]}"
            for p in bad[:5]
        ]
        raise NonFiniteFeaturesError(
            f"{len(bad)} non-warm-up feature row(s) have NaN/inf features (prices too extreme?), "
            f"e.g. {examples}",
            bad.tolist(),
        )
    # a model with an array fast path (ComponentModel, small inputs) skips the DataFrame round trip
    fast = getattr(model, "predict_proba_arrays", None)
    p = fast(symbols[ok_pos], xo) if fast is not None and list(model.feature_columns) == cols else None
    if p is None:
        frame = pd.DataFrame(xo, columns=cols, copy=False)
        frame.insert(0, "symbol", symbols[ok_pos])
        p = model.predict_proba(frame)
    p = np.asarray(p, dtype=float)
    if p.shape != (len(ok_pos), len(CLASSES)):
        raise ValueError(
            f"model.predict_proba returned shape {p.shape}, expected ({len(ok_pos)}, {len(CLASSES)})"
        )
    probs[ok_pos] = p
    to_classes = getattr(model, "class_indices_from_proba", None)
    action[ok_pos] = _CLASS_ARRAY[to_classes(p) if to_classes is not None else p.argmax(axis=1)]
    return status, action, probs


def predict_hours(
    features: pd.DataFrame,
    model: ProbaModel,
    hours: Iterable[Any] | None = None,
    universe: Iterable[str] | None = None,
    model_info: ModelInfo | None = None,
) -> pd.DataFrame:
    """Predictions for every (hour, universe symbol); see the module docstring for the statuses.

    ``features``: the ``features.compute_features`` frame (``symbol, timestamp, warmup`` + feature
    columns). ``hours`` default: every timestamp present; ``universe`` default: every symbol present.
    Rows are sorted by (hour, symbol). Raises NonFiniteFeaturesError (a ValueError) naming the rows when
    an ``ok`` row has a non-finite feature (the feature contract says only warm-up rows are NaN).
    """
    info = model_info or ModelInfo()
    required = {"symbol", "timestamp", "warmup"}
    if required - set(features.columns):
        raise ValueError(f"features lack columns {sorted(required - set(features.columns))}")
    if hours is None:
        hour_idx = pd.DatetimeIndex(features["timestamp"].unique()).sort_values()
    else:
        hour_idx = pd.DatetimeIndex([calendar.to_timestamp(h) for h in hours]).unique().sort_values()
    if hour_idx.tz is None:  # no hours (a holiday-only range): an empty index still carries the time zone
        hour_idx = hour_idx.tz_localize(calendar.TZ)
    symbols = sorted(pd.unique(features["symbol"])) if universe is None else sorted(dict.fromkeys(universe))
    cols = _model_feature_columns(model, features.columns)

    grid = pd.DataFrame(
        {
            "hour": hour_idx.repeat(len(symbols)),
            "symbol": np.tile(np.asarray(symbols, dtype=object), len(hour_idx)),
        }
    )
    wanted = features[features["symbol"].isin(symbols) & features["timestamp"].isin(hour_idx)]
    if wanted.duplicated(["symbol", "timestamp"]).any():
        dup = wanted.loc[wanted.duplicated(["symbol", "timestamp"]), ["symbol", "timestamp"]].head(5)
        raise ValueError(f"features have duplicate (symbol, timestamp) rows: {dup.to_dict('records')}")
    rows = wanted.rename(columns={"timestamp": "hour"})[["hour", "symbol", "warmup", *cols]]
    table = grid.merge(rows, on=["hour", "symbol"], how="left", indicator=True)
    status, action, probs = _classify(
        pd.DatetimeIndex(table["hour"]),
        table["symbol"].to_numpy(dtype=object),
        (table["_merge"] == "both").to_numpy(),
        table["warmup"].fillna(False).astype(bool).to_numpy(),
        table[cols].to_numpy(dtype=np.float64),
        model,
        cols,
        what="row",
    )
    n = len(table)
    out = pd.DataFrame({"hour": table["hour"], "symbol": table["symbol"], "status": status, "action": action})
    for j, col in enumerate(PROB_COLUMNS):
        out[col] = probs[:, j]
    out["confidence"] = probs.max(axis=1) if n else np.array([], dtype=float)
    out["timestamp_next"] = next_bar_starts(out["hour"]) if n else pd.DatetimeIndex([], tz=calendar.TZ)
    out["model_name"] = info.name
    out["model_version"] = None if info.version is None else str(info.version)
    out["model_alias"] = info.alias
    return out[PREDICTION_COLUMNS]


def _window_ns(window: pd.DataFrame, i: int) -> np.ndarray:
    """UTC nanoseconds of a window's timestamps (naive = New York time); raises ValueError unless
    strictly increasing."""
    arr = window["timestamp"].array
    if isinstance(arr, pd.arrays.DatetimeArray) and arr.tz is not None:
        ns = arr.as_unit("ns").asi8  # tz-aware values are held as UTC: no conversion needed
    else:
        idx = pd.DatetimeIndex(arr)
        ns = (idx.tz_localize(calendar.TZ) if idx.tz is None else idx).tz_convert("UTC").as_unit("ns").asi8
    order = np.flatnonzero(np.diff(ns) <= 0)
    if len(order):
        r = int(order[0]) + 1
        ts = window["timestamp"]
        raise ValueError(
            f"window {i}: timestamps must be strictly increasing, row {r} ({ts.iloc[r]}) follows {ts.iloc[r - 1]}"
        )
    return ns


def predict_windows(
    windows: list[pd.DataFrame],
    model: ProbaModel,
    model_info: ModelInfo | None = None,
    proxies: list[pd.DataFrame] | None = None,
) -> list[dict[str, Any]]:
    """Predict the LAST bar of every window: one ``compute_features`` pass and one ``predict_proba`` call.

    Each window is canonical bars (``lib.bars.BAR_COLUMNS``) of ONE symbol, oldest first; the same symbol
    may appear in several windows (each window is featurised on its own: in the shared pass it gets a
    pseudo-symbol, the real one is restored for the model). Features use ``model.feature_config``.
    Returns one ``predict_hours`` row (dict with ``PREDICTION_COLUMNS``) per window, in input order:
    ``hour`` = the last bar's start; status ``warmup`` when the window is shorter than warm-up + 1.
    Raises ValueError naming the window for an empty, multi-symbol or unsorted window, and
    NonFiniteFeaturesError (``positions`` = window indices) when a last bar's features are not finite.
    ``proxies``: the index proxy's bars for each window (same timestamps), needed when the model's
    FeatureConfig uses index context.
    """
    if not windows:
        return []
    info = model_info or ModelInfo()
    config = getattr(model, "feature_config", None)
    if not isinstance(config, FeatureConfig):
        raise ValueError(f"predict_windows: the model has no FeatureConfig `feature_config` (got {config!r})")
    symbols: list[str] = []
    stamps = []
    values = []
    for i, w in enumerate(windows):
        absent = [c for c in _WINDOW_COLUMNS if c not in w.columns]
        if absent:
            raise ValueError(f"window {i} lacks columns {absent}")
        if len(w) == 0:
            raise ValueError(f"window {i} is empty")
        sym = w["symbol"].to_numpy(dtype=object)
        if (sym != sym[0]).any():
            raise ValueError(
                f"window {i} holds several symbols {sorted(set(sym.tolist()))[:5]}: one per window"
            )
        symbols.append(str(sym[0]))
        stamps.append(_window_ns(w, i))
        # single-column reads: a list selection per window costs ~10x more
        values.append(np.column_stack([w[col].to_numpy(np.float64) for col in _WINDOW_COLUMNS[2:]]))
    proxy_values = None
    if proxies is not None:
        proxy_values = []
        for i, (p, t) in enumerate(zip(proxies, stamps, strict=True)):
            if not np.array_equal(_window_ns(p, i), t):
                raise ValueError(f"window {i}: the proxy's bars are not at the window's timestamps")
            proxy_values.append(np.column_stack([p[col].to_numpy(np.float64) for col in _WINDOW_COLUMNS[2:]]))
    return predict_window_arrays(symbols, stamps, values, model, info, proxies=proxy_values)


def predict_window_arrays(
    symbols: list[str],
    stamps: list[np.ndarray],
    values: list[np.ndarray],
    model: ProbaModel,
    model_info: ModelInfo | None = None,
    proxies: list[np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """``predict_windows`` on windows given as arrays (the API's bar windows: no DataFrame per window).

    Window ``i`` is ``symbols[i]`` with ``stamps[i]`` (int64 UTC nanoseconds of the bar starts, strictly
    increasing) and ``values[i]`` (n, 5) open, high, low, close, volume. Same rows, order and errors as
    ``predict_windows`` (which calls this after reading its frames). ``proxies[i]``: the index proxy's
    (n, 5) values at the same ``stamps[i]``, required when the model's FeatureConfig uses index context
    (each window's proxy is its own: its features are then computed window by window).
    """
    if not symbols:
        return []
    if not len(symbols) == len(stamps) == len(values):
        raise ValueError(
            f"predict_window_arrays: {len(symbols)} symbols, {len(stamps)} stamps, {len(values)} values"
        )
    info = model_info or ModelInfo()
    config = getattr(model, "feature_config", None)
    if not isinstance(config, FeatureConfig):
        raise ValueError(f"predict_windows: the model has no FeatureConfig `feature_config` (got {config!r})")
    lengths = np.fromiter((len(t) for t in stamps), dtype=np.int64, count=len(stamps))
    for i, (t, v) in enumerate(zip(stamps, values, strict=True)):
        if len(t) == 0:
            raise ValueError(f"window {i} is empty")
        if v.shape != (len(t), len(_WINDOW_COLUMNS) - 2):
            raise ValueError(f"window {i}: values of shape {v.shape}, expected ({len(t)}, 5)")
        if len(t) > 1 and not (np.diff(t) > 0).all():
            r = int(np.flatnonzero(np.diff(t) <= 0)[0]) + 1
            raise ValueError(
                f"window {i}: timestamps must be strictly increasing, row {r} follows row {r - 1}"
            )
    labels = np.array([f"w{i:06d}" for i in range(len(symbols))], dtype=object)  # sorts in input order
    stamp_idx = (
        pd.DatetimeIndex(np.concatenate(stamps).view("M8[ns]")).tz_localize("UTC").tz_convert(calendar.TZ)
    )
    block = np.concatenate(values)
    data: dict[str, Any] = {"symbol": np.repeat(labels, lengths), "timestamp": stamp_idx}
    for j, col in enumerate(_WINDOW_COLUMNS[2:]):
        data[col] = block[:, j]
    if config.index_context:
        feats = _index_context_features(data, lengths, stamp_idx, proxies, config)
    else:
        feats = compute_features(pd.DataFrame(data, copy=False), config)
    cols = _model_feature_columns(model, feats.columns)
    last = np.cumsum(lengths) - 1
    hours = stamp_idx[last]
    sym_arr = np.asarray(symbols, dtype=object)
    status, action, probs = _classify(
        hours,
        sym_arr,
        np.ones(len(symbols), dtype=bool),
        feats["warmup"].to_numpy(bool)[last],
        np.column_stack([feats[c].to_numpy(np.float64)[last] for c in cols]),
        model,
        cols,
        what="window",
    )
    nxt = [_next_bar_after(int(ns)) for ns in hours.asi8]  # memoised calendar.next_bar_start
    version = None if info.version is None else str(info.version)
    conf = probs.max(axis=1).tolist()
    plist = probs.tolist()
    out = []
    for i in range(len(symbols)):
        row: dict[str, Any] = {
            "hour": hours[i],
            "symbol": symbols[i],
            "status": status[i],
            "action": action[i],
        }
        row.update(zip(PROB_COLUMNS, plist[i], strict=True))
        row["confidence"] = conf[i] if status[i] == OK else float("nan")
        row.update(timestamp_next=nxt[i], model_name=info.name, model_version=version, model_alias=info.alias)
        out.append(row)
    return out


def _index_context_features(
    data: dict[str, Any],
    lengths: np.ndarray,
    stamp_idx: pd.DatetimeIndex,
    proxies: list[np.ndarray] | None,
    config: FeatureConfig,
) -> pd.DataFrame:
    """compute_features window by window, each with its own proxy bars (same timestamps as the window)."""
    if proxies is None or len(proxies) != len(lengths):
        raise ValueError(
            f"the model's features use the index proxy {config.proxy_symbol}'s context: give its bars for "
            f"every window (got {'none' if proxies is None else len(proxies)} for {len(lengths)} windows)"
        )
    bars = pd.DataFrame(data, copy=False)
    ends = np.cumsum(lengths)
    parts = []
    for i, (a, b) in enumerate(zip(ends - lengths, ends, strict=True)):
        pv = np.asarray(proxies[i], dtype=np.float64)
        if pv.shape != (b - a, len(_WINDOW_COLUMNS) - 2):
            raise ValueError(f"window {i}: proxy values of shape {pv.shape}, expected ({b - a}, 5)")
        proxy = pd.DataFrame(
            {"symbol": config.proxy_symbol, "timestamp": stamp_idx[a:b]}
            | {col: pv[:, j] for j, col in enumerate(_WINDOW_COLUMNS[2:])}
        )
        parts.append(compute_features(bars.iloc[a:b].reset_index(drop=True), config, proxy=proxy))
    return pd.concat(parts, ignore_index=True)


def predict_latest(
    bars: pd.DataFrame, model: ProbaModel, symbol: str, model_info: ModelInfo | None = None
) -> dict[str, Any]:
    """The prediction for ``symbol``'s latest completed bar, from its canonical bars (``predict_windows``).

    Returns one ``predict_hours`` row as a dict (status ``warmup`` on a history shorter than warm-up + 1,
    ``unknown_symbol`` for a symbol the model was not trained on). Raises KeyError if the symbol has no bars.
    """
    rows = bars[bars["symbol"] == symbol]
    if rows.empty:
        raise KeyError(f"no bars for symbol {symbol!r}")
    return predict_windows([rows.reset_index(drop=True)], model, model_info)[0]
