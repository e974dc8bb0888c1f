"""API settings, read from the environment when `get_settings()` is called (never at import time).

pydantic-settings is not installed, so this is a plain pydantic model filled from env vars; tests build
`Settings(...)` directly and override the `get_settings` dependency.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from market_master import settings as mm_settings
from market_master.lib import cadence
from market_master.lib.aliases import PRODUCTION_ALIAS

DEFAULT_ALIAS = PRODUCTION_ALIAS
BODY_BYTES_PER_BAR = 1024
BODY_HEADROOM_BYTES = 64 * 1024


class Settings(BaseModel):
    """Everything the API reads from its environment."""

    model_uri: str = Field(
        default_factory=lambda: f"models:/{mm_settings.MODEL_NAME}@{DEFAULT_ALIAS}",
        description="MODEL_URI: model to serve; a `models:/name@alias` URI is re-resolved on reload.",
    )
    tracking_uri: str = Field(description="MLFLOW_TRACKING_URI (default: sqlite under the data root).")
    data_root: Path = Field(description="MARKET_MASTER_HOME (default: the repo's data/).")
    admin_token: str | None = Field(
        default=None, description="MM_API_ADMIN_TOKEN: bearer token for POST /admin/reload (unset: 403)."
    )
    reload_poll_seconds: float = Field(
        default=30.0, ge=0, description="MM_API_RELOAD_POLL_SECONDS: alias poll interval, 0 = off."
    )
    max_bars: int = Field(default=500, ge=1, description="MM_API_MAX_BARS: cap on bars in POST /predict.")
    max_body_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="MM_API_MAX_BODY_BYTES: cap on a request body in bytes, enforced before the body is "
        f"parsed (413). Default: max_bars x {BODY_BYTES_PER_BAR} + {BODY_HEADROOM_BYTES} "
        "(a pretty-printed bar is ~250 bytes: 4x headroom).",
    )
    signal_grace_minutes: float = Field(
        default=cadence.SIGNAL_GRACE_MINUTES,
        ge=0,
        description="MM_API_SIGNAL_GRACE_MINUTES: time allowed for the hourly run itself after its "
        "schedule tick before GET /signal/index flags the signal stale.",
    )
    history_bars: int = Field(
        default=64,
        ge=1,
        description="MM_API_HISTORY_BARS: stored bars read per symbol for GET /predict/component "
        "(raised to the model's warm-up + 1 when smaller).",
    )

    @property
    def body_limit_bytes(self) -> int:
        """The request-body cap: `max_body_bytes`, else sized from the bar cap with headroom."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.max_bars * BODY_BYTES_PER_BAR + BODY_HEADROOM_BYTES

    @property
    def partitions_root(self) -> Path:
        return self.data_root / "partitions"

    @property
    def local_model_dir(self) -> Path:
        return self.data_root / "models" / "production"


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def get_settings() -> Settings:
    """Build the settings from the current environment."""
    root = mm_settings.data_root()
    values: dict[str, object] = {
        "tracking_uri": mm_settings.default_tracking_uri(root),
        "data_root": root,
    }
    env_map = {
        "MODEL_URI": "model_uri",
        "MM_API_ADMIN_TOKEN": "admin_token",
        "MM_API_RELOAD_POLL_SECONDS": "reload_poll_seconds",
        "MM_API_MAX_BARS": "max_bars",
        "MM_API_MAX_BODY_BYTES": "max_body_bytes",
        "MM_API_HISTORY_BARS": "history_bars",
        "MM_API_SIGNAL_GRACE_MINUTES": "signal_grace_minutes",
    }
    for env_name, field in env_map.items():
        value = _env(env_name)
        if value is not None:
            values[field] = value
    return Settings(**values)
