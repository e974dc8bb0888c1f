"""Per-symbol predictions and the index signal, one slice per trading-hour partition."""

import json

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.inference.loading import load_production_model, weights_lookup
from market_master.defs.partitions import hourly_asset
from market_master.defs.promotion.assets import production_model
from market_master.defs.resources import MarketDataResource, MlflowResource
from market_master.lib import calendar
from market_master.lib.prediction import predict_hours
from market_master.lib.signal import DEFAULT_THRESHOLDS, compute_wss
from market_master.lib.weights import WeightsHistory


def _range(context: dg.AssetExecutionContext) -> tuple[list[str], pd.Timestamp, pd.Timestamp]:
    keys = context.partition_keys
    return keys, calendar.key_to_timestamp(keys[0]), calendar.key_to_timestamp(keys[-1])


def _trading_hours(keys: list[str]) -> list[pd.Timestamp]:
    stamps = [calendar.key_to_timestamp(k) for k in keys]
    return [t for t in stamps if calendar.is_trading_bar(t)]


@hourly_asset(
    "hour",
    group_name="inference",
    # the model is read from the registry alias that production_model moves: a dependency, not an input
    deps=[production_model],
    kinds={"parquet", "mlflow"},
)
def component_predictions(
    context: dg.AssetExecutionContext,
    market_data: MarketDataResource,
    mlflow: MlflowResource,
    feature_table: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    """For each constituent and hour: action, five probabilities, confidence, timestamp_next, model used.
    Symbols in warm-up or without a bar get an explicit status and no action."""
    keys, start, end = _range(context)
    model, info = load_production_model(mlflow)
    hours = _trading_hours(keys)
    if feature_table.empty and hours:
        raise dg.Failure(f"no feature_table rows between {start} and {end}: materialize feature_table first")
    predictions = predict_hours(
        feature_table, model, hours=hours, universe=market_data.symbols, model_info=info
    )
    status_counts = predictions["status"].value_counts().to_dict() if len(predictions) else {}
    last = predictions[predictions["hour"] == predictions["hour"].max()] if len(predictions) else predictions
    return dg.Output(
        predictions,
        metadata={
            "rows": len(predictions),
            "hours": len(hours),
            "status_counts": dg.MetadataValue.json({str(k): int(v) for k, v in status_counts.items()}),
            "model": f"{info.name} v{info.version} @{info.alias}",
            "latest_hour": dg.MetadataValue.md(
                last[["symbol", "status", "action", "confidence"]]
                .round(3)
                .astype(str)
                .to_markdown(index=False)
            )
            if len(last)
            else "none",
        },
    )


class IndexSignalConfig(dg.Config):
    buy_threshold: float = Field(default=DEFAULT_THRESHOLDS.buy, description="BUY /NQ when WSS >= this")
    sell_threshold: float = Field(default=DEFAULT_THRESHOLDS.sell, description="SELL /NQ when WSS <= this")
    universe: str = Field(default="qqq", description="name of the index universe (served at /signal/index)")
    log_to_mlflow: bool = True


@hourly_asset("hour", group_name="inference", kinds={"parquet", "mlflow"})
def index_signal(
    context: dg.AssetExecutionContext,
    config: IndexSignalConfig,
    mlflow: MlflowResource,
    component_predictions: pd.DataFrame,
    index_weights: WeightsHistory,
) -> dg.Output[pd.DataFrame]:
    """Weighted Sentiment Score per hour (weights renormalised over predicted symbols) -> BUY / SELL / HOLD.
    Each row stores the thresholds and the point-in-time weights it was decided with."""
    keys = context.partition_keys
    weights_at, as_of_at, caveat = weights_lookup(index_weights)
    signal = compute_wss(component_predictions, weights_at, config.buy_threshold, config.sell_threshold)
    if len(signal):
        signal["universe"] = config.universe
        signal["buy_threshold"] = float(config.buy_threshold)
        signal["sell_threshold"] = float(config.sell_threshold)
        signal["weights_as_of"] = [as_of_at(h) for h in signal["hour"]]
        signal["weights_json"] = [json.dumps(weights_at(h), sort_keys=True) for h in signal["hour"]]
    run_id = None
    if config.log_to_mlflow and len(signal):
        run_id = mlflow.adapter().log_index_signal(signal, run_name=f"index_signal {keys[0]}..{keys[-1]}")
    # Per-partition numbers (so the UI charts WSS hour by hour, also after a single-run range backfill).
    by_key = {
        calendar.partition_key(h): row
        for h, row in zip(signal["hour"], signal.itertuples(index=False), strict=True)
    }
    for key in keys:
        row = by_key.get(key)
        if row is None:
            context.add_asset_metadata(
                {"decision": "no trading bar (holiday / half-day afternoon)"}, partition_key=key
            )
        else:
            context.add_asset_metadata(
                {
                    "wss": float(row.wss) if pd.notna(row.wss) else float("nan"),
                    "decision": str(row.decision),
                    "covered_weight": float(row.covered_weight),
                    "n_predicted": int(row.n_predicted),
                },
                partition_key=key,
            )
    meta: dict = {"range_hours": len(signal), "weights_note": caveat, "mlflow_run_id": run_id or "not logged"}
    if len(signal):
        latest = signal.iloc[-1]
        meta.update(
            {
                "range_latest_hour": str(latest["hour"]),
                "range_decisions": dg.MetadataValue.json(signal["decision"].value_counts().to_dict()),
                "range_last_hours": dg.MetadataValue.md(
                    signal[["hour", "wss", "decision", "covered_weight"]]
                    .tail(10)
                    .round(3)
                    .astype(str)
                    .to_markdown(index=False)
                ),
            }
        )
    return dg.Output(signal, metadata=meta)
