"""Per-symbol predictions for trading hours: THE prediction path of the asset graph, batch mode and API.

For each requested hour and each universe symbol one row with a status:

* ``ok``: the symbol has a bar starting exactly at that hour and it is past the feature warm-up ->
  ``action`` (argmax class), the five class probabilities and ``confidence`` (max probability);
* ``warmup``: the bar exists but lies within the symbol's first ``warmup`` bars (features undefined);
* ``missing_bar``: no bar for that symbol at that hour.

Non-ok rows never carry an action (``action`` None, probabilities and confidence NaN). All ok rows go to
the model in ONE ``predict_proba`` call. ``timestamp_next`` is the calendar's next bar start after the
hour (the bar the prediction is about).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from market_master.lib import calendar
from market_master.lib.labels import CLASSES

OK, WARMUP, MISSING_BAR = "ok", "warmup", "missing_bar"
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


class ProbaModel(Protocol):
    """What prediction needs from a model (``lib.model.ComponentModel`` satisfies it)."""

    feature_columns: list[str]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced a prediction (registry name, version, alias); any part may be None."""

    name: str | None = None
    version: str | None = None
    alias: str | None = None


def next_bar_starts(hours: pd.DatetimeIndex | pd.Series | Iterable[Any]) -> pd.DatetimeIndex:
    """Vectorised ``calendar.next_bar_start`` (one calendar slice + searchsorted over unique hours)."""
    idx = pd.DatetimeIndex(hours)
    if len(idx) == 0:
        return pd.DatetimeIndex([], tz=calendar.TZ, name="timestamp_next")
    if idx.tz is None:
        idx = idx.tz_localize(calendar.TZ)
    idx = idx.tz_convert(calendar.TZ)
    uniq = idx.unique().sort_values()
    bars = calendar.trading_bars(uniq[0], uniq[-1] + pd.Timedelta(days=14))
    pos = bars.searchsorted(uniq, side="right")
    nxt = [bars[p] if p < len(bars) else calendar.next_bar_start(h) for p, h in zip(pos, uniq, strict=True)]
    nxt_idx = pd.DatetimeIndex(nxt).tz_convert(calendar.TZ)
    return nxt_idx[uniq.get_indexer(idx)].rename("timestamp_next")


def _model_feature_columns(model: ProbaModel, features: pd.DataFrame) -> list[str]:
    cols = list(getattr(model, "feature_columns", None) or [])
    if not cols:
        raise ValueError("model has no feature_columns")
    absent = [c for c in cols if c not in features.columns]
    if absent:
        raise ValueError(f"features lack the model's feature columns {absent}")
    return cols


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
    Rows are sorted by (hour, symbol). Raises ValueError naming the rows when an ``ok`` row has a
    non-finite feature (the feature contract says only warm-up rows are NaN).
    """
    info = model_info or ModelInfo()
    required = {"symbol", "timestamp", "warmup"}
    if required - set(features.columns):
        raise ValueError(f"features lack columns {sorted(required - set(features.columns))}")
    if hours is None:
        hour_idx = pd.DatetimeIndex(features["timestamp"].unique()).sort_values()
    else:
        hour_idx = pd.DatetimeIndex([calendar.to_timestamp(h) for h in hours]).unique().sort_values()
    symbols = sorted(pd.unique(features["symbol"])) if universe is None else sorted(dict.fromkeys(universe))
    cols = _model_feature_columns(model, features)

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
    has_bar = (table["_merge"] == "both").to_numpy()
    is_warm = table["warmup"].fillna(False).astype(bool).to_numpy()
    status = np.where(~has_bar, MISSING_BAR, np.where(is_warm, WARMUP, OK)).astype(object)
    ok = status == OK

    n = len(table)
    probs = np.full((n, len(CLASSES)), np.nan)
    action = np.full(n, None, dtype=object)
    if ok.any():
        x = table.loc[ok, ["symbol", *cols]]
        finite = np.isfinite(x[cols].to_numpy(dtype=float)).all(axis=1)
        if not finite.all():
            bad = table.loc[ok, ["hour", "symbol"]][~finite].head(5).to_dict("records")
            raise ValueError(
                f"{int((~finite).sum())} non-warm-up feature row(s) have NaN/inf features, e.g. {bad}"
            )
        p = np.asarray(model.predict_proba(x.reset_index(drop=True)), dtype=float)
        if p.shape != (int(ok.sum()), len(CLASSES)):
            raise ValueError(
                f"model.predict_proba returned shape {p.shape}, expected ({int(ok.sum())}, {len(CLASSES)})"
            )
        probs[ok] = p
        action[ok] = np.asarray(CLASSES, dtype=object)[p.argmax(axis=1)]

    out = pd.DataFrame({"hour": table["hour"], "symbol": table["symbol"], "status": status, "action": action})
    for j, col in enumerate(PROB_COLUMNS):
        out[col] = probs[:, j]
    out["confidence"] = probs.max(axis=1) if n else np.array([], dtype=float)
    out.loc[~ok, "confidence"] = np.nan
    out["timestamp_next"] = next_bar_starts(out["hour"]) if n else pd.DatetimeIndex([], tz=calendar.TZ)
    out["model_name"] = info.name
    out["model_version"] = None if info.version is None else str(info.version)
    out["model_alias"] = info.alias
    return out[PREDICTION_COLUMNS]


def predict_latest(
    features: pd.DataFrame, model: ProbaModel, symbol: str, model_info: ModelInfo | None = None
) -> dict[str, Any]:
    """The prediction for ``symbol``'s latest completed bar (its last feature row, which has no label yet).

    Returns one ``predict_hours`` row as a dict (status may be ``warmup`` on a short history). Raises
    KeyError if the symbol has no rows.
    """
    rows = features[features["symbol"] == symbol]
    if rows.empty:
        raise KeyError(f"no feature rows for symbol {symbol!r}")
    last = rows["timestamp"].max()
    frame = predict_hours(rows, model, hours=[last], universe=[symbol], model_info=model_info)
    return frame.iloc[0].to_dict()
