"""What the pipeline logs as MLflow runs: training (parent + nested runs, registered champion), the
index-signal series, monitoring reports. Every run is created through the client with explicit ids."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import sklearn
from mlflow.entities import Metric
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from market_master.lib.aliases import STAGING_ALIAS
from market_master.lib.mlflow_adapter.logged_models import (
    log_metrics,
    log_model,
    log_values,
    register_version,
    run_scope,
)
from market_master.lib.model import ComponentPyfunc

if TYPE_CHECKING:
    from market_master.lib.training import TrainingResult

log = logging.getLogger(__name__)
METRIC_KEYS = (
    "macro_f1", "accuracy", "f1_strong_sell", "f1_sell", "f1_hold", "f1_buy", "f1_strong_buy", "log_loss",
    "fit_time_s", "predict_time_s", "model_size_mb", "latency_p50_ms", "latency_p99_ms", "intraday_macro_f1",
    "overnight_macro_f1", "ic", "ic_z", "ic_hour_mean", "ic_hour_z", "train_rows", "margin_vs_best_baseline",
    "margin_se",
)  # fmt: skip
DECISION_CODE = {"SELL": -1, "HOLD": 0, "BUY": 1}  # NO_SIGNAL hours log no decision code


@dataclass(frozen=True)
class RegisteredChampion:
    name: str
    version: str
    run_id: str
    model_uri: str
    parent_run_id: str
    model_id: str | None = None


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


def _version_tags(result: TrainingResult) -> dict[str, str]:
    champion = result.champion
    tags = {
        "label_method": result.thresholds.method,
        "training_window": f"{champion.training_window[0]}..{champion.training_window[1]}",
        "champion": result.champion_name,
        # the VALIDATION-segment comparison used for model selection, not the promotion gate (which is
        # judged on the held-out test segment: see the gate checks / test_margin)
        "validation_beats_baseline": str(result.champion_beats_best_baseline).lower(),
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
    return tags


def _log_component_model(
    client: MlflowClient, experiment_id: str, run_id: str, result: TrainingResult, params, metrics
):
    """The champion as the serving pyfunc (ComponentModel inside, joblib'd), with signature + example."""
    champion = result.champion
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "component_model.joblib"
        joblib.dump(champion, path)
        example = result.input_example
        return log_model(
            client,
            experiment_id,
            run_id,
            "component_model",
            mlflow.pyfunc,
            params=params,
            metrics=metrics,
            python_model=ComponentPyfunc(),
            artifacts={"component_model": str(path)},
            signature=infer_signature(example, champion.predict_frame(example)),
            input_example=example,
            pip_requirements=_pip_requirements(),
        )


def log_training(
    client: MlflowClient, experiment_id: str, result: TrainingResult, model_name: str
) -> RegisteredChampion:
    """Parent run "training" (config, split, comparison tables, thresholds), one nested run per candidate
    (metrics + sklearn model) and baseline, the champion's pyfunc registered as `model_name` with its
    tags, alias Staging pointed at it."""
    with run_scope(client, experiment_id, "training") as parent_id:
        test: dict[str, float] = {}
        params = _params(result.config.to_dict() | result.split.to_dict())
        params |= {"champion": result.champion_name, "best_baseline": result.best_baseline_name}
        if result.has_test:
            params["test_best_baseline"] = result.test_best_baseline_name
            test_best = result.test_metrics[result.test_best_baseline_name]
            test = _test_metrics(result, result.champion_name) | {
                "test_best_baseline_macro_f1": float(test_best["macro_f1"]),
                "test_margin": float(result.test_margin),
                "test_margin_se": float(result.test_margin_se),
            }
            client.log_text(parent_id, result.test_table().to_csv(), "comparison_test.csv")
        summary = {
            "champion_macro_f1": result.candidates[result.champion_name].metrics["macro_f1"],
            "best_baseline_macro_f1": result.baselines[result.best_baseline_name].metrics["macro_f1"],
            "margin": result.margin,
            "margin_se": result.margin_se,
            "champion_beats_best_baseline": float(result.champion_beats_best_baseline),
        }
        log_values(client, parent_id, params=params, metrics=summary | test)
        client.log_dict(parent_id, result.thresholds.to_dict(), "label_thresholds.json")
        client.log_text(parent_id, result.table().to_csv(), "comparison.csv")

        champion_run_id, component = None, None
        for name, cand in result.candidates.items():
            tags = {"kind": "candidate", "candidate": name}
            with run_scope(client, experiment_id, name, tags, parent_run_id=parent_id) as run_id:
                params = _params(cand.params | {"label_method": result.thresholds.method})
                metrics = _metrics(cand.metrics)
                if name == result.champion_name:
                    params |= _params({f"split_{k}": v for k, v in result.split.to_dict().items()})
                    metrics |= _test_metrics(result, name)
                log_values(client, run_id, params=params, metrics=metrics)
                log_model(
                    client,
                    experiment_id,
                    run_id,
                    "model",
                    mlflow.sklearn,
                    params=params,
                    metrics=metrics,
                    sk_model=cand.model.estimator,
                    pip_requirements=_pip_requirements(),
                    serialization_format="pickle",
                )
                if name == result.champion_name:
                    champion_run_id = run_id
                    component = _log_component_model(client, experiment_id, run_id, result, params, metrics)
        for name, base in result.baselines.items():
            tags = {"kind": "baseline", "baseline": name}
            with run_scope(
                client, experiment_id, f"baseline_{name}", tags, parent_run_id=parent_id
            ) as run_id:
                log_values(
                    client,
                    run_id,
                    params=_params(base.params),
                    metrics=_metrics(base.metrics) | _test_metrics(result, name),
                )
        if component is None:
            raise ValueError(f"champion {result.champion_name!r} is not among the candidates")
        version = str(register_version(client, model_name, component, tags=_version_tags(result)).version)
        client.set_registered_model_alias(model_name, STAGING_ALIAS, version)
    log.info("registered %s v%s (alias %s) from run %s", model_name, version, STAGING_ALIAS, champion_run_id)
    return RegisteredChampion(
        name=model_name,
        version=version,
        run_id=str(champion_run_id),
        model_uri=f"models:/{model_name}@{STAGING_ALIAS}",
        parent_run_id=parent_id,
        model_id=component.model_id,
    )


def log_index_signal(client: MlflowClient, experiment_id: str, signal: pd.DataFrame, run_name: str) -> str:
    """One run holding the hourly WSS series (metric step = hour index, timestamp = the bar time) + CSV."""
    with run_scope(client, experiment_id, run_name, {"market_master.kind": "index_signal"}) as run_id:
        metrics: list[Metric] = []
        for step, row in enumerate(signal.itertuples(index=False)):
            ts = int(pd.Timestamp(row.hour).timestamp() * 1000)
            if pd.notna(row.wss):
                metrics.append(Metric("wss", float(row.wss), ts, step))
            metrics.append(Metric("covered_weight", float(row.covered_weight), ts, step))
            if str(row.decision) in DECISION_CODE:
                metrics.append(Metric("decision", float(DECISION_CODE[str(row.decision)]), ts, step))
        log_metrics(client, run_id, metrics)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "index_signal.csv"
            signal.to_csv(path, index=False)
            client.log_artifact(run_id, str(path))
    return run_id


def log_report(
    client: MlflowClient, experiment_id: str, html_path: str | Path, summary: dict, run_name: str
) -> str:
    """The report HTML (+ summary.json) as artifacts under `reports/`, numeric summary leaves as metrics."""
    from market_master.lib.monitoring import flatten_numeric

    html = Path(html_path)
    if not html.exists():
        raise FileNotFoundError(f"report HTML {html} does not exist")
    with run_scope(
        client, experiment_id, run_name, {"market_master.report": str(summary.get("report"))}
    ) as run_id:
        client.log_artifact(run_id, str(html), artifact_path="reports")
        client.log_dict(run_id, summary, f"reports/{html.stem}_summary.json")
        metrics = flatten_numeric(summary)
        log_values(client, run_id, metrics=metrics)
    log.info("logged %s to MLflow run %s (%s)", html.name, run_id, json.dumps(sorted(metrics)))
    return run_id
