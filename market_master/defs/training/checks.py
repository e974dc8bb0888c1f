"""The gates: blocking asset checks on champion_model, each a predicate with its numbers in metadata.

The skill gates judge the walk-forward out-of-sample hours (walk_forward_history: hours that chose
nothing), and the product's own question first: does the traded signal (the WSS decision on /NQ) time the
index proxy, and does it pay after costs? Component skill stays a gate; the cross-sectional IC is a
diagnostic in its metadata. The sensor in defs/promotion promotes a champion only when every gate in
GATE_NAMES passed in the run that materialized it.
"""

import functools
import inspect

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from market_master.defs.features.assets import feature_table as feature_table_asset
from market_master.defs.ingestion.assets import hourly_bars as hourly_bars_asset
from market_master.defs.ingestion.proxy import index_proxy_bars as index_proxy_bars_asset
from market_master.defs.resources import MarketDataResource, MlflowResource
from market_master.defs.training.assets import ChampionRecord
from market_master.defs.training.assets import champion_model as champion_asset
from market_master.defs.training.walk_forward import WalkForwardHistory
from market_master.defs.training.walk_forward import walk_forward_history as walk_forward_asset
from market_master.lib import gates, oos_evaluation
from market_master.lib.aliases import PRODUCTION_ALIAS
from market_master.lib.evaluation import macro_f1
from market_master.lib.mlflow_adapter import MlflowAdapter
from market_master.lib.model_status import record_gate_verdict, verdict_from_check
from market_master.lib.prediction import ModelInfo
from market_master.lib.psi import CURRENT_WINDOW_SESSIONS, DEFAULT_PSI_THRESHOLD, DRIFTED_SHARE_LIMIT
from market_master.lib.storage import AssetSlices

GATE_NAMES = (
    "champion_beats_baseline",
    "signal_has_index_timing_skill",
    "signal_beats_flat_and_buy_and_hold",
    "champion_not_worse_than_production",
    "feature_drift_is_below_limit",
    "hourly_batch_within_slo",
    "api_predict_within_slo",
    "model_loads_and_predicts",
)


# What gates read besides the champion: declared inputs, so the lineage shows them.
FEATURES = {"feature_table": dg.AssetIn(key=feature_table_asset.key)}
HISTORY = {"walk_forward_history": dg.AssetIn(key=walk_forward_asset.key)}


def gate(description: str, reads: dict | None = None):
    """A blocking check on champion_model (a promotion gate) with its extra declared inputs (`reads`).
    Every gate's verdict is also recorded on the judged model version in the registry
    (`recording_verdict`)."""

    def decorate(fn):
        return dg.asset_check(
            asset=champion_asset,
            blocking=True,
            additional_ins=reads,
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
    min_timing_z: float = Field(
        default=gates.MIN_TIMING_Z, description="index timing: day-clustered z of the WSS time-series IC"
    )
    min_dsr: float = Field(default=gates.MIN_DSR, description="index economics: deflated Sharpe ratio")
    production_tolerance: float = Field(
        default=gates.PRODUCTION_TOLERANCE, description="champion - Production macro-F1 must be >= this"
    )
    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    max_drifted_share: float = DRIFTED_SHARE_LIMIT
    drift_window_days: int = Field(
        default=CURRENT_WINDOW_SESSIONS, description="latest trading days compared with the training window"
    )
    hourly_batch_slo_ms: float = Field(
        default=gates.HOURLY_BATCH_SLO_MS,
        description="hourly path: CPU ms to predict every constituent of one hour (predict_hours), p99",
    )
    api_predict_slo_ms: float = Field(
        default=gates.API_PREDICT_SLO_MS, description="API path: CPU ms of one whole POST /predict, p99"
    )
    latency_hours: int = Field(default=20, description="hours the hourly-batch gate times")
    latency_requests: int = Field(default=100, description="POST /predict requests the API gate times")


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


@gate("macro-F1 beats the best baseline on the walk-forward out-of-sample rows", reads=HISTORY)
def champion_beats_baseline(
    champion_model: ChampionRecord, walk_forward_history: WalkForwardHistory, gate_settings: GateSettings
) -> dg.AssetCheckResult:
    skill = oos_evaluation.component_skill(
        walk_forward_history.result, seed=walk_forward_history.training.seed
    )
    gate = gates.champion_beats_baseline(
        skill["macro_f1"],
        skill["best_baseline_f1"],
        margin=gate_settings.baseline_margin,
        bootstrap_se=skill["margin_se"],
        min_z=gate_settings.min_z,
    )
    gate.metadata.update(
        {
            "judged_on": f"{skill['rows']} out-of-sample rows, {skill['hours']} hours",
            "best_baseline": skill["best_baseline"],
            "cross_sectional_ic (diagnostic)": skill["cross_sectional_ic"],
            "cross_sectional_ic_z (diagnostic)": skill["cross_sectional_ic_z"],
        }
    )
    return _result(gate)


@gate("the WSS times the index proxy's next-hour return (day-clustered time-series IC)", reads=HISTORY)
def signal_has_index_timing_skill(
    champion_model: ChampionRecord, walk_forward_history: WalkForwardHistory, gate_settings: GateSettings
) -> dg.AssetCheckResult:
    timing = oos_evaluation.index_timing(walk_forward_history.result, walk_forward_history.proxy.forward)
    gate = gates.signal_has_index_timing_skill(timing, min_z=gate_settings.min_timing_z)
    gate.metadata["proxy"] = walk_forward_history.proxy.note
    return _result(gate)


@gate("the WSS decision beats flat (DSR) and buy-and-hold after costs, out of sample", reads=HISTORY)
def signal_beats_flat_and_buy_and_hold(
    champion_model: ChampionRecord, walk_forward_history: WalkForwardHistory, gate_settings: GateSettings
) -> dg.AssetCheckResult:
    report = oos_evaluation.index_economics(walk_forward_history.result, walk_forward_history.proxy.forward)
    gate = gates.signal_beats_flat_and_buy_and_hold(report, min_dsr=gate_settings.min_dsr)
    gate.metadata["proxy"] = walk_forward_history.proxy.note
    return _result(gate)


def _comparable_rows(history: WalkForwardHistory, after: pd.Timestamp) -> pd.DataFrame:
    """Scored OOS rows after ``after``: the fold models never trained on them (walk-forward), and a model
    whose validation window ended at ``after`` never saw them either."""
    rows = history.result.scored_rows()
    return rows[rows["hour"] > after].reset_index(drop=True)


@gate(
    "not worse than Production on hours neither model trained or was selected on",
    reads={**FEATURES, **HISTORY},
)
def champion_not_worse_than_production(
    champion_model: ChampionRecord,
    mlflow: MlflowResource,
    feature_table: AssetSlices,
    walk_forward_history: WalkForwardHistory,
    gate_settings: GateSettings,
) -> dg.AssetCheckResult:
    adapter = mlflow.adapter()
    prod_version = adapter.alias_version(PRODUCTION_ALIAS)
    if prod_version is None or prod_version == champion_model.version:
        return _result(gates.champion_not_worse_than_production(None, None))
    window = adapter.version_tags(prod_version).get("validation_window", "")
    if ".." not in window:
        raise dg.Failure(f"Production v{prod_version} has no validation_window tag (got {window!r})")
    after = pd.Timestamp(window.split("..", 1)[1])
    rows = _comparable_rows(walk_forward_history, after)
    meta_extra: dict = {"production_version": prod_version, "production_validation_end": str(after)}
    champ_f1 = prod_f1 = None
    n_hours = int(rows["hour"].nunique()) if len(rows) else 0
    if n_hours >= gates.MIN_COMPARABLE_HOURS:
        feats = feature_table.read_between(rows["hour"].min(), rows["hour"].max())
        frame = rows[["symbol", "hour", "label", "pred"]].merge(
            feats.rename(columns={"timestamp": "hour"}), on=["symbol", "hour"], how="left"
        )
        prod = adapter.load_model(prod_version)
        prod_pred = prod.class_indices_from_proba(prod.predict_proba(frame))
        y = frame["label"].to_numpy(int)
        champ_f1 = macro_f1(y, frame["pred"].to_numpy(int))
        prod_f1 = macro_f1(y, prod_pred)
        meta_extra |= {"rows": len(frame), "champion_is": "the walk-forward folds' out-of-sample predictions"}
    gate = gates.champion_not_worse_than_production(
        champ_f1, prod_f1, tolerance=gate_settings.production_tolerance, comparable_hours=n_hours
    )
    gate.metadata.update(meta_extra)
    return _result(gate)


def _segment_features(feature_table: AssetSlices, record: ChampionRecord) -> pd.DataFrame:
    """Feature rows of the validation segment the champion was selected on (latency and load checks only
    need real rows; no verdict about skill is read off them)."""
    v = record.result.validation
    return feature_table.read_between(v["timestamp"].min(), v["timestamp"].max())


@gate("PSI drift: training window vs latest window", reads=FEATURES)
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
        list(champion_model.result.champion.feature_columns),
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


@gate("the hourly path: predicting every constituent of one hour is within the SLO", reads=FEATURES)
def hourly_batch_within_slo(
    champion_model: ChampionRecord,
    feature_table: AssetSlices,
    market_data: MarketDataResource,
    gate_settings: GateSettings,
) -> dg.AssetCheckResult:
    """Times ``predict_hours`` (the component_predictions asset's call) on one hour's feature rows for
    the configured universe, over the last hours the champion was selected on."""
    gate = gates.hourly_batch_latency(
        champion_model.result.champion,
        _segment_features(feature_table, champion_model),
        market_data.symbols,
        n_hours=gate_settings.latency_hours,
        slo_ms=gate_settings.hourly_batch_slo_ms,
    )
    return _result(gate)


BARS = {
    "hourly_bars": dg.AssetIn(key=hourly_bars_asset.key),
    "index_proxy_bars": dg.AssetIn(key=index_proxy_bars_asset.key),
}


@gate("the API path: p99 of a whole POST /predict (in process, the champion) is within the SLO", reads=BARS)
def api_predict_within_slo(
    champion_model: ChampionRecord,
    hourly_bars: AssetSlices,
    index_proxy_bars: AssetSlices,
    gate_settings: GateSettings,
) -> dg.AssetCheckResult:
    """Times whole ``POST /predict`` requests through the real app (api.latency: routes, validation,
    batcher, features, model, response) serving the champion, one per constituent with its last
    warm-up + 1 bars before the end of the validation window."""
    from api.latency import api_predict_latency  # noqa: PLC0415 - FastAPI only when the gate runs

    model = champion_model.result.champion
    config = model.feature_config
    end = champion_model.result.validation["timestamp"].max()
    start = end - pd.Timedelta(days=max(14, config.warmup))  # calendar days: >= warm-up + 1 trading hours
    proxy = None
    if config.index_context:
        proxy = index_proxy_bars.read_between(start, end)
        proxy = proxy[proxy["symbol"] == config.proxy_symbol]
    gate = api_predict_latency(
        model,
        ModelInfo(champion_model.model_name, str(champion_model.version), None),
        hourly_bars.read_between(start, end),
        proxy,
        n_requests=gate_settings.latency_requests,
        slo_ms=gate_settings.api_predict_slo_ms,
    )
    return _result(gate)


@gate("the registered model loads and predicts", reads=FEATURES)
def model_loads_and_predicts(
    champion_model: ChampionRecord, feature_table: AssetSlices, mlflow: MlflowResource
) -> dg.AssetCheckResult:
    frame = _segment_features(feature_table, champion_model).head(5)
    example = frame[["symbol", *champion_model.result.champion.feature_columns]]
    # the exact version the sensor would promote (an alias like @Staging can move under a concurrent retrain)
    uri = f"models:/{champion_model.model_name}/{champion_model.version}"
    return _result(gates.model_loads_and_predicts(uri, example, adapter=mlflow.adapter()))


GATE_CHECKS = [
    champion_beats_baseline,
    signal_has_index_timing_skill,
    signal_beats_flat_and_buy_and_hold,
    champion_not_worse_than_production,
    feature_drift_is_below_limit,
    hourly_batch_within_slo,
    api_predict_within_slo,
    model_loads_and_predicts,
]
