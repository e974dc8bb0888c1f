"""Production mode against REAL services (Postgres, MLflow server, S3): `make test-prod` after
`make services` (what `.ci/run` does). Plain `make test` skips these with the reason below."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from market_master import settings

SERVICES_DIR = Path(os.environ.get("MM_SERVICES_DIR", "/tmp/market-master-services"))
NOT_CONFIGURED = (
    "production services not configured (needs MARKET_MASTER_MODE=production, an http MLflow server, an "
    "s3:// store): run `make services` then `make test-prod`"
)


def _reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=3)
    except OSError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    """Mark every test of this folder `production` (`-m production` selects them, `-m "not production"`
    leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.production)


@pytest.fixture(scope="session")
def production_env() -> dict[str, str]:
    """The production environment (from `eval "$(deploy/services.sh env)"`), or a skip saying why not."""
    if not settings.is_production():
        pytest.skip(NOT_CONFIGURED)
    try:
        settings.check_production()
    except settings.SettingsError as exc:
        pytest.skip(f"{NOT_CONFIGURED}: {exc}")
    tracking = settings.default_tracking_uri()
    if not _reachable(tracking.rstrip("/") + "/health"):
        pytest.skip(f"{NOT_CONFIGURED}: MLflow server {tracking} does not answer")
    return {k: v for k, v in os.environ.items()}


@pytest.fixture
def prod_scratch(production_env, tmp_path, monkeypatch) -> Path:
    """A fresh local scratch root and a fresh store prefix and model name for one test, on the shared
    services (so tests do not see each other's slices, runs or versions)."""
    import uuid

    run_id = uuid.uuid4().hex[:8]
    monkeypatch.setenv("MARKET_MASTER_HOME", str(tmp_path / "scratch"))
    monkeypatch.setenv("MARKET_MASTER_STORE", f"{production_env['MARKET_MASTER_STORE'].rstrip('/')}/{run_id}")
    return tmp_path / "scratch"
