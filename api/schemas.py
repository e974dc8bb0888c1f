"""Request (`XRequest`) and response (`XPublic`) models of the API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Action = Literal["strong_sell", "sell", "hold", "buy", "strong_buy"]
Decision = Literal["BUY", "SELL", "HOLD", "NO_SIGNAL"]

# ONE symbol rule for GET ?symbol= and POST {"symbol": ...}: a letter, then letters, digits, '.' or '-'
# (12 at most), case-insensitive. Nothing is stripped: " AAPL" is refused (422, field `symbol`) by both.
SYMBOL_PATTERN = r"^[A-Za-z][A-Za-z0-9.\-]*$"
SYMBOL_MAX_LENGTH = 12
SYMBOL_DESCRIPTION = "Constituent ticker, e.g. NVDA (case-insensitive; letters, digits, '.', '-'; no spaces)."
SYMBOL_CONSTRAINTS = {
    "min_length": 1,
    "max_length": SYMBOL_MAX_LENGTH,
    "pattern": SYMBOL_PATTERN,
    "description": SYMBOL_DESCRIPTION,
    "examples": ["NVDA"],
}
_SYMBOL = Field(default=None, **SYMBOL_CONSTRAINTS)
# strict: a JSON number only (integers are numbers); `true` or "101.2" is a 422 naming the field
_PRICE = {"gt": 0, "allow_inf_nan": False, "strict": True}
_VOLUME = {"ge": 0, "allow_inf_nan": False, "strict": True}


def normalize_symbol(symbol: str) -> str:
    """The canonical ticker of a symbol that passed `SYMBOL_PATTERN`: upper case."""
    return symbol.upper()


class BarRequest(BaseModel):
    """One hourly OHLCV bar. `timestamp` is the bar START (ISO 8601; naive = America/New_York)."""

    model_config = ConfigDict(extra="forbid")

    timestamp: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="Bar start, ISO 8601 with offset or naive (America/New_York), e.g. 2025-03-03T10:30:00-05:00.",
        examples=["2025-03-03T10:30:00-05:00"],
    )
    open: float = Field(**_PRICE)
    high: float = Field(**_PRICE)
    low: float = Field(**_PRICE)
    close: float = Field(**_PRICE)
    volume: float = Field(**_VOLUME)


class PredictRequest(BaseModel):
    """A window of bars for one symbol, or the seed's bare single bar (`open, high, low, close, volume`).

    A single bar has no history: it is answered 422 unless `symbol` is given and stored history of that
    symbol completes the window.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "symbol": "NVDA",
                    "interval": "1h",
                    "bars": [
                        {
                            "timestamp": "2025-03-03T10:30:00-05:00",
                            "open": 101.2,
                            "high": 102.1,
                            "low": 100.5,
                            "close": 101.7,
                            "volume": 123456,
                        }
                    ],
                },
                {
                    "symbol": "NVDA",
                    "open": 101.2,
                    "high": 102.1,
                    "low": 100.5,
                    "close": 101.7,
                    "volume": 123456,
                },
            ]
        },
    )

    symbol: str | None = _SYMBOL
    interval: Literal["1h"] = Field(default="1h", description='Bar interval; only "1h" is served.')
    bars: list[BarRequest] | None = Field(
        default=None,
        min_length=1,
        description="Bars sorted by timestamp, oldest first; the LAST bar is predicted.",
    )
    proxy_bars: list[BarRequest] | None = Field(
        default=None,
        min_length=1,
        description=(
            "The index proxy's bars (the model's FeatureConfig.proxy_symbol, e.g. QQQ) at the SAME timestamps "
            "as `bars`; required when the served model's features use index context, ignored otherwise."
        ),
    )
    timestamp: str | None = Field(
        default=None, min_length=1, max_length=40, description="Bare-bar form only."
    )
    open: float | None = Field(default=None, **_PRICE)
    high: float | None = Field(default=None, **_PRICE)
    low: float | None = Field(default=None, **_PRICE)
    close: float | None = Field(default=None, **_PRICE)
    volume: float | None = Field(default=None, **_VOLUME)

    @model_validator(mode="after")
    def _one_form(self) -> PredictRequest:
        bare = {k: getattr(self, k) for k in ("open", "high", "low", "close", "volume")}
        given = [k for k, v in bare.items() if v is not None]
        if self.bars is not None:
            if given or self.timestamp is not None:
                raise ValueError(
                    "give either `bars` or a bare bar (open, high, low, close, volume), not both"
                )
            return self
        missing = [k for k, v in bare.items() if v is None]
        if missing:
            raise ValueError(f"give `bars` (a list) or a bare bar; the bare bar lacks {missing}")
        return self

    @property
    def is_bare_bar(self) -> bool:
        return self.bars is None

    def bar_list(self) -> list[BarRequest]:
        """The bars of either form (a bare bar becomes a list of one)."""
        if self.bars is not None:
            return self.bars
        return [
            BarRequest(
                timestamp=self.timestamp,
                open=self.open,
                high=self.high,
                low=self.low,
                close=self.close,
                volume=self.volume,
            )
        ]


class PredictionPublic(BaseModel):
    """One prediction for the next 1-hour bar of a symbol."""

    symbol: str
    action: Action
    probabilities: dict[Action, float] = Field(description="Per-class probabilities, CLASSES order.")
    confidence: float = Field(description="Max class probability.")
    bar_time: str = Field(description="Start of the bar the prediction is made at (America/New_York).")
    timestamp_next: str = Field(description="Start of the predicted (next trading) bar.")
    model_name: str
    model_version: str | None
    model_alias: str | None
    bars_used: int = Field(description="Bars the features were computed from.")
    completed_from_history: bool = Field(
        default=False, description="True when stored bars of the symbol completed the request's window."
    )
    history_bars_used: int = Field(default=0, description="Stored bars prepended to the request's bars.")


class ComponentPredictionPublic(PredictionPublic):
    """Prediction from the symbol's latest stored hourly bars."""

    latest_stored_hour: str = Field(description="Latest stored hourly_bars partition key.")


class ContributionPublic(BaseModel):
    """One constituent's share of the WSS at the signal hour."""

    symbol: str
    status: str | None = Field(description="ok | warmup | missing_bar; null when no prediction was stored.")
    action: Action | None
    score: int | None = Field(description="strong_buy +2 ... strong_sell -2; null unless status is ok.")
    weight: float = Field(description="Normalised index weight of the snapshot.")
    contribution: float = Field(
        description="score x weight / covered_weight: the symbol's additive share of the WSS (0 if not ok)."
    )
    confidence: float | None


Scalar = float | int | str | bool | None


class GateVerdictPublic(BaseModel):
    """One gate's verdict on a model version, as its check recorded it (same reason and numbers)."""

    name: str
    passed: bool
    reason: str = Field(description="The check's one-line reason, with its numbers.")
    metrics: dict[str, Scalar] = Field(description="The check's scalar metadata.")


class ProductionStatusPublic(BaseModel):
    """Why no version holds the Production alias (read from the registry, no Dagster needed)."""

    state: Literal[
        "production", "gates_failed", "gates_pending", "awaiting_promotion", "no_champion", "unreadable"
    ]
    explanation: str = Field(
        description="ONE line: the latest champion, the gates it failed with their numbers, the next retrain."
    )
    model_name: str
    latest_champion_version: str | None = None
    champion_name: str | None = None
    registered_at: str | None = None
    failed_gates: list[str] = Field(default_factory=list)
    not_recorded_gates: list[str] = Field(default_factory=list)
    gates: list[GateVerdictPublic] = Field(default_factory=list)
    next_retrain_at: str | None = Field(
        default=None, description="Next tick of daily_retrain_schedule on an XNYS session (New York)."
    )


class SignalPublic(BaseModel):
    """Latest stored index signal with its per-symbol contributions, and how fresh it is."""

    universe: str
    hour: str
    wss: float | None
    decision: Decision
    covered_weight: float
    n_predicted: int
    missing_symbols: list[str]
    weights_as_of: str | None
    model_version: str | None
    components: list[ContributionPublic]
    stale: bool = Field(
        default=False,
        description="True when a newer bar should have a signal by now (the hourly schedule's delay after "
        "the bar close on the XNYS calendar, plus MM_API_SIGNAL_GRACE_MINUTES for the run).",
    )
    age_minutes: float | None = Field(default=None, description="Minutes since the signal's bar closed.")
    expected_hour: str | None = Field(
        default=None, description="The newest bar the hourly schedule should have produced a signal for."
    )
    warning: str | None = Field(default=None, description="STALE ... and/or why no model is served.")
    production_status: ProductionStatusPublic | None = Field(
        default=None, description="Set when the API serves no model: why (see GET /health)."
    )


class HealthPublic(BaseModel):
    """What the API serves right now."""

    status: Literal["ok", "degraded", "no_model"]
    model_name: str | None
    model_version: str | None
    model_alias: str | None
    model_uri: str | None = Field(description="The URI the served model was loaded from.")
    source: Literal["registry", "local_fallback", "uri"] | None
    loaded_at: str | None
    tracking_uri: str = Field(description="MLFLOW_TRACKING_URI with any credentials masked (user:***@host).")
    warning: str | None = None
    registry_error: str | None = Field(
        default=None,
        description="Why the registry cannot be read now (status degraded; the loaded model keeps serving).",
    )
    last_reload_error: str | None = None
    reload_poll_seconds: float
    production_status: ProductionStatusPublic | None = Field(
        default=None,
        description="Set when no model is served (status no_model): the latest champion, its failed gates "
        "with their numbers and the next retrain, in one line (`explanation`) and as fields.",
    )


class ReloadPublic(BaseModel):
    """Outcome of POST /admin/reload."""

    changed: bool
    previous_version: str | None
    previous_source: str | None
    served: HealthPublic


class ErrorPublic(BaseModel):
    """Every 4xx/5xx body: a code, a sentence, and where it applies (field, reason, rows)."""

    error: str = Field(
        description="Machine-readable code, e.g. invalid_bars, unknown_symbol, model_unavailable."
    )
    message: str
    field: str | None = None
    reason: str | None = None
    rows: list[int] | None = None
    details: list[dict] | None = None
