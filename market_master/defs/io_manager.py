"""The one IO manager: every asset's value goes through it, so Dagster's lineage is the data's lineage.

- Hourly-partitioned assets return a DataFrame whose `partition_column` (asset metadata) holds each row's
  bar start; it is written as one Parquet slice per partition key of the run (a single-run backfill of a
  range writes every key of the range, empty slices included: the write is whole and idempotent, each
  slice swapped in atomically by `lib.storage.PartitionStore`).
- A partitioned input of a partitioned asset is read for exactly the upstream keys Dagster mapped to the
  run (identity, or the feature look-back's `TimeWindowPartitionMapping`). A missing slice is an error
  naming it, except in a look-back input (`LOOKBACK` metadata), where the history before the first
  stored hour is simply shorter (those rows are then flagged warm-up by the features).
- A partitioned input of a NON-partitioned asset (training, gates, monitoring) is an `AssetSlices` view:
  they read the window they need, not thousands of files.
- Non-partitioned values (weights, training result, champion record) are pickled whole under
  `<store>/objects/`, written atomically (`lib.storage.ObjectStore`).

DataFrame `attrs` travel with the slices (Parquet metadata): the feature table stores its FeatureConfig
there, so training reads the warm-up the table was computed with instead of a second setting.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

from market_master.defs.resources import StorageResource
from market_master.lib.storage import AssetSlices, PartitionNotFoundError, keys_of

PARTITION_COLUMN = "partition_column"
LOOKBACK = "lookback"
MAX_KEYS_NAMED = 10


def _asset_name(key: dg.AssetKey) -> str:
    return key.path[-1]


class PartitionIOManager(dg.ConfigurableIOManager):
    """Parquet slice per hourly partition, pickles for whole values, all under the storage data root."""

    storage: StorageResource

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if context.has_asset_partitions:
            self._write_slices(context, obj)
        else:
            self._write_object(context, obj)

    def _write_slices(self, context: dg.OutputContext, frame: pd.DataFrame) -> None:
        column = context.definition_metadata.get(PARTITION_COLUMN)
        if not isinstance(frame, pd.DataFrame) or column is None:
            raise dg.Failure(
                f"{context.asset_key.to_user_string()}: a partitioned asset must return a DataFrame and "
                f"declare metadata {PARTITION_COLUMN!r} (got {type(frame).__name__}, {column!r})"
            )
        keys = list(context.asset_partition_keys)
        stray = self._rows_outside(frame, column, set(keys))
        if stray:
            raise dg.Failure(
                f"{context.asset_key.to_user_string()}: rows for partitions outside the run's range "
                f"{keys[0]} .. {keys[-1]}: {stray[:MAX_KEYS_NAMED]}"
            )
        self.storage.partitions().write_many(_asset_name(context.asset_key), frame, column, all_keys=keys)

    @staticmethod
    def _rows_outside(frame: pd.DataFrame, column: str, keys: set[str]) -> list[str]:
        return sorted(set(keys_of(frame[column])) - keys)

    def _write_object(self, context: dg.OutputContext, obj: Any) -> None:
        self.storage.objects().write(_asset_name(context.asset_key), obj)  # atomic (lib.storage)

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.asset_key
        name = _asset_name(upstream)
        if not context.has_asset_partitions:
            objects = self.storage.objects()
            try:
                return objects.read(name)
            except FileNotFoundError:
                raise dg.Failure(
                    f"{upstream.to_user_string()} has no stored value: materialize it first "
                    f"({objects.path(name)})"
                ) from None
        store = self.storage.partitions()
        if not context.has_partition_key and not _downstream_partitioned(context):
            return AssetSlices(store, name)
        keys = list(context.asset_partition_keys)
        stored = set(store.keys(name))
        missing = [k for k in keys if k not in stored]
        if missing and not context.definition_metadata.get(LOOKBACK):
            raise dg.Failure(
                f"{upstream.to_user_string()} has no stored slice for {len(missing)} of the {len(keys)} "
                f"partitions this run reads (first: {missing[:MAX_KEYS_NAMED]}): materialize them first"
            )
        try:
            return store.read(name, [k for k in keys if k in stored])
        except PartitionNotFoundError as exc:  # deleted between listing and reading
            raise dg.Failure(str(exc)) from exc


def _downstream_partitioned(context: dg.InputContext) -> bool:
    """Whether the asset reading this input is itself partitioned (then it gets a frame of its keys)."""
    return context.step_context.has_partition_key or context.step_context.has_partition_key_range
