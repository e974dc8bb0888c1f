"""Index weights: embedded top-10 QQQ, holdings CSVs, point-in-time history, normalisation.

Nothing is dropped silently: `normalize_weights` lists every universe symbol it could not weight and the
weight held outside the universe. A snapshot as of day D applies to bars on D and later (`at`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from market_master.lib.calendar import TimeLike, to_timestamp

EMBEDDED_AS_OF = dt.date(2025, 4, 28)
# weight_pct from the QQQ holdings export of 2025-04-28 (top 10 by weight).
_TOP10_PCT = (
    ("AAPL", 8.823),
    ("MSFT", 8.127),
    ("NVDA", 7.415),
    ("AMZN", 5.559),
    ("AVGO", 4.17),
    ("META", 3.365),
    ("NFLX", 3.266),
    ("COST", 2.987),
    ("TSLA", 2.904),
    ("GOOGL", 2.618),
)
DEFAULT_UNIVERSE: tuple[str, ...] = tuple(s for s, _ in _TOP10_PCT)


class WeightsError(ValueError):
    """A holdings file or a weighting request that cannot be used as it is."""


@dataclass(frozen=True)
class WeightsSnapshot:
    """Raw index weights (fractions of the whole index) as of one date."""

    as_of: dt.date
    weights: dict[str, float]
    source: str
    applied_backwards: bool = False


@dataclass(frozen=True)
class NormalizedWeights:
    """Weights summing to 1 over the usable universe symbols, plus everything that was left out."""

    weights: dict[str, float]
    missing_weight: list[str]
    without_bars: list[str]
    outside_universe_weight: float
    as_of: dt.date
    applied_backwards: bool
    source: str = ""
    used_raw_weight: float = 0.0


@dataclass(frozen=True)
class WeightsHistory:
    """Dated snapshots, sorted by `as_of`; `at(ts)` answers point in time."""

    snapshots: list[WeightsSnapshot] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.snapshots:
            raise WeightsError("a weights history needs at least one snapshot")
        object.__setattr__(self, "snapshots", sorted(self.snapshots, key=lambda s: s.as_of))

    @property
    def as_of_dates(self) -> list[dt.date]:
        return [s.as_of for s in self.snapshots]

    def latest(self) -> WeightsSnapshot:
        return self.snapshots[-1]

    def at(self, ts: TimeLike) -> WeightsSnapshot:
        """The latest snapshot with as_of <= the New York date of `ts`; before all of them, the earliest
        one flagged `applied_backwards=True`."""
        day = to_timestamp(ts).date()
        pos = int(
            np.searchsorted(np.array(self.as_of_dates, dtype="datetime64[D]"), np.datetime64(day), "right")
        )
        if pos == 0:
            return replace(self.snapshots[0], applied_backwards=True)
        return self.snapshots[pos - 1]


MAX_PLAUSIBLE_TOTAL = 1.05  # a snapshot cannot hold more than the whole index (5 % rounding slack)
MIN_PLAUSIBLE_TOTAL = 0.02  # below 2 % of the index: most likely fractions written into weight_pct


def raw_total(snapshot: WeightsSnapshot) -> float:
    """The snapshot's raw weights summed, as a fraction of the index (1.0 = 100 %)."""
    return float(sum(snapshot.weights.values()))


def total_warning(snapshot: WeightsSnapshot) -> str | None:
    """A loud message when the raw weights cannot be shares of one index (e.g. fractions x 300 sum to
    300 %, or fractions given as weight_pct sum to 1 %); None when the total is plausible. They are still
    renormalised over the universe, which hides the unit error: this is what says so."""
    total = raw_total(snapshot)
    where = f"holdings as of {snapshot.as_of} ({snapshot.source})"
    if total > MAX_PLAUSIBLE_TOTAL:
        return (
            f"{where}: the weights sum to {total * 100:.1f} % of the index (> 100 %): wrong units (weight_pct "
            f"is percent, weight is fractions) or duplicated rows? They were renormalised to 100 % anyway"
        )
    if 0 < total < MIN_PLAUSIBLE_TOTAL:
        return (
            f"{where}: the weights sum to only {total * 100:.3f} % of the index: fractions given as "
            f"weight_pct? They were renormalised to 100 % anyway"
        )
    return None


def embedded_top10() -> WeightsSnapshot:
    """The top-10 QQQ constituents and their weights as of 2025-04-28 (fractions, not renormalised)."""
    return WeightsSnapshot(
        as_of=EMBEDDED_AS_OF,
        weights={s: pct / 100.0 for s, pct in _TOP10_PCT},
        source=f"embedded QQQ top-10 as of {EMBEDDED_AS_OF}",
    )


def _parse_numeric(path: Path, frame: pd.DataFrame, column: str) -> np.ndarray:
    text = frame[column].astype(str).str.replace(",", "", regex=False).str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() | (values < 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise WeightsError(
            f"{path}: line {i + 2}, column {column!r}: not a non-negative number: {frame[column].iloc[i]!r}"
        )
    return values.to_numpy(dtype="float64")


def load_holdings_csv(path: Path | str) -> WeightsHistory:
    """Read holdings (symbol, weight_pct | weight[, as_of]); several as_of dates form a dated history.

    `weight_pct` is in percent, `weight` in fractions. Without an `as_of` column the date is taken from
    the file name (`..._YYYY-MM-DD.csv`). Errors name the file, line and column.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"holdings file not found: {path}")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    cols = {str(c).strip().lower(): c for c in raw.columns}
    if "symbol" not in cols:
        raise WeightsError(f"{path}: missing column 'symbol'; columns found: {list(raw.columns)}")
    if "weight_pct" in cols:
        weights = _parse_numeric(path, raw, cols["weight_pct"]) / 100.0
    elif "weight" in cols:
        weights = _parse_numeric(path, raw, cols["weight"])
    else:
        raise WeightsError(
            f"{path}: missing column 'weight_pct' (or 'weight'); columns found: {list(raw.columns)}"
        )
    symbols = raw[cols["symbol"]].str.strip().str.upper()
    if (symbols == "").any():
        raise WeightsError(f"{path}: line {int(np.flatnonzero(symbols == '')[0]) + 2}: empty symbol")
    if "as_of" in cols:
        as_of = pd.to_datetime(raw[cols["as_of"]].str.strip(), errors="coerce", format="ISO8601")
        if as_of.isna().any():
            i = int(np.flatnonzero(as_of.isna())[0])
            raise WeightsError(
                f"{path}: line {i + 2}, column 'as_of': not a date: {raw[cols['as_of']].iloc[i]!r}"
            )
        dates = as_of.dt.date
    else:
        found = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        if not found:
            raise WeightsError(f"{path}: no 'as_of' column and no YYYY-MM-DD date in the file name")
        dates = pd.Series([dt.date.fromisoformat(found.group(1))] * len(raw))
    frame = pd.DataFrame({"symbol": symbols.to_numpy(), "weight": weights, "as_of": dates.to_numpy()})
    dup = frame.duplicated(["as_of", "symbol"], keep=False)
    if dup.any():
        lines = (np.flatnonzero(dup.to_numpy()) + 2).tolist()
        raise WeightsError(f"{path}: duplicate symbol within one as_of date on lines {lines[:10]}")
    snapshots = [
        WeightsSnapshot(as_of=day, weights=dict(zip(g["symbol"], g["weight"], strict=True)), source=str(path))
        for day, g in frame.groupby("as_of", sort=True)
    ]
    for snap in snapshots:
        if raw_total(snap) <= 0:
            raise WeightsError(
                f"{path}: every weight of the snapshot as of {snap.as_of} is zero: nothing can be weighted"
            )
    return WeightsHistory(snapshots)


def normalize_weights(
    snapshot: WeightsSnapshot, universe: Sequence[str], symbols_with_bars: Iterable[str] | None = None
) -> NormalizedWeights:
    """Weights over the universe symbols that have a positive weight (and bars, when given), summing to 1.

    Lists universe symbols without a weight (`missing_weight`), weighted ones without bars
    (`without_bars`) and the raw weight of the snapshot outside the universe.
    """
    universe = list(dict.fromkeys(universe))
    have_bars = None if symbols_with_bars is None else set(symbols_with_bars)
    missing = [s for s in universe if snapshot.weights.get(s, 0.0) <= 0.0]
    without_bars = [s for s in universe if s not in missing and have_bars is not None and s not in have_bars]
    used = [s for s in universe if s not in missing and s not in without_bars]
    total = float(sum(snapshot.weights[s] for s in used))
    if not used or total <= 0.0:
        raise WeightsError(
            f"no universe symbol can be weighted (universe {universe}; without weight {missing}; "
            f"without bars {without_bars}; snapshot as of {snapshot.as_of})"
        )
    outside = float(sum(w for s, w in snapshot.weights.items() if s not in set(universe)))
    return NormalizedWeights(
        weights={s: snapshot.weights[s] / total for s in used},
        missing_weight=missing,
        without_bars=without_bars,
        outside_universe_weight=outside,
        as_of=snapshot.as_of,
        applied_backwards=snapshot.applied_backwards,
        source=snapshot.source,
        used_raw_weight=total,
    )
