"""Registered-model aliases: reads, and moves (promote / rollback) with a recorded history.

Every alias move is recorded twice, so it survives without any local file:
- model-version tags on the version the alias now points to (`promoted_by`, `promoted_at`,
  `promoted_from_version`, `promotion_reason`, `promotion_kind`, `promoted_alias`);
- an append-only JSON list in the registered-model tag `alias_history.<alias>` (bounded: the newest
  `HISTORY_MAX_MOVES` moves that fit in `HISTORY_MAX_CHARS`, the smallest tag-value column across
  MLflow's SQL backends).

Rollback walks that history as a stack: each record carries `prev_seq`, the record that was live before
it, so after v1 -> v2 -> v3 a rollback gives v2, a second one v1, and a third fails. The read-modify-write
of the history tag is not transactional: run one alias mover at a time per model.

The functions take the client and its tracking URI (for messages); callers wrap them in
`client.registry_call` (MlflowAdapter does).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from market_master.lib.mlflow_adapter.errors import RegistryError

log = logging.getLogger(__name__)

HISTORY_TAG_PREFIX = "alias_history."
HISTORY_MAX_MOVES = 50
HISTORY_MAX_CHARS = 5000
HISTORY_REASON_CHARS = 200


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


# --------------------------------------------------------------------------- lookups


def get_model(client: MlflowClient, uri: str, model_name: str):
    try:
        return client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"unknown model {model_name!r} in MLflow registry at {uri}") from exc
        raise


def get_version(client: MlflowClient, uri: str, model_name: str, version: str):
    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise RegistryError(
                f"unknown version {version!r} of model {model_name!r} in MLflow registry at {uri}"
            ) from exc
        raise


def latest_version(client: MlflowClient, uri: str, model_name: str):
    """The newest (highest-numbered) ModelVersion of `model_name`, None when it has no version;
    RegistryError for an unknown model."""
    get_model(client, uri, model_name)
    escaped = model_name.replace("'", "\\'")
    found = client.search_model_versions(f"name='{escaped}'", max_results=1, order_by=["version_number DESC"])
    return found[0] if found else None


def _alias_of(registered_model, alias: str) -> str | None:
    version = registered_model.aliases.get(alias)
    return None if version is None else str(version)


def alias_version(client: MlflowClient, uri: str, model_name: str, alias: str) -> str | None:
    """Version the alias points to, None when the alias is not set; RegistryError for an unknown model."""
    return _alias_of(get_model(client, uri, model_name), alias)


def require_alias_version(client: MlflowClient, uri: str, model_name: str, alias: str) -> str:
    """Like alias_version but raise RegistryError when the alias is not set."""
    version = alias_version(client, uri, model_name, alias)
    if version is None:
        raise RegistryError(f"alias {alias!r} is not set on model {model_name!r} in MLflow registry at {uri}")
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


def _committed(records: list[dict], current: str | None) -> list[dict]:
    """The history without a trailing UNCOMMITTED move: `_record_move` writes the history record first and
    moves the alias last (the commit point), so a process killed in between leaves a last record whose
    `to` is not the live alias and whose `from` is: that move never happened, and the next move drops it."""
    if records and records[-1]["to"] != current and records[-1].get("from") == current:
        return records[:-1]
    return records


def _bounded_json(records: list[dict]) -> str:
    records = records[-HISTORY_MAX_MOVES:]
    text = json.dumps(records, separators=(",", ":"))
    while len(text) > HISTORY_MAX_CHARS and len(records) > 1:
        records = records[1:]
        text = json.dumps(records, separators=(",", ":"))
    return text


def alias_history(client: MlflowClient, uri: str, model_name: str, alias: str) -> list[AliasMove]:
    """Recorded moves of `alias`, oldest first (bounded; see module docstring)."""
    registered = get_model(client, uri, model_name)
    records = _committed(_read_history(registered, uri, model_name, alias), _alias_of(registered, alias))
    return [AliasMove.from_record(model_name, alias, r) for r in records]


def _record_move(
    client: MlflowClient,
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
    # history first, the alias last: the alias write is the commit point (see _committed)
    client.set_registered_model_tag(
        model_name, HISTORY_TAG_PREFIX + alias, _bounded_json([*records, move.to_record()])
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
    log.info("%s %s@%s: %s -> %s by %s (%s)", kind, model_name, alias, from_version, version, actor, reason)
    return move


def check_actor_reason(actor: str, reason: str) -> None:
    if not actor or not actor.strip():
        raise ValueError("actor must be a non-empty string (who moves the alias)")
    if not reason or not reason.strip():
        raise ValueError("reason must be a non-empty string (why the alias moves)")


def move_alias(
    client: MlflowClient,
    uri: str,
    model_name: str,
    alias: str,
    version: str,
    actor: str,
    reason: str,
    kind: str = "move",
) -> AliasMove:
    """Point `alias` at `version` and record the move (version tags + registered-model history tag)."""
    check_actor_reason(actor, reason)
    get_version(client, uri, model_name, version)
    registered = get_model(client, uri, model_name)
    current = _alias_of(registered, alias)
    records = _committed(_read_history(registered, uri, model_name, alias), current)
    # The live record is the last one, unless the alias was moved outside this module.
    live_seq = records[-1]["seq"] if records and records[-1]["to"] == current else None
    return _record_move(client, model_name, alias, version, actor, reason, kind, live_seq, current, records)


def _rollback_target(registered, uri: str, model_name: str, alias: str) -> tuple[dict, str, list[dict]]:
    """(the history record to go back to, the live version, the committed history) or RegistryError."""
    current = _alias_of(registered, alias)
    if current is None:
        raise RegistryError(
            f"alias {alias!r} is not set on model {model_name!r} at {uri}: nothing to roll back"
        )
    records = _committed(_read_history(registered, uri, model_name, alias), current)
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
    return by_seq[prev_seq], current, records


def rollback_target(client: MlflowClient, uri: str, model_name: str, alias: str) -> str:
    """The version a rollback of `alias` would move to (RegistryError when there is none)."""
    target, _, _ = _rollback_target(get_model(client, uri, model_name), uri, model_name, alias)
    return str(target["to"])


def rollback(
    client: MlflowClient, uri: str, model_name: str, alias: str, actor: str, reason: str
) -> AliasMove:
    """Point `alias` back at the version live before the current one (the history is a stack)."""
    check_actor_reason(actor, reason)
    target, current, records = _rollback_target(get_model(client, uri, model_name), uri, model_name, alias)
    get_version(client, uri, model_name, target["to"])
    return _record_move(
        client,
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
