"""A real, small serving environment built once per session.

Synthetic bars for the top-10 QQQ universe -> compute_features -> train_candidates (LogReg only) ->
MlflowAdapter.log_training into a tmp sqlite store -> promote v1 to Production; a second version (different seed and
training window) is registered but not promoted, for the alias-move tests. The local fallback copy of v1
is exported, and the last hours are written as hourly_bars / feature_table / component_predictions /
index_signal partitions exactly as the pipeline stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from market_master.lib.aliases import PRODUCTION_ALIAS
from market_master.lib.features import compute_features
from market_master.lib.mlflow_adapter import MlflowAdapter
from market_master.lib.prediction import ModelInfo, predict_hours
from market_master.lib.signal import compute_wss
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.storage import PartitionStore
from market_master.lib.training import TrainingConfig, train_candidates
from market_master.lib.weights import DEFAULT_UNIVERSE, EMBEDDED_AS_OF, embedded_top10
from market_master.settings import EXPERIMENT_NAME, MODEL_NAME

START, END = "2024-01-02", "2024-03-28"
STORED_HOURS = 30  # hourly_bars partitions written (>= warm-up + 1 for GET /predict/component)
SIGNAL_HOURS = 3  # hours with component_predictions + index_signal
ADMIN_TOKEN = "test-admin-token"


@dataclass(frozen=True)
class ApiEnv:
    root: Path
    tracking_uri: str
    bars: pd.DataFrame
    stored_keys: list[str]
    signal_keys: list[str]
    train_until: pd.Timestamp
    v1: str
    v1_model: object

    def settings(self, **overrides) -> Settings:
        values = {
            "tracking_uri": self.tracking_uri,
            "data_root": self.root,
            "admin_token": ADMIN_TOKEN,
            "reload_poll_seconds": 0,
        }
        values.update(overrides)
        return Settings(**values)

    def adapter(self) -> MlflowAdapter:
        return _adapter(self.root, self.tracking_uri)


def _train(features: pd.DataFrame, seed: int):
    config = TrainingConfig(
        candidates=("LogReg",), seed=seed, bootstrap_n=20, latency_rounds=1, latency_rows=5
    )
    return train_candidates(features, config)


def _register(result, root: Path, tracking_uri: str) -> str:
    """MlflowAdapter.log_training: parent + nested runs, champion pyfunc, registered (alias Staging)."""
    return _adapter(root, tracking_uri).log_training(result).version


def _adapter(root: Path, tracking_uri: str) -> MlflowAdapter:
    return MlflowAdapter(tracking_uri, EXPERIMENT_NAME, MODEL_NAME, (root / "mlflow" / "artifacts").as_uri())


@pytest.fixture(scope="session")
def api_env(tmp_path_factory) -> ApiEnv:
    root = tmp_path_factory.mktemp("api-home")
    (root / "mlflow").mkdir()
    tracking_uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    universe = list(DEFAULT_UNIVERSE)
    bars = SyntheticSource(seed=11).fetch(universe, START, END)
    features = compute_features(bars)
    hours = pd.DatetimeIndex(features["timestamp"].unique()).sort_values()
    train_until = hours[-STORED_HOURS]
    train_rows = features[features["timestamp"] < train_until].reset_index(drop=True)
    first = _train(train_rows, seed=1)
    v1 = _register(first, root, tracking_uri)
    adapter = _adapter(root, tracking_uri)
    adapter.promote(v1, actor="api-tests", reason="fixture")
    adapter.export_local_copy(root / "models" / "production", alias=PRODUCTION_ALIAS)

    store = PartitionStore(root / "partitions")
    stored_hours = hours[-STORED_HOURS:]
    stored_keys = store.write_many("hourly_bars", bars[bars["timestamp"].isin(stored_hours)], "timestamp")
    store.write_many("feature_table", features[features["timestamp"].isin(stored_hours)], "timestamp")
    signal_hours = hours[-SIGNAL_HOURS:]
    preds = predict_hours(
        features,
        first.champion,
        hours=signal_hours,
        universe=universe,
        model_info=ModelInfo(MODEL_NAME, v1, PRODUCTION_ALIAS),
    )
    store.write_many("component_predictions", preds, "hour")
    signal = compute_wss(preds, embedded_top10().weights)
    signal["universe"] = "qqq"
    signal["weights_as_of"] = str(EMBEDDED_AS_OF)
    signal_keys = store.write_many("index_signal", signal, "hour")
    return ApiEnv(root, tracking_uri, bars, stored_keys, signal_keys, train_until, v1, first.champion)


@pytest.fixture(scope="session")
def second_version(api_env) -> tuple[str, object]:
    """A second registered version (other seed, later training start), NOT promoted: (version, model)."""
    hours = pd.DatetimeIndex(api_env.bars["timestamp"].unique()).sort_values()
    later = compute_features(api_env.bars[api_env.bars["timestamp"] >= hours[60]].reset_index(drop=True))
    second = _train(later[later["timestamp"] < api_env.train_until].reset_index(drop=True), seed=2)
    return _register(second, api_env.root, api_env.tracking_uri), second.champion


@pytest.fixture(scope="session")
def client(api_env) -> TestClient:
    """The app serving Production (v1) from the registry; no poll; admin token set."""
    with TestClient(create_app(api_env.settings())) as test_client:
        yield test_client


def window(bars: pd.DataFrame, symbol: str, n: int, end: int | None = None) -> list[dict]:
    """The `n` bars of `symbol` ending at position `end` (default: the last), as request bars."""
    rows = bars[bars["symbol"] == symbol].reset_index(drop=True)
    stop = len(rows) if end is None else end
    part = rows.iloc[stop - n : stop]
    return [
        {
            "timestamp": ts.isoformat(),
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": v,
        }
        for ts, o, h, lo, c, v in zip(
            part["timestamp"],
            part["open"],
            part["high"],
            part["low"],
            part["close"],
            part["volume"],
            strict=True,
        )
    ]
