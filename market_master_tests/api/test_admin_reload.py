"""POST /admin/reload and the background poll: the alias moves, the new version is served, the old one
answers until the swap; the endpoint is token-protected (403 when disabled)."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from market_master_tests.api.conftest import ADMIN_TOKEN, window

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def moved_alias(api_env, second_version):
    """Production -> v2 for the test, back to v1 afterwards."""
    v2, model = second_version
    yield v2, model
    api_env.adapter().promote(api_env.v1, actor="api-tests", reason="restore")


def _probs(c, api_env):
    body = c.post("/predict", json={"symbol": "MSFT", "bars": window(api_env.bars, "MSFT", 20)}).json()
    return body["model_version"], body["probabilities"]


def test_reload_requires_token(api_env):
    with TestClient(create_app(api_env.settings(admin_token=None))) as c:
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 403 and r.json()["error"] == "admin_disabled"
    with TestClient(create_app(api_env.settings())) as c:
        assert c.post("/admin/reload").status_code == 401
        assert c.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200 and r.json()["changed"] is False


def test_alias_move_then_reload_serves_new_version(api_env, moved_alias):
    v2, _ = moved_alias
    with TestClient(create_app(api_env.settings())) as c:
        before_version, before = _probs(c, api_env)
        assert before_version == api_env.v1
        api_env.adapter().promote(v2, actor="api-tests", reason="move")
        # not reloaded yet: the old model keeps answering
        assert _probs(c, api_env) == (api_env.v1, before)
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True and r.json()["previous_version"] == api_env.v1
        assert r.json()["served"]["model_version"] == v2
        after_version, after = _probs(c, api_env)
        assert after_version == v2 and after != before
        assert c.get("/health").json()["model_version"] == v2


def test_poll_swaps_while_old_model_keeps_answering(api_env, moved_alias):
    v2, _ = moved_alias
    with TestClient(create_app(api_env.settings(reload_poll_seconds=0.2))) as c:
        assert c.get("/health").json()["model_version"] == api_env.v1
        api_env.adapter().promote(v2, actor="api-tests", reason="move")
        statuses, versions, stop = [], set(), threading.Event()

        def hammer():
            while not stop.is_set():
                r = c.post("/predict", json={"symbol": "MSFT", "bars": window(api_env.bars, "MSFT", 20)})
                statuses.append(r.status_code)
                versions.add(r.json().get("model_version"))

        t = threading.Thread(target=hammer)
        t.start()
        deadline = time.monotonic() + 30
        while c.get("/health").json()["model_version"] != v2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        stop.set()
        t.join()
        assert c.get("/health").json()["model_version"] == v2
        assert set(statuses) == {200}
        assert versions <= {api_env.v1, v2} and v2 in versions


def test_reload_with_registry_down_keeps_serving(api_env, tmp_path):
    app = create_app(api_env.settings())
    with TestClient(app) as c:
        app.state.model_service.settings = api_env.settings(tracking_uri=f"sqlite:///{tmp_path / 'gone.db'}")
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 503 and r.json()["error"] == "reload_failed"
        assert c.get("/health").json()["model_version"] == api_env.v1
        assert c.get("/health").json()["last_reload_error"]
        assert _probs(c, api_env)[0] == api_env.v1
