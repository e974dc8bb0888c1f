"""Weighted Sentiment Score (WSS): per-symbol actions x index weights -> one BUY/SELL/HOLD per hour.

WSS(hour) = sum_i score_i * w_i / sum_i w_i over the weighted symbols whose prediction at that hour has
status ``ok`` (scores from ``labels.SCORES``: strong_buy +2 ... strong_sell -2). Weights are first
normalised over the snapshot as given (``covered_weight`` is the share of that normalised weight that had
an ``ok`` prediction), then renormalised over the covered symbols, so WSS stays in [-2, +2] when a symbol
is missing. No covered symbol -> ``wss`` NaN, decision HOLD and a ``reason``.

Decision: BUY if wss >= buy_threshold, SELL if wss <= sell_threshold, else HOLD (both edges inclusive).
The default thresholds live here only: ``DEFAULT_THRESHOLDS`` (BUY >= +0.5, SELL <= -0.5).

``wss_contributions`` splits one hour's WSS into each symbol's additive share (the API's /signal/index).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from market_master.lib.labels import SCORES
from market_master.lib.weights import WeightsHistory, WeightsSnapshot

BUY, SELL, HOLD = "BUY", "SELL", "HOLD"
# No weighted symbol had an ok prediction (no bar yet, warm-up): there is no WSS, and that is not a HOLD.
NO_SIGNAL = "NO_SIGNAL"
SIGNAL_COLUMNS = (
    "hour",
    "wss",
    "decision",
    "covered_weight",
    "n_predicted",
    "n_symbols",
    "missing_symbols",
    "unweighted_symbols",
    "reason",
)

WeightsLike = (
    Mapping[str, float]
    | pd.Series
    | WeightsSnapshot
    | WeightsHistory
    | Callable[[pd.Timestamp], Mapping[str, float] | WeightsSnapshot]
)


def validate_thresholds(buy_threshold: float, sell_threshold: float) -> None:
    """Raise ValueError unless both thresholds are finite and sell < buy."""
    for name, value in (("buy_threshold", buy_threshold), ("sell_threshold", sell_threshold)):
        if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not sell_threshold < buy_threshold:
        raise ValueError(
            f"sell_threshold ({sell_threshold}) must be strictly below buy_threshold ({buy_threshold})"
        )


@dataclass(frozen=True)
class SignalThresholds:
    """BUY if WSS >= ``buy``, SELL if WSS <= ``sell``, else HOLD (both edges inclusive; sell < buy)."""

    buy: float = 0.5
    sell: float = -0.5

    def __post_init__(self) -> None:
        validate_thresholds(self.buy, self.sell)


DEFAULT_THRESHOLDS = SignalThresholds()


def decisions_from_wss(
    wss: pd.Series | np.ndarray, buy_threshold: float, sell_threshold: float
) -> np.ndarray:
    """Vectorised decision rule: BUY if wss >= buy, SELL if wss <= sell, else HOLD; a missing WSS (NaN)
    is NO_SIGNAL, never a HOLD (a position of 0 in a backtest, but said as what it is)."""
    validate_thresholds(buy_threshold, sell_threshold)
    values = np.asarray(wss, dtype=float)
    out = np.full(values.shape, HOLD, dtype=object)
    out[np.isnan(values)] = NO_SIGNAL
    with np.errstate(invalid="ignore"):
        out[values >= buy_threshold] = BUY
        out[values <= sell_threshold] = SELL
    return out


def normalize_snapshot(weights: Mapping[str, float] | pd.Series, where: str = "weights") -> dict[str, float]:
    """Validate one weights snapshot and scale it to sum 1 (zero weights are dropped as unweighted).

    Accepts a mapping / Series or an object with a ``weights`` mapping (``lib.weights.WeightsSnapshot``).
    """
    if not isinstance(weights, (Mapping, pd.Series)) and isinstance(
        getattr(weights, "weights", None), Mapping
    ):
        weights = weights.weights
    series = pd.Series(dict(weights) if not isinstance(weights, pd.Series) else weights, dtype=float)
    if series.index.has_duplicates:
        dup = sorted(series.index[series.index.duplicated()].astype(str).unique())
        raise ValueError(f"{where}: duplicate symbols {dup}")
    bad = series[~np.isfinite(series.to_numpy()) | (series.to_numpy() < 0)]
    if len(bad):
        raise ValueError(f"{where}: weights must be finite and >= 0, offending: {bad.to_dict()}")
    series = series[series > 0]
    if series.empty or series.sum() <= 0:
        raise ValueError(f"{where}: no positive weight in the snapshot")
    return (series / series.sum()).to_dict()


def is_point_in_time(weights: object) -> bool:
    """True for a ``WeightsHistory`` or a callable ``hour -> snapshot``; False for one snapshot."""
    if isinstance(weights, WeightsHistory):
        return True
    return callable(weights) and not isinstance(weights, (Mapping, pd.Series, WeightsSnapshot))


def weights_long(hours: pd.Index, weights: WeightsLike) -> pd.DataFrame:
    """Long frame (hour, symbol, weight): each hour's normalised snapshot (``normalize_snapshot``).

    ``weights``: one snapshot (dict / Series / ``WeightsSnapshot``), a ``WeightsHistory`` or a callable
    ``hour -> snapshot``. ``hour`` keeps the dtype of ``hours``.
    """
    if not is_point_in_time(weights):
        snap = normalize_snapshot(weights)
        counts = np.full(len(hours), len(snap))
        symbols, values = list(snap), list(snap.values())
        sym_col, w_col = symbols * len(hours), values * len(hours)
    else:
        lookup = weights.at if isinstance(weights, WeightsHistory) else weights
        cache: dict[tuple, dict[str, float]] = {}
        counts, sym_col, w_col = np.zeros(len(hours), dtype=np.int64), [], []
        for i, hour in enumerate(hours):
            raw = lookup(hour)
            mapping = raw.weights if isinstance(raw, WeightsSnapshot) else raw
            key = tuple(sorted(dict(mapping).items()))
            snap = cache.get(key)
            if snap is None:
                snap = cache[key] = normalize_snapshot(mapping, where=f"weights at {hour}")
            counts[i] = len(snap)
            sym_col += list(snap)
            w_col += list(snap.values())
    return pd.DataFrame(
        {
            "hour": hours[np.repeat(np.arange(len(hours)), counts)],
            "symbol": np.asarray(sym_col, dtype=object),
            "weight": np.asarray(w_col, dtype=float),
        }
    )


def _join_sorted(values: pd.Series) -> str:
    return ",".join(sorted(values))


def compute_wss(
    predictions: pd.DataFrame,
    weights: WeightsLike,
    buy_threshold: float = DEFAULT_THRESHOLDS.buy,
    sell_threshold: float = DEFAULT_THRESHOLDS.sell,
) -> pd.DataFrame:
    """One row per hour of ``predictions``: WSS, decision and coverage (see module docstring).

    ``predictions`` needs ``hour, symbol, status, action`` (the ``predict_hours`` table). ``weights`` is a
    single snapshot (dict / Series symbol -> weight), a ``WeightsHistory`` or a callable
    ``hour -> snapshot`` for point-in-time weights (``weights_long``). ``missing_symbols`` (weighted, no
    ``ok`` prediction) and ``unweighted_symbols`` (predicted but without weight) are comma-separated,
    sorted symbol lists ("" when none).
    """
    validate_thresholds(buy_threshold, sell_threshold)
    required = {"hour", "symbol", "status", "action"}
    absent = required - set(predictions.columns)
    if absent:
        raise ValueError(f"predictions lack columns {sorted(absent)}")
    dup = predictions.duplicated(["hour", "symbol"])
    if dup.any():
        raise ValueError(
            f"predictions have duplicate (hour, symbol) rows: {predictions.loc[dup, ['hour', 'symbol']].head(5).to_dict('records')}"
        )
    ok = predictions["status"].eq("ok")
    unknown = ok & ~predictions["action"].isin(list(SCORES))
    if unknown.any():
        rows = predictions.loc[unknown, ["hour", "symbol", "action"]].head(5).to_dict("records")
        raise ValueError(f"ok predictions with an action outside {list(SCORES)}: {rows}")

    hours = pd.Index(pd.unique(predictions["hour"])).sort_values()
    wf = weights_long(hours, weights)
    preds = predictions[["hour", "symbol", "status", "action"]]
    merged = wf.merge(preds, on=["hour", "symbol"], how="outer")
    merged["weight"] = merged["weight"].fillna(0.0)
    is_ok = merged["status"].eq("ok").to_numpy()
    weighted = merged["weight"].to_numpy() > 0
    score = merged["action"].map(SCORES).to_numpy(dtype=float)

    covered = is_ok & weighted
    merged["_cw"] = np.where(covered, merged["weight"].to_numpy(), 0.0)
    merged["_sw"] = np.where(covered, score * merged["weight"].to_numpy(), 0.0)
    merged["_cov"] = covered
    merged["_weighted"] = weighted
    g = merged.groupby("hour", sort=True)
    out = pd.DataFrame(
        {
            "covered_weight": g["_cw"].sum(),
            "_sw": g["_sw"].sum(),
            "n_predicted": g["_cov"].sum().astype(int),
            "n_symbols": g["_weighted"].sum().astype(int),
        }
    )
    missing = merged.loc[weighted & ~is_ok].groupby("hour")["symbol"].agg(_join_sorted)
    unweighted = (
        merged.loc[~weighted & merged["status"].notna().to_numpy()]
        .groupby("hour")["symbol"]
        .agg(_join_sorted)
    )
    out["missing_symbols"] = missing.reindex(out.index).fillna("")
    out["unweighted_symbols"] = unweighted.reindex(out.index).fillna("")
    with np.errstate(invalid="ignore", divide="ignore"):
        out["wss"] = np.where(out["covered_weight"] > 0, out["_sw"] / out["covered_weight"], np.nan)
    out["decision"] = decisions_from_wss(out["wss"], buy_threshold, sell_threshold)
    out["reason"] = np.where(out["n_predicted"] == 0, "no weighted symbol with an ok prediction", "")
    out = out.reindex(hours).rename_axis("hour").reset_index()
    return out[list(SIGNAL_COLUMNS)]


def wss_contributions(
    predictions: Iterable[Mapping[str, Any]], weights: Mapping[str, float], covered_weight: float
) -> list[dict[str, Any]]:
    """Each symbol's additive share of one hour's WSS: ``score x weight / covered_weight``.

    ``predictions``: that hour's ``predict_hours`` rows (``symbol, status, action, confidence``);
    ``weights``: the snapshot the WSS was computed with (normalised here); ``covered_weight``: the WSS row's.
    One dict per symbol that is weighted or predicted (sorted): ``symbol, status`` (None without a
    prediction), ``action``, ``score`` and ``confidence`` (None unless ok), ``weight`` (normalised) and
    ``contribution`` (0.0 unless ok). Over the ok symbols the contributions sum to the WSS.
    """
    snapshot = normalize_snapshot(weights)
    by_symbol = {str(row["symbol"]): row for row in predictions}
    out = []
    for symbol in sorted(set(snapshot) | set(by_symbol)):
        row = by_symbol.get(symbol, {})
        ok = row.get("status") == "ok"
        score = SCORES[row["action"]] if ok else None
        weight = float(snapshot.get(symbol, 0.0))
        out.append(
            {
                "symbol": symbol,
                "status": row.get("status"),
                "action": row["action"] if ok else None,
                "score": score,
                "weight": weight,
                "contribution": score * weight / covered_weight if ok and covered_weight > 0 else 0.0,
                "confidence": row.get("confidence") if ok else None,
            }
        )
    return out
