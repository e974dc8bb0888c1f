"""Per-partition Parquet slices: one file per (asset, partition key), written atomically and idempotently;
and whole pickled values (`ObjectStore`) beside them.

Layout: `<root>/<asset>/<quoted key>.parquet` (the key is URL-quoted so ':' never reaches a file name).
The root is a local directory (embedded mode) or an fsspec URL such as `s3://bucket/prefix` (production:
every worker reads and writes the same slices; s3fs takes its endpoint from AWS_ENDPOINT_URL).

Atomic, idempotent writes on both (`_Root.put`):
- local: the bytes go to a temporary file in the same folder, then `os.replace` swaps it in: readers
  see either the old slice or the new one, never half a file.
- object store: there is no rename (an S3 "rename" is copy + delete, two requests), but one PUT of one
  object is atomic: readers see the old object or the new one, never a partial one (a multipart upload
  of a large object also appears only when it completes). So the final object is written whole, in one
  request, from bytes serialized in memory first; an interrupted write leaves the previous object.
Writing the same key again overwrites it whole (last writer wins; a slice is derived from its key, so
two writers of the same key write the same rows).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
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
from market_master.settings import is_url

SUFFIX = ".parquet"
TMP_PREFIX = ".tmp-"


def join(root: str | os.PathLike, *parts: str) -> str | Path:
    """`root/part/...` for a local path (a Path) or a URL (a str)."""
    if is_url(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return Path(root).joinpath(*parts)


class _Root:
    """Bytes under a local directory or an fsspec URL: atomic whole-object put, get, list, exists."""

    def __init__(self, root: Path | str) -> None:
        self.url = str(root)
        if is_url(root):
            import fsspec  # only production roots need it (and s3fs for s3://)

            # no listings cache: another worker may have written a slice since our last listing
            self.fs, self.base = fsspec.url_to_fs(self.url, use_listings_cache=False)
            self.local = False
        else:
            self.fs, self.base, self.local = None, Path(root), True

    def path(self, *parts: str) -> Path | str:
        return self.base.joinpath(*parts) if self.local else "/".join([self.base.rstrip("/"), *parts])

    def put(self, target: Path | str, data: bytes, suffix: str) -> None:
        """Write `data` as the whole object at `target`, atomically (see the module docstring)."""
        if not self.local:
            self.fs.pipe_file(target, data)  # ONE PUT of the final object: atomic on S3
            return
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TMP_PREFIX, suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)  # write aside + rename: atomic on a local file system
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_many(self, items: dict, suffix: str) -> None:
        """`put` of several objects; on an object store the PUTs go out concurrently (each one still ONE
        request writing one whole object)."""
        if self.local or len(items) < 2:
            for target, data in items.items():
                self.put(target, data, suffix)
            return
        self.fs.pipe(items)

    def get(self, target: Path | str) -> bytes:
        """The object's bytes; FileNotFoundError when absent."""
        return Path(target).read_bytes() if self.local else self.fs.cat_file(target)

    def get_many(self, targets: list) -> list[bytes | Exception]:
        """Several objects (fetched concurrently from an object store), in order."""
        if self.local or len(targets) < 2:
            out: list[bytes | Exception] = []
            for t in targets:
                try:
                    out.append(self.get(t))
                except FileNotFoundError as exc:
                    out.append(exc)
            return out
        fetched = self.fs.cat(list(targets), on_error="return")
        return [fetched.get(t, FileNotFoundError(t)) for t in targets]

    def exists(self, target: Path | str) -> bool:
        return Path(target).exists() if self.local else self.fs.exists(target)

    def names(self, folder: Path | str, suffix: str) -> list[str]:
        """File names (no folder) ending in `suffix` directly under `folder`, temporaries excluded."""
        if self.local:
            folder = Path(folder)
            names = [p.name for p in folder.glob("*" + suffix)] if folder.exists() else []
        else:
            try:
                names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)]
            except FileNotFoundError:
                names = []
        return [n for n in names if n.endswith(suffix) and not n.startswith(TMP_PREFIX)]

    def num_rows(self, target: Path | str) -> int:
        if self.local:
            return pq.read_metadata(target).num_rows
        with self.fs.open(target, "rb") as fh:
            return pq.read_metadata(fh).num_rows


class PartitionNotFoundError(KeyError):
    """No stored slice for (asset, key)."""

    def __init__(self, asset: str, key: str, path: Path | str) -> None:
        self.asset, self.key, self.path = asset, key, path
        super().__init__(f"asset {asset!r} has no partition {key!r} (looked at {path})")


class PartitionStore:
    """Parquet slices under `root` (a local directory or an `s3://bucket/prefix` URL), one folder per
    asset."""

    def __init__(self, root: Path | str) -> None:
        self._root = _Root(root)
        self.root = self._root.base if self._root.local else self._root.url

    def _asset_dir(self, asset: str) -> Path | str:
        if not asset or "/" in asset or "\\" in asset or asset in (".", ".."):
            raise ValueError(f"invalid asset name {asset!r}")
        return self._root.path(asset)

    def path(self, asset: str, key: str) -> Path | str:
        """File (a Path) or object (a bucket/key string) holding the slice of `asset` at `key`."""
        if not key:
            raise ValueError("empty partition key")
        self._asset_dir(asset)
        return self._root.path(asset, quote(key, safe="-_.") + SUFFIX)

    def write(self, asset: str, key: str, df: pd.DataFrame) -> Path | str:
        """Write `df` as the whole slice of (asset, key), atomically; returns the file path."""
        target = self.path(asset, key)
        self._root.put(target, _parquet_bytes(df), SUFFIX)
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
        slices = {
            str(key): table.slice(start, end - start)
            for key, start, end in zip(unique, starts, ends, strict=True)
        }
        for key in sorted(set(all_keys or ()) - set(slices)):
            slices[key] = table.slice(0, 0)
        # local: each slice written aside + renamed; object store: the PUTs go out concurrently (each one
        # request writing one whole object)
        self._root.put_many({self.path(asset, key): _table_bytes(t) for key, t in slices.items()}, SUFFIX)
        return sorted(slices)

    def read(self, asset: str, keys: Iterable[str]) -> pd.DataFrame:
        """Concatenate the slices of `keys` (sorted by symbol, timestamp when the slices have them);
        raises PartitionNotFoundError for a missing one."""
        keys = list(keys)
        paths = [self.path(asset, key) for key in keys]
        frames = []
        for key, path, data in zip(keys, paths, self._root.get_many(paths), strict=True):
            if isinstance(data, FileNotFoundError):
                raise PartitionNotFoundError(asset, key, path)
            if isinstance(data, Exception):
                raise data
            frames.append(pd.read_parquet(io.BytesIO(data)))
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
        names = self._root.names(self._asset_dir(asset), SUFFIX)
        return sorted(unquote(name[: -len(SUFFIX)]) for name in names)

    def latest_key(self, asset: str, nonempty: bool = False) -> str | None:
        """The last stored key, or None when the asset has none. With `nonempty`, the last key whose slice
        has rows (holiday and half-day-afternoon partitions are stored as empty slices)."""
        return self.last_of(asset, self.keys(asset), nonempty)

    def last_of(self, asset: str, keys: list[str], nonempty: bool = False) -> str | None:
        """The last of the (sorted, stored) `keys`; with `nonempty`, the last whose slice has rows."""
        for key in reversed(keys):
            if not nonempty or self._root.num_rows(self.path(asset, key)) > 0:
                return key
        return None

    def exists(self, asset: str, key: str) -> bool:
        return self._root.exists(self.path(asset, key))


class ObjectStore:
    """Whole values (not partitioned) pickled as `<root>/<name>.pickle`, written like the slices: aside +
    rename on a local disk, one PUT on an object store."""

    SUFFIX = ".pickle"

    def __init__(self, root: Path | str) -> None:
        self._root = _Root(root)

    def path(self, name: str) -> Path | str:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid object name {name!r}")
        return self._root.path(name + self.SUFFIX)

    def write(self, name: str, obj: Any) -> Path | str:
        target = self.path(name)
        self._root.put(target, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), self.SUFFIX)
        return target

    def read(self, name: str) -> Any:
        """The stored value; FileNotFoundError when there is none."""
        return pickle.loads(self._root.get(self.path(name)))

    def exists(self, name: str) -> bool:
        return self._root.exists(self.path(name))


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.reset_index(drop=True).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _table_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


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
