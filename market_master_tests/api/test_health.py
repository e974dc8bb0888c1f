"""GET /health: registry served, local fallback served loudly, nothing served -> 503 on model routes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from market_master.settings import MODEL_NAME


def test_health_serves_production_from_registry(client, api_env):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["source"] == "registry"
    assert body["model_name"] == MODEL_NAME
    assert body["model_version"] == api_env.v1
    assert body["model_alias"] == "Production"
    assert body["model_uri"] == f"models:/{MODEL_NAME}/{api_env.v1}"
    assert body["tracking_uri"] == api_env.tracking_uri
    assert body["loaded_at"]
    assert body.get("warning") is None


def test_registry_down_serves_local_fallback_loudly(api_env, tmp_path, caplog):
    down = f"sqlite:///{tmp_path / 'absent' / 'mlflow.db'}"
    with caplog.at_level("WARNING"), TestClient(create_app(api_env.settings(tracking_uri=down))) as c:
        body = c.get("/health").json()
        assert body["status"] == "degraded"
        assert body["source"] == "local_fallback"
        assert body["model_version"] == api_env.v1
        assert "LOCAL FALLBACK" in body["warning"] and down in body["warning"]
        assert any("LOCAL FALLBACK" in r.getMessage() for r in caplog.records)
        # the fallback still predicts
        assert c.get("/predict/component", params={"symbol": "NVDA"}).status_code == 200


def test_no_registry_and_no_local_copy_starts_and_answers_503(api_env, tmp_path):
    settings = api_env.settings(tracking_uri=f"sqlite:///{tmp_path / 'none.db'}", data_root=tmp_path)
    with TestClient(create_app(settings)) as c:
        body = c.get("/health").json()
        assert body["status"] == "no_model" and body["source"] is None
        assert "NO MODEL LOADED" in body["warning"]
        r = c.get("/predict/component", params={"symbol": "NVDA"})
        assert r.status_code == 503
        assert r.json()["error"] == "model_unavailable"
        assert "no local copy" in r.json()["message"]
        r = c.post("/predict", json={"open": 1, "high": 1, "low": 1, "close": 1, "volume": 1})
        assert r.status_code == 503
