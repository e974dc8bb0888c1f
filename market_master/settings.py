"""Where things live, and which mode runs: the ONE place that reads the environment (lazily, nothing
happens at import time).

Embedded mode (default, `make run`, no service): everything under one local data root.
    MARKET_MASTER_HOME   data root (default `data/` beside the package, i.e. the repo's data/)
    MLFLOW_TRACKING_URI  overrides the local sqlite tracking store under the data root
    DAGSTER_HOME         Dagster instance (default <data root>/dagster, sqlite)

Production mode (`MARKET_MASTER_MODE=production`, see deploy/README.md): shared services only.
    MARKET_MASTER_STORE  shared store of partition slices and asset values: `s3://bucket/prefix`
                         (endpoint: AWS_ENDPOINT_URL, credentials: the usual AWS_* variables)
    MLFLOW_TRACKING_URI  an http(s):// MLflow tracking server (it serves the artifacts)
    DAGSTER_HOME         a directory whose dagster.yaml is deploy/dagster.yaml (Postgres storage)
The data root stays a local scratch directory of each process (HTML reports, quarantined rows, the
API's fallback model copy); everything a second worker must see lives in the services.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "market-master-component-classifier"
EXPERIMENT_NAME = "market-master"
EMBEDDED, PRODUCTION = "embedded", "production"
MODES = (EMBEDDED, PRODUCTION)


class SettingsError(ValueError):
    """The environment asks for something inconsistent (named in the message)."""


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def mode() -> str:
    """MARKET_MASTER_MODE: `embedded` (default) or `production`."""
    value = (_env("MARKET_MASTER_MODE") or EMBEDDED).lower()
    if value not in MODES:
        raise SettingsError(f"MARKET_MASTER_MODE={value!r}: use one of {', '.join(MODES)}")
    return value


def is_production() -> bool:
    return mode() == PRODUCTION


def data_root() -> Path:
    return Path(_env("MARKET_MASTER_HOME") or REPO_ROOT / "data").resolve()


def is_url(root: str | os.PathLike) -> bool:
    """Whether a root is an fsspec URL (`s3://...`) rather than a local path."""
    return "://" in str(root) and not str(root).startswith("file://")


def store_root() -> str:
    """Root of the store every worker shares (partition slices + asset values): MARKET_MASTER_STORE
    (`s3://bucket/prefix` in production), else the local data root."""
    return _env("MARKET_MASTER_STORE") or str(data_root())


def mlflow_dir(root: Path | None = None) -> Path:
    return (root or data_root()) / "mlflow"


def default_tracking_uri(root: Path | None = None) -> str:
    env = _env("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{mlflow_dir(root) / 'mlflow.db'}"


def default_artifact_location(root: Path | None = None) -> str:
    return (mlflow_dir(root) / "artifacts").as_uri()


def check_production() -> None:
    """In production mode, refuse to run on anything local: the store must be an object-store URL, MLflow
    an HTTP server, Dagster's home a configured instance. One line per problem; no-op when embedded."""
    if not is_production():
        return
    problems = []
    store = _env("MARKET_MASTER_STORE")
    if not store or not is_url(store):
        problems.append(f"MARKET_MASTER_STORE must be an s3://bucket/prefix URL (got {store!r})")
    tracking = _env("MLFLOW_TRACKING_URI") or ""
    if not tracking.startswith(("http://", "https://")):
        problems.append(f"MLFLOW_TRACKING_URI must be an http(s):// tracking server (got {tracking!r})")
    home = _env("DAGSTER_HOME")
    if not home or not (Path(home) / "dagster.yaml").is_file():
        problems.append(f"DAGSTER_HOME must hold a dagster.yaml (deploy/dagster.yaml), got {home!r}")
    if problems:
        raise SettingsError("production mode: " + "; ".join(problems))
