"""GET /signal/index: latest stored signal with contributions; unknown universe and empty store are 404."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from market_master.lib.calendar import is_trading_bar
from market_master.lib.signal import compute_wss
from market_master.lib.storage import PartitionStore
from market_master.lib.weights import DEFAULT_UNIVERSE, embedded_top10

GOOD_FRIDAY_KEYS = ("2024-03-29-09:30", "2024-03-29-12:30", "2024-03-29-15:30")  # market closed


def _copy(api_env, dst: PartitionStore, key: str) -> None:
    src = PartitionStore(api_env.root / "partitions")
    for asset in ("component_predictions", "index_signal"):
        dst.write(asset, key, src.read(asset, [key]))


def _key(hour: str) -> str:
    return pd.Timestamp(hour).strftime("%Y-%m-%d-%H:%M")


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


def test_latest_non_empty_signal_skips_empty_holiday_slices(api_env, tmp_path):
    """The pipeline writes every partition key; holiday keys hold EMPTY slices (frame.iloc[0:0])."""
    dst = PartitionStore(tmp_path / "partitions")
    last = api_env.signal_keys[-1]
    _copy(api_env, dst, last)
    assert not any(
        is_trading_bar(pd.Timestamp(k[:10] + " " + k[11:], tz="America/New_York")) for k in GOOD_FRIDAY_KEYS
    )
    empty = {a: dst.read(a, [last]).iloc[0:0] for a in ("component_predictions", "index_signal")}
    for key in GOOD_FRIDAY_KEYS:
        for asset, frame in empty.items():
            dst.write(asset, key, frame)
    assert dst.latest_key("index_signal") == GOOD_FRIDAY_KEYS[-1]
    with TestClient(create_app(api_env.settings(data_root=tmp_path))) as c:
        r = c.get("/signal/index")
        assert r.status_code == 200, r.text
        assert _key(r.json()["hour"]) == last
        assert r.json()["components"] and r.json()["n_predicted"] > 0


def test_only_empty_slices_is_404(api_env, tmp_path):
    dst = PartitionStore(tmp_path / "partitions")
    frame = PartitionStore(api_env.root / "partitions").read("index_signal", [api_env.signal_keys[-1]])
    dst.write("index_signal", GOOD_FRIDAY_KEYS[0], frame.iloc[0:0])
    with TestClient(create_app(api_env.settings(data_root=tmp_path))) as c:
        r = c.get("/signal/index")
        assert r.status_code == 404 and "non-empty" in r.json()["message"]


def test_contributions_use_the_stored_weights_json(api_env, tmp_path):
    """weights_json (the weights the pipeline used at that hour) drives the contributions, not the embedded set."""
    key = api_env.signal_keys[-1]
    src, dst = PartitionStore(api_env.root / "partitions"), PartitionStore(tmp_path / "partitions")
    preds = src.read("component_predictions", [key])
    custom = {s: float(i + 1) for i, s in enumerate(sorted(DEFAULT_UNIVERSE))}  # not normalised on purpose
    signal = compute_wss(preds, custom)
    embedded_wss = float(compute_wss(preds, embedded_top10().weights)["wss"].iloc[0])
    assert abs(float(signal["wss"].iloc[0]) - embedded_wss) > 1e-3  # the weights matter for this hour
    signal["universe"], signal["weights_as_of"] = "qqq", "2024-03-01"
    signal["weights_json"] = json.dumps(custom, sort_keys=True)
    dst.write("component_predictions", key, preds)
    dst.write("index_signal", key, signal)
    with TestClient(create_app(api_env.settings(data_root=tmp_path))) as c:
        body = c.get("/signal/index").json()
    total = sum(custom.values())
    assert {c["symbol"]: c["weight"] for c in body["components"]} == pytest.approx(
        {s: w / total for s, w in custom.items()}
    )
    assert body["wss"] == pytest.approx(float(signal["wss"].iloc[0]), abs=1e-12)
    assert sum(c["contribution"] for c in body["components"]) == pytest.approx(body["wss"], abs=1e-9)
    assert body["weights_as_of"] == "2024-03-01"
