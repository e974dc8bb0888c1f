"""GET /predict/component (latest stored history) and POST /predict (bars in the body)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.bar_windows import check_window, complete_from_history, history_window, window_from_request
from api.deps import BatcherDep, PredictContextDep, ServedModelDep, SettingsDep, StoreDep
from api.errors import ApiError
from api.inference import BarWindow
from api.model_service import ServedModel
from api.proxy_window import proxy_symbol_of, uses_index_context, with_proxy, with_stored_proxy
from api.schemas import (
    SYMBOL_CONSTRAINTS,
    ComponentPredictionPublic,
    ErrorPublic,
    PredictionPublic,
    PredictRequest,
    normalize_symbol,
)
from api.store_service import HOURLY_BARS
from market_master.lib.labels import CLASSES
from market_master.lib.prediction import OK, UNKNOWN_SYMBOL, ModelInfo, NonFiniteFeaturesError
from market_master.lib.weights import DEFAULT_UNIVERSE

router = APIRouter(tags=["predict"])

_ERRORS = {
    404: {"model": ErrorPublic, "description": "unknown symbol / nothing stored"},
    422: {"model": ErrorPublic, "description": "invalid bars, too few or too many bars"},
    503: {"model": ErrorPublic, "description": "no model loaded"},
}


def known_symbols(served: ServedModel) -> frozenset[str]:
    """Symbols the served model was trained on (the default universe if the model does not say)."""
    return served.symbols or frozenset(DEFAULT_UNIVERSE)


def _unknown_symbol(message: str) -> ApiError:
    return ApiError(
        404, "unknown_symbol", message, field="symbol", reason="not one of the model's trained symbols"
    )


def _check_symbol(symbol: str, served: ServedModel) -> str:
    """The canonical symbol (already pattern-checked by the request models: GET and POST alike), 404 when
    the served model does not know it."""
    sym = normalize_symbol(symbol)
    known = known_symbols(served)
    if sym not in known:
        raise _unknown_symbol(f"unknown symbol {sym!r}: the served model knows {sorted(known)}")
    return sym


def _insufficient_history(
    served: ServedModel,
    have: int,
    detail: str = "",
    *,
    field: str = "bars",
    prefix: str | None = None,
    kind: str = "bars",
) -> ApiError:
    """422 `insufficient_history`: the model needs warm-up + 1 `kind`, only `have` are available."""
    needs = f"needs {served.min_bars} {kind} (warm-up {served.warmup} + 1), has {have}"
    return ApiError(
        422,
        "insufficient_history",
        f"{prefix or field}: {needs}{detail}",
        field=field,
        reason=f"needs {served.min_bars} bars, has {have}",
    )


def _info(served: ServedModel) -> ModelInfo:
    return ModelInfo(served.name, served.version, served.alias)


def _non_finite(exc: NonFiniteFeaturesError) -> ApiError:
    return ApiError(
        422,
        "invalid_bars",
        f"bars: the features of the last bar are not finite (prices too extreme?): {exc}",
        field="bars",
        reason="non-finite features",
    )


def _predict(batcher, served: ServedModel, window: BarWindow) -> dict:
    try:
        return batcher.predict(served.model, _info(served), window.tail(served.min_bars))
    except NonFiniteFeaturesError as exc:
        raise _non_finite(exc) from exc


async def _predict_async(batcher, served: ServedModel, window: BarWindow) -> dict:
    try:
        return await batcher.predict_async(served.model, _info(served), window.tail(served.min_bars))
    except NonFiniteFeaturesError as exc:
        raise _non_finite(exc) from exc


def _public(row: dict, served: ServedModel, window: BarWindow, **extra) -> dict:
    """The `predict_windows` row as a PredictionPublic dict; a non-ok status is an ApiError."""
    if row["status"] == UNKNOWN_SYMBOL:
        raise _unknown_symbol(f"unknown symbol {row['symbol']!r}: the served model was not trained on it")
    if row["status"] != OK:
        raise _insufficient_history(
            served, len(window), f": no prediction for the last bar ({row['status']})"
        )
    return {
        "symbol": row["symbol"],
        "action": row["action"],
        "probabilities": {c: row[f"p_{c}"] for c in CLASSES},
        "confidence": row["confidence"],
        "bar_time": row["hour"].isoformat(),
        "timestamp_next": row["timestamp_next"].isoformat(),
        "model_name": served.name,
        "model_version": served.version,
        "model_alias": served.alias,
        "bars_used": min(len(window), served.min_bars),
        **extra,
    }


def _stored_window(store, settings, served: ServedModel, symbol: str) -> tuple[str, BarWindow | None]:
    latest = store.latest_key(HOURLY_BARS)
    if latest is None:
        raise ApiError(
            404,
            "nothing_stored",
            f"no hourly_bars stored under {store.root}: run the pipeline first",
        )
    history = store.history(max(settings.history_bars, served.min_bars))
    frame = history.by_symbol.get(symbol) if history is not None else None
    return latest, (history_window(symbol, frame) if frame is not None and len(frame) else None)


@router.get("/predict/component", response_model=ComponentPredictionPublic, responses=_ERRORS)
def predict_component(
    symbol: Annotated[str, Query(**SYMBOL_CONSTRAINTS)],
    served: ServedModelDep,
    store: StoreDep,
    settings: SettingsDep,
    batcher: BatcherDep,
) -> dict:
    """Latest prediction for one constituent from its latest stored hourly bars (the LAST bar is predicted)."""
    sym = _check_symbol(symbol, served)
    latest, window = _stored_window(store, settings, served, sym)

    def build() -> dict:
        have = 0 if window is None else len(window)
        if window is None or have < served.min_bars:
            raise _insufficient_history(served, have, field="symbol", prefix=sym, kind="stored bars")
        used = window.tail(served.min_bars)
        # as the pipeline: stored bars as they are (no gap check)
        check_window(used, field_prefix="stored", check_gaps=False)
        if uses_index_context(served.model):
            used = with_stored_proxy(used, store, proxy_symbol_of(served.model))
        pred = _predict(batcher, served, used)
        return _public(pred, served, used, latest_stored_hour=latest)

    return store.memo(("component", latest, id(served), sym), build)


@router.post("/predict", response_model=PredictionPublic, responses=_ERRORS)
async def predict(body: PredictRequest, ctx: PredictContextDep) -> Response:
    """Predict the next bar after the LAST bar of `bars` (or of the bare bar completed from stored history).

    `async`: parsing and checks are sub-millisecond numpy on the loop; the CPU-bound feature + model pass
    runs on the batcher's worker thread (awaited, never blocking the loop); completing a short window from
    stored history (Parquet reads on a cold cache) runs in the threadpool.
    """
    served, store, settings, batcher = ctx.served, ctx.store, ctx.settings, ctx.batcher
    bars = body.bar_list()
    if len(bars) > settings.max_bars:
        raise ApiError(
            422,
            "too_many_bars",
            f"bars: {len(bars)} bars exceed the cap of {settings.max_bars} (MM_API_MAX_BARS)",
            field="bars",
            reason=f"at most {settings.max_bars} bars",
        )
    if body.symbol is None:
        if len(bars) < served.min_bars:
            hint = "; give `symbol` to complete a short window from that symbol's stored history"
            raise _insufficient_history(served, len(bars), hint)
        raise ApiError(
            422,
            "invalid_request",
            "symbol: required (the model is pooled across symbols with a symbol feature)",
            field="symbol",
            reason="required",
        )
    sym = _check_symbol(body.symbol, served)
    window, ts_missing = window_from_request(sym, bars, allow_missing_ts=len(bars) == 1)
    if not ts_missing:
        check_window(window)
    if body.proxy_bars is not None and len(body.proxy_bars) > settings.max_bars:
        raise ApiError(
            422,
            "too_many_bars",
            f"proxy_bars: {len(body.proxy_bars)} bars exceed the cap of {settings.max_bars} (MM_API_MAX_BARS)",
            field="proxy_bars",
            reason=f"at most {settings.max_bars} bars",
        )
    if uses_index_context(served.model):
        if len(window) < served.min_bars:  # stored history holds no proxy window to complete it with
            raise _insufficient_history(
                served,
                len(window),
                f": the model uses index context: send the whole window in `bars` and the proxy "
                f"{proxy_symbol_of(served.model)}'s bars at the same timestamps in `proxy_bars`",
            )
        window = with_proxy(window, body.proxy_bars, proxy_symbol_of(served.model))
    completed = False
    if len(window) < served.min_bars:
        _, stored = await run_in_threadpool(_stored_window, store, settings, served, sym)
        if stored is None:
            detail = f", and no stored bars of {sym} exist to complete them"
            raise _insufficient_history(served, len(window), detail)
        window = complete_from_history(window, stored, served.min_bars, ts_missing)
        check_window(window, offset=window.history_bars_used)
        completed = True
    pred = await _predict_async(batcher, served, window)
    public = _public(
        pred,
        served,
        window,
        completed_from_history=completed,
        history_bars_used=window.tail(served.min_bars).history_bars_used,
    )
    # validated and serialised here once (the route returns bytes: no second response_model pass)
    return Response(PredictionPublic(**public).model_dump_json().encode(), media_type="application/json")
