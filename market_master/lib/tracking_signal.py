"""Log an index-signal series to MLflow: WSS and covered weight per hour as metric history + a CSV."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric

from market_master.lib.mlflow_experiments import ensure_experiment

DECISION_CODE = {"SELL": -1, "HOLD": 0, "BUY": 1}


def log_index_signal(tracking_uri: str, experiment_name: str, signal: pd.DataFrame, run_name: str) -> str:
    """One MLflow run holding the hourly WSS series (metric step = hour index, timestamp = the bar time)."""
    client = mlflow.MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(client, experiment_name)
    run = client.create_run(experiment_id, run_name=run_name, tags={"market_master.kind": "index_signal"})
    metrics: list[Metric] = []
    for step, row in enumerate(signal.itertuples(index=False)):
        ts = int(pd.Timestamp(row.hour).timestamp() * 1000)
        if pd.notna(row.wss):
            metrics.append(Metric("wss", float(row.wss), ts, step))
        metrics.append(Metric("covered_weight", float(row.covered_weight), ts, step))
        metrics.append(Metric("decision", float(DECISION_CODE[str(row.decision)]), ts, step))
    for i in range(0, len(metrics), 900):
        client.log_batch(run.info.run_id, metrics=metrics[i : i + 900])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index_signal.csv"
        signal.to_csv(path, index=False)
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)
    return run.info.run_id
