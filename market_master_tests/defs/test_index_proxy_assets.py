"""index_proxy_bars materialized at partition keys into a tmp data root; the proxy never a constituent;
feature_table with index context reads it (same numbers as one lib pass) or names the missing hours."""

import dagster as dg
import pandas as pd
import pytest

from market_master.definitions import local_storage
from market_master.defs.features.assets import feature_table, stored_feature_config
from market_master.defs.ingestion.assets import hourly_bars, index_weights
from market_master.defs.ingestion.proxy import index_proxy_bars
from market_master.defs.resources import MarketDataResource
from market_master.lib.features import INDEX_CONTEXT_COLUMNS, FeatureConfig, compute_features
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.storage import PartitionStore

SYMBOLS = ["AAPL", "MSFT"]
KEY = "2024-03-05-10:30"
ON = {"ops": {"feature_table": {"config": {"index_context": True}}}}


def _resources(root, **market):
    return {"market_data": MarketDataResource(symbols=SYMBOLS, **market), **local_storage(str(root))}


def _range_tags(a, b):
    return {"dagster/asset_partition_range_start": a, "dagster/asset_partition_range_end": b}


def test_proxy_asset_at_a_partition_key_writes_its_slice_and_passes_the_bar_checks(tmp_path):
    res = dg.materialize([index_proxy_bars], resources=_resources(tmp_path), partition_key=KEY)
    assert res.success
    evaluations = res.get_asset_check_evaluations()
    assert len(evaluations) == 9 and all(e.passed for e in evaluations)
    assert {e.asset_key.to_user_string() for e in evaluations} == {"index_proxy_bars"}
    md = res.asset_materializations_for_node("index_proxy_bars")[0].metadata
    assert md["symbol"].value == "QQQ" and md["rows"].value == 1
    stored = PartitionStore(tmp_path / "partitions").read("index_proxy_bars", [KEY])
    expected = SyntheticSource().fetch(["QQQ"], "2024-03-05 10:30", "2024-03-05 10:30")
    pd.testing.assert_frame_equal(
        stored[expected.columns].reset_index(drop=True), expected, check_dtype=False
    )


def test_proxy_symbol_is_configurable_and_never_a_constituent(tmp_path):
    market = {"symbols": [*SYMBOLS, "QQQ", "SPY"], "proxy_symbol": "NQ=F"}
    res = dg.materialize(
        [hourly_bars, index_proxy_bars],
        resources={"market_data": MarketDataResource(**market), **local_storage(str(tmp_path))},
        partition_key=KEY,
    )
    assert res.success
    store = PartitionStore(tmp_path / "partitions")
    assert sorted(store.read("hourly_bars", [KEY])["symbol"]) == SYMBOLS
    assert store.read("index_proxy_bars", [KEY])["symbol"].tolist() == ["NQ=F"]


def test_index_weights_excludes_a_proxy_in_the_universe_or_the_holdings(tmp_path):
    holdings = tmp_path / "h_2025-04-28.csv"
    holdings.write_text("symbol,weight_pct\nAAPL,9\nMSFT,8\nQQQ,5\n")
    res = dg.materialize(
        [hourly_bars, index_weights],
        selection=[index_weights],
        resources={
            "market_data": MarketDataResource(symbols=[*SYMBOLS, "QQQ"]),
            **local_storage(str(tmp_path / "root")),
        },
        run_config={"ops": {"index_weights": {"config": {"holdings_csv": str(holdings)}}}},
    )
    md = res.asset_materializations_for_node("index_weights")[0].metadata
    assert md["excluded_proxy_symbols"].value == ["QQQ"]
    weights = res.output_for_node("index_weights").latest().weights
    assert "QQQ" not in weights
    assert "QQQ" not in md["weights"].value


def test_feature_table_with_index_context_equals_one_lib_pass(tmp_path):
    resources = _resources(tmp_path)
    assert dg.materialize(
        [hourly_bars, index_proxy_bars, feature_table],
        resources=resources,
        tags=_range_tags("2024-02-01-09:30", "2024-03-12-15:30"),
        run_config=ON,
    ).success
    stored = PartitionStore(tmp_path / "partitions").read_between(
        "feature_table", "2024-03-11", "2024-03-12 16:00"
    )
    config = stored_feature_config(stored)
    assert config == FeatureConfig(index_context=True, proxy_symbol="QQQ")
    bars = SyntheticSource().fetch([*SYMBOLS, "QQQ"], "2024-02-01", "2024-03-12")
    full = compute_features(
        bars[bars["symbol"] != "QQQ"].reset_index(drop=True), config, proxy=bars[bars["symbol"] == "QQQ"]
    )
    full = full[full["timestamp"] >= pd.Timestamp("2024-03-11", tz="America/New_York")].reset_index(drop=True)
    stored = stored.sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    assert set(INDEX_CONTEXT_COLUMNS) <= set(stored.columns)
    pd.testing.assert_frame_equal(stored[full.columns], full, check_dtype=False)


def test_feature_table_default_does_not_read_the_proxy(tmp_path):
    res = dg.materialize(
        [hourly_bars, feature_table], resources=_resources(tmp_path), tags=_range_tags(KEY, KEY)
    )
    assert res.success
    stored = PartitionStore(tmp_path / "partitions").read("feature_table", [KEY])
    assert not set(INDEX_CONTEXT_COLUMNS) & set(stored.columns)
    assert stored_feature_config(stored).index_context is False


def test_feature_table_with_index_context_names_the_missing_proxy_hours(tmp_path):
    resources = _resources(tmp_path)
    assert dg.materialize(
        [hourly_bars, index_proxy_bars],
        resources=resources,
        tags=_range_tags("2024-03-04-09:30", "2024-03-05-15:30"),
    ).success
    # the proxy's 11:30 bar on 2024-03-05 is gone: the feature table refuses, naming QQQ and that hour
    PartitionStore(tmp_path / "partitions").path("index_proxy_bars", "2024-03-05-11:30").unlink()
    res = dg.materialize(
        [hourly_bars, index_proxy_bars, feature_table],
        selection=[feature_table],
        resources=resources,
        tags=_range_tags("2024-03-05-09:30", "2024-03-05-15:30"),
        run_config=ON,
        raise_on_error=False,
    )
    assert not res.success
    failure = next(e for e in res.all_events if e.is_step_failure)
    text = str(failure.event_specific_data.error)
    assert "index proxy QQQ has no bar at 1 hour(s)" in text and "2024-03-05T11:30:00-05:00" in text


@pytest.mark.parametrize("with_proxy_file", [True, False])
def test_csv_source_reads_the_proxy_file_or_names_it(tmp_path, with_proxy_file):
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    bars = SyntheticSource().fetch([*SYMBOLS, "QQQ"], "2024-03-04", "2024-03-05")
    for sym, g in bars.groupby("symbol"):
        if sym == "QQQ" and not with_proxy_file:
            continue
        g.rename(columns={"timestamp": "Datetime"}).drop(columns="symbol").to_csv(
            csv_dir / f"{sym}_1h.csv", index=False
        )
    res = dg.materialize(
        [index_proxy_bars],
        resources=_resources(tmp_path / "root", source="csv", csv_dir=str(csv_dir)),
        partition_key=KEY,
        raise_on_error=False,
    )
    assert res.success is with_proxy_file
    if not with_proxy_file:
        text = str(next(e for e in res.all_events if e.is_step_failure).event_specific_data.error)
        assert "index proxy QQQ" in text and "QQQ_1h.csv" in text
