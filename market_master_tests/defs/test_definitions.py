"""The code location loads, and its asset keys / checks / jobs are what the README says."""

import dagster as dg

from market_master.definitions import defs
from market_master.defs.ingestion.checks import ERROR_CHECKS, WARN_CHECKS
from market_master.defs.partitions import hourly_partitions
from market_master.defs.training.checks import GATE_NAMES

EXPECTED_ASSETS = {
    "index_weights",
    "hourly_bars",
    "index_proxy_bars",
    "feature_table",
    "walk_forward_history",
    "candidate_models",
    "champion_model",
    "production_model",
    "component_predictions",
    "index_signal",
    "signal_backtest",
    "feature_drift_report",
    "classification_quality_report",
}


def test_definitions_load_with_the_documented_asset_keys():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED_ASSETS


def test_hourly_assets_are_partitioned_and_single_run_backfilled():
    graph = defs.resolve_asset_graph()
    for name in ("hourly_bars", "index_proxy_bars", "feature_table", "component_predictions", "index_signal"):
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def == hourly_partitions
        assert node.backfill_policy == dg.BackfillPolicy.single_run()


def test_checks_gates_and_bar_checks_are_declared():
    keys = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    for gate in GATE_NAMES:
        assert ("champion_model", gate) in keys
    for check in ERROR_CHECKS + WARN_CHECKS:
        assert ("hourly_bars", check) in keys
        assert ("index_proxy_bars", check) in keys


def test_jobs_schedules_and_sensor_defaults():
    assert {j.name for j in defs.jobs} >= {
        "ingest_job",
        "hourly_signal_job",
        "retrain_job",
        "promote_job",
        "monitoring_job",
    }
    repo = defs.get_repository_def()
    for schedule in repo.schedule_defs:
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED, schedule.name
    sensor = repo.get_sensor_def("promote_champion_when_gates_pass")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_partition_scheme_stays_under_dagster_guidance_for_the_ndx():
    """~1,850 keys a year; two years of the full NASDAQ-100 stay one key per hour (symbols inside)."""
    keys = hourly_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange("2023-01-03-09:30", "2024-12-31-15:30")
    )
    assert 3_500 < len(keys) < 3_800
    assert len(keys) < 100_000 / 25  # headroom: even 25 years fit
    assert keys[0] == "2023-01-03-09:30" and keys[1] == "2023-01-03-10:30"
