"""GET /signal/index: the latest NON-empty stored index_signal row with per-symbol contributions."""

from __future__ import annotations

import json
import math
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import StoreDep
from api.errors import ApiError
from api.schemas import ErrorPublic, SignalPublic
from api.store_service import COMPONENT_PREDICTIONS, INDEX_SIGNAL, StoreService
from market_master.lib.signal import wss_contributions
from market_master.lib.weights import embedded_top10

router = APIRouter(tags=["signal"])

UNIVERSES = ("qqq",)


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


@router.get(
    "/signal/index",
    response_model=SignalPublic,
    responses={404: {"model": ErrorPublic, "description": "unknown universe or nothing stored yet"}},
)
async def signal_index(
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
    hit, key = store.cached_nonempty_key(INDEX_SIGNAL, uni)
    if not hit:  # a new slice was written: walk the keys (Parquet footers) off the event loop
        key = await run_in_threadpool(store.latest_nonempty_key, INDEX_SIGNAL, uni)
    if key is None:
        raise ApiError(
            404,
            "nothing_stored",
            f"no non-empty index_signal for universe {uni!r} stored under {store.root}: run the pipeline first",
        )
    token = (
        "signal",
        uni,
        key,
        store.file_token(INDEX_SIGNAL, key),
        store.file_token(COMPONENT_PREDICTIONS, key),
    )
    body = store.cached(token)
    if body is None:
        body = await run_in_threadpool(
            store.memo, token, lambda: build_signal(store, uni, key).model_dump_json().encode()
        )
    return Response(content=body, media_type="application/json")
