"""The registry as it is NOW: a sqlite registry file replaced or deleted on disk under a running app.

Each test works on a private copy of the session registry (v1 Production, v2 registered), so replacing or
deleting the file never disturbs the other tests. A replaced file must be read as the new file (reload and
poll see its Production version), a deleted one makes /health `degraded` (the reason named) while the loaded
model keeps serving.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from market_master.lib.mlflow_adapter import MlflowAdapter
from market_master.settings import EXPERIMENT_NAME, MODEL_NAME
from market_master_tests.api.conftest import ADMIN_TOKEN, window

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _db_path(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///"))


def _copy_db(src: Path, dst: Path) -> str:
    """A consistent copy (sqlite backup API) of `src` at `dst`; returns its sqlite URI."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as source, sqlite3.connect(dst) as target:
        source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{dst}"


@pytest.fixture
def private_registry(api_env, second_version, tmp_path):
    """(live URI, a restore file whose Production is v2, v2): copies of the session registry."""
    v2, _ = second_version
    live_uri = _copy_db(_db_path(api_env.tracking_uri), tmp_path / "live" / "mlflow.db")
    restore = tmp_path / "backup" / "mlflow.db"
    restore_uri = _copy_db(_db_path(api_env.tracking_uri), restore)
    MlflowAdapter(restore_uri, EXPERIMENT_NAME, MODEL_NAME).promote(v2, actor="api-tests", reason="backup")
    return live_uri, restore, v2


def _predicted_version(c, api_env) -> str:
    r = c.post("/predict", json={"symbol": "MSFT", "bars": window(api_env.bars, "MSFT", 20)})
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def test_replaced_registry_file_is_read_on_reload(api_env, private_registry):
    live_uri, restore, v2 = private_registry
    with TestClient(create_app(api_env.settings(tracking_uri=live_uri))) as c:
        assert c.get("/health").json()["model_version"] == api_env.v1
        r = c.post("/admin/reload", headers=AUTH)  # the registry is read (and its connections pooled)
        assert r.status_code == 200 and r.json()["changed"] is False
        os.replace(restore, _db_path(live_uri))  # restore from a backup where Production is v2
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True, r.json()
        assert r.json()["served"]["model_version"] == v2
        assert c.get("/health").json()["model_version"] == v2
        assert _predicted_version(c, api_env) == v2


def test_replaced_registry_file_is_seen_by_the_poll(api_env, private_registry):
    live_uri, restore, v2 = private_registry
    with TestClient(create_app(api_env.settings(tracking_uri=live_uri, reload_poll_seconds=0.1))) as c:
        time.sleep(0.3)  # a few polls on the original file
        assert c.get("/health").json()["model_version"] == api_env.v1
        os.replace(restore, _db_path(live_uri))
        deadline = time.monotonic() + 20
        while c.get("/health").json()["model_version"] != v2 and time.monotonic() < deadline:
            time.sleep(0.05)
        body = c.get("/health").json()
        assert body["model_version"] == v2 and body["status"] == "ok", body
        assert _predicted_version(c, api_env) == v2


def test_deleted_registry_file_is_degraded_and_keeps_serving(api_env, private_registry):
    live_uri, _, _ = private_registry
    live = _db_path(live_uri)
    with TestClient(create_app(api_env.settings(tracking_uri=live_uri))) as c:
        assert c.post("/admin/reload", headers=AUTH).json()["changed"] is False
        assert c.get("/health").json()["status"] == "ok"
        saved = live.read_bytes()
        live.unlink()
        body = c.get("/health").json()
        assert body["status"] == "degraded", body
        assert body["registry_error"] and "registry" in body["registry_error"]
        assert "still serving" in body["warning"].lower() and api_env.v1 in body["warning"]
        assert body["model_version"] == api_env.v1 and body["source"] == "registry"
        assert _predicted_version(c, api_env) == api_env.v1  # the loaded model keeps serving
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 503 and r.json()["error"] == "reload_failed"
        assert not live.exists()  # no empty registry was created by the checks
        live.write_bytes(saved)  # the file is back: ok again
        body = c.get("/health").json()
        assert body["status"] == "ok" and body.get("registry_error") is None, body


def test_deleted_registry_file_is_degraded_with_the_poll(api_env, private_registry):
    live_uri, _, _ = private_registry
    with TestClient(create_app(api_env.settings(tracking_uri=live_uri, reload_poll_seconds=0.1))) as c:
        time.sleep(0.3)
        _db_path(live_uri).unlink()
        deadline = time.monotonic() + 10
        while not c.get("/health").json()["last_reload_error"] and time.monotonic() < deadline:
            time.sleep(0.05)  # the poll's reload failed
        body = c.get("/health").json()
        assert body["status"] == "degraded" and body["registry_error"], body
        assert "still serving" in body["last_reload_error"]
        assert _predicted_version(c, api_env) == api_env.v1
