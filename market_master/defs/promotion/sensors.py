"""The asset sensor that promotes a gated champion: it only decides and yields a RunRequest; the registry
write happens in the run it launches (production_model), so it is logged and retryable."""

import time

import dagster as dg

from market_master.defs.promotion.jobs import promote_job
from market_master.defs.training.checks import GATE_NAMES

WAIT_FOR_CHECKS_S = 20.0


def gate_evaluations(instance: dg.DagsterInstance, run_id: str) -> dict:
    """{gate name: AssetCheckEvaluation} for the champion_model checks evaluated in `run_id`."""
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=1000
    ).records
    evaluations = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.asset_key == dg.AssetKey("champion_model"):
            evaluations[evaluation.check_name] = evaluation
    return evaluations


def gate_verdicts(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    """{gate name: passed} for the champion_model checks evaluated in `run_id`."""
    return {name: bool(e.passed) for name, e in gate_evaluations(instance, run_id).items()}


def _wait_for_verdicts(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    """Checks run as their own steps right after the materialization: wait (bounded) for the run to finish."""
    deadline = time.monotonic() + WAIT_FOR_CHECKS_S
    while True:
        verdicts = gate_verdicts(instance, run_id)
        run = instance.get_run_by_id(run_id)
        if set(GATE_NAMES) <= set(verdicts) or run is None or run.is_finished or time.monotonic() > deadline:
            return verdicts
        time.sleep(1.0)


@dg.asset_sensor(
    asset_key=dg.AssetKey("champion_model"),
    job=promote_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def promote_champion_when_gates_pass(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """When champion_model is materialized and ALL its gate checks passed, request promote_job."""
    materialization = asset_event.asset_materialization
    metadata = materialization.metadata if materialization else {}
    if "model_version" not in metadata:
        return dg.SkipReason("champion_model materialization carries no model_version: nothing to promote")
    version = str(metadata["model_version"].value)
    model_name = str(metadata["model_name"].value)
    verdicts = _wait_for_verdicts(context.instance, asset_event.run_id)
    missing = [g for g in GATE_NAMES if g not in verdicts]
    failed = [g for g in GATE_NAMES if verdicts.get(g) is False]
    if failed or missing:
        return dg.SkipReason(
            f"Production unchanged for {model_name} v{version}: "
            + (f"failed gates: {', '.join(failed)}" if failed else "")
            + ("; " if failed and missing else "")
            + (f"gates not evaluated: {', '.join(missing)}" if missing else "")
        )
    return dg.RunRequest(
        run_key=f"promote-{model_name}-v{version}",
        run_config={
            "ops": {
                "production_model": {
                    "config": {
                        "version": version,
                        "actor": "dagster:promote_champion_when_gates_pass",
                        "reason": f"all {len(GATE_NAMES)} gates passed in run {asset_event.run_id}",
                    }
                }
            }
        },
        tags={"market_master/model_version": version},
    )
