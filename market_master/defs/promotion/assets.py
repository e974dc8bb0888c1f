"""production_model: the ONE place the `Production` alias moves (the sensor's promotions, the CLI's
promote and rollback all run promote_job), so every move is a materialization with its actor and reason."""

import os
import shutil
import signal
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from market_master.defs.promotion.verdicts import CHAMPION, champion_run_of_version, gate_verdicts
from market_master.defs.resources import MlflowResource, StorageResource
from market_master.lib.aliases import PRODUCTION_ALIAS
from market_master.lib.mlflow_adapter import RegistryError, load_model_dir, read_local_copy_info
from market_master.lib.mlflow_adapter.local_copy import swap_dirs
from market_master.lib.storage import AssetSlices


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


def fault_point(name: str) -> None:
    """Kill this process at a named step when MARKET_MASTER_FAULT_AT says so: how the crash-safety test
    interrupts a promotion for real (kill -9, no cleanup). A no-op otherwise."""
    if os.environ.get("MARKET_MASTER_FAULT_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _verified_copy(adapter, version: str, features: pd.DataFrame, aside: Path) -> Path:
    """Load `version` from the registry and predict real feature rows, export it ASIDE (not over the live
    copy) and load + predict again from that directory: a truncated or broken model fails here, before
    anything the API reads changes."""
    from_registry = adapter.load_model(version)
    from_disk = load_model_dir(adapter.export_local_copy(aside, version=version))
    for where, model in (("the registry", from_registry), (str(aside), from_disk)):
        proba = model.predict_proba(features)
        if proba.shape != (len(features), 5) or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
            raise dg.Failure(
                f"v{version} loaded from {where} predicts invalid probabilities (shape {proba.shape})",
                allow_retries=False,
            )
    return aside


def _sample_rows(feature_table: AssetSlices) -> pd.DataFrame:
    start, end = feature_table.last_sessions(1)
    rows = feature_table.read_between(start, end)
    rows = rows[~rows["warmup"]].tail(5)
    if rows.empty:
        raise dg.Failure("feature_table has no non-warm-up rows to verify the model on", allow_retries=False)
    return rows


@dg.asset(group_name="promotion", deps=[CHAMPION], kinds={"mlflow"})
def production_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    mlflow: MlflowResource,
    storage: StorageResource,
    feature_table: AssetSlices,
) -> dg.MaterializeResult:
    """Moves `Production` (to a gated champion version, or back by rollback) and refreshes the API's local
    copy, in an order that a kill at any point leaves the old state or the new one:
    verify (gates; the version loads and predicts, from the registry and from its exported copy) ->
    write aside (`models/production.next`) -> switch (the registry alias: the commit point; its history
    record is written just before and ignored if the alias never moved) -> swap the local copy in (two
    renames) -> record (this materialization). A leftover from an interrupted run is reconciled first.
    A version whose gates failed moves only with `force`, recorded as forced."""
    adapter, name = mlflow.adapter(), mlflow.model_name
    live_copy, aside = (
        storage.root_path() / "models" / "production",
        storage.root_path() / "models" / "production.next",
    )
    reconciled = _reconcile_local_copy(adapter, live_copy, aside)
    current = adapter.alias_version(PRODUCTION_ALIAS)
    forced, gates = False, "rollback: the gates were judged when that version was first promoted"
    if config.rollback:
        to_version = adapter.rollback_target(PRODUCTION_ALIAS)
    elif not config.version:
        raise dg.Failure("production_model: set `version` (or `rollback: true`)", allow_retries=False)
    else:
        to_version = str(config.version)
        passed, gates = _gate_summary(context.instance, name, to_version)
        if not passed and not config.force:
            raise dg.Failure(
                f"{name} v{to_version} did not pass its gates ({gates}): Production stays at "
                f"{current or '(unset)'}; promote with force to override (recorded as forced)",
                allow_retries=False,
            )
        forced = not passed
    _verified_copy(adapter, to_version, _sample_rows(feature_table), aside)
    fault_point("before_alias_move")
    moved = current != to_version
    if config.rollback:
        adapter.rollback(actor=config.actor, reason=config.reason)
    elif moved:
        reason = f"FORCED past failed gates: {config.reason}" if forced else config.reason
        adapter.promote(to_version, actor=config.actor, reason=reason)
    fault_point("after_alias_move")
    swap_dirs(aside, live_copy)
    context.log.info(f"{name}@{PRODUCTION_ALIAS}: {current} -> {to_version} ({config.reason})")
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "alias": PRODUCTION_ALIAS,
            "kind": "rollback" if config.rollback else "promote",
            "from_version": current or "none",
            "to_version": str(to_version),
            "moved": moved,
            "forced": forced,
            "gates": gates,
            "actor": config.actor,
            "reason": config.reason,
            "reconciled_interrupted_move": reconciled,
            "local_fallback_copy": dg.MetadataValue.path(str(live_copy / "model")),
        }
    )


def _reconcile_local_copy(adapter, live_copy: Path, aside: Path) -> str:
    """After an interrupted move: drop a copy left aside, and if the alias moved but the local copy did
    not follow, export the alias's version now. Returns what was done (for the metadata)."""
    done = []
    stale = [aside, *live_copy.parent.glob(f".{live_copy.name}.old-*")] if live_copy.parent.exists() else []
    for leftover in (p for p in stale if p.exists()):
        shutil.rmtree(leftover, ignore_errors=True)
        done.append(f"removed {leftover.name} left by an interrupted run")
    version = adapter.alias_version(PRODUCTION_ALIAS)
    try:
        copied = read_local_copy_info(live_copy).version
    except RegistryError:
        copied = None
    if version is not None and copied != version:
        adapter.export_local_copy(live_copy, version=version)
        done.append(f"local copy was v{copied}, alias v{version}: re-exported v{version}")
    return "; ".join(done) or "nothing to reconcile"
