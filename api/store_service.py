"""Cached reads of the runtime partition store for the API.

Each cache entry is keyed by the asset's latest partition key, so a request re-reads Parquet only when
the pipeline has written a newer hour. The latest key itself is re-listed at most every
`refresh_seconds` (0 = on every request): a new hour shows up within that delay.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HOURLY_BARS = "hourly_bars"
COMPONENT_PREDICTIONS = "component_predictions"
INDEX_SIGNAL = "index_signal"


@dataclass(frozen=True)
class SymbolHistory:
    """The latest stored bars of one symbol (canonical columns, oldest first)."""

    symbol: str
    bars: pd.DataFrame
    latest_key: str

    @property
    def timestamps_ns(self) -> np.ndarray:
        return self.bars["timestamp"].array.asi8 if len(self.bars) else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class HistoryWindow:
    """The last `n_keys` hourly_bars partitions, split per symbol."""

    latest_key: str
    n_keys: int
    by_symbol: dict[str, pd.DataFrame]


class StoreService:
    """Latest-key-aware caches over `PartitionStore(root)`."""

    def __init__(self, root: Path, refresh_seconds: float = 1.0) -> None:
        self.root = Path(root)
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, str | None]] = {}
        self._history: HistoryWindow | None = None
        self._memo: dict[tuple, object] = {}

    def _store(self):
        from market_master.lib.storage import PartitionStore

        return PartitionStore(self.root)

    def latest_key(self, asset: str) -> str | None:
        """Latest partition key of `asset` (None when nothing is stored), re-listed every refresh_seconds."""
        now = time.monotonic()
        cached = self._latest.get(asset)
        if cached is not None and now - cached[0] < self.refresh_seconds:
            return cached[1]
        key = self._store().latest_key(asset) if self.root.exists() else None
        self._latest[asset] = (now, key)
        return key

    def history(self, n_keys: int) -> HistoryWindow | None:
        """The last `n_keys` hourly_bars partitions (all symbols), cached per latest key."""
        from market_master.lib.bars import normalize_bars

        latest = self.latest_key(HOURLY_BARS)
        if latest is None:
            return None
        current = self._history
        if current is not None and current.latest_key == latest and current.n_keys >= n_keys:
            return current
        with self._lock:
            current = self._history
            if current is not None and current.latest_key == latest and current.n_keys >= n_keys:
                return current
            store = self._store()
            keys = [k for k in store.keys(HOURLY_BARS) if k <= latest][-n_keys:]
            frame = store.read_between(HOURLY_BARS, keys[0], keys[-1])
            frame = normalize_bars(frame) if len(frame) else frame
            by_symbol = {
                str(sym): part.reset_index(drop=True)
                for sym, part in frame.groupby("symbol", sort=True)
            } if len(frame) else {}
            window = HistoryWindow(latest_key=latest, n_keys=n_keys, by_symbol=by_symbol)
            self._history = window
            return window

    def memo(self, key: tuple, build):
        """Tiny per-key memo (keys include the partition key, so stale entries are never hit)."""
        value = self._memo.get(key)
        if value is None:
            value = build()
            if len(self._memo) > 256:
                self._memo.clear()
            self._memo[key] = value
        return value
