"""Production mode end to end through the real services: Dagster on Postgres, MLflow over HTTP (backend
Postgres, artifacts served from S3), the partition store on S3. Nothing local but scratch.

ingest -> features -> train -> gates -> promotion sensor -> predictions + WSS -> the API serves the
Production model it reads from the MLflow server.
"""

from __future__ import annotations

import dagster as dg
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from market_master import cli, settings
from market_master.lib.aliases import PRODUCTION_ALIAS
from market_master.lib.mlflow_adapter import MlflowAdapter
from market_master.lib.storage import ObjectStore, PartitionStore, join

END = "2024-06-28"
ARGS = ["run", "--days", "130", "--signal-days", "3", "--end", END, "--candidates", "LogReg,HGBT"]


def test_pipeline_runs_on_the_services_and_the_api_serves_production(prod_scratch, capsys):
    adapter = MlflowAdapter(settings.default_tracking_uri(), model_name=settings.MODEL_NAME)
    assert cli.main([*ARGS, "--predictability", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert "Production: " in out and "decision" in out
    production = adapter.alias_version(PRODUCTION_ALIAS)
    assert production is not None and f"-> v{production}" in out

    # the slices and values are on S3, none on the local disk
    store_url = settings.store_root()
    assert store_url.startswith("s3://")
    store = PartitionStore(join(store_url, "partitions"))
    assert len(store.keys("hourly_bars")) >= 130 * 7  # trading-hour keys of the window (holidays too)
    assert store.keys("hourly_bars")[-1] == f"{END}-15:30"
    signal = store.read("index_signal", [store.latest_key("index_signal", nonempty=True)])
    assert signal["decision"].iloc[0] in {"BUY", "SELL", "HOLD"}
    assert ObjectStore(join(store_url, "objects")).exists("champion_model")
    assert not (prod_scratch / "partitions").exists() and not (prod_scratch / "objects").exists()
    assert not (prod_scratch / "mlflow").exists()  # no local sqlite tracking store

    # Dagster's runs are in Postgres
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        for job in ("ingest_job", "retrain_job", "promote_job", "inference_job", "monitoring_job"):
            runs = instance.get_runs(filters=dg.RunsFilter(job_name=job), limit=1)
            assert runs, job

    # the model's files went through the server to the bucket
    import s3fs

    bucket = store_url.removeprefix("s3://").split("/", 1)[0]
    assert s3fs.S3FileSystem().find(f"{bucket}/mlflow-artifacts")

    # the API reads Production from the MLflow server over HTTP
    api_settings = Settings(tracking_uri=settings.default_tracking_uri(), data_root=prod_scratch)
    with TestClient(create_app(api_settings)) as client:
        body = client.get("/health").json()
    assert body["status"] == "ok" and body["source"] == "registry", body
    assert body["model_version"] == production and body["model_alias"] == PRODUCTION_ALIAS
    assert body["tracking_uri"].startswith("http://")
