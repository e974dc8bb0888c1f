"""Where things live. Read lazily (nothing happens at import time).

MARKET_MASTER_HOME overrides the data root (default: `data/` beside the package, i.e. the repo's data/).
MLFLOW_TRACKING_URI overrides the local sqlite tracking store under the data root.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "market-master-component-classifier"
EXPERIMENT_NAME = "market-master"


def data_root() -> Path:
    return Path(os.environ.get("MARKET_MASTER_HOME") or REPO_ROOT / "data").resolve()


def mlflow_dir(root: Path | None = None) -> Path:
    return (root or data_root()) / "mlflow"


def default_tracking_uri(root: Path | None = None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{mlflow_dir(root) / 'mlflow.db'}"


def default_artifact_location(root: Path | None = None) -> str:
    return (mlflow_dir(root) / "artifacts").as_uri()
