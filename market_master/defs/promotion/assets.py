"""production_model: the registry write that moves the `Production` alias (requested by the sensor)."""

import dagster as dg
from pydantic import Field

from market_master.defs.resources import MlflowResource, StorageResource
from market_master.lib import registry

PRODUCTION_ALIAS = "Production"


class PromotionConfig(dg.Config):
    version: str = Field(description="model version to point the Production alias at")
    actor: str = Field(
        default="dagster:promote_champion_when_gates_pass", description="who/what moves the alias"
    )
    reason: str = Field(default="all gate checks passed", description="why (recorded in the registry)")


@dg.asset(group_name="promotion", deps=["champion_model"], kinds={"mlflow"})
def production_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    mlflow: MlflowResource,
    storage: StorageResource,
) -> dg.MaterializeResult:
    """Moves `Production` to the gated champion version, records the move, refreshes the API's local copy."""
    uri, name = mlflow.uri(), mlflow.model_name
    current = registry.get_alias_version(uri, name, PRODUCTION_ALIAS)
    if current == str(config.version):
        context.log.info(f"{name}@{PRODUCTION_ALIAS} is already version {current}: nothing to move")
        moved, from_version = False, current
    else:
        move = registry.promote(uri, name, config.version, actor=config.actor, reason=config.reason)
        moved, from_version = True, move.from_version
        context.log.info(
            f"{name}@{PRODUCTION_ALIAS}: {move.from_version} -> {move.to_version} ({config.reason})"
        )
    copy_dir = registry.export_local_copy(
        f"models:/{name}@{PRODUCTION_ALIAS}", storage.root_path() / "models" / "production", tracking_uri=uri
    )
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "alias": PRODUCTION_ALIAS,
            "from_version": from_version or "none",
            "to_version": str(config.version),
            "moved": moved,
            "actor": config.actor,
            "reason": config.reason,
            "local_fallback_copy": dg.MetadataValue.path(str(copy_dir)),
        }
    )
