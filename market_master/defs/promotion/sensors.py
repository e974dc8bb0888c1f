"""The asset sensor that promotes a gated champion. It only decides and yields a RunRequest; the registry
write happens in the run it launches (promote_job -> production_model), so it is logged and retryable.

Gate checks run as their own steps right after champion_model is materialized, so a tick can see the
materialization before every verdict is recorded. A multi-asset sensor lets us advance the cursor only
past materializations that are DECIDED (all verdicts in, or the run finished): a pending one is looked at
again on the next tick instead of being skipped for good.
"""

from dataclasses import dataclass

import dagster as dg

from market_master.defs.promotion.jobs import promote_job
from market_master.defs.training.checks import GATE_NAMES

CHAMPION = dg.AssetKey("champion_model")
SENSOR_ACTOR = "dagster:promote_champion_when_gates_pass"


def gate_evaluations(instance: dg.DagsterInstance, run_id: str) -> dict:
    """{gate name: AssetCheckEvaluation} for the champion_model checks evaluated in `run_id`."""
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=1000
    ).records
    evaluations = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.asset_key == CHAMPION:
            evaluations[evaluation.check_name] = evaluation
    return evaluations


def gate_verdicts(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    """{gate name: passed} for the champion_model checks evaluated in `run_id`."""
    return {name: bool(e.passed) for name, e in gate_evaluations(instance, run_id).items()}


@dataclass(frozen=True)
class Decision:
    pending: bool
    run_request: dg.RunRequest | None = None
    skip_reason: str | None = None


def decide(instance: dg.DagsterInstance, entry: dg.EventLogEntry) -> Decision:
    """Promote (RunRequest), refuse (skip reason naming the failed gates) or wait (pending)."""
    materialization = entry.asset_materialization
    metadata = materialization.metadata if materialization else {}
    if "model_version" not in metadata:
        return Decision(False, skip_reason="champion_model materialization carries no model_version")
    version = str(metadata["model_version"].value)
    model_name = str(metadata["model_name"].value)
    verdicts = gate_verdicts(instance, entry.run_id)
    missing = [g for g in GATE_NAMES if g not in verdicts]
    run = instance.get_run_by_id(entry.run_id)
    if missing and run is not None and not run.is_finished:
        return Decision(True)
    failed = [g for g in GATE_NAMES if verdicts.get(g) is False]
    if failed or missing:
        parts = [f"failed gates: {', '.join(failed)}"] if failed else []
        parts += [f"gates not evaluated: {', '.join(missing)}"] if missing else []
        return Decision(
            False, skip_reason=f"Production unchanged for {model_name} v{version}: " + "; ".join(parts)
        )
    request = dg.RunRequest(
        run_key=f"promote-{model_name}-v{version}",
        run_config={
            "ops": {
                "production_model": {
                    "config": {
                        "version": version,
                        "actor": SENSOR_ACTOR,
                        "reason": f"all {len(GATE_NAMES)} gates passed in run {entry.run_id}",
                    }
                }
            }
        },
        tags={"market_master/model_version": version},
    )
    return Decision(False, run_request=request)


@dg.multi_asset_sensor(
    monitored_assets=[CHAMPION],
    job=promote_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def promote_champion_when_gates_pass(context: dg.MultiAssetSensorEvaluationContext):
    """When champion_model is materialized and ALL its gate checks passed, request promote_job."""
    skips, requests = [], []
    for record in context.materialization_records_for_key(CHAMPION, limit=25):
        decision = decide(context.instance, record.event_log_entry)
        if decision.pending:
            skips.append(
                f"gates of run {record.event_log_entry.run_id} still running: decided on a later tick"
            )
            break
        context.advance_cursor({CHAMPION: record})
        if decision.run_request is not None:
            requests.append(decision.run_request)
        else:
            context.log.info(decision.skip_reason)
            skips.append(decision.skip_reason)
    # Dagster takes either run requests or one skip reason per tick; skipped ones are logged above.
    if requests:
        yield from requests
    elif skips:
        yield dg.SkipReason(" | ".join(skips))
