"""Training: pooled candidates on a time split (MLflow nested runs) and the registered champion."""

from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from market_master.defs.resources import MlflowResource
from market_master.defs.training.walk_forward import WalkForwardHistory
from market_master.lib.aliases import STAGING_ALIAS
from market_master.lib.storage import AssetSlices
from market_master.lib.training import TrainingResult
from market_master.lib.walk_forward import train_final


@dg.asset(group_name="training", kinds={"sklearn"})
def candidate_models(
    context: dg.AssetExecutionContext, walk_forward_history: WalkForwardHistory, feature_table: AssetSlices
) -> TrainingResult:
    """The champion search on the newest window: every candidate + baseline, the same procedure every
    walk-forward fold ran (its settings come from walk_forward_history: one home), on the training window
    a fold starting after the replayed range would use (``walk_forward.final_window``)."""
    history = walk_forward_history
    features = feature_table.read_between(history.start, history.end).sort_values(
        ["symbol", "timestamp"], ignore_index=True
    )
    if features.empty:
        raise dg.Failure(f"no feature_table rows between {history.start} and {history.end}")
    result = train_final(features, history.training, history.result.config)
    table = result.table()
    context.add_output_metadata(
        {
            "rows": len(features),
            "window": f"{result.split.train_start} .. {result.split.valid_end}",
            "split": dg.MetadataValue.json(result.split.to_dict()),
            "warmup (from feature_table)": history.training.feature_config.warmup,
            "champion": result.champion_name,
            "best_baseline": result.best_baseline_name,
            "champion_macro_f1 (validation: selection)": float(table.loc[result.champion_name, "macro_f1"]),
            "best_baseline_macro_f1 (validation)": float(table.loc[result.best_baseline_name, "macro_f1"]),
            "metrics (validation: selection)": dg.MetadataValue.md(_metrics_md(table)),
            "judged_on": "walk_forward_history (out-of-sample hours); validation numbers chose the champion",
        }
    )
    return result


def _metrics_md(table: pd.DataFrame) -> str:
    cols = [
        c
        for c in (
            "kind",
            "macro_f1",
            "accuracy",
            "log_loss",
            "ic",
            "ic_z",
            "fit_time_s",
            "model_size_mb",
            "latency_p99_ms",
        )
        if c in table.columns
    ]
    return table[cols].sort_values("macro_f1", ascending=False).round(4).astype(str).to_markdown()


@dataclass
class ChampionRecord:
    """What champion_model hands to its gate checks (pickled by the IO manager)."""

    model_name: str
    version: str
    model_uri: str
    run_id: str
    parent_run_id: str
    champion_name: str
    result: TrainingResult
    extra: dict = field(default_factory=dict)


@dg.asset(group_name="training", kinds={"mlflow"})
def champion_model(
    context: dg.AssetExecutionContext, candidate_models: TrainingResult, mlflow: MlflowResource
) -> ChampionRecord:
    """The winning pipeline logged once as an MLflow pyfunc (with thresholds, feature list, window),
    every candidate and baseline as nested runs, registered with alias Staging."""
    registered = mlflow.adapter().log_training(candidate_models)
    record = ChampionRecord(
        model_name=registered.name,
        version=str(registered.version),
        model_uri=registered.model_uri,
        run_id=registered.run_id,
        parent_run_id=registered.parent_run_id,
        champion_name=candidate_models.champion_name,
        result=candidate_models,
    )
    m = candidate_models.candidates[candidate_models.champion_name].metrics
    context.add_output_metadata(
        {
            "model_name": registered.name,
            "model_version": str(registered.version),
            "alias": STAGING_ALIAS,
            "model_uri": registered.model_uri,
            "champion": candidate_models.champion_name,
            "macro_f1": float(m["macro_f1"]),
            "accuracy": float(m["accuracy"]),
            "beats_best_baseline": bool(candidate_models.champion_beats_best_baseline),
            "training_window": dg.MetadataValue.json(candidate_models.split.to_dict()),
            "mlflow_parent_run_id": registered.parent_run_id,
        }
    )
    return record
