"""Loading what the inference assets need: the Production model and point-in-time weights."""

import dagster as dg
import pandas as pd

from market_master.defs.resources import MlflowResource
from market_master.lib.aliases import PRODUCTION_ALIAS as PRODUCTION
from market_master.lib.mlflow_adapter import RegistryError
from market_master.lib.model import ComponentModel
from market_master.lib.prediction import ModelInfo
from market_master.lib.weights import WeightsHistory


def production_version(mlflow: MlflowResource) -> ModelInfo:
    """The version behind `<name>@Production` (never "the newest file"); a clear failure when unset."""
    name = mlflow.model_name
    try:
        version = mlflow.adapter().alias_version(PRODUCTION)
    except RegistryError as exc:
        raise dg.Failure(f"cannot read {name}@{PRODUCTION} from the registry: {exc}") from exc
    if version is None:
        raise dg.Failure(
            f"{name} has no {PRODUCTION} alias at {mlflow.uri()}: train (retrain_job) and let the gates "
            "promote a champion first"
        )
    return ModelInfo(name=name, version=str(version), alias=PRODUCTION)


def load_production_model(mlflow: MlflowResource) -> tuple[ComponentModel, ModelInfo]:
    """The Production model itself (for predictions)."""
    info = production_version(mlflow)
    return mlflow.adapter().load_model(info.version), info


def production_window(mlflow: MlflowResource, info: ModelInfo, tag: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A window the Production version was registered with (`training_window`, `validation_window`), read
    from its registry tags: no need to download the model for two timestamps."""
    value = mlflow.adapter().version_tags(info.version).get(tag)
    if not value or ".." not in value:
        raise dg.Failure(f"{info.name} v{info.version} has no {tag!r} tag in the registry (got {value!r})")
    start, end = value.split("..", 1)
    return pd.Timestamp(start), pd.Timestamp(end)


def weights_lookup(history: WeightsHistory):
    """(hour -> weights, hour -> as_of, caveat): the snapshot in force at each hour (point in time)."""
    caveat = (
        "single weights snapshot: today's weights were applied to all history"
        if len(history.snapshots) == 1
        else f"point-in-time weights from {len(history.snapshots)} dated snapshots (earliest applied backwards)"
    )
    return (lambda h: history.at(h).weights), (lambda h: str(history.at(h).as_of)), caveat
