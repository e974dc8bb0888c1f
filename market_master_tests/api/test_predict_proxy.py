"""POST /predict and GET /predict/component for a model whose FeatureConfig uses index context: the
proxy's bars are required and aligned (422 naming the field otherwise), and the API's features for the last
bar equal the feature table's row (train/serve parity)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from api.deps import PredictContext, get_predict_context, get_served_model
from api.main import create_app
from api.model_service import ServedModel
from market_master.lib.features import INDEX_CONTEXT_COLUMNS, FeatureConfig, compute_features
from market_master.lib.labels import CLASSES
from market_master.lib.prediction import predict_hours
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.storage import PartitionStore
from market_master.lib.weights import DEFAULT_UNIVERSE
from market_master_tests.api.conftest import END, START, window

SYMBOL = "NVDA"


class IndexContextModel:
    """A model that reads the index-context features (so a wrong proxy feature changes its answer)."""

    def __init__(self) -> None:
        self.feature_config = FeatureConfig(index_context=True)
        self.feature_columns = self.feature_config.columns
        self.trained_symbols = None

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        s = 200 * frame["rel_ret_1"] + 100 * frame["idx_ret_day"] + 300 * frame["idx_first_x_next_last"]
        logits = np.outer(s.to_numpy() + 50 * frame["idx_gap"].to_numpy(), np.arange(-2, 3))
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def proxy(api_env) -> pd.DataFrame:
    bars = SyntheticSource(seed=11).fetch(["QQQ"], START, END)
    return bars[bars["timestamp"].isin(api_env.bars["timestamp"])].reset_index(drop=True)


def _served(model) -> ServedModel:
    return ServedModel(
        model=model,
        name="index-context-test",
        version="99",
        alias="Production",
        source="uri",
        model_uri="test:index-context",
        loaded_at=dt.datetime.now(dt.UTC),
        symbols=frozenset(DEFAULT_UNIVERSE),
    )


def _client(settings, model) -> TestClient:
    app = create_app(settings)
    served = _served(model)

    async def context(request: Request) -> PredictContext:
        state = request.app.state
        return PredictContext(served, state.store_service, state.settings, state.batcher)

    async def served_model() -> ServedModel:
        return served

    app.dependency_overrides[get_predict_context] = context
    app.dependency_overrides[get_served_model] = served_model
    return TestClient(app)


@pytest.fixture(scope="module")
def index_client(api_env):
    with _client(api_env.settings(), IndexContextModel()) as client:
        yield client


def _proxy_rows(proxy: pd.DataFrame, rows: list[dict]) -> list[dict]:
    at = proxy.set_index(proxy["timestamp"].map(lambda t: t.isoformat()))
    cols = ["open", "high", "low", "close", "volume"]
    return [{"timestamp": r["timestamp"], **at.loc[r["timestamp"], cols].to_dict()} for r in rows]


def _table(api_env, proxy) -> pd.DataFrame:
    """The feature table over all history (as feature_table computes it)."""
    return compute_features(api_env.bars, FeatureConfig(index_context=True), proxy=proxy)


@pytest.mark.parametrize("end", [-40, -3, None])
def test_post_with_proxy_equals_predict_hours_on_the_feature_table(index_client, api_env, proxy, end):
    rows = window(api_env.bars, SYMBOL, 20, end=None if end is None else len(api_env.bars) // 10 + end)
    r = index_client.post(
        "/predict", json={"symbol": SYMBOL, "bars": rows, "proxy_bars": _proxy_rows(proxy, rows)}
    )
    assert r.status_code == 200, r.text
    hour = pd.Timestamp(rows[-1]["timestamp"])
    table = _table(api_env, proxy)
    expected = predict_hours(table, IndexContextModel(), hours=[hour], universe=[SYMBOL]).iloc[0]
    body = r.json()
    for cls in CLASSES:
        assert body["probabilities"][cls] == pytest.approx(expected[f"p_{cls}"], abs=1e-9)
    assert body["action"] == expected["action"]


def test_window_features_of_the_last_bar_equal_the_feature_table_row(api_env, proxy):
    """Train/serve parity, feature by feature: the API's window (warm-up + 1 bars of the symbol and the
    proxy) gives the last bar exactly the feature table's values."""
    config = FeatureConfig(index_context=True)
    table = _table(api_env, proxy)
    sym = api_env.bars[api_env.bars["symbol"] == SYMBOL].reset_index(drop=True)
    for stop in (len(sym) - 25, len(sym) - 4, len(sym)):
        win = sym.iloc[stop - config.warmup - 1 : stop].reset_index(drop=True)
        p = proxy[proxy["timestamp"].isin(win["timestamp"])].reset_index(drop=True)
        last = compute_features(win, config, proxy=p).iloc[-1]
        row = table[(table["symbol"] == SYMBOL) & (table["timestamp"] == win["timestamp"].iloc[-1])].iloc[0]
        assert not last["warmup"]
        np.testing.assert_array_equal(
            last[config.columns].to_numpy(float), row[config.columns].to_numpy(float)
        )
        assert np.isfinite(last[INDEX_CONTEXT_COLUMNS].to_numpy(float)).all()


def test_missing_proxy_bars_is_422_naming_the_field(index_client, api_env):
    rows = window(api_env.bars, SYMBOL, 20)
    r = index_client.post("/predict", json={"symbol": SYMBOL, "bars": rows})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "missing_proxy_bars" and body["field"] == "proxy_bars"
    assert "QQQ" in body["message"]


def test_misaligned_proxy_bars_are_422_naming_the_field(index_client, api_env, proxy):
    rows = window(api_env.bars, SYMBOL, 20)
    good = _proxy_rows(proxy, rows)
    shifted = [dict(p) for p in good]
    shifted[3]["timestamp"] = good[4]["timestamp"]
    r = index_client.post("/predict", json={"symbol": SYMBOL, "bars": rows, "proxy_bars": shifted})
    assert r.status_code == 422
    assert r.json()["error"] == "misaligned_proxy_bars" and r.json()["field"] == "proxy_bars[3].timestamp"
    r = index_client.post("/predict", json={"symbol": SYMBOL, "bars": rows, "proxy_bars": good[1:]})
    assert r.status_code == 422
    assert r.json()["error"] == "misaligned_proxy_bars" and r.json()["field"] == "proxy_bars"
    bad = [dict(p) for p in good]
    bad[5]["high"] = bad[5]["low"] / 2
    r = index_client.post("/predict", json={"symbol": SYMBOL, "bars": rows, "proxy_bars": bad})
    assert r.status_code == 422 and r.json()["field"].startswith("proxy_bars[5]")


def test_short_window_cannot_be_completed_for_index_context(index_client, api_env, proxy):
    rows = window(api_env.bars, SYMBOL, 5)
    r = index_client.post(
        "/predict", json={"symbol": SYMBOL, "bars": rows, "proxy_bars": _proxy_rows(proxy, rows)}
    )
    assert r.status_code == 422
    assert r.json()["error"] == "insufficient_history" and "proxy_bars" in r.json()["message"]


def test_a_model_without_index_context_ignores_proxy_bars(client, api_env, proxy):
    rows = window(api_env.bars, SYMBOL, 20)
    plain = client.post("/predict", json={"symbol": SYMBOL, "bars": rows}).json()
    r = client.post("/predict", json={"symbol": SYMBOL, "bars": rows, "proxy_bars": _proxy_rows(proxy, rows)})
    assert r.status_code == 200 and r.json()["probabilities"] == plain["probabilities"]


def test_component_reads_the_stored_proxy_or_names_its_missing_hours(api_env, proxy, tmp_path):
    root = tmp_path / "home"
    store = PartitionStore(root / "partitions")
    hours = pd.DatetimeIndex(api_env.bars["timestamp"].unique()).sort_values()[-30:]
    store.write_many("hourly_bars", api_env.bars[api_env.bars["timestamp"].isin(hours)], "timestamp")
    settings = api_env.settings(data_root=root)
    with _client(settings, IndexContextModel()) as c:
        r = c.get("/predict/component", params={"symbol": SYMBOL})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "missing_proxy_bars" and "QQQ" in r.json()["message"]
    store.write_many("index_proxy_bars", proxy[proxy["timestamp"].isin(hours)], "timestamp")
    with _client(settings, IndexContextModel()) as c:
        r = c.get("/predict/component", params={"symbol": SYMBOL})
        assert r.status_code == 200, r.text
    table = _table(api_env, proxy)
    expected = predict_hours(table, IndexContextModel(), hours=[hours[-1]], universe=[SYMBOL]).iloc[0]
    for cls in CLASSES:
        assert r.json()["probabilities"][cls] == pytest.approx(expected[f"p_{cls}"], abs=1e-9)


def test_proxy_bars_count_is_capped_like_bars(api_env, proxy):
    rows = window(api_env.bars, SYMBOL, 20)
    with _client(api_env.settings(max_bars=20), IndexContextModel()) as c:
        many = _proxy_rows(proxy, rows) + _proxy_rows(proxy, rows)[:1]
        r = c.post("/predict", json={"symbol": SYMBOL, "bars": rows, "proxy_bars": many})
        assert r.status_code == 422
        assert r.json()["error"] == "too_many_bars" and r.json()["field"] == "proxy_bars"
