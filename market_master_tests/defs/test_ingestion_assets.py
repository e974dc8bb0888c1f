"""hourly_bars + feature_table materialized in process at partition keys/ranges into a tmp data root."""

import dagster as dg
import pandas as pd
import pytest

from market_master.definitions import local_storage
from market_master.defs.features.assets import feature_table
from market_master.defs.ingestion.assets import hourly_bars, index_weights
from market_master.defs.resources import MarketDataResource
from market_master.lib.features import FeatureConfig, compute_features
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.storage import PartitionStore

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
RANGE = ("2024-03-01-09:30", "2024-03-12-15:30")


def _resources(root, **market):
    return {
        "market_data": MarketDataResource(symbols=SYMBOLS, **market),
        **local_storage(str(root)),
    }


def _range_tags(a, b):
    return {"dagster/asset_partition_range_start": a, "dagster/asset_partition_range_end": b}


def test_single_run_range_writes_one_slice_per_partition_and_checks_pass(tmp_path):
    res = dg.materialize(
        [hourly_bars, feature_table], resources=_resources(tmp_path), tags=_range_tags(*RANGE)
    )
    assert res.success
    store = PartitionStore(tmp_path / "partitions")
    keys = store.keys("hourly_bars")
    assert keys[0] == RANGE[0] and keys[-1] == RANGE[1]
    assert len(keys) == 8 * 7  # 8 trading days, one slice per hour (symbols inside)
    evaluations = res.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    bars = store.read_between("hourly_bars", "2024-03-01", "2024-03-12 16:00")
    assert len(bars) == 56 * len(SYMBOLS)


def test_partition_write_is_idempotent(tmp_path):
    key = "2024-03-05-10:30"
    for _ in range(2):
        assert dg.materialize([hourly_bars], resources=_resources(tmp_path), partition_key=key).success
    store = PartitionStore(tmp_path / "partitions")
    files = list((tmp_path / "partitions").rglob("*.parquet"))
    assert len(files) == 1
    once = store.read("hourly_bars", [key])
    assert len(once) == len(SYMBOLS)
    assert dg.materialize([hourly_bars], resources=_resources(tmp_path), partition_key=key).success
    pd.testing.assert_frame_equal(once, store.read("hourly_bars", [key]))


def test_stored_features_equal_full_history_features(tmp_path):
    """The look-back read by feature_table covers every feature window: same numbers as one pass."""
    assert dg.materialize(
        [hourly_bars, feature_table],
        resources=_resources(tmp_path),
        tags=_range_tags("2024-02-01-09:30", "2024-03-12-15:30"),
    ).success
    assert dg.materialize(
        [hourly_bars, feature_table],
        selection=[feature_table],
        resources=_resources(tmp_path),
        tags=_range_tags("2024-03-11-09:30", "2024-03-12-15:30"),
    ).success
    stored = PartitionStore(tmp_path / "partitions").read_between(
        "feature_table", "2024-03-11", "2024-03-12 16:00"
    )
    bars = SyntheticSource().fetch(SYMBOLS, "2024-02-01", "2024-03-12")
    full = compute_features(bars, FeatureConfig())
    full = full[full["timestamp"] >= pd.Timestamp("2024-03-11", tz="America/New_York")].reset_index(drop=True)
    stored = stored.sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored[full.columns], full, check_dtype=False)


def test_a_bad_bar_fails_its_blocking_check_names_the_row_and_blocks_features(tmp_path):
    def high_below_low(g):
        g.loc[g.index[3], "high"] = g.loc[g.index[3], "low"] - 1.0

    res, evaluations = _ingest_csv(tmp_path, _bad_csv_dir(tmp_path, high_below_low))
    bad = evaluations["high_is_at_least_open_and_close"]
    assert not bad.passed
    assert (
        "NVDA" in bad.metadata["offending_rows"].value
        and "2024-03-04 12:30" in bad.metadata["offending_rows"].value
    )
    assert evaluations["prices_are_positive"].passed
    # the blocking check stopped feature_table in that run; the bad row is stored as it came (not dropped)
    assert not res.asset_materializations_for_node("feature_table")
    stored = PartitionStore(tmp_path / "root" / "partitions").read("hourly_bars", ["2024-03-04-12:30"])
    assert len(stored) == 3 and (stored["high"] < stored["low"]).sum() == 1


def test_index_weights_reports_missing_symbols(tmp_path):
    res = dg.materialize(
        [hourly_bars, index_weights],
        selection=[index_weights],
        resources={
            "market_data": MarketDataResource(symbols=["AAPL", "MSFT", "TSM"]),
            **local_storage(str(tmp_path)),
        },
    )
    md = res.asset_materializations_for_node("index_weights")[0].metadata
    assert md["missing_weight"].value == ["TSM"]
    assert "AAPL" in md["weights"].value


@pytest.mark.parametrize("source", ["csv"])
def test_misconfigured_source_fails_with_a_clear_message(tmp_path, source):
    res = dg.materialize(
        [hourly_bars],
        resources=_resources(tmp_path, source=source),
        partition_key="2024-03-05-10:30",
        raise_on_error=False,
    )
    assert not res.success
    failure = [e for e in res.all_events if e.is_failure][0]
    assert "csv_dir" in failure.message or "csv_dir" in str(failure.event_specific_data)


def _ingest_csv(tmp_path, csv_dir):
    """hourly_bars + feature_table over the CSVs' two days: (result, {check name: evaluation})."""
    res = dg.materialize(
        [hourly_bars, feature_table],
        resources=_resources(tmp_path / "root", source="csv", csv_dir=str(csv_dir)),
        tags=_range_tags("2024-03-04-09:30", "2024-03-05-15:30"),
        raise_on_error=False,
    )
    return res, {e.check_name: e for e in res.get_asset_check_evaluations()}


def _bad_csv_dir(tmp_path, edit):
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    bars = SyntheticSource().fetch(SYMBOLS, "2024-03-04", "2024-03-05")
    for sym, g in bars.groupby("symbol"):
        g = g.rename(columns={"timestamp": "Datetime"}).drop(columns="symbol").astype({"close": object})
        if sym == "NVDA":
            edit(g)
        g.to_csv(csv_dir / f"{sym}_1h.csv", index=False)
    return csv_dir


def test_an_input_error_is_not_retried(tmp_path):
    def garble(g):
        g.loc[g.index[2], "close"] = "12,5"

    csv_dir = _bad_csv_dir(tmp_path, garble)
    with dg.DagsterInstance.ephemeral() as instance:
        res = dg.materialize(
            [hourly_bars],
            resources=_resources(tmp_path / "root", source="csv", csv_dir=str(csv_dir)),
            tags=_range_tags("2024-03-04-09:30", "2024-03-05-15:30"),
            raise_on_error=False,
            instance=instance,
        )
    assert not res.success
    assert not [e for e in res.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    failure = next(e for e in res.all_events if e.is_step_failure)
    text = str(failure.event_specific_data.error)
    assert "not retried" in text and "NVDA_1h.csv" in text and "line 4" in text and "'12,5'" in text


def test_a_bar_ten_times_the_previous_close_fails_returns_are_sane(tmp_path):
    def explode(g):
        i = g.index[5]
        g.loc[i, ["open", "high", "low", "close"]] = float(g.loc[g.index[4], "close"]) * 5000

    res, evaluations = _ingest_csv(tmp_path, _bad_csv_dir(tmp_path, explode))
    bad = evaluations["returns_are_sane"]
    assert not bad.passed and "NVDA" in bad.metadata["offending_rows"].value
    assert "10x" in bad.metadata["description"].value
    assert not res.asset_materializations_for_node("feature_table")
