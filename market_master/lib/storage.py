"""Per-partition Parquet slices: one file per (asset, partition key), written atomically and idempotently.

Layout: `<root>/<asset>/<quoted key>.parquet` (the key is URL-quoted so ':' never reaches a file name).
A write goes to a temporary file in the same folder, then `os.replace` swaps it in: readers see either
the old slice or the new one, never half a file; writing the same key again overwrites it whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from market_master.lib.calendar import (
    PARTITION_FMT,
    TZ,
    TimeLike,
    key_to_timestamp,
    last_sessions_window,
    to_timestamp,
)

SUFFIX = ".parquet"


class PartitionNotFoundError(KeyError):
    """No stored slice for (asset, key)."""

    def __init__(self, asset: str, key: str, path: Path) -> None:
        self.asset, self.key, self.path = asset, key, path
        super().__init__(f"asset {asset!r} has no partition {key!r} (looked at {path})")


class PartitionStore:
    """Parquet slices under `root`, one folder per asset."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _asset_dir(self, asset: str) -> Path:
        if not asset or "/" in asset or "\\" in asset or asset in (".", ".."):
            raise ValueError(f"invalid asset name {asset!r}")
        return self.root / asset

    def path(self, asset: str, key: str) -> Path:
        """File holding the slice of `asset` at `key`."""
        if not key:
            raise ValueError("empty partition key")
        return self._asset_dir(asset) / (quote(key, safe="-_.") + SUFFIX)

    def write(self, asset: str, key: str, df: pd.DataFrame) -> Path:
        """Write `df` as the whole slice of (asset, key), atomically; returns the file path."""
        target = self.path(asset, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=SUFFIX)
        os.close(fd)
        try:
            df.reset_index(drop=True).to_parquet(tmp, index=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def write_many(
        self, asset: str, df: pd.DataFrame, key_column: str, all_keys: Iterable[str] | None = None
    ) -> list[str]:
        """Split `df` by `key_column` and write each group as its own slice; with `all_keys`, every one of
        those keys without rows gets an empty slice too (a range write is then whole and idempotent).

        The key column may hold partition keys (str) or bar-start timestamps (turned into keys).
        Returns the keys written, sorted.
        """
        if key_column not in df.columns:
            raise KeyError(f"key column {key_column!r} not in {list(df.columns)}")
        # One pandas -> Arrow conversion for the whole frame, then zero-copy slices per key: converting
        # each group on its own cost ~10 ms of CPU per key (a 1,750-key range: ~35 s for two assets).
        keys = keys_of(df[key_column]).to_numpy()
        order = np.argsort(keys, kind="stable")
        table = _to_arrow(df.iloc[order], df.attrs)
        sorted_keys = keys[order]
        unique, starts = np.unique(sorted_keys, return_index=True)
        ends = [*starts[1:], len(sorted_keys)] if len(starts) else []
        written = []
        for key, start, end in zip(unique, starts, ends, strict=True):
            self._write_table(asset, str(key), table.slice(start, end - start))
            written.append(str(key))
        for key in sorted(set(all_keys or ()) - set(written)):
            self._write_table(asset, key, table.slice(0, 0))
            written.append(key)
        return sorted(written)

    def _write_table(self, asset: str, key: str, table: pa.Table) -> Path:
        """`write` for a slice already in Arrow form (same file, same atomic swap)."""
        target = self.path(asset, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=SUFFIX)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def read(self, asset: str, keys: Iterable[str]) -> pd.DataFrame:
        """Concatenate the slices of `keys` (sorted by symbol, timestamp when the slices have them);
        raises PartitionNotFoundError for a missing one."""
        frames = []
        for key in keys:
            path = self.path(asset, key)
            if not path.exists():
                raise PartitionNotFoundError(asset, key, path)
            frames.append(pd.read_parquet(path))
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        # Per-symbol computations (features, labels) need each symbol's rows contiguous and in time order.
        if {"symbol", "timestamp"} <= set(frame.columns):
            frame = frame.sort_values(["symbol", "timestamp"], kind="stable", ignore_index=True)
        return frame

    def read_between(self, asset: str, start_ts: TimeLike, end_ts: TimeLike) -> pd.DataFrame:
        """All slices whose key timestamp lies in [start_ts, end_ts] (keys in `%Y-%m-%d-%H:%M`).

        The bounds may be timestamps or partition keys themselves.
        """
        lo, hi = _bound(start_ts), _bound(end_ts)
        keys = [k for k in self.keys(asset) if lo <= key_to_timestamp(k) <= hi]
        return self.read(asset, keys)

    def keys(self, asset: str) -> list[str]:
        """Stored keys of `asset`, sorted (chronological for time keys)."""
        folder = self._asset_dir(asset)
        if not folder.exists():
            return []
        return sorted(
            unquote(p.name[: -len(SUFFIX)])
            for p in folder.glob("*" + SUFFIX)
            if not p.name.startswith(".tmp-")
        )

    def latest_key(self, asset: str, nonempty: bool = False) -> str | None:
        """The last stored key, or None when the asset has none. With `nonempty`, the last key whose slice
        has rows (holiday and half-day-afternoon partitions are stored as empty slices)."""
        return self.last_of(asset, self.keys(asset), nonempty)

    def last_of(self, asset: str, keys: list[str], nonempty: bool = False) -> str | None:
        """The last of the (sorted, stored) `keys`; with `nonempty`, the last whose slice has rows."""
        for key in reversed(keys):
            if not nonempty or pq.read_metadata(self.path(asset, key)).num_rows > 0:
                return key
        return None

    def exists(self, asset: str, key: str) -> bool:
        return self.path(asset, key).exists()


def _to_arrow(df: pd.DataFrame, attrs: dict) -> pa.Table:
    """The Arrow table `DataFrame.to_parquet(index=False)` writes, `attrs` included (pandas keeps them in
    the schema metadata under PANDAS_ATTRS and restores them in read_parquet)."""
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    if attrs:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"PANDAS_ATTRS": json.dumps(attrs).encode()}
        )
    return table


def keys_of(values: pd.Series) -> pd.Series:
    """Partition keys of a column of bar-start timestamps (naive = New York time) or of keys already."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.DatetimeIndex(values)
        stamps = stamps.tz_localize(TZ) if stamps.tz is None else stamps.tz_convert(TZ)
        return pd.Series(stamps.strftime(PARTITION_FMT), index=values.index)
    return values.astype(str)


def _bound(value: TimeLike) -> pd.Timestamp:
    if isinstance(value, str):
        try:
            return key_to_timestamp(value)
        except ValueError:
            pass
    return to_timestamp(value)


class AssetSlices:
    """A lazy, read-only view of one asset's stored slices.

    What a NON-partitioned asset receives for a partitioned upstream (training reads a window of the
    feature table, monitoring the latest sessions): handing it every stored hour as one frame would read
    thousands of files it does not need. The view is bounded to the partitions Dagster mapped to the input.
    """

    def __init__(
        self, store: PartitionStore, asset: str, lo: TimeLike | None = None, hi: TimeLike | None = None
    ) -> None:
        self.store, self.asset = store, asset
        self._lo = _bound(lo) if lo is not None else None
        self._hi = _bound(hi) if hi is not None else None

    def __repr__(self) -> str:
        return f"AssetSlices({self.asset!r}, {self._lo} .. {self._hi})"

    def _in_bounds(self, key: str) -> bool:
        t = key_to_timestamp(key)
        return (self._lo is None or t >= self._lo) and (self._hi is None or t <= self._hi)

    def keys(self) -> list[str]:
        return [k for k in self.store.keys(self.asset) if self._in_bounds(k)]

    def read(self, keys: Iterable[str]) -> pd.DataFrame:
        return self.store.read(self.asset, [k for k in keys if self._in_bounds(k)])

    def read_all(self) -> pd.DataFrame:
        return self.read(self.keys())

    def read_between(self, start_ts: TimeLike, end_ts: TimeLike) -> pd.DataFrame:
        lo, hi = _bound(start_ts), _bound(end_ts)
        return self.read([k for k in self.keys() if lo <= key_to_timestamp(k) <= hi])

    def latest_key(self, nonempty: bool = False) -> str | None:
        return self.store.last_of(self.asset, self.keys(), nonempty)

    def last_sessions(self, n_sessions: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The window of the last `n_sessions` sessions up to the latest partition that has rows."""
        key = self.latest_key(nonempty=True)
        if key is None:
            raise LookupError(f"{self.asset} has no stored rows yet: materialize it first")
        return last_sessions_window(key_to_timestamp(key), n_sessions)
