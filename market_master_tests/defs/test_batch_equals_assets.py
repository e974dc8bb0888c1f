"""Batch mode and the asset graph give the same per-symbol predictions and WSS for the same hours
(one implementation: compute_features -> predict_hours -> compute_wss)."""

import uuid

import dagster as dg
import numpy as np
import pandas as pd

from market_master.definitions import ASSETS, local_storage
from market_master.defs.features.assets import feature_table
from market_master.defs.inference.assets import component_predictions, index_signal
from market_master.defs.ingestion.assets import hourly_bars, index_weights
from market_master.defs.resources import MarketDataResource, MlflowResource
from market_master.lib.batch import run_batch
from market_master.lib.features import compute_features
from market_master.lib.labels import CLASSES
from market_master.lib.mlflow_adapter import MlflowAdapter
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.training import TrainingConfig, train_candidates
from market_master.local_run import range_tags

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN"]
PROBS = [f"p_{c}" for c in CLASSES]


def test_batch_output_equals_asset_graph_output(tmp_path, mlflow_uri):
    bars = SyntheticSource(seed=3).fetch(SYMBOLS, "2024-01-02", "2024-02-29")
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    for sym, g in bars.groupby("symbol"):
        g.drop(columns="symbol").rename(columns={"timestamp": "Datetime"}).to_csv(
            csv_dir / f"{sym}_1h.csv", index=False
        )
    holdings = tmp_path / "holdings.csv"
    pd.DataFrame(
        {"symbol": SYMBOLS + ["AVGO"], "weight_pct": [8.8, 8.1, 7.4, 5.6, 4.2], "as_of": "2025-04-28"}
    ).to_csv(holdings, index=False)
    # one model, registered and promoted, used by both paths
    train_features = compute_features(
        bars[bars["timestamp"] < pd.Timestamp("2024-02-15", tz="America/New_York")]
    )
    result = train_candidates(train_features, TrainingConfig(candidates=("LogReg",), latency_rows=0))
    name = f"mm-batch-eq-{uuid.uuid4().hex[:8]}"
    adapter = MlflowAdapter(mlflow_uri, model_name=name)
    registered = adapter.log_training(result)
    adapter.promote(registered.version, actor="test", reason="test")

    resources = {
        "market_data": MarketDataResource(source="csv", csv_dir=str(csv_dir), symbols=SYMBOLS),
        **local_storage(str(tmp_path / "root")),
        "mlflow": MlflowResource(tracking_uri=mlflow_uri, model_name=name),
    }
    assert dg.materialize(
        [hourly_bars, index_weights],
        selection=[index_weights],
        resources=resources,
        run_config={"ops": {"index_weights": {"config": {"holdings_csv": str(holdings)}}}},
    ).success
    assert dg.materialize(
        [hourly_bars, feature_table],
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": "2024-01-02-09:30",
            "dagster/asset_partition_range_end": "2024-02-29-15:30",
        },
    ).success
    # the compared range, then a range of only holiday keys (Presidents' Day): empty slices, no crash
    for first, last in (("2024-02-20-09:30", "2024-02-29-15:30"), ("2024-02-19-09:30", "2024-02-19-15:30")):
        inference = [component_predictions, index_signal]
        tags = range_tags(first, last)
        assert dg.materialize(ASSETS, selection=inference, resources=resources, tags=tags).success

    from market_master.lib.storage import PartitionStore

    store = PartitionStore(tmp_path / "root" / "partitions")
    asset_preds = store.read_between("component_predictions", "2024-02-20", "2024-02-29 16:00").sort_values(
        ["hour", "symbol"], ignore_index=True
    )
    asset_signal = store.read_between("index_signal", "2024-02-20", "2024-02-29 16:00").sort_values(
        "hour", ignore_index=True
    )

    batch = run_batch(
        csv_dir, holdings, tmp_path / "out", model=result.champion, sweep=False, proxy_symbol=None
    )
    lo = pd.Timestamp("2024-02-20", tz="America/New_York")
    batch_preds = batch.predictions[batch.predictions["hour"] >= lo].sort_values(
        ["hour", "symbol"], ignore_index=True
    )
    batch_signal = batch.signal[batch.signal["hour"] >= lo].sort_values("hour", ignore_index=True)

    assert len(asset_preds) == len(batch_preds) == 4 * 8 * 7
    assert (asset_preds["hour"].to_numpy() == batch_preds["hour"].to_numpy()).all()
    assert (asset_preds["action"].to_numpy() == batch_preds["action"].to_numpy()).all()
    np.testing.assert_allclose(
        asset_preds[PROBS].to_numpy(), batch_preds[PROBS].to_numpy(), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        asset_signal["wss"].to_numpy(), batch_signal["wss"].to_numpy(), rtol=0, atol=1e-12
    )
    assert (asset_signal["decision"].to_numpy() == batch_signal["decision"].to_numpy()).all()
    # AVGO carries weight but has no bars: both paths renormalise over the four that do
    assert np.allclose(asset_signal["covered_weight"], batch_signal["covered_weight"])
