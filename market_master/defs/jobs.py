"""Jobs: what the schedules, the sensor and `market-master run` execute."""

import dagster as dg

from market_master.defs.features.assets import feature_table
from market_master.defs.inference.assets import component_predictions, index_signal
from market_master.defs.inference.backtest import signal_backtest
from market_master.defs.ingestion.assets import hourly_bars, index_weights
from market_master.defs.ingestion.proxy import index_proxy_bars
from market_master.defs.monitoring.assets import classification_quality_report, feature_drift_report
from market_master.defs.partitions import hourly_partitions
from market_master.defs.promotion.jobs import promote_job
from market_master.defs.training.assets import candidate_models, champion_model
from market_master.defs.training.walk_forward import walk_forward_history


def _hourly_job(name: str, assets: list, description: str):
    """A job over hourly partitions: a range launched as one run writes one slice per key."""
    selection = dg.AssetSelection.assets(*assets)
    return dg.define_asset_job(
        name, selection=selection, partitions_def=hourly_partitions, description=description
    )


ingest_job = _hourly_job(
    "ingest_job",
    [hourly_bars, index_proxy_bars, feature_table],
    "Bars (constituents and the index proxy) + quality checks + features for a partition range (single run per range).",
)
hourly_signal_job = _hourly_job(
    "hourly_signal_job",
    [hourly_bars, index_proxy_bars, feature_table, component_predictions, index_signal],
    "Each trading hour: ingest the new bars (constituents, index proxy), features, per-symbol predictions, WSS signal.",
)
inference_job = _hourly_job(
    "inference_job",
    [component_predictions, index_signal],
    "Predictions + index signal for a partition range with the current Production model.",
)
retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets(index_weights, walk_forward_history, candidate_models, champion_model),
    description="Walk-forward out-of-sample history, the champion search, its registration (Staging) and "
    "its gate checks.",
)
monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.assets(feature_drift_report, classification_quality_report, signal_backtest),
    description="Evidently drift + classification quality, and the out-of-sample signal backtest.",
)

ALL_JOBS = [ingest_job, hourly_signal_job, inference_job, retrain_job, monitoring_job, promote_job]
