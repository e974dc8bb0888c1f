"""The gates: blocking asset checks on champion_model, each a predicate with its numbers in metadata.

The sensor in defs/promotion promotes a champion only when every gate in GATE_NAMES passed in the run
that materialized it.
"""

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from market_master.defs.resources import MlflowResource, StorageResource
from market_master.defs.training.assets import ChampionRecord
from market_master.defs.windows import latest_window
from market_master.lib import gates, registry
from market_master.lib.features import FEATURE_COLUMNS
from market_master.lib.model import load_component_model
from market_master.lib.training import macro_f1

GATE_NAMES = (
    "champion_beats_baseline",
    "champion_has_directional_skill",
    "champion_not_worse_than_production",
    "feature_drift_is_below_limit",
    "latency_within_slo",
    "model_loads_and_predicts",
)


class GateSettings(dg.ConfigurableResource):
    """Gate thresholds (defaults documented in docs/gates_and_promotion.md)."""

    baseline_margin: float = Field(
        default=0.01, description="macro-F1 the champion must add over the best baseline"
    )
    min_z: float = Field(default=2.0, description="... and that margin in bootstrap standard errors")
    min_ic_z: float = Field(default=2.0, description="directional skill: information-coefficient z")
    production_tolerance: float = Field(
        default=-0.005, description="champion - Production macro-F1 must be >= this"
    )
    psi_threshold: float = 0.2
    max_drifted_share: float = 0.5
    drift_window_days: int = Field(
        default=5, description="latest trading days compared with the training window"
    )
    latency_slo_ms: float = 5.0


def _result(gate: gates.GateResult) -> dg.AssetCheckResult:
    meta = {k: v for k, v in gate.metadata.items() if isinstance(v, int | float | str | bool)}
    other = {k: v for k, v in gate.metadata.items() if k not in meta}
    if other:
        meta["details"] = dg.MetadataValue.json(_jsonable(other))
    meta["reason"] = gate.reason
    return dg.AssetCheckResult(passed=bool(gate.passed), metadata=meta)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj if isinstance(obj, int | float | str | bool) or obj is None else str(obj)


def _judged(record: ChampionRecord) -> tuple[str, dict, dict, float]:
    """(segment, champion metrics, best baseline metrics, bootstrap SE of the margin) on the held-out TEST
    segment: the champion was picked among the candidates on validation, so judging it there would be
    biased upward. Without a test segment (test_fraction=0) the validation numbers, labelled as such."""
    r = record.result
    if r.has_test:
        return (
            "test",
            r.test_metrics[r.champion_name],
            r.test_metrics[r.test_best_baseline_name],
            float(r.test_margin_se),
        )
    table = r.table()
    return (
        "validation",
        table.loc[r.champion_name].to_dict(),
        table.loc[r.best_baseline_name].to_dict(),
        float(r.margin_se),
    )


@dg.asset_check(
    asset="champion_model",
    blocking=True,
    description="macro-F1 beats the best baseline on the held-out test segment",
)
def champion_beats_baseline(
    champion_model: ChampionRecord, gate_settings: GateSettings
) -> dg.AssetCheckResult:
    segment, champ, base, se = _judged(champion_model)
    gate = gates.champion_beats_baseline(
        float(champ["macro_f1"]),
        float(base["macro_f1"]),
        margin=gate_settings.baseline_margin,
        bootstrap_se=se,
        min_z=gate_settings.min_z,
    )
    gate.metadata.update({"segment": segment, "best_baseline": _best_baseline_name(champion_model, segment)})
    return _result(gate)


def _best_baseline_name(record: ChampionRecord, segment: str) -> str:
    r = record.result
    return str(r.test_best_baseline_name if segment == "test" else r.best_baseline_name)


@dg.asset_check(
    asset="champion_model",
    blocking=True,
    description="expected score predicts the sign of the move (hour-clustered IC)",
)
def champion_has_directional_skill(
    champion_model: ChampionRecord, gate_settings: GateSettings
) -> dg.AssetCheckResult:
    segment, champ, _, _ = _judged(champion_model)
    # rows of one hour share the market factor: the z is computed over per-hour ICs, not over rows
    gate = gates.champion_has_directional_skill(
        float(champ["ic_hour_mean"]), float(champ["ic_hour_z"]), min_z=gate_settings.min_ic_z
    )
    gate.metadata.update(
        {"segment": segment, "ic_rows": float(champ["ic"]), "ic_rows_z": float(champ["ic_z"])}
    )
    return _result(gate)


def _segment_features(storage: StorageResource, record: ChampionRecord) -> pd.DataFrame:
    """Feature rows (with labels) of the segment the champion is judged on."""
    r = record.result
    v = r.test if r.has_test else r.validation
    feats = storage.partitions().read_between("feature_table", v["timestamp"].min(), v["timestamp"].max())
    return v[["symbol", "timestamp", "label"]].merge(feats, on=["symbol", "timestamp"], how="left")


@dg.asset_check(
    asset="champion_model", blocking=True, description="not worse than Production on the same window"
)
def champion_not_worse_than_production(
    champion_model: ChampionRecord,
    mlflow: MlflowResource,
    storage: StorageResource,
    gate_settings: GateSettings,
) -> dg.AssetCheckResult:
    prod_version = registry.get_alias_version(mlflow.uri(), mlflow.model_name, "Production")
    segment, champ, _, _ = _judged(champion_model)
    champ_f1 = float(champ["macro_f1"])
    prod_f1 = None
    meta_extra: dict = {"segment": segment}
    if prod_version is not None and prod_version != champion_model.version:
        frame = _segment_features(storage, champion_model)
        prod = load_component_model(f"models:/{mlflow.model_name}/{prod_version}", mlflow.uri())
        pred = prod.decide(prod.predict_proba(frame))
        prod_f1 = macro_f1(frame["label"].to_numpy(), pred)
        meta_extra |= {"production_version": prod_version, "rows": len(frame)}
    gate = gates.champion_not_worse_than_production(
        champ_f1, prod_f1, tolerance=gate_settings.production_tolerance
    )
    gate.metadata.update(meta_extra)
    return _result(gate)


@dg.asset_check(
    asset="champion_model", blocking=True, description="PSI drift: training window vs latest window"
)
def feature_drift_is_below_limit(
    champion_model: ChampionRecord, storage: StorageResource, gate_settings: GateSettings
) -> dg.AssetCheckResult:
    split = champion_model.result.split
    store = storage.partitions()
    reference = store.read_between("feature_table", split.train_start, split.train_end)
    start, end = latest_window(store, "feature_table", gate_settings.drift_window_days)
    current = store.read_between("feature_table", start, end)
    reference, current = reference[~reference["warmup"]], current[~current["warmup"]]
    gate = gates.feature_drift_below_limit(
        reference,
        current,
        list(FEATURE_COLUMNS),
        psi_threshold=gate_settings.psi_threshold,
        max_drifted_share=gate_settings.max_drifted_share,
    )
    gate.metadata.update(
        {
            "reference_rows": len(reference),
            "current_rows": len(current),
            "current_window": f"{start} .. {end}",
        }
    )
    return _result(gate)


@dg.asset_check(asset="champion_model", blocking=True, description="single-row predict p99 under the SLO")
def latency_within_slo(
    champion_model: ChampionRecord, storage: StorageResource, gate_settings: GateSettings
) -> dg.AssetCheckResult:
    model = champion_model.result.champion
    frame = _segment_features(storage, champion_model).head(200)
    rows = [frame.iloc[[i]] for i in range(len(frame))]
    state = {"i": 0}

    def predict_one():
        state["i"] = (state["i"] + 1) % len(rows)
        return model.predict_proba(rows[state["i"]])

    return _result(gates.latency_within_slo(predict_one, slo_ms=gate_settings.latency_slo_ms))


@dg.asset_check(asset="champion_model", blocking=True, description="the registered model loads and predicts")
def model_loads_and_predicts(
    champion_model: ChampionRecord, storage: StorageResource, mlflow: MlflowResource
) -> dg.AssetCheckResult:
    frame = _segment_features(storage, champion_model).head(5)
    example = frame[["symbol", *FEATURE_COLUMNS]]
    # the exact version the sensor would promote (an alias like @Staging can move under a concurrent retrain)
    uri = f"models:/{champion_model.model_name}/{champion_model.version}"
    return _result(gates.model_loads_and_predicts(uri, example, tracking_uri=mlflow.uri()))


GATE_CHECKS = [
    champion_beats_baseline,
    champion_has_directional_skill,
    champion_not_worse_than_production,
    feature_drift_is_below_limit,
    latency_within_slo,
    model_loads_and_predicts,
]
