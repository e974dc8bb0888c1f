"""The gates: blocking asset checks on champion_model, each a predicate with its numbers in metadata.

The sensor in defs/promotion promotes a champion only when every gate in GATE_NAMES passed in the run
that materialized it.
"""

import functools
import inspect

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from market_master.defs.features.assets import feature_table as feature_table_asset
from market_master.defs.resources import MlflowResource
from market_master.defs.training.assets import ChampionRecord
from market_master.defs.training.assets import champion_model as champion_asset
from market_master.lib import gates
from market_master.lib.aliases import PRODUCTION_ALIAS
from market_master.lib.evaluation import macro_f1
from market_master.lib.features import FEATURE_COLUMNS
from market_master.lib.mlflow_adapter import MlflowAdapter
from market_master.lib.model_status import record_gate_verdict, verdict_from_check
from market_master.lib.psi import CURRENT_WINDOW_SESSIONS, DEFAULT_PSI_THRESHOLD, DRIFTED_SHARE_LIMIT
from market_master.lib.storage import AssetSlices

GATE_NAMES = (
    "champion_beats_baseline",
    "champion_has_directional_skill",
    "champion_not_worse_than_production",
    "feature_drift_is_below_limit",
    "latency_within_slo",
    "model_loads_and_predicts",
)


# Gates that score rows of the judged segment read them from the feature table: a declared input.
WITH_FEATURES = {"feature_table": dg.AssetIn(key=feature_table_asset.key)}


def gate(description: str, reads_features: bool = False):
    """A blocking check on champion_model (a promotion gate); `reads_features`: it scores rows of the
    judged segment, read from feature_table (a declared input). Every gate's verdict is also recorded on
    the judged model version in the registry (`recording_verdict`)."""

    def decorate(fn):
        return dg.asset_check(
            asset=champion_asset,
            blocking=True,
            additional_ins=WITH_FEATURES if reads_features else None,
            description=description,
        )(recording_verdict(fn))

    return decorate


def recording_verdict(fn):
    """The ONE hook that makes a gate's verdict readable without Dagster: after `fn` (a gate taking
    `champion_model: ChampionRecord`) returns its AssetCheckResult, the same passed flag, reason and
    scalar metadata are written as the tag `gate.<name>` on the judged version, through the MLflow
    adapter (lib/model_status.py explains the choice). The wrapper asks Dagster for `context` and the
    `mlflow` resource when the gate itself does not; a failed registry write fails the check (no
    verdict is silently lost)."""
    sig = inspect.signature(fn)
    own = set(sig.parameters)
    params = list(sig.parameters.values())
    if "context" not in own:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params.insert(0, inspect.Parameter("context", kind, annotation=dg.AssetCheckExecutionContext))
    if "mlflow" not in own:
        params.append(inspect.Parameter("mlflow", inspect.Parameter.KEYWORD_ONLY, annotation=MlflowResource))

    @functools.wraps(fn)
    def wrapper(context, **kwargs):
        mlflow = kwargs["mlflow"] if "mlflow" in own else kwargs.pop("mlflow")
        result = fn(context, **kwargs) if "context" in own else fn(**kwargs)
        record: ChampionRecord = kwargs["champion_model"]
        verdict = verdict_from_check(
            fn.__name__, result.passed, result.metadata, context.op_execution_context.run_id
        )
        adapter = mlflow.adapter()
        if adapter.model_name != record.model_name:
            adapter = MlflowAdapter(adapter.tracking_uri, adapter.experiment_name, record.model_name)
        record_gate_verdict(adapter, record.version, verdict, GATE_NAMES)
        return result

    wrapper.__signature__ = sig.replace(parameters=params)
    return wrapper


class GateSettings(dg.ConfigurableResource):
    """Gate thresholds (defaults documented in docs/gates_and_promotion.md)."""

    baseline_margin: float = Field(
        default=gates.BASELINE_MARGIN, description="macro-F1 the champion must add over the best baseline"
    )
    min_z: float = Field(default=gates.MIN_Z, description="... and that margin in bootstrap standard errors")
    min_ic_z: float = Field(
        default=gates.MIN_IC_Z, description="directional skill: information-coefficient z"
    )
    production_tolerance: float = Field(
        default=gates.PRODUCTION_TOLERANCE, description="champion - Production macro-F1 must be >= this"
    )
    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    max_drifted_share: float = DRIFTED_SHARE_LIMIT
    drift_window_days: int = Field(
        default=CURRENT_WINDOW_SESSIONS, description="latest trading days compared with the training window"
    )
    latency_slo_ms: float = gates.LATENCY_SLO_MS


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


@gate("macro-F1 beats the best baseline on the held-out test segment")
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


@gate("expected score predicts the sign of the move (hour-clustered IC)")
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


def _segment_features(feature_table: AssetSlices, record: ChampionRecord) -> pd.DataFrame:
    """Feature rows (with labels) of the segment the champion is judged on."""
    r = record.result
    v = r.test if r.has_test else r.validation
    feats = feature_table.read_between(v["timestamp"].min(), v["timestamp"].max())
    return v[["symbol", "timestamp", "label"]].merge(feats, on=["symbol", "timestamp"], how="left")


@gate("not worse than Production on the same window", reads_features=True)
def champion_not_worse_than_production(
    champion_model: ChampionRecord,
    mlflow: MlflowResource,
    feature_table: AssetSlices,
    gate_settings: GateSettings,
) -> dg.AssetCheckResult:
    prod_version = mlflow.adapter().alias_version(PRODUCTION_ALIAS)
    segment, champ, _, _ = _judged(champion_model)
    champ_f1 = float(champ["macro_f1"])
    prod_f1 = None
    meta_extra: dict = {"segment": segment}
    if prod_version is not None and prod_version != champion_model.version:
        frame = _segment_features(feature_table, champion_model)
        prod = mlflow.adapter().load_model(prod_version)
        pred = prod.class_indices_from_proba(prod.predict_proba(frame))
        prod_f1 = macro_f1(frame["label"].to_numpy(), pred)
        meta_extra |= {"production_version": prod_version, "rows": len(frame)}
    gate = gates.champion_not_worse_than_production(
        champ_f1, prod_f1, tolerance=gate_settings.production_tolerance
    )
    gate.metadata.update(meta_extra)
    return _result(gate)


@gate("PSI drift: training window vs latest window", reads_features=True)
def feature_drift_is_below_limit(
    champion_model: ChampionRecord, feature_table: AssetSlices, gate_settings: GateSettings
) -> dg.AssetCheckResult:
    split = champion_model.result.split
    reference = feature_table.read_between(split.train_start, split.train_end)
    start, end = feature_table.last_sessions(gate_settings.drift_window_days)
    current = feature_table.read_between(start, end)
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


@gate("single-row predict p99 under the SLO", reads_features=True)
def latency_within_slo(
    champion_model: ChampionRecord, feature_table: AssetSlices, gate_settings: GateSettings
) -> dg.AssetCheckResult:
    model = champion_model.result.champion
    frame = _segment_features(feature_table, champion_model).head(200)
    rows = [frame.iloc[[i]] for i in range(len(frame))]
    return _result(
        gates.latency_within_slo(
            lambda i: model.predict_proba(rows[i]), slo_ms=gate_settings.latency_slo_ms, n=len(rows)
        )
    )


@gate("the registered model loads and predicts", reads_features=True)
def model_loads_and_predicts(
    champion_model: ChampionRecord, feature_table: AssetSlices, mlflow: MlflowResource
) -> dg.AssetCheckResult:
    frame = _segment_features(feature_table, champion_model).head(5)
    example = frame[["symbol", *FEATURE_COLUMNS]]
    # the exact version the sensor would promote (an alias like @Staging can move under a concurrent retrain)
    uri = f"models:/{champion_model.model_name}/{champion_model.version}"
    return _result(gates.model_loads_and_predicts(uri, example, adapter=mlflow.adapter()))


GATE_CHECKS = [
    champion_beats_baseline,
    champion_has_directional_skill,
    champion_not_worse_than_production,
    feature_drift_is_below_limit,
    latency_within_slo,
    model_loads_and_predicts,
]
