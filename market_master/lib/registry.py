"""MLflow Model Registry operations: alias moves (promote / rollback) with a recorded history.

Every alias move is recorded twice, so it survives without any local file:
- model-version tags on the version the alias now points to (`promoted_by`, `promoted_at`,
  `promoted_from_version`, `promotion_reason`, `promotion_kind`, `promoted_alias`);
- an append-only JSON list in the registered-model tag `alias_history.<alias>` (bounded: the newest
  `HISTORY_MAX_MOVES` moves that fit in `HISTORY_MAX_CHARS`, the smallest tag-value column across
  MLflow's SQL backends).

Rollback walks that history as a stack: each record carries `prev_seq`, the record that was live before
it, so after v1 -> v2 -> v3 a rollback gives v2, a second one v1, and a third fails. The read-modify-write
of the history tag is not transactional: run one alias mover at a time per model.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

HISTORY_TAG_PREFIX = "alias_history."
HISTORY_MAX_MOVES = 50
HISTORY_MAX_CHARS = 5000
HISTORY_REASON_CHARS = 200
LOCAL_COPY_INFO = "local_copy.json"
LOCAL_COPY_MODEL_DIR = "model"
DEFAULT_TIMEOUT_S = 5.0

_HTTP_ENV_LOCK = threading.RLock()


class RegistryError(RuntimeError):
    """A registry operation failed; the message names the URI, model, version or alias involved."""


@dataclass(frozen=True)
class AliasMove:
    """One recorded alias move. `seq` numbers moves per alias; `prev_seq` is the move live before it."""

    model_name: str
    alias: str
    from_version: str | None
    to_version: str
    actor: str
    reason: str
    at: datetime
    kind: str = "move"
    seq: int = 0
    prev_seq: int | None = None

    def to_record(self) -> dict:
        return {
            "seq": self.seq,
            "prev_seq": self.prev_seq,
            "kind": self.kind,
            "from": self.from_version,
            "to": self.to_version,
            "actor": self.actor,
            "reason": self.reason[:HISTORY_REASON_CHARS],
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_record(cls, model_name: str, alias: str, rec: dict) -> AliasMove:
        return cls(
            model_name=model_name,
            alias=alias,
            from_version=rec["from"],
            to_version=str(rec["to"]),
            actor=rec["actor"],
            reason=rec["reason"],
            at=datetime.fromisoformat(rec["at"]),
            kind=rec["kind"],
            seq=int(rec["seq"]),
            prev_seq=rec["prev_seq"],
        )


@dataclass(frozen=True)
class LocalCopyInfo:
    """What `export_local_copy` wrote: `model_dir` is loadable with `mlflow.pyfunc.load_model`."""

    name: str
    version: str
    alias: str | None
    exported_at: datetime
    run_id: str | None
    model_dir: Path


# --------------------------------------------------------------------------- connectivity


@contextmanager
def bounded_http(timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Scope MLflow's HTTP retry/timeout env vars so an unreachable server fails in ~timeout_s.

    MLflow reads these env vars on every request; they are process-wide, so the block holds a lock and
    restores the previous values on exit.
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


def _is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def check_registry_reachable(tracking_uri: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Raise RegistryError (naming the URI) unless the registry answers a trivial query.

    http(s): one bounded request (no retries). sqlite: the database file must exist (MLflow would
    otherwise silently create an empty store). Other schemes: one query through the client.
    """
    if tracking_uri.startswith("sqlite:///"):
        db_path = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
        if not db_path.exists():
            raise RegistryError(
                f"MLflow registry at {tracking_uri} is unreachable: no database file {db_path}"
            )
    try:
        with bounded_http(timeout_s) if _is_http(tracking_uri) else _nullcontext():
            _client(tracking_uri).search_registered_models(max_results=1)
    except MlflowException as exc:
        raise RegistryError(f"MLflow registry at {tracking_uri} is unreachable: {exc.message}") from exc
    except OSError as exc:
        raise RegistryError(f"MLflow registry at {tracking_uri} is unreachable: {exc}") from exc


@contextmanager
def _nullcontext() -> Iterator[None]:
    yield


def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextmanager
def _registry_call(tracking_uri: str, what: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Bound HTTP waits and turn transport failures into RegistryError naming the URI."""
    try:
        with bounded_http(timeout_s) if _is_http(tracking_uri) else _nullcontext():
            yield
    except MlflowException as exc:
        raise RegistryError(
            f"{what} failed against MLflow registry at {tracking_uri}: {exc.message}"
        ) from exc


def _uri_of(client_or_uri: MlflowClient | str) -> tuple[MlflowClient, str]:
    if isinstance(client_or_uri, MlflowClient):
        return client_or_uri, str(client_or_uri.tracking_uri)
    return _client(client_or_uri), client_or_uri


# --------------------------------------------------------------------------- lookups


def _get_model(client: MlflowClient, uri: str, model_name: str):
    try:
        return client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"unknown model {model_name!r} in MLflow registry at {uri}") from exc
        raise


def _get_version(client: MlflowClient, uri: str, model_name: str, version: str):
    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise RegistryError(
                f"unknown version {version!r} of model {model_name!r} in MLflow registry at {uri}"
            ) from exc
        raise


def _alias_of(registered_model, alias: str) -> str | None:
    version = registered_model.aliases.get(alias)
    return None if version is None else str(version)


def get_alias_version(client_or_uri: MlflowClient | str, model_name: str, alias: str) -> str | None:
    """Version the alias points to, None when the alias is not set; RegistryError for an unknown model."""
    client, uri = _uri_of(client_or_uri)
    with _registry_call(uri, f"reading alias {alias!r} of {model_name!r}"):
        return _alias_of(_get_model(client, uri, model_name), alias)


def require_alias_version(tracking_uri: str, model_name: str, alias: str) -> str:
    """Like get_alias_version but raise RegistryError when the alias is not set."""
    version = get_alias_version(tracking_uri, model_name, alias)
    if version is None:
        raise RegistryError(
            f"alias {alias!r} is not set on model {model_name!r} in MLflow registry at {tracking_uri}"
        )
    return version


# --------------------------------------------------------------------------- history


def _read_history(registered_model, uri: str, model_name: str, alias: str) -> list[dict]:
    raw = registered_model.tags.get(HISTORY_TAG_PREFIX + alias)
    if not raw:
        return []
    try:
        records = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RegistryError(
            f"tag {HISTORY_TAG_PREFIX + alias!r} of model {model_name!r} at {uri} is not valid JSON: {exc}"
        ) from exc
    if not isinstance(records, list):
        raise RegistryError(f"tag {HISTORY_TAG_PREFIX + alias!r} of model {model_name!r} is not a JSON list")
    return records


def _bounded_json(records: list[dict]) -> str:
    records = records[-HISTORY_MAX_MOVES:]
    text = json.dumps(records, separators=(",", ":"))
    while len(text) > HISTORY_MAX_CHARS and len(records) > 1:
        records = records[1:]
        text = json.dumps(records, separators=(",", ":"))
    return text


def alias_history(tracking_uri: str, model_name: str, alias: str = "Production") -> list[AliasMove]:
    """Recorded moves of `alias`, oldest first (bounded; see module docstring)."""
    client = _client(tracking_uri)
    with _registry_call(tracking_uri, f"reading alias history of {model_name!r}"):
        records = _read_history(_get_model(client, tracking_uri, model_name), tracking_uri, model_name, alias)
    return [AliasMove.from_record(model_name, alias, r) for r in records]


def _record_move(
    client: MlflowClient,
    uri: str,
    model_name: str,
    alias: str,
    version: str,
    actor: str,
    reason: str,
    kind: str,
    prev_seq: int | None,
    from_version: str | None,
    records: list[dict],
) -> AliasMove:
    move = AliasMove(
        model_name=model_name,
        alias=alias,
        from_version=from_version,
        to_version=str(version),
        actor=actor,
        reason=reason,
        at=datetime.now(UTC),
        kind=kind,
        seq=(int(records[-1]["seq"]) + 1) if records else 1,
        prev_seq=prev_seq,
    )
    client.set_registered_model_alias(model_name, alias, move.to_version)
    tags = {
        "promoted_alias": alias,
        "promoted_by": actor,
        "promoted_at": move.at.isoformat(),
        "promoted_from_version": from_version or "",
        "promotion_reason": reason,
        "promotion_kind": kind,
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, move.to_version, key, value)
    client.set_registered_model_tag(
        model_name, HISTORY_TAG_PREFIX + alias, _bounded_json([*records, move.to_record()])
    )
    log.info("%s %s@%s: %s -> %s by %s (%s)", kind, model_name, alias, from_version, version, actor, reason)
    return move


def _check_actor_reason(actor: str, reason: str) -> None:
    if not actor or not actor.strip():
        raise ValueError("actor must be a non-empty string (who moves the alias)")
    if not reason or not reason.strip():
        raise ValueError("reason must be a non-empty string (why the alias moves)")


def move_alias(
    tracking_uri: str,
    model_name: str,
    alias: str,
    version: str | int,
    actor: str,
    reason: str,
    kind: str = "move",
) -> AliasMove:
    """Point `alias` at `version` and record the move (version tags + registered-model history tag)."""
    _check_actor_reason(actor, reason)
    client = _client(tracking_uri)
    with _registry_call(tracking_uri, f"moving {model_name}@{alias} to version {version}"):
        _get_version(client, tracking_uri, model_name, str(version))
        registered = _get_model(client, tracking_uri, model_name)
        current = _alias_of(registered, alias)
        records = _read_history(registered, tracking_uri, model_name, alias)
        # The live record is the last one, unless the alias was moved outside this module.
        live_seq = records[-1]["seq"] if records and records[-1]["to"] == current else None
        return _record_move(
            client,
            tracking_uri,
            model_name,
            alias,
            str(version),
            actor,
            reason,
            kind,
            live_seq,
            current,
            records,
        )


def promote(
    tracking_uri: str, model_name: str, version: str | int, actor: str, reason: str, alias: str = "Production"
) -> AliasMove:
    """Move `alias` (default Production) to `version`, recorded as a promotion."""
    return move_alias(tracking_uri, model_name, alias, version, actor, reason, kind="promote")


def rollback(
    tracking_uri: str, model_name: str, actor: str, reason: str, alias: str = "Production"
) -> AliasMove:
    """Point `alias` back at the version live before the current one (the history is a stack)."""
    _check_actor_reason(actor, reason)
    client = _client(tracking_uri)
    with _registry_call(tracking_uri, f"rolling back {model_name}@{alias}"):
        registered = _get_model(client, tracking_uri, model_name)
        current = _alias_of(registered, alias)
        if current is None:
            raise RegistryError(
                f"alias {alias!r} is not set on model {model_name!r} at {tracking_uri}: nothing to roll back"
            )
        records = _read_history(registered, tracking_uri, model_name, alias)
        if not records or records[-1]["to"] != current:
            raise RegistryError(
                f"cannot roll back {model_name}@{alias} (version {current}): no earlier version in its alias "
                "history (the alias was set outside market_master's promote/rollback)"
            )
        by_seq = {r["seq"]: r for r in records}
        prev_seq = records[-1]["prev_seq"]
        if prev_seq is None or prev_seq not in by_seq:
            detail = "" if prev_seq is None else f" (move #{prev_seq} fell out of the bounded history)"
            raise RegistryError(
                f"cannot roll back {model_name}@{alias} (version {current}): no earlier version in its alias "
                f"history{detail}"
            )
        target = by_seq[prev_seq]
        _get_version(client, tracking_uri, model_name, target["to"])
        return _record_move(
            client,
            tracking_uri,
            model_name,
            alias,
            target["to"],
            actor,
            reason,
            "rollback",
            target["prev_seq"],
            current,
            records,
        )


# --------------------------------------------------------------------------- local fallback copy


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """`models:/name@alias` -> (name, None, alias); `models:/name/3` -> (name, "3", None)."""
    if not model_uri.startswith("models:/"):
        raise RegistryError(
            f"expected a models:/<name>@<alias> or models:/<name>/<version> URI, got {model_uri!r}"
        )
    rest = model_uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, None, alias
    name, sep, version = rest.rpartition("/")
    if not sep or not version.isdigit():
        raise RegistryError(
            f"expected a models:/<name>@<alias> or models:/<name>/<version> URI, got {model_uri!r}"
        )
    return name, version, None


def export_local_copy(model_uri: str, dest_dir: str | Path, tracking_uri: str | None = None) -> Path:
    """Download the registered model's artifacts to `dest_dir/model` (replacing any previous copy).

    Writes `dest_dir/local_copy.json` (name, version, alias, exported_at, run_id). The alias is resolved
    once and the pinned version is downloaded, so a concurrent alias move cannot mix versions. Returns
    the model directory (loadable with mlflow.pyfunc.load_model).
    """
    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    name, version, alias = parse_model_uri(model_uri)
    client = _client(uri)
    dest = Path(dest_dir)
    with _registry_call(uri, f"exporting {model_uri}"):
        if alias is not None:
            version = require_alias_version(uri, name, alias)
        mv = _get_version(client, uri, name, version)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        try:
            # the version's artifact location from OUR registry client: download_artifacts would resolve a
            # models:/ URI against MLflow's process-global registry, which a fresh process has not set
            downloaded = mlflow.artifacts.download_artifacts(
                artifact_uri=client.get_model_version_download_uri(name, str(version)),
                dst_path=str(staging / ".download"),
                tracking_uri=uri,
            )
            os.replace(
                downloaded, staging / LOCAL_COPY_MODEL_DIR
            )  # the model directory itself (MLmodel inside)
            shutil.rmtree(staging / ".download", ignore_errors=True)
            info = {
                "name": name,
                "version": str(version),
                "alias": alias,
                "exported_at": datetime.now(UTC).isoformat(),
                "run_id": mv.run_id,
                "source_uri": model_uri,
            }
            (staging / LOCAL_COPY_INFO).write_text(json.dumps(info, indent=2))
            _swap_dirs(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    log.info("exported %s (version %s) to %s", model_uri, version, dest)
    return dest / LOCAL_COPY_MODEL_DIR


def _swap_dirs(new: Path, dest: Path) -> None:
    """Replace `dest` by `new`: two renames on the same filesystem; the old copy is restored on failure."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{datetime.now(UTC).strftime('%H%M%S%f')}")
        os.replace(dest, old)
    try:
        os.replace(new, dest)
    except OSError:
        if old is not None:
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_local_copy_info(dest_dir: str | Path) -> LocalCopyInfo:
    """Read what export_local_copy wrote; RegistryError when there is no (complete) copy."""
    dest = Path(dest_dir)
    info_path = dest / LOCAL_COPY_INFO
    if not info_path.exists() or not (dest / LOCAL_COPY_MODEL_DIR / "MLmodel").exists():
        raise RegistryError(f"no local model copy at {dest} (expected {LOCAL_COPY_INFO} and model/MLmodel)")
    raw = json.loads(info_path.read_text())
    return LocalCopyInfo(
        name=raw["name"],
        version=str(raw["version"]),
        alias=raw.get("alias"),
        exported_at=datetime.fromisoformat(raw["exported_at"]),
        run_id=raw.get("run_id"),
        model_dir=dest / LOCAL_COPY_MODEL_DIR,
    )
