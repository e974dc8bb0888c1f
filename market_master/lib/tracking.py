"""MLflow logging of a training result: parent run, nested runs per candidate/baseline, champion pyfunc."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import joblib
import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import sklearn
from mlflow.models import infer_signature

from market_master import settings
from market_master.lib.model import ComponentPyfunc
from market_master.lib.training import TrainingResult

log = logging.getLogger(__name__)
STAGING_ALIAS = "Staging"
METRIC_KEYS = (
    "macro_f1", "accuracy", "f1_strong_sell", "f1_sell", "f1_hold", "f1_buy", "f1_strong_buy", "log_loss",
    "fit_time_s", "predict_time_s", "model_size_mb", "latency_p50_ms", "latency_p99_ms", "intraday_macro_f1",
    "overnight_macro_f1", "ic", "ic_z", "ic_hour_mean", "ic_hour_z", "train_rows", "margin_vs_best_baseline",
    "margin_se",
)  # fmt: skip


@dataclass(frozen=True)
class RegisteredChampion:
    name: str
    version: str
    run_id: str
    model_uri: str
    parent_run_id: str


def _pip_requirements() -> list[str]:
    return [
        f"scikit-learn=={sklearn.__version__}",
        f"mlflow=={mlflow.__version__}",
        "pandas",
        "numpy",
        "joblib",
    ]


def _metrics(values: dict) -> dict[str, float]:
    return {k: float(values[k]) for k in METRIC_KEYS if k in values and np.isfinite(values[k])}


def _test_metrics(result: TrainingResult, name: str) -> dict[str, float]:
    """`test_<key>` for the held-out test metrics of `name` (empty without a test segment)."""
    return {f"test_{k}": v for k, v in _metrics(result.test_metrics.get(name, {})).items()}


def _params(values: dict) -> dict[str, str]:
    return {k: str(v)[:500] for k, v in values.items()}


def _ensure_experiment(client: mlflow.MlflowClient, name: str, artifact_location: str | None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = artifact_location or settings.default_artifact_location()
    return client.create_experiment(name, artifact_location=location)


def log_training(
    result: TrainingResult,
    tracking_uri: str | None = None,
    experiment_name: str = settings.EXPERIMENT_NAME,
    model_name: str = settings.MODEL_NAME,
    artifact_location: str | None = None,
) -> RegisteredChampion:
    """Log everything, register the champion pyfunc as `model_name` and point alias Staging at it."""
    uri = tracking_uri or settings.default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    experiment_id = _ensure_experiment(client, experiment_name, artifact_location)
    champion = result.champion
    window = f"{champion.training_window[0]}..{champion.training_window[1]}"
    with mlflow.start_run(experiment_id=experiment_id, run_name="training") as parent:
        mlflow.log_params(_params(result.config.to_dict() | result.split.to_dict()))
        mlflow.log_params({"champion": result.champion_name, "best_baseline": result.best_baseline_name})
        mlflow.log_metrics(
            {
                "champion_macro_f1": result.candidates[result.champion_name].metrics["macro_f1"],
                "best_baseline_macro_f1": result.baselines[result.best_baseline_name].metrics["macro_f1"],
                "margin": result.margin,
                "margin_se": result.margin_se,
                "champion_beats_best_baseline": float(result.champion_beats_best_baseline),
            }
        )
        if result.has_test:
            mlflow.log_params({"test_best_baseline": result.test_best_baseline_name})
            test_best = result.test_metrics[result.test_best_baseline_name]
            mlflow.log_metrics(
                _test_metrics(result, result.champion_name)
                | {
                    "test_best_baseline_macro_f1": float(test_best["macro_f1"]),
                    "test_margin": float(result.test_margin),
                    "test_margin_se": float(result.test_margin_se),
                }
            )
            mlflow.log_text(result.test_table().to_csv(), "comparison_test.csv")
        mlflow.log_dict(result.thresholds.to_dict(), "label_thresholds.json")
        mlflow.log_text(result.table().to_csv(), "comparison.csv")
        champion_run_id = None
        for name, cand in result.candidates.items():
            with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True) as run:
                mlflow.set_tags({"kind": "candidate", "candidate": name})
                mlflow.log_params(_params(cand.params | {"label_method": result.thresholds.method}))
                mlflow.log_metrics(_metrics(cand.metrics))
                if name == result.champion_name:
                    mlflow.log_params(_params({f"split_{k}": v for k, v in result.split.to_dict().items()}))
                    mlflow.log_metrics(_test_metrics(result, name))
                mlflow.sklearn.log_model(
                    cand.model.estimator,
                    name="model",
                    pip_requirements=_pip_requirements(),
                    serialization_format="pickle",
                )
                if name == result.champion_name:
                    champion_run_id = run.info.run_id
        for name, base in result.baselines.items():
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"baseline_{name}", nested=True):
                mlflow.set_tags({"kind": "baseline", "baseline": name})
                mlflow.log_params(_params(base.params))
                mlflow.log_metrics(_metrics(base.metrics) | _test_metrics(result, name))

        # The champion once more as the serving pyfunc (ComponentModel inside), registered with alias Staging.
        with mlflow.start_run(run_id=champion_run_id, nested=True):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "component_model.joblib"
                joblib.dump(champion, path)
                example = result.input_example
                signature = infer_signature(example, champion.predict_frame(example))
                info = mlflow.pyfunc.log_model(
                    name="component_model",
                    python_model=ComponentPyfunc(),
                    artifacts={"component_model": str(path)},
                    signature=signature,
                    input_example=example,
                    pip_requirements=_pip_requirements(),
                    registered_model_name=model_name,
                )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(model_name, STAGING_ALIAS, version)
        tags = {
            "label_method": result.thresholds.method,
            "training_window": window,
            "champion": result.champion_name,
            "beats_baseline": str(result.champion_beats_best_baseline).lower(),
            "margin": f"{result.margin:.5f}",
            "validation_window": f"{result.split.valid_start.isoformat()}..{result.split.valid_end.isoformat()}",
            "thresholds": json.dumps(result.thresholds.to_dict()["cuts"])[:5000],
        }
        if result.has_test:
            tags |= {
                "test_window": f"{result.split.test_start.isoformat()}..{result.split.test_end.isoformat()}",
                "test_margin": f"{result.test_margin:.5f}",
                "test_margin_se": f"{result.test_margin_se:.5f}",
            }
        for key, value in tags.items():
            client.set_model_version_tag(model_name, version, key, value)
    log.info("registered %s v%s (alias %s) from run %s", model_name, version, STAGING_ALIAS, champion_run_id)
    return RegisteredChampion(
        name=model_name,
        version=version,
        run_id=str(champion_run_id),
        model_uri=f"models:/{model_name}@{STAGING_ALIAS}",
        parent_run_id=parent.info.run_id,
    )
