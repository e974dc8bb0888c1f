"""`POST /predict` handled in process for a given model: what the API latency gate times.

`in_process_app(model, info, data_root)` is the real app (`create_app`: middleware, routes, error
handlers, the batcher's worker thread) with its state set by hand instead of by the lifespan, so it serves
THIS model (the champion being judged, not yet behind any alias) without a registry. `request_bodies`
builds one request per symbol (its last `min_bars` bars, and the proxy's bars when the model uses index
context) as a client would send them.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI

from api.inference import PredictBatcher
from api.main import create_app
from api.model_service import ModelUnavailableError, ServedModel, _model_symbols
from api.settings import Settings
from api.store_service import StoreService
from market_master.lib import gates
from market_master.lib.prediction import ModelInfo

_BAR_FIELDS = ("open", "high", "low", "close", "volume")


class FixedModelService:
    """The one piece of `ModelService` the predict route uses: `current()` (always this model)."""

    def __init__(self, served: ServedModel) -> None:
        self._served = served

    def current(self) -> ServedModel:
        if self._served is None:
            raise ModelUnavailableError("no model")
        return self._served

    def peek(self) -> ServedModel:
        return self._served


def in_process_app(model: Any, info: ModelInfo, data_root: Path) -> FastAPI:
    """The API app serving `model`; its store (completing short windows) is under `data_root`."""
    settings = Settings(tracking_uri=f"sqlite:///{data_root / 'unused.db'}", data_root=data_root)
    app = create_app(settings)
    served = ServedModel(
        model=model,
        name=info.name or "champion",
        version=None if info.version is None else str(info.version),
        alias=info.alias,
        source="uri",
        model_uri=f"models:/{info.name}/{info.version}",
        loaded_at=dt.datetime.now(dt.UTC),
        symbols=_model_symbols(model),
    )
    app.state.settings = settings
    app.state.store_service = StoreService(settings.partitions_root)
    app.state.batcher = PredictBatcher()
    app.state.model_service = FixedModelService(served)
    return app


@contextmanager
def post_predict_client(model: Any, info: ModelInfo, data_root: Path) -> Iterator[Callable[[dict], Any]]:
    """A function sending one body as `POST /predict` to `in_process_app` (raises unless HTTP 200)."""
    from fastapi.testclient import TestClient  # noqa: PLC0415 - its import warns (starlette/httpx)

    app = in_process_app(model, info, data_root)
    client = TestClient(app)  # no `with`: the lifespan (registry load, polling) is not run
    try:

        def post(body: dict) -> Any:
            response = client.post("/predict", json=body)
            if response.status_code != 200:
                raise RuntimeError(f"POST /predict answered {response.status_code}: {response.text[:300]}")
            return response

        yield post
    finally:
        client.close()
        app.state.batcher.close()


def _bar_dicts(bars: pd.DataFrame) -> list[dict]:
    stamps = pd.DatetimeIndex(bars["timestamp"])
    values = bars[list(_BAR_FIELDS)].to_numpy(float).tolist()
    return [
        {"timestamp": t.isoformat()} | dict(zip(_BAR_FIELDS, v, strict=True))
        for t, v in zip(stamps, values, strict=True)
    ]


def request_bodies(
    bars: pd.DataFrame, min_bars: int, proxy_bars: pd.DataFrame | None = None, limit: int | None = None
) -> list[dict]:
    """One `POST /predict` body per symbol of `bars` with at least `min_bars` bars: its last `min_bars`
    bars (and `proxy_bars` at the same timestamps when given)."""
    bodies = []
    proxy = None if proxy_bars is None else proxy_bars.set_index("timestamp")
    for symbol, rows in bars.sort_values(["symbol", "timestamp"]).groupby("symbol", sort=True):
        window = rows.tail(min_bars)
        if len(window) < min_bars:
            continue
        body: dict = {"symbol": str(symbol), "interval": "1h", "bars": _bar_dicts(window)}
        if proxy is not None:
            at = proxy.reindex(window["timestamp"])
            if at[list(_BAR_FIELDS)].isna().any().any():
                continue
            body["proxy_bars"] = _bar_dicts(at.reset_index())
        bodies.append(body)
        if limit is not None and len(bodies) >= limit:
            break
    return bodies


def api_predict_latency(
    model: Any,
    info: ModelInfo,
    bars: pd.DataFrame,
    proxy_bars: pd.DataFrame | None = None,
    n_requests: int = 100,
    slo_ms: float = gates.API_PREDICT_SLO_MS,
    rounds: int = 3,
) -> gates.GateResult:
    """`api_predict_within_slo` on the serving path itself: up to `n_requests` whole ``POST /predict``
    requests (one per symbol of `bars`, its last warm-up + 1 bars) to `in_process_app` serving `model`."""
    config = model.feature_config
    proxy = proxy_bars if config.index_context else None
    bodies = request_bodies(bars, config.warmup + 1, proxy, limit=n_requests)
    if not bodies:
        raise ValueError(f"api_predict_latency: no symbol has {config.warmup + 1} bars to send")
    with (
        tempfile.TemporaryDirectory(prefix="mm-api-latency-") as root,
        post_predict_client(model, info, Path(root)) as post,
    ):
        gate = gates.api_predict_within_slo(
            lambda i: post(bodies[i]), n=len(bodies), slo_ms=slo_ms, rounds=rounds
        )
    gate.metadata["bars_per_request"] = config.warmup + 1
    return gate
