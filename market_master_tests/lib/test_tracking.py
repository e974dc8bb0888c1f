"""MlflowAdapter.log_training on a tmp sqlite store: nested runs, registered pyfunc with alias Staging,
logged models linked to their runs, round trip."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow.entities import LoggedModelStatus

from market_master.lib.aliases import STAGING_ALIAS
from market_master.lib.batch import resolve_model
from market_master.lib.features import compute_features
from market_master.lib.mlflow_adapter import MlflowAdapter, load_model_dir
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.training import TrainingConfig, train_candidates


@pytest.fixture(scope="module")
def result():
    bars = SyntheticSource(seed=2).fetch(["AAA", "BBB", "CCC"], "2024-01-02", "2024-02-29")
    return train_candidates(
        compute_features(bars), TrainingConfig(svc_max_rows=300, latency_rows=3, latency_rounds=1)
    )


def test_log_training_registers_staging_champion(result, mlflow_uri, tmp_path) -> None:
    adapter = MlflowAdapter(mlflow_uri, "mm-test-exp", "mm-test-model", (tmp_path / "a").as_uri())
    reg = adapter.log_training(result)
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    exp = client.get_experiment_by_name("mm-test-exp")
    assert exp.artifact_location == (tmp_path / "a").as_uri()
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{reg.parent_run_id}'"
    )
    names = sorted(r.info.run_name for r in children)
    assert names == sorted(
        ["RF", "ET", "GB", "HGBT", "MLP", "SVC", "LogReg"]
        + [f"baseline_{b}" for b in ("majority", "stratified", "momentum")]
    )
    assert {r.info.status for r in children} == {"FINISHED"}
    assert client.get_run(reg.parent_run_id).info.status == "FINISHED"
    for run in children:
        assert {"macro_f1", "accuracy", "f1_hold", "intraday_macro_f1", "overnight_macro_f1"} <= set(
            run.data.metrics
        )
    champ_run = next(r for r in children if r.info.run_name == result.champion_name)
    test_champ = result.test_metrics[result.champion_name]
    assert champ_run.data.metrics["test_macro_f1"] == pytest.approx(test_champ["macro_f1"])
    assert {"test_ic_hour_z", "test_accuracy", "test_margin_vs_best_baseline"} <= set(champ_run.data.metrics)
    assert champ_run.data.params["split_test_start"] == result.split.test_start.isoformat()
    assert champ_run.data.tags["kind"] == "candidate"
    parent = client.get_run(reg.parent_run_id).data
    assert parent.metrics["test_macro_f1"] == pytest.approx(test_champ["macro_f1"])
    assert parent.metrics["test_margin"] == pytest.approx(result.test_margin)
    assert parent.metrics["test_margin_se"] == pytest.approx(result.test_margin_se)
    assert parent.params["test_end"] == result.split.test_end.isoformat()
    assert parent.params["n_test_hours"] == str(result.split.n_test_hours)
    assert parent.params["test_best_baseline"] == result.test_best_baseline_name
    svc = next(r for r in children if r.info.run_name == "SVC")
    assert "300" in svc.data.params["bounds"]

    # logged models: the sklearn model of every candidate, plus the champion's serving pyfunc
    models = client.search_logged_models([exp.experiment_id])
    by_run: dict[str, list[str]] = {}
    for m in models:
        assert m.status == LoggedModelStatus.READY
        by_run.setdefault(m.source_run_id, []).append(m.name)
    assert sorted(by_run[champ_run.info.run_id]) == ["component_model", "model"]
    assert sum(len(v) for v in by_run.values()) == len(result.candidates) + 1
    component = next(m for m in models if m.model_id == reg.model_id)
    assert component.metrics and {m.key for m in component.metrics} >= {"macro_f1"}

    version = client.get_model_version_by_alias("mm-test-model", STAGING_ALIAS)
    assert str(version.version) == reg.version and version.run_id == reg.run_id
    assert version.tags["champion"] == result.champion_name
    assert version.tags["label_method"] == "session_volatility"
    assert version.tags["validation_beats_baseline"] in ("true", "false")
    assert "beats_baseline" not in version.tags  # it never claimed the gate's verdict
    assert version.tags["test_margin"] == f"{result.test_margin:.5f}"
    assert version.tags["model_id"] == reg.model_id

    # signature + input example travel with the pyfunc
    pyfunc = adapter.load_pyfunc(alias=STAGING_ALIAS)
    assert pyfunc.metadata.signature is not None
    assert pyfunc.metadata.saved_input_example_info is not None
    out = pyfunc.predict(result.input_example)
    assert len(out) == len(result.input_example) and np.allclose(out.filter(like="p_").sum(axis=1), 1.0)
    loaded = adapter.load_model(alias=STAGING_ALIAS)
    assert loaded.thresholds.to_dict() == result.thresholds.to_dict()
    assert loaded.training_window == result.champion.training_window
    np.testing.assert_allclose(
        loaded.predict_proba(result.input_example), result.champion.predict_proba(result.input_example)
    )
    by_version = adapter.load_model(reg.version)
    np.testing.assert_allclose(
        by_version.predict_proba(result.input_example), loaded.predict_proba(result.input_example)
    )
    copy = adapter.export_local_copy(tmp_path / "copy", alias=STAGING_ALIAS)
    assert load_model_dir(copy).name == result.champion_name

    # batch mode resolves a models:/ URI through the adapter: alias pinned to its version, no global URI
    before = mlflow.get_tracking_uri()
    model, info = resolve_model(f"models:/mm-test-model@{STAGING_ALIAS}", tracking_uri=mlflow_uri)
    assert (info.name, info.version, info.alias) == ("mm-test-model", reg.version, STAGING_ALIAS)
    assert model.name == result.champion_name and mlflow.get_tracking_uri() == before
