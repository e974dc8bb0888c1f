"""Partition store: round trip, idempotent overwrite, atomic replace, key ranges."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from market_master.lib.calendar import TZ
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.storage import PartitionNotFoundError, PartitionStore


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return SyntheticSource(seed=3).fetch(["AAPL", "MSFT"], "2024-03-08", "2024-03-11")


def test_round_trip_keeps_tz_and_dtypes(tmp_path, bars):
    store = PartitionStore(tmp_path)
    store.write("raw_bars", "2024-03-08-09:30", bars)
    back = store.read("raw_bars", ["2024-03-08-09:30"])
    pd.testing.assert_frame_equal(back, bars)
    assert str(back["timestamp"].dt.tz) == TZ
    assert ":" not in store.path("raw_bars", "2024-03-08-09:30").name


def test_write_twice_is_one_file_with_the_new_content(tmp_path, bars):
    store = PartitionStore(tmp_path)
    store.write("a", "k1", bars.iloc[:3])
    store.write("a", "k1", bars.iloc[:3])
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 1
    first = store.path("a", "k1").read_bytes()
    store.write("a", "k1", bars.iloc[:3])
    assert store.path("a", "k1").read_bytes() == first
    store.write("a", "k1", bars.iloc[3:5])
    pd.testing.assert_frame_equal(store.read("a", ["k1"]), bars.iloc[3:5].reset_index(drop=True))
    assert store.keys("a") == ["k1"]


def test_failed_write_leaves_old_slice_and_no_temp_file(tmp_path, bars, monkeypatch):
    store = PartitionStore(tmp_path)
    store.write("a", "k", bars.iloc[:2])

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.write("a", "k", bars)
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "a").iterdir()] == [store.path("a", "k").name]
    pd.testing.assert_frame_equal(store.read("a", ["k"]), bars.iloc[:2].reset_index(drop=True))


def test_write_many_by_timestamp_and_read_between(tmp_path, bars):
    store = PartitionStore(tmp_path)
    written = store.write_many("raw_bars", bars, "timestamp")
    assert len(written) == bars["timestamp"].nunique() == 14
    assert store.keys("raw_bars") == written
    assert store.latest_key("raw_bars") == "2024-03-11-15:30"
    window = store.read_between("raw_bars", "2024-03-08 15:30", "2024-03-11 10:30")
    assert sorted(window["timestamp"].dt.strftime("%m-%d %H:%M").unique()) == [
        "03-08 15:30",
        "03-11 09:30",
        "03-11 10:30",
    ]
    assert len(window) == 6
    by_keys = store.read_between("raw_bars", "2024-03-08-15:30", "2024-03-11-10:30")
    pd.testing.assert_frame_equal(by_keys, window)
    pd.testing.assert_frame_equal(
        store.read("raw_bars", written).sort_values(["symbol", "timestamp"]).reset_index(drop=True), bars
    )


def test_missing_partition_and_bad_asset_are_precise(tmp_path):
    store = PartitionStore(tmp_path)
    assert store.keys("nothing") == [] and store.latest_key("nothing") is None
    with pytest.raises(PartitionNotFoundError, match="'raw_bars' has no partition '2024-01-02-09:30'"):
        store.read("raw_bars", ["2024-01-02-09:30"])
    with pytest.raises(ValueError, match="invalid asset"):
        store.write("../x", "k", pd.DataFrame({"a": [1]}))


def test_write_many_with_all_keys_writes_empty_slices_for_keys_without_rows(tmp_path):
    store = PartitionStore(tmp_path)
    ts = pd.Timestamp("2024-03-05 10:30", tz="America/New_York")
    df = pd.DataFrame({"symbol": ["AAPL"], "timestamp": [ts], "close": [1.0]})
    keys = ["2024-03-05-09:30", "2024-03-05-10:30", "2024-07-04-10:30"]
    assert store.write_many("x", df, "timestamp", all_keys=keys) == sorted(keys)
    assert store.keys("x") == sorted(keys)
    assert len(store.read("x", ["2024-03-05-10:30"])) == 1
    assert store.read("x", ["2024-07-04-10:30"]).empty
    assert store.latest_key("x", nonempty=True) == "2024-03-05-10:30"


def test_write_many_slices_equal_each_group_written_by_pandas(tmp_path, bars):
    """write_many converts the frame to Arrow once and slices it: each slice reads back exactly as the
    group written on its own by DataFrame.to_parquet (values, dtypes, tz, row order, attrs), and an
    empty slice keeps the columns and dtypes."""
    frame = bars.sample(frac=1.0, random_state=0)  # keys out of order, rows of a key interleaved
    frame.attrs["feature_config"] = {"warmup": 7}
    store = PartitionStore(tmp_path)
    keys = store.write_many("x", frame, "timestamp", all_keys=["2024-03-09-10:30"])
    by_key = frame["timestamp"].dt.strftime("%Y-%m-%d-%H:%M")
    for key in keys[:5] + keys[-3:]:
        expected = frame[by_key == key].reset_index(drop=True)
        got = pd.read_parquet(store.path("x", key))
        pd.testing.assert_frame_equal(got, expected)
        assert got.attrs == {"feature_config": {"warmup": 7}}
    empty = pd.read_parquet(store.path("x", "2024-03-09-10:30"))
    assert empty.empty and list(empty.columns) == list(frame.columns)
    assert (empty.dtypes == frame.dtypes).all()


def test_write_many_of_an_empty_frame_writes_empty_slices_only(tmp_path):
    store = PartitionStore(tmp_path)
    empty = pd.DataFrame(
        {
            "symbol": pd.Series([], dtype=str),
            "timestamp": pd.Series([], dtype="datetime64[ns, America/New_York]"),
        }
    )
    assert store.write_many("x", empty, "timestamp", all_keys=["2024-03-05-09:30"]) == ["2024-03-05-09:30"]
    assert store.read("x", ["2024-03-05-09:30"]).empty
