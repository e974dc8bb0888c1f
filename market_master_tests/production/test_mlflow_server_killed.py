"""Kill the MLflow server (the real process, not a mock) while `market-master run` trains: the run fails
with a clear error, nothing is half-registered, and after the server is back a rerun completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from market_master import settings
from market_master.lib.aliases import PRODUCTION_ALIAS
from market_master.lib.mlflow_adapter import MlflowAdapter, RegistryError
from market_master_tests.production.conftest import SERVICES_DIR

# The e2e window: the monitoring step compares with the CURRENT Production model's training window, which
# must be in this test's store (the registry is shared by the tests, each store prefix is fresh).
from market_master_tests.production.test_end_to_end import ARGS

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "market_master.cli"]
TRAINING_STARTS = "[2/6]"


def _kill_mlflow_server() -> None:
    pid = int((SERVICES_DIR / "mlflow.pid").read_text())
    os.killpg(pid, signal.SIGKILL)  # its group: `mlflow server` and the uvicorn it runs


def _versions(client: MlflowClient) -> list:
    return client.search_model_versions(f"name='{settings.MODEL_NAME}'")


def _production(adapter: MlflowAdapter) -> str | None:
    try:
        return adapter.alias_version(PRODUCTION_ALIAS)
    except RegistryError:  # no registered model yet (this test alone on fresh services)
        return None


def test_killed_mlflow_server_fails_the_run_then_a_rerun_completes(prod_scratch):
    client = MlflowClient(settings.default_tracking_uri())
    adapter = MlflowAdapter(settings.default_tracking_uri(), model_name=settings.MODEL_NAME)
    before = {v.version for v in _versions(client)}
    production_before = _production(adapter)
    # fail within seconds instead of MLflow's default 7 retries with backoff
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    run = [*CLI, *ARGS, "--predictability", "1.0", "--seed", "11"]
    proc = subprocess.Popen(run, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith(TRAINING_STARTS):
            _kill_mlflow_server()
            break
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, (out, err)
    last = err.strip().splitlines()[-1]  # the CLI's one line (Dagster's own ERROR log precedes it)
    assert last.startswith("error: retrain_job failed"), err
    assert settings.default_tracking_uri().removeprefix("http://") in last, last  # names the server

    started = time.perf_counter()
    subprocess.run([str(REPO / "deploy" / "services.sh"), "start-mlflow"], check=True, timeout=300)
    print(f"MLflow server restarted in {time.perf_counter() - started:.0f} s")
    # nothing half-registered: no version appeared while the server was down, none is left pending
    assert {v.version for v in _versions(client)} == before
    assert _production(adapter) == production_before

    rerun = subprocess.run(run, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    # exit 0; or 2 when the small window's gates fail and there is no Production to keep serving
    assert rerun.returncode == 0 or (production_before is None and "No Production model" in rerun.stdout), (
        rerun.stdout,
        rerun.stderr,
    )
    assert "(alias Staging)" in rerun.stdout  # training completed and registered its champion
    new = [v for v in _versions(client) if v.version not in before]
    assert len(new) == 1 and new[0].status == "READY", new
    assert adapter.load_model(version=new[0].version) is not None  # its files are on the server
