"""A range run's per-key bookkeeping: each key's materialization carries THAT key's rows, no key's
materialization is lost (the planned-event switch, the progress logger), and the progress / stage output
has its shape. No timings are asserted (benchmarks/ measure them)."""

import io
import os
import re

import dagster as dg
import pytest

from market_master.definitions import build_definitions, local_storage
from market_master.defs.features.assets import feature_table
from market_master.defs.ingestion.assets import hourly_bars
from market_master.defs.partitions import NON_TRADING
from market_master.defs.resources import MarketDataResource
from market_master.local_run import (
    DAGSTER_ENV_DEFAULTS,
    PRODUCTION_DAGSTER_ENV_DEFAULTS,
    LocalRunner,
    Progress,
    StageTimer,
    configure_dagster_env,
    range_tags,
)

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
# Good Friday 2024-03-29 (7 holiday keys) inside the range; 2024-03-28 is a full session
RANGE = ("2024-03-27-09:30", "2024-04-01-15:30")
HOLIDAY_KEY = "2024-03-29-11:30"


def _materializations(result, node):
    return {m.partition: m.metadata for m in result.asset_materializations_for_node(node)}


@pytest.fixture
def ranged(tmp_path):
    return dg.materialize(
        [hourly_bars, feature_table],
        resources={"market_data": MarketDataResource(symbols=SYMBOLS), **local_storage(str(tmp_path))},
        tags=range_tags(*RANGE),
    )


def test_each_key_materialization_shows_its_own_rows(ranged):
    assert ranged.success
    bars = _materializations(ranged, "hourly_bars")
    assert len(bars) == 4 * 7  # every key of the range has its materialization
    assert bars[HOLIDAY_KEY]["rows"].value == 0
    assert bars[HOLIDAY_KEY]["non_trading"].value == NON_TRADING
    assert bars["2024-03-28-10:30"]["rows"].value == len(SYMBOLS)
    assert bars["2024-03-28-10:30"]["symbols"].value == len(SYMBOLS)
    assert "non_trading" not in bars["2024-03-28-10:30"]
    assert sum(m["rows"].value for m in bars.values()) == 3 * 7 * len(SYMBOLS)
    # what is copied to every key describes the run, and says so
    assert bars[HOLIDAY_KEY]["run_partitions"].value == 28
    features = _materializations(ranged, "feature_table")
    assert len(features) == 28
    assert features[HOLIDAY_KEY]["rows"].value == 0
    assert features["2024-04-01-15:30"]["rows"].value == len(SYMBOLS)
    assert "preview" in features["2024-04-01-15:30"] and "preview" not in features["2024-03-28-10:30"]


def test_progress_reports_counts_and_eta_and_is_throttled():
    now = [0.0]
    out = io.StringIO()
    progress = Progress("ingest_job", total=100, every=5.0, out=out, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.2
        progress.update()
    lines = out.getvalue().splitlines()
    assert 3 <= len(lines) <= 5  # 20 s of work, one line per 5 s plus the last one
    pattern = (
        r"^      ingest_job: [\d,]+/100 partition materializations stored \(\d+ %\), \d+ s, (ETA \d+ s|done)$"
    )
    assert all(re.match(pattern, line) for line in lines), lines
    assert lines[-1].endswith("done") and "100/100" in lines[-1]
    first = re.search(r"ETA (\d+) s", lines[0])
    assert first and 14 <= int(first.group(1)) <= 16  # 75 left at 0.2 s each


def test_progress_is_silent_for_a_short_run():
    out = io.StringIO()
    progress = Progress("inference_job", total=10, every=5.0, out=out, clock=lambda: 1.0)
    for _ in range(10):
        progress.update()
    assert out.getvalue() == ""


def test_stage_table_lists_every_stage_and_the_total():
    ticks = iter([0.0, 1.5, 2.0, 12.0])
    timer = StageTimer(clock=lambda: next(ticks))
    with timer.stage("1 ingest"):
        pass
    with timer.stage("2 training"):
        pass
    lines = timer.table().splitlines()
    assert lines[0].split() == ["stage", "seconds"]
    assert lines[2].split() == ["1", "ingest", "1.5"] and lines[3].split() == ["2", "training", "10.0"]
    assert lines[-1].split() == ["total", "11.5"]


def test_production_mode_batches_event_writes_embedded_does_not(monkeypatch):
    for name in [*DAGSTER_ENV_DEFAULTS, *PRODUCTION_DAGSTER_ENV_DEFAULTS]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MARKET_MASTER_MODE", "embedded")
    configure_dagster_env()
    assert os.environ.get("DAGSTER_EVENT_BATCH_SIZE") is None
    monkeypatch.setenv("MARKET_MASTER_MODE", "production")
    configure_dagster_env()
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "100"
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "7")  # the environment wins
    configure_dagster_env()
    assert os.environ["DAGSTER_EVENT_BATCH_SIZE"] == "7"


@pytest.mark.parametrize("event_batch_size", [None, "100"])
def test_local_range_run_stores_every_materialization_and_reports_progress(
    tmp_path, monkeypatch, capsys, event_batch_size
):
    """Through LocalRunner (planned events as one subset per asset, the progress logger added to the
    job): every key's materialization is in the instance, and the progress lines count them; the same
    with production's batched event writes (100 per batch: the 28 keys x 3 assets span batches)."""
    for name in DAGSTER_ENV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    if event_batch_size:
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", event_batch_size)
    else:
        monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    configure_dagster_env()
    defs = build_definitions(
        {"market_data": MarketDataResource(symbols=SYMBOLS), **local_storage(str(tmp_path / "root"))}
    )
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = LocalRunner(defs, instance, progress_every=0.0).run("ingest_job", tags=range_tags(*RANGE))
        assert result.success
        for asset in ("hourly_bars", "index_proxy_bars", "feature_table"):
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
            assert sorted(r.partition_key for r in records) == sorted(
                defs.resolve_job_def("ingest_job").partitions_def.get_partition_keys_in_range(
                    dg.PartitionKeyRange(*RANGE)
                )
            )
            materialized = instance.get_materialized_partitions(dg.AssetKey(asset))
            assert len(materialized) == 28
    lines = [line for line in capsys.readouterr().out.splitlines() if "partition materializations" in line]
    assert lines and "84/84" in lines[-1] and lines[-1].endswith("done")


def test_run_path_limits_openmp_threads_unless_told_otherwise(monkeypatch):
    import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime threadpoolctl reports
    from threadpoolctl import threadpool_info

    from market_master import cli

    def openmp_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"}

    before = openmp_threads()
    monkeypatch.delenv("MARKET_MASTER_OPENMP_THREADS", raising=False)
    with cli._openmp_threads():
        assert openmp_threads() <= {1}
    assert openmp_threads() == before
    monkeypatch.setenv("MARKET_MASTER_OPENMP_THREADS", "0")
    with cli._openmp_threads():
        assert openmp_threads() == before
