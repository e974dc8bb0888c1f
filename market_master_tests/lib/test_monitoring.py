"""Evidently reports: drift flagged on a shifted window only; classification numbers equal sklearn's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from market_master.lib.mlflow_adapter import MlflowAdapter
from market_master.lib.monitoring import (
    classification_quality_report,
    data_drift_report,
    flatten_numeric,
)
from market_master_tests.lib.test_registry import unique_name

CLASSES = ["strong_sell", "sell", "hold", "buy", "strong_buy"]
COLS = ["ret_1", "vol_12", "rsi_14"]


def _window(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ret_1": rng.normal(shift * 0.01, 0.01, n),
            "vol_12": rng.lognormal(-4.0 + shift, 0.3, n),
            "rsi_14": np.clip(rng.normal(50 + 20 * shift, 10, n), 0, 100),
        }
    )


def test_drift_report_flags_shifted_window_only(tmp_path):
    rng = np.random.default_rng(0)
    reference = _window(rng, 2000)
    same = data_drift_report(reference, _window(rng, 1500), COLS, tmp_path / "same" / "drift.html")
    shifted = data_drift_report(reference, _window(rng, 1500, shift=1.0), COLS, tmp_path / "shift.html")

    assert (tmp_path / "same" / "drift.html").stat().st_size > 10_000
    text = (tmp_path / "shift.html").read_text()
    assert "Dataset Drift is detected" in text and all(c in text for c in COLS)
    assert "Dataset Drift is detected" not in (tmp_path / "same" / "drift.html").read_text()
    assert not same["dataset_drift"] and same["n_drifted"] == 0 and same["drifted_columns"] == []
    assert shifted["dataset_drift"] and shifted["drifted_columns"] == COLS and shifted["drift_share"] == 1.0
    for col in COLS:
        info = shifted["columns"][col]
        assert info["drifted"] and info["method"] and info["score"] > same["columns"][col]["score"]
    with pytest.raises(KeyError, match="current frame lacks drift columns"):
        data_drift_report(reference, reference.drop(columns="rsi_14"), COLS, tmp_path / "x.html")


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.15, 0.3, 1.0])
def test_drift_report_and_drift_gate_give_one_verdict(tmp_path, shift):
    """Same windows -> the same PSI per feature, the same drifted features, the same dataset verdict in
    the Evidently report (HTML included) and in the gate (they once said 16/24 vs 2/24)."""
    from market_master.lib.gates import feature_drift_below_limit

    rng = np.random.default_rng(1)
    reference, current = _window(rng, 3000), _window(rng, 500, shift=shift)
    report = data_drift_report(reference, current, COLS, tmp_path / "d.html")
    gate = feature_drift_below_limit(reference, current, COLS)
    assert report["drifted_columns"] == gate.metadata["drifted_columns"]
    for col in COLS:
        assert report["columns"][col]["score"] == pytest.approx(gate.metadata["psi"][col], abs=1e-12)
        assert "market_master_psi" in str(report["columns"][col]["method"])
    assert report["dataset_drift"] == (not gate.passed)
    assert ("Dataset Drift is detected" in (tmp_path / "d.html").read_text()) == report["dataset_drift"]
    assert report["n_reference_rows_used"] == 3000  # all rows: no sampling that the gate does not do


def _predictions(n: int = 1200):
    rng = np.random.default_rng(2)
    y_true = rng.choice(CLASSES, n, p=[0.1, 0.2, 0.4, 0.2, 0.1])
    y_pred = np.where(rng.random(n) < 0.45, y_true, rng.choice(CLASSES, n))
    proba = rng.dirichlet(np.ones(5), n)
    proba[np.arange(n), [CLASSES.index(p) for p in y_pred]] += 1.0  # argmax == y_pred
    proba /= proba.sum(axis=1, keepdims=True)
    return y_true, y_pred, pd.DataFrame(proba, columns=[f"p_{c}" for c in CLASSES])


def test_classification_report_numbers_equal_sklearn(tmp_path):
    y_true, y_pred, proba = _predictions()
    out = tmp_path / "cls" / "quality.html"
    summary = classification_quality_report(y_true, y_pred, proba, out, labels=CLASSES)
    assert out.stat().st_size > 10_000
    assert summary["n_rows"] == len(y_true) and summary["n_pred_not_argmax"] == 0
    assert summary["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert summary["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    per_f1 = f1_score(y_true, y_pred, labels=CLASSES, average=None)
    per_p = precision_score(y_true, y_pred, labels=CLASSES, average=None)
    per_r = recall_score(y_true, y_pred, labels=CLASSES, average=None)
    for i, c in enumerate(CLASSES):
        got = summary["per_class"][c]
        assert (got["f1"], got["precision"], got["recall"]) == pytest.approx((per_f1[i], per_p[i], per_r[i]))
    no_proba = classification_quality_report(y_true, y_pred, None, tmp_path / "np.html")
    assert (
        no_proba["f1_macro"] == pytest.approx(summary["f1_macro"]) and no_proba["n_pred_not_argmax"] is None
    )
    with pytest.raises(KeyError, match="'hold'"):
        classification_quality_report(
            y_true, y_pred, proba.drop(columns="p_hold"), tmp_path / "y.html", CLASSES
        )


def test_log_report_through_the_adapter(mlflow_uri, tmp_path):
    y_true, y_pred, proba = _predictions(300)
    html = tmp_path / "q.html"
    summary = classification_quality_report(y_true, y_pred, proba, html, labels=CLASSES)
    experiment = unique_name("monitoring")
    run_id = MlflowAdapter(mlflow_uri, experiment).log_report(html, summary, run_name="quality-test")
    client = MlflowClient(tracking_uri=mlflow_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["f1_macro"] == pytest.approx(summary["f1_macro"])
    assert run.data.metrics["per_class.hold.recall"] == pytest.approx(summary["per_class"]["hold"]["recall"])
    names = {f.path for f in client.list_artifacts(run_id, "reports")}
    assert names == {"reports/q.html", "reports/q_summary.json"}
    assert flatten_numeric({"a": True, "b": {"c": 2}, "d": "x", "e": [1], "f": float("nan")}) == {
        "a": 1.0,
        "b.c": 2.0,
    }
    assert json.loads(json.dumps(summary)) == summary  # summaries are JSON-serialisable


def test_quality_report_scores_the_served_actions_not_the_argmax(tmp_path):
    """The model serves banded actions that often differ from argmax(proba): the HTML (Evidently) and the
    numbers both score what was served."""
    y_true, y_pred, _ = _predictions()
    rng = np.random.default_rng(3)
    proba = pd.DataFrame(rng.dirichlet(np.ones(5), len(y_true)), columns=[f"p_{c}" for c in CLASSES])
    summary = classification_quality_report(y_true, y_pred, proba, tmp_path / "q.html", labels=CLASSES)
    assert summary["n_pred_not_argmax"] > len(y_true) // 2  # the served labels are not the argmax
    served = accuracy_score(y_true, y_pred)
    assert summary["accuracy"] == pytest.approx(served)
    assert summary["evidently_accuracy"] == pytest.approx(served, abs=1e-9)
