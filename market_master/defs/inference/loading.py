"""Loading what the inference assets need: the Production model and point-in-time weights."""

import datetime as dt

import dagster as dg

from market_master.defs.resources import MlflowResource, StorageResource
from market_master.lib import registry
from market_master.lib.model import ComponentModel, load_component_model
from market_master.lib.prediction import ModelInfo
from market_master.lib.weights import WeightsHistory, WeightsSnapshot

PRODUCTION = "Production"


def load_production_model(mlflow: MlflowResource) -> tuple[ComponentModel, ModelInfo]:
    """The model behind `<name>@Production` (never "the newest file"); a clear failure when unset."""
    uri, name = mlflow.uri(), mlflow.model_name
    try:
        version = registry.get_alias_version(uri, name, PRODUCTION)
    except registry.RegistryError as exc:
        raise dg.Failure(f"cannot read {name}@{PRODUCTION} from the registry: {exc}") from exc
    if version is None:
        raise dg.Failure(
            f"{name} has no {PRODUCTION} alias at {uri}: train (retrain_job) and let the gates promote a champion first"
        )
    model = load_component_model(f"models:/{name}/{version}", uri)
    return model, ModelInfo(name=name, version=str(version), alias=PRODUCTION)


def stored_weights_history(storage: StorageResource) -> WeightsHistory:
    """The normalised weight snapshots index_weights stored, as a point-in-time WeightsHistory."""
    payload = storage.read_json("index_weights")
    return WeightsHistory(
        [
            WeightsSnapshot(
                as_of=dt.date.fromisoformat(s["as_of"]), weights=s["weights"], source=payload["source"]
            )
            for s in payload["snapshots"]
        ]
    )


def weights_lookup(storage: StorageResource):
    """(hour -> weights, hour -> as_of, caveat): the snapshot in force at each hour (point in time)."""
    history = stored_weights_history(storage)
    caveat = (
        "single weights snapshot: today's weights were applied to all history"
        if len(history.snapshots) == 1
        else f"point-in-time weights from {len(history.snapshots)} dated snapshots (earliest applied backwards)"
    )
    return (lambda h: history.at(h).weights), (lambda h: str(history.at(h).as_of)), caveat
