"""The one MLflow adapter: tracking runs, registry aliases (promote / rollback / history), model loading
and the local fallback copy, all through `MlflowClient`s on an explicit tracking URI.

    adapter = MlflowAdapter(tracking_uri, experiment_name, model_name, artifact_location)
    adapter.log_training(result); adapter.promote(version, actor, reason); adapter.load_model(alias=...)

Files: client.py (client, bounded HTTP, reachability, experiment), runs.py (training / signal / report
runs), logged_models.py (client-based model logging + registration), registry.py (aliases + history),
models.py (loading), local_copy.py (fallback copy), uris.py (the models:/ parser), adapter.py (the class).
"""

from market_master.lib.mlflow_adapter.adapter import MlflowAdapter
from market_master.lib.mlflow_adapter.client import (
    DEFAULT_TIMEOUT_S,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    default_artifact_location,
)
from market_master.lib.mlflow_adapter.errors import RegistryError
from market_master.lib.mlflow_adapter.local_copy import LocalCopyInfo, read_local_copy_info
from market_master.lib.mlflow_adapter.models import load_model_dir
from market_master.lib.mlflow_adapter.registry import (
    HISTORY_MAX_CHARS,
    HISTORY_MAX_MOVES,
    HISTORY_TAG_PREFIX,
    AliasMove,
)
from market_master.lib.mlflow_adapter.runs import RegisteredChampion
from market_master.lib.mlflow_adapter.uris import ModelRef, parse_model_uri

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "HISTORY_MAX_CHARS",
    "HISTORY_MAX_MOVES",
    "HISTORY_TAG_PREFIX",
    "AliasMove",
    "LocalCopyInfo",
    "MlflowAdapter",
    "ModelRef",
    "RegisteredChampion",
    "RegistryError",
    "default_artifact_location",
    "load_model_dir",
    "parse_model_uri",
    "read_local_copy_info",
]
