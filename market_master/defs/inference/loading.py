"""Loading what the inference assets need: the Production model and point-in-time weights."""

import bisect

import dagster as dg
import pandas as pd

from market_master.defs.resources import MlflowResource, StorageResource
from market_master.lib import registry
from market_master.lib.model import ComponentModel, load_component_model
from market_master.lib.prediction import ModelInfo

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
    model = load_component_model(f"models:/{name}/{version}")
    return model, ModelInfo(name=name, version=str(version), alias=PRODUCTION)


def weights_lookup(storage: StorageResource):
    """(hour -> weights, hour -> as_of, caveat): the snapshot in force at each hour (point in time)."""
    payload = storage.read_json("index_weights")
    snaps = sorted(payload["snapshots"], key=lambda s: s["as_of"])
    dates = [pd.Timestamp(s["as_of"]).date() for s in snaps]

    def index_at(hour) -> int:
        i = bisect.bisect_right(dates, pd.Timestamp(hour).date()) - 1
        return max(i, 0)

    caveat = (
        "single weights snapshot: today's weights were applied to all history"
        if len(snaps) == 1
        else f"point-in-time weights from {len(snaps)} dated snapshots (earliest applied backwards)"
    )
    return (lambda h: snaps[index_at(h)]["weights"]), (lambda h: snaps[index_at(h)]["as_of"]), caveat
