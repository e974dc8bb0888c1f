"""Why no model is served: `ModelStatus` (lib/model_status.py) read from the registry, cached briefly.

The verdicts come from registry model-version tags that the gate checks write (no Dagster instance is
needed: the API answers from the registry it already reads). Only asked when no model is loaded.
"""

from __future__ import annotations

import threading
import time

import pandas as pd

from api.model_service import ModelService
from api.redact import redact_text
from api.schemas import GateVerdictPublic, ProductionStatusPublic
from market_master.lib.model_status import (
    ModelStatus,
    model_status,
    no_champion_status,
    registry_missing,
    unreadable_status,
)

STATUS_TTL_S = 10.0


def utc_now() -> pd.Timestamp:
    """The API's clock (`app.state.clock`): staleness and the next retrain are judged against it."""
    return pd.Timestamp.now(tz="UTC")


def to_public(status: ModelStatus) -> ProductionStatusPublic:
    return ProductionStatusPublic(
        state=status.state,
        explanation=redact_text(status.line) or "",
        model_name=status.model_name,
        latest_champion_version=status.champion_version,
        champion_name=status.champion_name,
        registered_at=status.registered_at,
        failed_gates=status.failed,
        not_recorded_gates=status.not_recorded,
        gates=[
            GateVerdictPublic(name=g.name, passed=g.passed, reason=g.reason, metrics=g.metrics)
            for g in status.gates
        ],
        next_retrain_at=status.next_retrain.isoformat() if status.next_retrain is not None else None,
    )


class ProductionStatusService:
    """`get(now)`: the production status of the served registry model, re-read at most every
    STATUS_TTL_S seconds; None when the served URI is not a registry alias (nothing to explain)."""

    def __init__(self, model_service: ModelService, ttl_s: float = STATUS_TTL_S) -> None:
        self.model_service = model_service
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, ProductionStatusPublic] | None = None

    def get(self, now: pd.Timestamp) -> ProductionStatusPublic | None:
        from market_master.lib.mlflow_adapter import parse_model_uri

        uri = self.model_service.settings.model_uri
        if not uri.startswith("models:/"):
            return None
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] <= self.ttl_s:
            return cached[1]
        with self._lock:
            name = parse_model_uri(uri).name
            try:
                if registry_missing(self.model_service.settings.tracking_uri):
                    status = no_champion_status(name, now)
                else:
                    status = model_status(self.model_service.registry_adapter(name), now)
            except Exception as exc:  # registry down / unreadable: say so (the line names the error)
                status = unreadable_status(name, redact_text(str(exc)) or type(exc).__name__, now)
            public = to_public(status)
            self._cached = (time.monotonic(), public)
            return public
