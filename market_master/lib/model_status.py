"""Why there is (no) signal: the gate verdicts of the latest champion and when the next retrain is due.

Source of truth for gate verdicts OUTSIDE Dagster: registry model-version tags.
Every gate check (defs/training/checks.py, the `gate` decorator) writes its verdict onto the very model
version it judged, through the one MLflow adapter, right after it decides:

    gate.<gate name>  = {"passed": bool, "reason": "<the check's reason line>",
                         "metrics": {<the check's scalar metadata>}, "dagster_run_id": "..."}
    gates.expected    = "<gate names, comma-separated>"

The reason and numbers are taken from the SAME `AssetCheckResult` the check returns (its metadata), so
the Dagster UI, `market-master status`, `/health` and `/signal/index` read one verdict. Why the registry
and not a file or the Dagster instance: the verdict belongs to a model version and travels with it (a
remote MLflow server, a copied store); the API already reads the registry (no Dagster instance, no
event-log query); and a version whose gates never ran simply has no `gate.*` tags, which says so.
The promotion sensor keeps reading Dagster's asset-check records (defs/promotion/verdicts.py): both
come from the same check evaluation.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from market_master.lib import cadence
from market_master.lib.aliases import PRODUCTION_ALIAS

if TYPE_CHECKING:
    from market_master.lib.mlflow_adapter import MlflowAdapter

GATE_TAG_PREFIX = "gate."
EXPECTED_GATES_TAG = "gates.expected"
MAX_TAG_CHARS = 5000  # the smallest tag-value column across MLflow's SQL backends (see registry.py)

Scalar = float | int | str | bool | None
State = Literal[
    "production", "gates_failed", "gates_pending", "awaiting_promotion", "no_champion", "unreadable"
]


@dataclass(frozen=True)
class GateVerdict:
    """One gate's verdict on one model version, as the check decided it."""

    name: str
    passed: bool
    reason: str
    metrics: dict[str, Scalar] = field(default_factory=dict)
    dagster_run_id: str | None = None

    def to_tag(self) -> str:
        """The tag value (JSON, at most MAX_TAG_CHARS: metrics are dropped last-first to fit)."""
        metrics = dict(self.metrics)
        while True:
            text = json.dumps(
                {
                    "passed": self.passed,
                    "reason": self.reason,
                    "metrics": metrics,
                    "dagster_run_id": self.dagster_run_id,
                },
                separators=(",", ":"),
            )
            if len(text) <= MAX_TAG_CHARS or not metrics:
                return text[:MAX_TAG_CHARS]
            metrics.pop(next(reversed(metrics)))

    @classmethod
    def from_tag(cls, name: str, value: str) -> GateVerdict:
        data = json.loads(value)
        return cls(
            name=name,
            passed=bool(data["passed"]),
            reason=str(data.get("reason") or ""),
            metrics=dict(data.get("metrics") or {}),
            dagster_run_id=data.get("dagster_run_id"),
        )

    def text(self) -> str:
        """'gate_name (reason)': the reason already carries the numbers."""
        return f"{self.name} ({self.reason or 'no reason recorded'})"


_NOT_SCALAR = object()


def _scalar(value):
    """A JSON scalar (non-finite floats -> None), or _NOT_SCALAR for structured values."""
    value = getattr(value, "value", value)  # a Dagster MetadataValue -> its raw value
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalars
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return _NOT_SCALAR


def verdict_from_check(
    name: str, passed: bool, metadata: Mapping, dagster_run_id: str | None = None
) -> GateVerdict:
    """A GateVerdict from a check's outcome and metadata: `reason` + every scalar value (JSON and other
    structured metadata stay in Dagster only)."""
    scalars = {str(k): _scalar(v) for k, v in metadata.items()}
    reason = scalars.pop("reason", None)
    metrics = {k: v for k, v in scalars.items() if v is not _NOT_SCALAR}
    reason_text = "" if reason is None or reason is _NOT_SCALAR else str(reason)
    return GateVerdict(name, bool(passed), reason_text, metrics, dagster_run_id)


def record_gate_verdict(
    adapter: MlflowAdapter, version: str, verdict: GateVerdict, expected: Sequence[str]
) -> None:
    """Write one gate's verdict (and the list of gates expected) onto `version` in the registry."""
    adapter.set_version_tags(
        version,
        {GATE_TAG_PREFIX + verdict.name: verdict.to_tag(), EXPECTED_GATES_TAG: ",".join(expected)},
    )


def read_gate_verdicts(tags: Mapping[str, str]) -> tuple[dict[str, GateVerdict], list[str]]:
    """(recorded verdicts by gate, gates expected) from a model version's tags."""
    verdicts = {}
    for key, value in tags.items():
        if key.startswith(GATE_TAG_PREFIX):
            name = key.removeprefix(GATE_TAG_PREFIX)
            try:
                verdicts[name] = GateVerdict.from_tag(name, value)
            except (ValueError, KeyError, TypeError):
                verdicts[name] = GateVerdict(name, False, f"unreadable verdict tag: {value[:80]!r}")
    expected = [g for g in tags.get(EXPECTED_GATES_TAG, "").split(",") if g] or sorted(verdicts)
    return verdicts, expected


@dataclass(frozen=True)
class ModelStatus:
    """What serves and, when nothing does, why: in `line` (one line) and as fields."""

    state: State
    line: str
    model_name: str
    production_version: str | None = None
    champion_version: str | None = None
    champion_name: str | None = None
    registered_at: str | None = None
    gates: list[GateVerdict] = field(default_factory=list)  # recorded verdicts, in `expected` order
    failed: list[str] = field(default_factory=list)
    not_recorded: list[str] = field(default_factory=list)
    next_retrain: pd.Timestamp | None = None

    @property
    def failed_verdicts(self) -> list[GateVerdict]:
        return [g for g in self.gates if not g.passed]


def _retrain_text(next_retrain: pd.Timestamp) -> str:
    return f"next retrain due {cadence.describe_retrain(next_retrain)}"


def model_status(adapter: MlflowAdapter, now: pd.Timestamp | dt.datetime | None = None) -> ModelStatus:
    """The Production version, or why there is none, read from the registry only (see module docstring).
    RegistryError when the registry cannot be read; an unknown model is state `no_champion`."""
    from market_master.lib.mlflow_adapter import RegistryError

    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    next_retrain = cadence.next_retrain(now)
    name = adapter.model_name
    try:
        production = adapter.alias_version(PRODUCTION_ALIAS)
        latest = adapter.latest_version()
    except RegistryError as exc:
        if "unknown model" not in str(exc):
            raise
        production, latest = None, None
    if latest is None:
        return no_champion_status(name, now)
    tags = dict(latest.tags or {})
    verdicts, expected = read_gate_verdicts(tags)
    ordered = [verdicts[g] for g in expected if g in verdicts]
    failed = [g.name for g in ordered if not g.passed]
    not_recorded = [g for g in expected if g not in verdicts] if expected else []
    version, champion = str(latest.version), tags.get("champion")
    registered = (
        pd.Timestamp(latest.creation_timestamp, unit="ms", tz="UTC").isoformat()
        if latest.creation_timestamp
        else None
    )
    who = f"{name} v{version}" + (f" ({champion})" if champion else "")
    common = {
        "model_name": name,
        "production_version": production,
        "champion_version": version,
        "champion_name": champion,
        "registered_at": registered,
        "gates": ordered,
        "failed": failed,
        "not_recorded": not_recorded,
        "next_retrain": next_retrain,
    }
    retrain = _retrain_text(next_retrain)
    if production is not None:
        newer = ""
        if production != version and failed:
            newer = f"; latest champion {who} failed {', '.join(failed)}"
        return ModelStatus("production", f"Production: {name} v{production}{newer}; {retrain}", **common)
    if failed:
        n_total = len(expected) or len(ordered)
        details = "; ".join(verdicts[g].text() for g in failed)
        line = (
            f"no Production model: latest champion {who} failed {len(failed)} of {n_total} gates: "
            f"{details}; {retrain}"
        )
        return ModelStatus("gates_failed", line, **common)
    if not_recorded or not expected:
        missing = ", ".join(not_recorded) if not_recorded else "all gates"
        line = (
            f"no Production model: latest champion {who} has no recorded verdict for {missing} (gates "
            f"still running, or they never ran: see the Dagster run of champion_model); {retrain}"
        )
        return ModelStatus("gates_pending", line, **common)
    line = (
        f"no Production model: latest champion {who} passed all {len(expected)} gates and awaits "
        f"promotion (the sensor promote_champion_when_gates_pass, or market-master promote --version "
        f"{version}); {retrain}"
    )
    return ModelStatus("awaiting_promotion", line, **common)


def no_champion_status(model_name: str, now: pd.Timestamp | dt.datetime | None = None) -> ModelStatus:
    """Nothing registered yet (or no registry at all): the pipeline never trained a champion."""
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    line = (
        f"no Production model: no champion of {model_name} is registered yet: run the pipeline first "
        "(market-master run)"
    )
    return ModelStatus("no_champion", line, model_name, next_retrain=cadence.next_retrain(now))


def registry_missing(tracking_uri: str) -> bool:
    """True for a local sqlite store whose file does not exist yet (opening it would create it)."""
    if not tracking_uri.startswith("sqlite:///"):
        return False
    return not Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]).exists()


def unreadable_status(
    model_name: str, error: str, now: pd.Timestamp | dt.datetime | None = None
) -> ModelStatus:
    """The status when the registry cannot be read (so nobody can say which gates failed)."""
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    next_retrain = cadence.next_retrain(now)
    line = (
        f"no Production model: cannot read the MLflow registry to say why ({error}); "
        f"{_retrain_text(next_retrain)}"
    )
    return ModelStatus("unreadable", line, model_name, next_retrain=next_retrain)
