"""Cached reads of the runtime partition store for the API.

Each cache entry is keyed by the asset's latest partition key, so a request re-reads Parquet only when
the pipeline has written a newer hour; the latest key is re-listed only when the asset folder changed.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

HOURLY_BARS = "hourly_bars"
COMPONENT_PREDICTIONS = "component_predictions"
INDEX_SIGNAL = "index_signal"
_SETTLE_NS = 2_000_000_000


@dataclass(frozen=True)
class HistoryWindow:
    """The last `n_keys` hourly_bars partitions, split per symbol."""

    latest_key: str
    n_keys: int
    by_symbol: dict[str, pd.DataFrame]


class StoreService:
    """Latest-key-aware caches over `PartitionStore(root)`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[int, str | None]] = {}
        self._history: HistoryWindow | None = None
        self._memo: dict[tuple, object] = {}
        self._nonempty: dict[tuple[str, str | None], tuple[int, str | None]] = {}

    def _store(self):
        from market_master.lib.storage import PartitionStore

        return PartitionStore(self.root)

    def latest_key(self, asset: str) -> str | None:
        """Latest partition key of `asset` (None when nothing is stored).

        The asset folder's mtime changes on every slice write (temp file + rename), so the listing is
        cached per mtime; a folder touched in the last `_SETTLE_NS` is always re-listed (coarse clocks).
        """
        folder = self._store().path(asset, "probe").parent
        try:
            mtime = os.stat(folder).st_mtime_ns
        except FileNotFoundError:
            return None
        cached = self._latest.get(asset)
        if cached is not None and cached[0] == mtime and time.time_ns() - mtime > _SETTLE_NS:
            return cached[1]
        key = self._store().latest_key(asset)
        self._latest[asset] = (mtime, key)
        return key

    def _folder_mtime(self, asset: str) -> int | None:
        try:
            return os.stat(self._store().path(asset, "probe").parent).st_mtime_ns
        except FileNotFoundError:
            return None

    def cached_nonempty_key(self, asset: str, universe: str | None = None) -> tuple[bool, str | None]:
        """(hit, key): the cached `latest_nonempty_key` while the asset folder is unchanged and settled."""
        mtime = self._folder_mtime(asset)
        if mtime is None:
            return True, None
        cached = self._nonempty.get((asset, universe))
        if cached is not None and cached[0] == mtime and time.time_ns() - mtime > _SETTLE_NS:
            return True, cached[1]
        return False, None

    def latest_nonempty_key(self, asset: str, universe: str | None = None) -> str | None:
        """Latest partition key whose slice has rows (of `universe`, when the slice has a `universe` column).

        The pipeline writes every partition key, and holiday / half-day-afternoon keys as EMPTY slices, so
        the lexically latest key is often empty. Keys are walked newest first using the Parquet footer's
        row count (no data read for empty slices); the answer is cached per asset-folder mtime.
        """
        import pyarrow.parquet as pq

        mtime = self._folder_mtime(asset)
        if mtime is None:
            return None
        store = self._store()
        found = None
        for key in reversed(store.keys(asset)):
            path = store.path(asset, key)
            try:
                meta = pq.read_metadata(path)
            except FileNotFoundError:  # replaced between listing and reading: the next request re-lists
                continue
            if meta.num_rows == 0:
                continue
            if universe is not None and "universe" in meta.schema.names:
                values = pd.read_parquet(path, columns=["universe"])["universe"].astype(str).str.lower()
                if not (values == universe).any():
                    continue
            found = key
            break
        self._nonempty[(asset, universe)] = (mtime, found)
        return found

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
            frame = store.read(HOURLY_BARS, keys)
            frame = normalize_bars(frame) if len(frame) else frame
            by_symbol = (
                {str(sym): part.reset_index(drop=True) for sym, part in frame.groupby("symbol", sort=True)}
                if len(frame)
                else {}
            )
            window = HistoryWindow(latest_key=latest, n_keys=n_keys, by_symbol=by_symbol)
            self._history = window
            return window

    def file_token(self, asset: str, key: str) -> int:
        """mtime of one slice (0 when absent): part of cache keys, so an overwritten slice is re-read."""
        try:
            return os.stat(self._store().path(asset, key)).st_mtime_ns
        except FileNotFoundError:
            return 0

    def read_partition(self, asset: str, key: str, missing_ok: bool = False) -> pd.DataFrame:
        """One stored slice (an empty frame when absent and `missing_ok`)."""
        store = self._store()
        if missing_ok and not store.exists(asset, key):
            return pd.DataFrame()
        return store.read(asset, [key])

    def cached(self, key: tuple):
        """The memoised value for `key`, or None."""
        return self._memo.get(key)

    def memo(self, key: tuple, build):
        """Tiny per-key memo (keys include the partition key, so stale entries are never hit)."""
        value = self._memo.get(key)
        if value is None:
            value = build()
            if len(self._memo) > 256:
                self._memo.clear()
            self._memo[key] = value
        return value
