"""Runs and logged models through an MlflowClient only (no fluent API, no active run, no global URI).

`log_model` is what `mlflow.<flavor>.log_model` does in MLflow 3, spelled with the client: create a
LoggedModel in the run's experiment, link it to the run as an output, `<flavor>.save_model` to a
temporary directory (signature and input example included), upload with `log_model_artifacts`, mark it
READY (FAILED on error). `register_version` creates the registered-model version from the logged model's
artifact location: a `models:/<model_id>` source would make MLflow's SQL registry look the model up
through a client on the process-global tracking URI.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from mlflow.entities import LoggedModel, LoggedModelOutput, LoggedModelStatus, Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

BATCH = 900  # below MLflow's 1000-metric log_batch limit


def now_ms() -> int:
    return int(time.time() * 1000)


@contextmanager
def run_scope(
    client: MlflowClient,
    experiment_id: str,
    run_name: str,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
) -> Iterator[str]:
    """Create a run (the fluent API's context tags: user, source, git commit; `mlflow.parentRunId` when
    nested), yield its id, and terminate it FINISHED, or FAILED when the block raises."""
    run_tags = resolve_tags(dict(tags or {}))
    if parent_run_id is not None:
        run_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    run_id = client.create_run(experiment_id, run_name=run_name, tags=run_tags).info.run_id
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")


def log_values(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    model_id: str | None = None,
) -> None:
    """Params, metrics (step 0, now) and tags through `log_batch`, within MLflow's per-call limits."""
    ts = now_ms()
    log_metrics(
        client, run_id, [Metric(k, float(v), ts, 0, model_id=model_id) for k, v in (metrics or {}).items()]
    )
    batch_params = [Param(k, str(v)) for k, v in (params or {}).items()]
    batch_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    if batch_tags:
        client.log_batch(run_id, tags=batch_tags)
    for i in range(0, len(batch_params), 100):
        client.log_batch(run_id, params=batch_params[i : i + 100])


def log_metrics(client: MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + BATCH])


def log_model(
    client: MlflowClient,
    experiment_id: str,
    run_id: str,
    name: str,
    flavor: ModuleType,
    params: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    **save_kwargs,
) -> LoggedModel:
    """Log a model of `flavor` (a module with `save_model`, e.g. mlflow.sklearn, mlflow.pyfunc) as
    LoggedModel `name` of run `run_id`. `params` are recorded on the model; `metrics` (the run's) are
    linked to it, as `log_model` does with the active run's metrics."""
    model = client.create_logged_model(
        experiment_id, name=name, source_run_id=run_id, params={k: str(v) for k, v in (params or {}).items()}
    )
    try:
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        if metrics:
            log_values(client, run_id, metrics=metrics, model_id=model.model_id)
        mlflow_model = Model(
            artifact_path=model.artifact_location,
            model_uuid=model.model_id,
            run_id=run_id,
            model_id=model.model_id,
        )
        with tempfile.TemporaryDirectory(prefix="mm-log-model-") as tmp:
            local = Path(tmp) / "model"
            flavor.save_model(path=str(local), mlflow_model=mlflow_model, **save_kwargs)
            client.log_model_artifacts(model.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    return client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)


def register_version(
    client: MlflowClient, model_name: str, model: LoggedModel, tags: Mapping[str, str] | None = None
) -> ModelVersion:
    """A new version of registered model `model_name` (created if missing) holding `model`'s artifacts."""
    try:
        client.create_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    return client.create_model_version(
        model_name,
        source=model.artifact_location,
        run_id=model.source_run_id,
        tags={"model_id": model.model_id, **(tags or {})},
        model_id=model.model_id,
    )
