"""Steps in separate worker processes (Dagster's multiprocess executor, as the daemon launches runs) share
one store on S3 and one instance on Postgres: the feature step reads the bars another process wrote."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

from market_master import settings
from market_master.lib.storage import PartitionStore, join
from market_master.local_run import range_tags

REPO = Path(__file__).resolve().parents[2]
FIRST, LAST = "2024-06-03-09:30", "2024-06-04-15:30"  # two sessions, 14 hourly partitions


def test_multiprocess_steps_share_the_s3_store(prod_scratch):
    job = ReconstructableRepository.for_module(
        "market_master.definitions", "defs", working_directory=str(REPO)
    ).get_reconstructable_job("ingest_job")
    run_config = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        with dg.execute_job(job, instance, run_config=run_config, tags=range_tags(FIRST, LAST)) as result:
            assert result.success
            step_pids = {e.step_key: e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
    assert {"hourly_bars", "feature_table"} <= set(step_pids)
    assert os.getpid() not in step_pids.values()  # each step ran in a worker process of its own
    assert step_pids["hourly_bars"] != step_pids["feature_table"]
    store = PartitionStore(join(settings.store_root(), "partitions"))
    for asset in ("hourly_bars", "feature_table"):
        keys = store.keys(asset)
        assert keys[0] == FIRST and keys[-1] == LAST and len(keys) == 14, (asset, keys)
    assert len(store.read("feature_table", [LAST])) > 0
