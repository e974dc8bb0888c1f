"""Monitoring with Evidently: feature drift (training window vs latest window) and classification quality
on the latest labelled window. HTML under data/monitoring/, logged to MLflow, summaries as metadata."""

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.inference.loading import production_version, production_window
from market_master.defs.promotion.assets import production_model
from market_master.defs.resources import MlflowResource, StorageResource
from market_master.lib import monitoring
from market_master.lib.features import FeatureConfig
from market_master.lib.labels import CLASSES
from market_master.lib.psi import CURRENT_WINDOW_SESSIONS
from market_master.lib.storage import AssetSlices

ALL_FEATURE_COLUMNS = FeatureConfig(index_context=True).columns  # those stored are compared


class MonitoringConfig(dg.Config):
    window_days: int = Field(
        default=CURRENT_WINDOW_SESSIONS, description="latest trading days compared with the training window"
    )


def _stamp(end: pd.Timestamp) -> str:
    return end.strftime("%Y%m%d-%H%M")


def _meta(summary: dict) -> dict:
    out = {}
    for k, v in summary.items():
        out[k] = v if isinstance(v, int | float | str | bool) else dg.MetadataValue.json(v)
    return out


@dg.asset(group_name="monitoring", deps=[production_model], kinds={"evidently", "mlflow"})
def feature_drift_report(
    context: dg.AssetExecutionContext,
    config: MonitoringConfig,
    storage: StorageResource,
    mlflow: MlflowResource,
    feature_table: AssetSlices,
) -> dg.MaterializeResult:
    """Data drift of the features: reference = the Production model's training window, current = latest window."""
    info = production_version(mlflow)
    ref_start, ref_end = production_window(mlflow, info, "training_window")
    reference = feature_table.read_between(ref_start, ref_end)
    start, end = feature_table.last_sessions(config.window_days)
    current = feature_table.read_between(start, end)
    reference, current = reference[~reference["warmup"]], current[~current["warmup"]]
    html = storage.path("monitoring", f"feature_drift_{_stamp(end)}.html")
    summary = monitoring.data_drift_report(
        reference, current, [c for c in ALL_FEATURE_COLUMNS if c in current.columns], html
    )
    run_id = mlflow.adapter().log_report(html, summary, run_name=f"feature_drift {end}")
    return dg.MaterializeResult(
        metadata={
            **_meta(summary),
            "reference_window": f"{ref_start} .. {ref_end} ({len(reference)} rows)",
            "current_window": f"{start} .. {end} ({len(current)} rows)",
            "model": f"{info.name} v{info.version}",
            "html": dg.MetadataValue.path(str(html)),
            "mlflow_run_id": run_id,
        }
    )


@dg.asset(group_name="monitoring", kinds={"evidently", "mlflow"})
def classification_quality_report(
    context: dg.AssetExecutionContext,
    config: MonitoringConfig,
    storage: StorageResource,
    mlflow: MlflowResource,
    component_predictions: AssetSlices,
    feature_table: AssetSlices,
) -> dg.MaterializeResult:
    """Realised quality of the stored predictions on the latest labelled window. Each prediction is
    labelled with the thresholds stored in the model version that made it."""
    info = production_version(mlflow)
    start, end = component_predictions.last_sessions(config.window_days)
    predictions = component_predictions.read_between(start, end)
    predictions = predictions[predictions["status"] == "ok"]
    features = feature_table.read_between(start, end)
    parts = []
    for version, preds in predictions.groupby("model_version"):
        thresholds = mlflow.adapter().load_model(version).thresholds
        labelled = features[["symbol", "timestamp"]].assign(label=thresholds.transform(features))
        parts.append(preds.merge(labelled, left_on=["symbol", "hour"], right_on=["symbol", "timestamp"]))
    joined = pd.concat(parts, ignore_index=True) if parts else predictions.assign(label=[])
    joined = joined[joined["label"] >= 0]
    if joined.empty:
        raise dg.Failure(
            f"no labelled predictions between {start} and {end} (the latest bar has no label yet)"
        )
    y_true = joined["label"].astype(int).map(dict(enumerate(CLASSES))).to_numpy()
    y_pred = joined["action"].astype(str).to_numpy()
    proba = joined[[f"p_{c}" for c in CLASSES]]
    html = storage.path("monitoring", f"classification_quality_{_stamp(end)}.html")
    summary = monitoring.classification_quality_report(y_true, y_pred, proba, html, labels=list(CLASSES))
    run_id = mlflow.adapter().log_report(html, summary, run_name=f"classification_quality {end}")
    return dg.MaterializeResult(
        metadata={
            **_meta(summary),
            "window": f"{start} .. {end}",
            "labelled_rows": len(joined),
            "model_versions": dg.MetadataValue.json(sorted(str(v) for v in joined["model_version"].unique())),
            "production_now": f"{info.name} v{info.version}",
            "html": dg.MetadataValue.path(str(html)),
            "mlflow_run_id": run_id,
        }
    )
