"""One way to get-or-create the MLflow experiment, with artifacts under the data root for local stores
(without an explicit location MLflow would write them to ./mlruns of the current directory)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from market_master import settings


def ensure_experiment(client: mlflow.MlflowClient, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment `name`, created if missing (artifact location: given, else see
    `default_artifact_location`)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(
        name, artifact_location=artifact_location or default_artifact_location(client.tracking_uri)
    )


def default_artifact_location(tracking_uri: str) -> str | None:
    """`artifacts/` beside a sqlite store's file; the data root's for other local stores; None (the
    server decides) for HTTP tracking servers."""
    uri = str(tracking_uri)
    if uri.startswith(("http://", "https://")):
        return None
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).resolve().parent / "artifacts").as_uri()
    return settings.default_artifact_location()
