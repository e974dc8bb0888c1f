"""The Dagster code location (loaded by workspace.yaml). Thin: everything lives in defs/."""

import dagster as dg

from market_master.defs.features.assets import feature_table
from market_master.defs.inference.assets import component_predictions, index_signal
from market_master.defs.inference.backtest import signal_backtest
from market_master.defs.ingestion.assets import hourly_bars, index_weights
from market_master.defs.ingestion.proxy import index_proxy_bars
from market_master.defs.io_manager import PartitionIOManager
from market_master.defs.jobs import ALL_JOBS
from market_master.defs.monitoring.assets import classification_quality_report, feature_drift_report
from market_master.defs.promotion.assets import production_model
from market_master.defs.promotion.sensors import promote_champion_when_gates_pass
from market_master.defs.resources import MarketDataResource, MlflowResource, StorageResource
from market_master.defs.schedules import ALL_SCHEDULES
from market_master.defs.training.assets import candidate_models, champion_model
from market_master.defs.training.checks import GATE_CHECKS, GateSettings
from market_master.defs.training.walk_forward import walk_forward_history

ASSETS = [
    index_weights,
    hourly_bars,
    index_proxy_bars,
    feature_table,
    walk_forward_history,
    candidate_models,
    champion_model,
    production_model,
    component_predictions,
    index_signal,
    signal_backtest,
    feature_drift_report,
    classification_quality_report,
]


def default_resources(root: str | None = None) -> dict:
    """Offline synthetic source, the data root (MARKET_MASTER_HOME unless `root`), local MLflow; the IO
    manager writes under the same data root as the `storage` resource."""
    return {
        "market_data": MarketDataResource(),
        **local_storage(root),
        "mlflow": MlflowResource(),
        "gate_settings": GateSettings(),
    }


def local_storage(root: str | None = None) -> dict:
    """The `storage` resource and the IO manager, both on one data root (tests and benchmarks use it)."""
    storage = StorageResource(root=str(root) if root is not None else None)
    return {"storage": storage, "io_manager": PartitionIOManager(storage=storage)}


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """Definitions with the default resources, any of them overridable."""
    base = default_resources()
    if "storage" in (resources or {}) and "io_manager" not in resources:
        base["io_manager"] = PartitionIOManager(storage=resources["storage"])
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=GATE_CHECKS,
        jobs=ALL_JOBS,
        schedules=ALL_SCHEDULES,
        sensors=[promote_champion_when_gates_pass],
        resources={**base, **(resources or {})},
    )


defs = build_definitions()
