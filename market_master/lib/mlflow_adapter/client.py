"""The MlflowClient on an explicit tracking URI, bounded HTTP waits, reachability and the experiment.

Nothing here reads or sets MLflow's process-global tracking URI: every client is built with
`tracking_uri=` and `registry_uri=` given.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlparse

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from market_master import settings
from market_master.lib.mlflow_adapter.errors import RegistryError

DEFAULT_TIMEOUT_S = 5.0
# The MLflow 3 UI opens an experiment tagged `custom_model_development` on its Runs tab ("Machine
# learning"); untagged, it may infer a GenAI experiment and open the (empty) traces overview.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

_HTTP_ENV_LOCK = threading.RLock()


def make_client(tracking_uri: str, registry_uri: str | None = None) -> MlflowClient:
    """A client on exactly these URIs (the registry defaults to the tracking store)."""
    if not tracking_uri:
        raise ValueError("an explicit MLflow tracking URI is required")
    for uri in {tracking_uri, registry_uri or tracking_uri}:
        ensure_sqlite_store(uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


SQLITE_PREFIX = "sqlite:///"


def ensure_sqlite_store(uri: str) -> None:
    """Create a missing sqlite store safely: MLflow's first use runs its migrations in place, and a kill
    during them leaves a database that never opens again (`table _alembic_tmp_experiments already
    exists`). So the store is migrated in a temporary file beside the target and renamed into place:
    an interruption leaves no store (the next run creates it) or a complete one."""
    if not uri.startswith(SQLITE_PREFIX):
        return
    path = Path(uri[len(SQLITE_PREFIX) :])
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.creating-*"):
        stale.unlink(missing_ok=True)  # left by an interrupted creation
    # a fresh name each time: MLflow caches its store (and an open sqlite connection) per URI
    tmp = path.parent / f".{path.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        MlflowClient(tracking_uri=f"{SQLITE_PREFIX}{tmp}").search_experiments(max_results=1)
        if not path.exists():  # another process may have won the race: keep its store
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


@contextmanager
def bounded_http(timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Scope MLflow's HTTP retry/timeout env vars so an unreachable server fails in ~timeout_s.

    MLflow reads these env vars on every request and offers no per-client setting, so the block sets them,
    holds a lock and restores the previous values on exit (nothing outlives the call).
    """
    values = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout_s))),
    }
    with _HTTP_ENV_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@contextmanager
def registry_call(tracking_uri: str, what: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Bound HTTP waits and turn MLflow failures into RegistryError naming the URI."""
    try:
        with bounded_http(timeout_s) if is_http(tracking_uri) else nullcontext():
            yield
    except MlflowException as exc:
        raise RegistryError(
            f"{what} failed against MLflow registry at {tracking_uri}: {exc.message}"
        ) from exc


def sqlite_path(tracking_uri: str) -> Path | None:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])


def check_reachable(
    tracking_uri: str, client: MlflowClient | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> None:
    """Raise RegistryError (naming the URI) unless the registry answers a trivial query.

    http(s): one bounded request (no retries). sqlite: the database file must exist (a client would
    otherwise silently create an empty store). Other schemes: one query through the client.
    """
    db_path = sqlite_path(tracking_uri)
    if db_path is not None and not db_path.exists():
        raise RegistryError(f"MLflow registry at {tracking_uri} is unreachable: no database file {db_path}")
    try:
        with bounded_http(timeout_s) if is_http(tracking_uri) else nullcontext():
            (client or make_client(tracking_uri)).search_registered_models(max_results=1)
    except MlflowException as exc:
        raise RegistryError(f"MLflow registry at {tracking_uri} is unreachable: {exc.message}") from exc
    except OSError as exc:
        raise RegistryError(f"MLflow registry at {tracking_uri} is unreachable: {exc}") from exc


def default_artifact_location(tracking_uri: str) -> str | None:
    """`artifacts/` beside a sqlite store's file; the data root's for other local stores; None (the
    server decides) for HTTP tracking servers. (Without an explicit location MLflow would write a local
    store's artifacts to ./mlruns of the current directory.)"""
    uri = str(tracking_uri)
    if is_http(uri):
        return None
    db_path = sqlite_path(uri)
    if db_path is not None:
        return (db_path.resolve().parent / "artifacts").as_uri()
    return settings.default_artifact_location()


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment `name`, created if missing (artifact location: given, else
    `default_artifact_location`), tagged with the experiment kind when the tag is not set yet."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = artifact_location or default_artifact_location(str(client.tracking_uri))
        try:
            return client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except MlflowException as exc:  # created concurrently by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise exc from None
    if EXPERIMENT_KIND_TAG not in exp.tags:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id
