"""MlflowAdapter keeps no process-global MLflow state, tags its experiment for the MLflow 3 UI, and
parses models:/ URIs in one place."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from market_master.lib.aliases import PRODUCTION_ALIAS
from market_master.lib.mlflow_adapter import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    MlflowAdapter,
    ModelRef,
    RegistryError,
    default_artifact_location,
    parse_model_uri,
)
from market_master_tests.lib.test_registry import register_tiny_model


def _signal(hours: int = 3) -> pd.DataFrame:
    idx = pd.date_range("2024-03-01 09:30", periods=hours, freq="h", tz="America/New_York")
    return pd.DataFrame(
        {
            "hour": idx,
            "wss": [0.6, float("nan"), -0.7][:hours],
            "covered_weight": 0.9,
            "decision": ["BUY", "HOLD", "SELL"][:hours],
        }
    )


def _store(tmp_path, name: str) -> str:
    (tmp_path / name).mkdir()
    return f"sqlite:///{tmp_path / name / 'mlflow.db'}"


def test_two_adapters_in_one_process_share_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    global_before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    a = MlflowAdapter(_store(tmp_path, "a"), "exp-a", "model-a")
    b = MlflowAdapter(_store(tmp_path, "b"), "exp-b", "model-b")

    (va,) = register_tiny_model(a.tracking_uri, "model-a")
    run_a = a.log_index_signal(_signal(), run_name="signal-a")
    (vb,) = register_tiny_model(b.tracking_uri, "model-b")
    html = tmp_path / "r.html"
    html.write_text("<html></html>")
    run_b = b.log_report(html, {"report": "test", "f1_macro": 0.4}, run_name="report-b")
    a.promote(va, actor="t", reason="a")
    b.promote(vb, actor="t", reason="b")

    # nothing process-global moved: no tracking/registry URI set, no active run left behind
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == global_before
    assert mlflow.active_run() is None

    for mine, other, my_run, other_run in ((a, b, run_a, run_b), (b, a, run_b, run_a)):
        client = MlflowClient(tracking_uri=mine.tracking_uri, registry_uri=mine.tracking_uri)
        assert [m.name for m in client.search_registered_models()] == [mine.model_name]
        names = {e.name for e in client.search_experiments()}
        assert mine.experiment_name in names and other.experiment_name not in names
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        run_ids = {r.info.run_id for r in runs}
        assert my_run in run_ids and other_run not in run_ids
        with pytest.raises(RegistryError, match="unknown model"):
            MlflowAdapter(mine.tracking_uri, model_name=other.model_name).alias_version(PRODUCTION_ALIAS)
    assert a.alias_version(PRODUCTION_ALIAS) == va and b.alias_version(PRODUCTION_ALIAS) == vb

    # artifacts live beside each store, never in ./mlruns of the working directory
    assert a.artifact_location == (tmp_path / "a" / "artifacts").as_uri()
    signal_run = MlflowClient(tracking_uri=a.tracking_uri).get_run(run_a)
    assert signal_run.info.artifact_uri.startswith(a.artifact_location)
    assert signal_run.info.status == "FINISHED"
    history = MlflowClient(tracking_uri=a.tracking_uri).get_metric_history(run_a, "decision")
    assert [m.value for m in history] == [1.0, 0.0, -1.0]


def test_experiment_carries_the_experiment_kind_tag(mlflow_uri):
    name = f"mm-kind-{pd.Timestamp.now().value}"
    adapter = MlflowAdapter(mlflow_uri, experiment_name=name)
    experiment_id = adapter.ensure_experiment()
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert (
        client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG]
        == EXPERIMENT_KIND
        == "custom_model_development"
    )

    # an experiment created before the tag existed gets it; a kind chosen in the UI is kept
    old = client.create_experiment(f"{name}-old")
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags
    assert MlflowAdapter(mlflow_uri, experiment_name=f"{name}-old").ensure_experiment() == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    chosen = client.create_experiment(f"{name}-chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    MlflowAdapter(mlflow_uri, experiment_name=f"{name}-chosen").ensure_experiment()
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_parse_model_uri_is_the_one_parser():
    assert parse_model_uri("models:/m@Production") == ModelRef("m", None, "Production")
    assert parse_model_uri("models:/m/3") == ("m", "3", None)
    assert parse_model_uri("models:/a/b/12").name == "a/b"
    assert ModelRef("m", "3", None).uri == "models:/m/3" and ModelRef("m", None, "x").uri == "models:/m@x"
    for bad in ("runs:/abc/model", "models:/m", "models:/m/latest", "models:/@x", "models:/m@"):
        with pytest.raises(RegistryError, match="expected a models:/"):
            parse_model_uri(bad)
    with pytest.raises(ValueError, match="exactly one"):
        MlflowAdapter("sqlite:///x.db").model_uri()
    with pytest.raises(ValueError, match="explicit tracking URI"):
        MlflowAdapter("")


def test_default_artifact_location(tmp_path, data_home):
    assert (
        default_artifact_location(f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}")
        == (tmp_path / "db" / "artifacts").as_uri()
    )
    assert default_artifact_location("http://127.0.0.1:5000") is None
    assert default_artifact_location("postgresql://u@h/db") == (data_home / "mlflow" / "artifacts").as_uri()
