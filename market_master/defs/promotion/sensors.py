"""The asset sensor that promotes a gated champion. It only decides and yields a RunRequest; the registry
write happens in the run it launches (promote_job -> production_model), the same job every manual
promote and rollback runs, so each move is a production_model materialization with its reason.

Gate checks run as their own steps right after champion_model is materialized, so a tick can see the
materialization before every verdict is recorded: such a champion is left pending (the cursor does not
move past it) and decided on a later tick. Only the LATEST champion is ever promoted: an older one that a
newer retrain superseded is not worth moving Production to.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from market_master.defs.promotion.jobs import promote_job
from market_master.defs.promotion.verdicts import CHAMPION, gate_verdicts

SENSOR_ACTOR = "dagster:promote_champion_when_gates_pass"


@dataclass(frozen=True)
class PromotionDecision:
    pending: bool
    run_request: dg.RunRequest | None = None
    skip_reason: str | None = None


def promotion_request(version: str, actor: str, reason: str, force: bool = False) -> dict:
    """promote_job's run config for moving Production to `version` (the one shape the sensor and CLI use)."""
    config = {"version": str(version), "actor": actor, "reason": reason, "force": force}
    return {"ops": {"production_model": {"config": config}}}


def decide_promotion(instance: dg.DagsterInstance, entry: dg.EventLogEntry) -> PromotionDecision:
    """Promote (RunRequest), refuse (skip reason naming the failed gates and their numbers) or wait."""
    materialization = entry.asset_materialization
    metadata = materialization.metadata if materialization else {}
    if "model_version" not in metadata:
        return PromotionDecision(False, skip_reason="champion_model materialization carries no model_version")
    version = str(metadata["model_version"].value)
    model_name = str(metadata["model_name"].value)
    verdicts = gate_verdicts(instance, entry.run_id)
    if verdicts.pending:
        return PromotionDecision(True)
    if not verdicts.all_passed:
        return PromotionDecision(
            False, skip_reason=f"Production unchanged for {model_name} v{version}: {verdicts.summary()}"
        )
    request = dg.RunRequest(
        run_key=f"promote-{model_name}-v{version}",
        run_config=promotion_request(version, SENSOR_ACTOR, verdicts.summary()),
        tags={"market_master/model_version": version},
    )
    return PromotionDecision(False, run_request=request)


@dg.multi_asset_sensor(
    monitored_assets=[CHAMPION],
    job=promote_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def promote_champion_when_gates_pass(context: dg.MultiAssetSensorEvaluationContext):
    """When champion_model is materialized and ALL its gate checks passed, request promote_job."""
    record = context.latest_materialization_records_by_key([CHAMPION]).get(CHAMPION)
    if record is None:
        return dg.SkipReason("no new champion_model materialization")
    decision = decide_promotion(context.instance, record.event_log_entry)
    if decision.pending:
        return dg.SkipReason(
            f"gates of run {record.event_log_entry.run_id} still running: decided on a later tick"
        )
    context.advance_cursor({CHAMPION: record})
    if decision.run_request is None:
        context.log.info(decision.skip_reason)
        return dg.SkipReason(decision.skip_reason)
    return decision.run_request
