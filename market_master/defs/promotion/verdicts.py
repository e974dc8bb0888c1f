"""The gates' verdicts on one champion, read from Dagster's asset-check execution records.

One reader for every place that asks "did this champion pass its gates?": the promotion sensor, the
production_model asset (a manual promote of a version whose gates failed needs `force`) and the CLI.
It reads the typed `AssetCheckExecutionRecord`s the instance keeps per check (status PLANNED / SUCCEEDED /
FAILED, the run that produced them and the evaluation's metadata), not raw event-log records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from market_master.defs.training.assets import champion_model
from market_master.defs.training.checks import GATE_NAMES

CHAMPION = champion_model.key
HISTORY_LIMIT = 100


@dataclass(frozen=True)
class GateVerdicts:
    """What the gates said about the champion materialized in `run_id`."""

    run_id: str
    passed: dict[str, bool] = field(default_factory=dict)  # gate -> verdict, decided gates only
    reasons: dict[str, str] = field(default_factory=dict)  # gate -> the check's own one-line reason
    pending: tuple[str, ...] = ()  # planned, run still going
    not_evaluated: tuple[str, ...] = ()  # never decided (run ended first)

    @property
    def failed(self) -> list[str]:
        return [g for g in GATE_NAMES if self.passed.get(g) is False]

    @property
    def all_passed(self) -> bool:
        return not self.pending and not self.not_evaluated and all(self.passed.get(g) for g in GATE_NAMES)

    def summary(self) -> str:
        """One line: every failed or undecided gate with its reason, or that all passed."""
        if self.all_passed:
            return f"all {len(GATE_NAMES)} gates passed in run {self.run_id}"
        parts = [f"{g} FAILED ({self.reasons.get(g, 'no reason recorded')})" for g in self.failed]
        parts += [f"{g} not evaluated" for g in self.not_evaluated]
        parts += [f"{g} still running" for g in self.pending]
        return "; ".join(parts)


def _reason(record) -> str:
    evaluation = record.event.asset_check_evaluation if record.event is not None else None
    if evaluation is None or "reason" not in evaluation.metadata:
        return ""
    return str(evaluation.metadata["reason"].value)


def gate_verdicts(instance: dg.DagsterInstance, run_id: str) -> GateVerdicts:
    """The verdict of every gate in GATE_NAMES for the champion materialized by `run_id`."""
    run = instance.get_run_by_id(run_id)
    finished = run is None or run.is_finished
    passed, reasons, pending, not_evaluated = {}, {}, [], []
    for gate in GATE_NAMES:
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(CHAMPION, gate), limit=HISTORY_LIMIT
        )
        record = next((r for r in history if r.run_id == run_id), None)
        status = record.status if record is not None else None
        if status in (AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED):
            passed[gate] = status == AssetCheckExecutionRecordStatus.SUCCEEDED
            reasons[gate] = _reason(record)
        elif finished:
            not_evaluated.append(gate)
        else:
            pending.append(gate)
    return GateVerdicts(run_id, passed, reasons, tuple(pending), tuple(not_evaluated))


def champion_run_of_version(instance: dg.DagsterInstance, model_name: str, version: str) -> str | None:
    """The run whose champion_model materialization registered `model_name` v`version`, or None."""
    records = instance.fetch_materializations(CHAMPION, limit=HISTORY_LIMIT).records
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        if (
            "model_version" in metadata
            and str(metadata["model_version"].value) == str(version)
            and str(metadata["model_name"].value) == model_name
        ):
            return record.run_id
    return None
