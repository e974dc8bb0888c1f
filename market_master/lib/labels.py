"""Next-bar return -> five action classes, with thresholds fit on the training window only.

Methods (`LabelThresholds.method`):
- `quantile`: cuts at the training quantiles of the raw next-bar log return.
- `volatility`: the next return is divided by the trailing 12-bar volatility at t (`vol_12`, known at t);
  cuts at the training quantiles of that ratio.
- `session_volatility` (default): as `volatility`, with one set of cuts per session slot: the transition
  out of each intraday bar (`bar_0` ... `bar_5`) and the `overnight` transition out of the session's last
  bar (its next return spans the night plus the first hour).

Why volatility scaling: with raw-quantile labels the extreme classes are mostly "big move" hours. Volatility
clusters (GARCH), so a classifier on a pure random walk "beats" the baselines just by predicting the SIZE of
the next move from recent volatility, never its direction: a false skill the null test must not allow.
Scaling by the volatility known at t and cutting per slot (so the overnight gap and the half-hour last bar
do not own the extreme classes) leaves mostly the direction to predict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from market_master.lib import calendar

CLASSES: tuple[str, ...] = ("strong_sell", "sell", "hold", "buy", "strong_buy")
SCORES: dict[str, int] = {"strong_sell": -2, "sell": -1, "hold": 0, "buy": 1, "strong_buy": 2}
SCORE_VECTOR = np.array([SCORES[c] for c in CLASSES], dtype=np.float64)
METHODS = ("quantile", "volatility", "session_volatility")
DEFAULT_QUANTILES = (0.2, 0.4, 0.6, 0.8)
POOLED_SLOT = "all"
NO_LABEL = -1


def next_bar_log_return(frame: pd.DataFrame) -> pd.Series:
    """log(close[t+1] / close[t]) per symbol, NaN where the next calendar bar is not the next row.

    The last bar of each symbol has no label yet; a gap (missing bar) also gives NaN, never a return over
    two bars.
    """
    for col in ("symbol", "timestamp", "close"):
        if col not in frame.columns:
            raise ValueError(f"next_bar_log_return: frame lacks column {col!r}")
    n = len(frame)
    out = np.full(n, np.nan)
    if n < 2:
        return pd.Series(out, index=frame.index, name="next_return")
    sym = frame["symbol"].to_numpy()
    index = pd.DatetimeIndex(frame["timestamp"])
    all_bars = calendar.trading_bars(index.min(), index.max()).as_unit("ns").asi8
    ns = index.tz_convert(calendar.TZ).as_unit("ns").asi8
    pos = np.searchsorted(all_bars, ns)
    lc = np.log(frame["close"].to_numpy(np.float64))
    ok = (sym[1:] == sym[:-1]) & (pos[1:] == pos[:-1] + 1)
    out[:-1] = np.where(ok, lc[1:] - lc[:-1], np.nan)
    return pd.Series(out, index=frame.index, name="next_return")


def _next_returns(frame: pd.DataFrame) -> np.ndarray:
    if "next_return" in frame.columns:
        return frame["next_return"].to_numpy(np.float64)
    return next_bar_log_return(frame).to_numpy()


def session_slots(frame: pd.DataFrame) -> np.ndarray:
    """Slot name per row: `overnight` for the session's last bar, else `bar_<k>` (NaN features -> `none`)."""
    bar = frame["bar_of_day"].to_numpy(np.float64)
    last = frame["is_last_bar_of_day"].to_numpy(np.float64)
    out = np.full(len(bar), "none", dtype=object)
    fin = np.isfinite(bar)
    names = np.array([f"bar_{k}" for k in range(calendar.MAX_BARS_PER_SESSION)], dtype=object)
    out[fin] = names[bar[fin].astype(np.int64).clip(0, len(names) - 1)]
    out[last == 1.0] = "overnight"
    return out


@dataclass
class LabelThresholds:
    """Cuts (4 per slot) on the scaled next return; fit with `fit`, applied with `transform`."""

    method: str = "session_volatility"
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    cuts: dict[str, list[float]] = field(default_factory=dict)
    n_train: dict[str, int] = field(default_factory=dict)
    pooled_slots: list[str] = field(default_factory=list)
    min_slot_rows: int = 100
    vol_column: str = "vol_ewm_14"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"LabelThresholds.method={self.method!r}; expected one of {METHODS}")
        q = tuple(float(x) for x in self.quantiles)
        if len(q) != 4 or any(not 0 < a < b < 1 for a, b in zip(q, q[1:], strict=False)) or not 0 < q[0]:
            raise ValueError(f"LabelThresholds.quantiles must be 4 increasing values in (0,1), got {q}")
        self.quantiles = q

    @property
    def is_fitted(self) -> bool:
        return POOLED_SLOT in self.cuts

    def scaled_return(self, frame: pd.DataFrame) -> np.ndarray:
        """The value the cuts apply to: raw next return, or next return / vol at t."""
        r = _next_returns(frame)
        if self.method == "quantile":
            return r
        if self.vol_column not in frame.columns:
            raise ValueError(f"LabelThresholds({self.method}): frame lacks {self.vol_column!r}")
        vol = frame[self.vol_column].to_numpy(np.float64)
        out = np.full(len(r), np.nan)
        ok = np.isfinite(vol) & (vol > 0)
        out[ok] = r[ok] / vol[ok]
        return out

    def _slots(self, frame: pd.DataFrame) -> np.ndarray:
        if self.method != "session_volatility":
            return np.full(len(frame), POOLED_SLOT, dtype=object)
        return session_slots(frame)

    def fit(self, train_frame: pd.DataFrame) -> LabelThresholds:
        """Cuts from the training rows only (rows without a next return or volatility are ignored)."""
        z = self.scaled_return(train_frame)
        ok = np.isfinite(z)
        if ok.sum() < 5 * len(self.quantiles):
            raise ValueError(f"LabelThresholds.fit: only {int(ok.sum())} labelable training rows")
        q = np.array(self.quantiles)
        self.cuts = {POOLED_SLOT: np.quantile(z[ok], q).tolist()}
        self.n_train = {POOLED_SLOT: int(ok.sum())}
        self.pooled_slots = []
        if self.method == "session_volatility":
            slots = self._slots(train_frame)
            for slot in sorted(set(slots[ok].tolist()) - {"none"}):
                m = ok & (slots == slot)
                self.n_train[slot] = int(m.sum())
                if m.sum() >= self.min_slot_rows:
                    self.cuts[slot] = np.quantile(z[m], q).tolist()
                else:
                    self.pooled_slots.append(slot)
        return self

    def cut_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, 4) cuts per row; slots not fitted (too few rows, or unseen) use the pooled cuts."""
        if not self.is_fitted:
            raise RuntimeError("LabelThresholds not fitted: call fit(train_frame) first")
        slots = self._slots(frame)
        out = np.empty((len(frame), 4))
        out[:] = self.cuts[POOLED_SLOT]
        for slot, cuts in self.cuts.items():
            if slot != POOLED_SLOT:
                out[slots == slot] = cuts
        return out

    def classify(self, values: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        """Class index 0..4 of already-scaled values (NaN -> -1) with the row's slot cuts."""
        cuts = self.cut_matrix(frame)
        values = np.asarray(values, dtype=np.float64)
        labels = (values[:, None] > cuts).sum(axis=1).astype(np.int64)
        labels[~np.isfinite(values)] = NO_LABEL
        return labels

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Labels 0..4 (CLASSES order), -1 where there is no next bar or no volatility at t."""
        return self.classify(self.scaled_return(frame), frame)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "quantiles": list(self.quantiles),
            "cuts": {k: [float(x) for x in v] for k, v in self.cuts.items()},
            "n_train": dict(self.n_train),
            "pooled_slots": list(self.pooled_slots),
            "min_slot_rows": int(self.min_slot_rows),
            "vol_column": self.vol_column,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LabelThresholds:
        return cls(
            method=data["method"],
            quantiles=tuple(data["quantiles"]),
            cuts={k: list(map(float, v)) for k, v in data["cuts"].items()},
            n_train={k: int(v) for k, v in data.get("n_train", {}).items()},
            pooled_slots=list(data.get("pooled_slots", [])),
            min_slot_rows=int(data.get("min_slot_rows", 100)),
            vol_column=data.get("vol_column", "vol_ewm_14"),
        )
