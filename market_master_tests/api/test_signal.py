"""GET /signal/index: latest stored signal with contributions; unknown universe and empty store are 404."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from market_master.lib.storage import PartitionStore
from market_master.lib.weights import DEFAULT_UNIVERSE


def test_latest_signal_with_contributions(client, api_env):
    r = client.get("/signal/index", params={"universe": "qqq"})
    assert r.status_code == 200, r.text
    body = r.json()
    store = PartitionStore(api_env.root / "partitions")
    stored = store.read("index_signal", [api_env.signal_keys[-1]]).iloc[0]
    preds = store.read("component_predictions", [api_env.signal_keys[-1]]).set_index("symbol")
    assert pd.Timestamp(body["hour"]) == pd.Timestamp(stored["hour"])
    assert body["decision"] == stored["decision"]
    assert body["wss"] == pytest.approx(stored["wss"], abs=1e-12)
    assert body["covered_weight"] == pytest.approx(stored["covered_weight"])
    assert body["model_version"] == api_env.v1
    assert {c["symbol"] for c in body["components"]} == set(DEFAULT_UNIVERSE)
    for comp in body["components"]:
        assert comp["action"] == preds.loc[comp["symbol"], "action"]
    # the contributions are the additive decomposition of the stored WSS
    assert sum(c["contribution"] for c in body["components"]) == pytest.approx(stored["wss"], abs=1e-9)
    assert sum(c["weight"] for c in body["components"]) == pytest.approx(1.0)


def test_signal_follows_a_newly_written_hour(api_env, tmp_path):
    src, dst = PartitionStore(api_env.root / "partitions"), PartitionStore(tmp_path / "partitions")
    first, second = api_env.signal_keys[-2:]
    for asset in ("component_predictions", "index_signal"):
        dst.write(asset, first, src.read(asset, [first]))
    with TestClient(create_app(api_env.settings(data_root=tmp_path))) as c:
        assert pd.Timestamp(c.get("/signal/index").json()["hour"]).strftime("%Y-%m-%d-%H:%M") == first
        for asset in ("component_predictions", "index_signal"):
            dst.write(asset, second, src.read(asset, [second]))
        assert pd.Timestamp(c.get("/signal/index").json()["hour"]).strftime("%Y-%m-%d-%H:%M") == second


def test_unknown_universe_is_404(client):
    r = client.get("/signal/index", params={"universe": "spx"})
    assert r.status_code == 404
    assert r.json()["error"] == "unknown_universe" and r.json()["field"] == "universe"


def test_nothing_stored_is_404_run_the_pipeline(api_env, tmp_path):
    with TestClient(create_app(api_env.settings(data_root=tmp_path))) as c:
        r = c.get("/signal/index", params={"universe": "qqq"})
        assert r.status_code == 404
        assert "run the pipeline first" in r.json()["message"]


def test_bad_query_is_422(client):
    r = client.get("/signal/index", params={"universe": ""})
    assert r.status_code == 422 and r.json()["field"] == "universe"
