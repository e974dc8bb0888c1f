"""Jobs: what the schedules, the sensor and `market-master run` execute."""

import dagster as dg

from market_master.defs.partitions import hourly_partitions
from market_master.defs.promotion.jobs import promote_job

HOURLY_ASSETS = ["hourly_bars", "feature_table", "component_predictions", "index_signal"]

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("hourly_bars", "feature_table"),
    partitions_def=hourly_partitions,
    description="Bars + quality checks + features for a partition range (single run per range).",
)
hourly_signal_job = dg.define_asset_job(
    "hourly_signal_job",
    selection=dg.AssetSelection.assets(*HOURLY_ASSETS),
    partitions_def=hourly_partitions,
    description="Each trading hour: ingest the new bar, features, per-symbol predictions, WSS signal.",
)
inference_job = dg.define_asset_job(
    "inference_job",
    selection=dg.AssetSelection.assets("component_predictions", "index_signal"),
    partitions_def=hourly_partitions,
    description="Predictions + index signal for a partition range with the current Production model.",
)
retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets("index_weights", "candidate_models", "champion_model"),
    description="Pooled training, champion registration (Staging) and its gate checks.",
)
monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.assets(
        "feature_drift_report", "classification_quality_report", "signal_backtest"
    ),
    description="Evidently drift + classification quality, and the out-of-sample signal backtest.",
)

ALL_JOBS = [ingest_job, hourly_signal_job, inference_job, retrain_job, monitoring_job, promote_job]
