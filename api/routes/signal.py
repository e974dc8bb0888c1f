"""GET /signal/index: the latest NON-empty stored index_signal row with per-symbol contributions."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import StoreDep
from api.errors import ApiError
from api.schemas import ErrorPublic, ProductionStatusPublic, SignalPublic
from api.store_service import COMPONENT_PREDICTIONS, INDEX_SIGNAL, StoreService
from market_master.lib import cadence, calendar
from market_master.lib.signal import wss_contributions
from market_master.lib.weights import embedded_top10

router = APIRouter(tags=["signal"])

UNIVERSES = ("qqq",)
# per-request fields: judged against the clock, spliced into the cached body of the stored signal
FRESHNESS_FIELDS = {"stale", "age_minutes", "expected_hour", "warning", "production_status"}
# states where a champion exists but holds no Production alias: the 404 says why instead of "run it"
REFUSED_STATES = {"gates_failed", "gates_pending", "awaiting_promotion", "unreadable"}


def _opt_float(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _opt_str(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def build_signal(store: StoreService, universe: str, key: str) -> SignalPublic:
    """The signal at partition `key` with contributions score x weight / covered_weight (they sum to WSS)."""
    frame = store.read_partition(INDEX_SIGNAL, key)
    if "universe" in frame.columns:
        frame = frame[frame["universe"].astype(str).str.lower() == universe]
    if frame.empty:
        raise ApiError(
            404,
            "nothing_stored",
            f"no index_signal row for universe {universe!r} at {key}: run the pipeline first",
        )
    row = frame.iloc[-1]
    preds = store.read_partition(COMPONENT_PREDICTIONS, key, missing_ok=True)
    # the weights the pipeline used at that hour (stored with the signal); older rows: embedded default
    stored = row.get("weights_json")
    weights = json.loads(stored) if isinstance(stored, str) and stored else embedded_top10().weights
    covered = float(row["covered_weight"])
    components = wss_contributions(preds.to_dict("records") if len(preds) else [], weights, covered)
    for component in components:
        component["confidence"] = _opt_float(component["confidence"])
    missing = str(row.get("missing_symbols") or "")
    versions = {str(v) for v in preds.get("model_version", pd.Series(dtype=object)).dropna()}
    return SignalPublic(
        universe=universe,
        hour=_opt_str(row["hour"]) or key,
        wss=_opt_float(row["wss"]),
        decision=str(row["decision"]),
        covered_weight=covered,
        n_predicted=int(row["n_predicted"]),
        missing_symbols=[s for s in missing.split(",") if s],
        weights_as_of=_opt_str(row.get("weights_as_of")),
        model_version=",".join(sorted(versions)) or None,
        components=components,
    )


def _stored_body(store: StoreService, universe: str, key: str) -> tuple[bytes, str, int]:
    """(the signal's JSON without the per-request fields, its hour, that hour in UTC ns): what is cached
    per stored slice."""
    signal = build_signal(store, universe, key)
    body = signal.model_dump_json(exclude=FRESHNESS_FIELDS).encode()
    try:
        hour_ns = int(calendar.to_timestamp(signal.hour).value)
    except ValueError:  # a row without an hour is served under its partition key
        hour_ns = int(calendar.key_to_timestamp(key).value)
    return body, signal.hour, hour_ns


def freshness(hour: str, hour_ns: int, now: pd.Timestamp, grace_minutes: float) -> dict:
    """stale / age_minutes / expected_hour / warning of a signal at `hour` (see SignalPublic)."""
    grace_ns = int(grace_minutes * cadence.MINUTE_NS)
    stale, age, expected_ns = cadence.signal_freshness_ns(hour_ns, now.value, grace_ns)
    expected = _iso_ny(expected_ns) if expected_ns is not None else None
    extra: dict = {
        "stale": stale,
        "age_minutes": age,
        "expected_hour": expected,
        "warning": None,
        "production_status": None,
    }
    if stale:
        extra["warning"] = (
            f"STALE: the signal is for the bar at {hour}, {age:.0f} minutes after it closed; the hourly "
            f"schedule should have produced the bar at {expected} by now"
        )
    return extra


@lru_cache(maxsize=64)
def _iso_ny(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").tz_convert(calendar.TZ).isoformat()


def _with_fields(body: bytes, extra: dict) -> bytes:
    """The cached JSON object `body` with `extra`'s keys appended (no re-serialisation of the rest)."""
    tail = json.dumps(extra, separators=(",", ":"), allow_nan=False)
    return body[:-1] + b"," + tail[1:].encode()


def _no_production_404(uni: str, root, status: ProductionStatusPublic | None) -> ApiError:
    base = f"no non-empty index_signal for universe {uni!r} stored under {root}: run the pipeline first"
    if status is None or status.state not in REFUSED_STATES:
        return ApiError(404, "nothing_stored", base if status is None else f"{base}; {status.explanation}")
    error = ApiError(404, "no_production_model", status.explanation)
    error.body.details = [g.model_dump(mode="json") for g in status.gates if not g.passed] or None
    return error


@router.get(
    "/signal/index",
    response_model=SignalPublic,
    responses={
        404: {
            "model": ErrorPublic,
            "description": "unknown universe, nothing stored yet, or no Production model (the message "
            "says why: the latest champion's failed gates with their numbers and the next retrain)",
        }
    },
)
async def signal_index(
    request: Request,
    store: StoreDep,
    universe: Annotated[
        str, Query(min_length=1, max_length=16, description="Index universe", examples=["qqq"])
    ] = "qqq",
) -> Response:
    """Latest stored hourly index signal (WSS, decision, coverage) and each constituent's contribution.

    Holiday and half-day-afternoon partitions are stored as empty slices: the latest NON-empty one is served.

    `async`: a cache hit is a few stat calls and a dict lookup; the Parquet reads of a miss (once per new
    hour) run in the threadpool.
    """
    uni = universe.strip().lower()
    if uni not in UNIVERSES:
        raise ApiError(
            404,
            "unknown_universe",
            f"unknown universe {universe!r}; known: {list(UNIVERSES)}",
            field="universe",
            reason="not a known universe",
        )
    state = request.app.state
    now = state.clock()
    # why no model is served (registry read, cached): only asked when none is loaded
    status = None
    if state.model_service.peek() is None:
        status = await run_in_threadpool(state.status_service.get, now)
    hit, key = store.cached_nonempty_key(INDEX_SIGNAL, uni)
    if not hit:  # a new slice was written: walk the keys (Parquet footers) off the event loop
        key = await run_in_threadpool(store.latest_nonempty_key, INDEX_SIGNAL, uni)
    if key is None:
        raise _no_production_404(uni, store.root, status)
    token = (
        "signal",
        uni,
        key,
        store.file_token(INDEX_SIGNAL, key),
        store.file_token(COMPONENT_PREDICTIONS, key),
    )
    cached = store.cached(token)
    if cached is None:
        cached = await run_in_threadpool(store.memo, token, lambda: _stored_body(store, uni, key))
    body, hour, hour_ns = cached
    extra = freshness(hour, hour_ns, now, state.settings.signal_grace_minutes)
    if status is not None:
        extra["production_status"] = status.model_dump(mode="json")
        note = f"NO MODEL SERVED: {status.explanation}"
        extra["warning"] = f"{extra['warning']} | {note}" if extra["warning"] else note
    return Response(content=_with_fields(body, extra), media_type="application/json")
