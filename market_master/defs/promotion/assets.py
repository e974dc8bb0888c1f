"""production_model: the ONE place the `Production` alias moves (the sensor's promotions, the CLI's
promote and rollback all run promote_job), so every move is a materialization with its actor and reason."""

import dagster as dg
from pydantic import Field

from market_master.defs.promotion.verdicts import CHAMPION, champion_run_of_version, gate_verdicts
from market_master.defs.resources import MlflowResource, StorageResource
from market_master.lib.aliases import PRODUCTION_ALIAS


class PromotionConfig(dg.Config):
    version: str | None = Field(
        default=None, description="model version to point Production at (unset with rollback)"
    )
    rollback: bool = Field(
        default=False, description="move Production back to the version live before the current one"
    )
    force: bool = Field(
        default=False, description="promote although the version's gates failed (recorded as forced)"
    )
    actor: str = Field(default="dagster:promote_champion_when_gates_pass", description="who moves the alias")
    reason: str = Field(description="why (recorded in the registry and in this materialization)")


def _gate_summary(instance: dg.DagsterInstance, model_name: str, version: str) -> tuple[bool, str]:
    """(all gates passed, one line) for the champion run that registered `version`."""
    run_id = champion_run_of_version(instance, model_name, version)
    if run_id is None:
        return False, f"no champion_model materialization registered v{version}: its gates never ran"
    verdicts = gate_verdicts(instance, run_id)
    return verdicts.all_passed, verdicts.summary()


@dg.asset(group_name="promotion", deps=[CHAMPION], kinds={"mlflow"})
def production_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    mlflow: MlflowResource,
    storage: StorageResource,
) -> dg.MaterializeResult:
    """Moves `Production` (to a gated champion version, or back by rollback), records the move, refreshes
    the API's local copy. A version whose gates failed moves only with `force`, recorded as forced."""
    adapter, name = mlflow.adapter(), mlflow.model_name
    current = adapter.alias_version(PRODUCTION_ALIAS)
    forced, gates = False, "rollback: the gates were judged when that version was first promoted"
    if config.rollback:
        move = adapter.rollback(actor=config.actor, reason=config.reason)
        moved, from_version, to_version = True, move.from_version, move.to_version
    else:
        if not config.version:
            raise dg.Failure("production_model: set `version` (or `rollback: true`)", allow_retries=False)
        to_version = str(config.version)
        passed, gates = _gate_summary(context.instance, name, to_version)
        if not passed and not config.force:
            raise dg.Failure(
                f"{name} v{to_version} did not pass its gates ({gates}): Production stays at "
                f"{current or '(unset)'}; promote with force to override (recorded as forced)",
                allow_retries=False,
            )
        forced = not passed
        reason = f"FORCED past failed gates: {config.reason}" if forced else config.reason
        if current == to_version:
            context.log.info(f"{name}@{PRODUCTION_ALIAS} is already version {current}: nothing to move")
            moved, from_version = False, current
        else:
            move = adapter.promote(to_version, actor=config.actor, reason=reason)
            moved, from_version = True, move.from_version
    context.log.info(f"{name}@{PRODUCTION_ALIAS}: {from_version} -> {to_version} ({config.reason})")
    copy_dir = adapter.export_local_copy(
        storage.root_path() / "models" / "production", alias=PRODUCTION_ALIAS
    )
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "alias": PRODUCTION_ALIAS,
            "kind": "rollback" if config.rollback else "promote",
            "from_version": from_version or "none",
            "to_version": str(to_version),
            "moved": moved,
            "forced": forced,
            "gates": gates,
            "actor": config.actor,
            "reason": config.reason,
            "local_fallback_copy": dg.MetadataValue.path(str(copy_dir)),
        }
    )
