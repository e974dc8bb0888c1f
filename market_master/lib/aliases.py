"""The registered-model aliases, in one place: every caller uses these constants, never the strings."""

from __future__ import annotations

PRODUCTION_ALIAS = "Production"  # the model serving predictions; moved only by promote / rollback
STAGING_ALIAS = "Staging"  # the newest registered champion, set by training before the gates run
