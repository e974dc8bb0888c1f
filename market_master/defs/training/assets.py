"""Training: pooled candidates on a time split (MLflow nested runs) and the registered champion."""

from dataclasses import dataclass, field

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.features.assets import stored_feature_config
from market_master.defs.resources import MlflowResource
from market_master.lib import calendar
from market_master.lib.aliases import STAGING_ALIAS
from market_master.lib.candidates import CANDIDATE_NAMES
from market_master.lib.segments import DEFAULT_SEGMENTS, Segments
from market_master.lib.storage import AssetSlices
from market_master.lib.training import TrainingConfig, TrainingResult, train_candidates


class TrainingAssetConfig(dg.Config):
    window_days: int = Field(
        default=240, description="trading days of feature_table to train, select and test on"
    )
    end: str | None = Field(
        default=None, description="last hour (partition key) of the window; default: latest stored"
    )
    label_method: str = Field(
        default="session_volatility", description="quantile | volatility | session_volatility"
    )
    validation_share: float = Field(
        default=DEFAULT_SEGMENTS.validation, description="share of hours for model selection"
    )
    test_share: float = Field(
        default=DEFAULT_SEGMENTS.test, description="held-out share of hours the gates judge on"
    )
    embargo_bars: int = Field(default=DEFAULT_SEGMENTS.embargo_bars, description="hours between segments")

    def segments(self) -> Segments:
        train = 1.0 - self.validation_share - self.test_share
        return Segments(train, self.validation_share, self.test_share, self.embargo_bars)

    candidates: list[str] = Field(default_factory=lambda: list(CANDIDATE_NAMES))
    seed: int = 42


def training_window(
    feature_table: AssetSlices, config: TrainingAssetConfig
) -> tuple[pd.Timestamp, pd.Timestamp]:
    end_key = config.end or feature_table.latest_key()
    if end_key is None:
        raise dg.Failure(
            "feature_table has no stored partitions: materialize hourly_bars and feature_table first"
        )
    return calendar.last_sessions_window(calendar.key_to_timestamp(end_key), config.window_days)


@dg.asset(group_name="training", kinds={"sklearn"})
def candidate_models(
    context: dg.AssetExecutionContext, config: TrainingAssetConfig, feature_table: AssetSlices
) -> TrainingResult:
    """All candidates + baselines trained on one time split; labels fitted on the training window only.
    The warm-up is the one the feature table was computed with (stored with its slices)."""
    start, end = training_window(feature_table, config)
    features = feature_table.read_between(start, end).sort_values(["symbol", "timestamp"], ignore_index=True)
    if features.empty:
        raise dg.Failure(f"no feature_table rows between {start} and {end}")
    # Rows stored as warm-up stay warm-up; a window that starts mid-history begins warm-up free.
    tc = TrainingConfig(
        label_method=config.label_method,
        segments=config.segments(),
        seed=config.seed,
        candidates=tuple(config.candidates),
        feature_config=stored_feature_config(features),
    )
    result = train_candidates(features, tc)
    table = result.table()
    context.add_output_metadata(
        {
            "rows": len(features),
            "window": f"{start} .. {end}",
            "split": dg.MetadataValue.json(result.split.to_dict()),
            "warmup (from feature_table)": tc.feature_config.warmup,
            "champion": result.champion_name,
            "best_baseline": result.best_baseline_name,
            "champion_macro_f1": float(table.loc[result.champion_name, "macro_f1"]),
            "best_baseline_macro_f1": float(table.loc[result.best_baseline_name, "macro_f1"]),
            "margin": float(result.margin),
            "margin_se": float(result.margin_se),
            "metrics (validation: selection)": dg.MetadataValue.md(_metrics_md(table)),
            **(
                {
                    "test_metrics (held out: gates)": dg.MetadataValue.md(_metrics_md(result.test_table())),
                    "test_margin": float(result.test_margin),
                    "test_margin_se": float(result.test_margin_se),
                }
                if result.has_test
                else {}
            ),
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
            **(
                {
                    "test_macro_f1": float(
                        candidate_models.test_metrics[candidate_models.champion_name]["macro_f1"]
                    )
                }
                if candidate_models.has_test
                else {}
            ),
            "beats_best_baseline": bool(candidate_models.champion_beats_best_baseline),
            "training_window": dg.MetadataValue.json(candidate_models.split.to_dict()),
            "mlflow_parent_run_id": registered.parent_run_id,
        }
    )
    return record
