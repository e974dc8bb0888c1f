"""Evidently 0.7 monitoring reports (data drift, classification quality); MlflowAdapter.log_report logs them.

Each report saves the real Evidently HTML and returns a flat summary dict. Inputs above
MAX_EVIDENTLY_ROWS rows are sampled (seeded, without replacement) before Evidently runs, to keep its
runtime small; the summary states the row counts used. Classification numbers are computed with
scikit-learn on all rows rather than parsed out of Evidently's snapshot.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from market_master.lib.psi import DEFAULT_PSI_THRESHOLD, DRIFTED_SHARE_LIMIT, population_stability_index

log = logging.getLogger(__name__)

MAX_EVIDENTLY_ROWS = 20_000
SAMPLE_SEED = 0
DRIFT_SHARE = DRIFTED_SHARE_LIMIT  # one home: lib.psi


def _sample(df: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    return df if len(df) <= max_rows else df.sample(n=max_rows, random_state=SAMPLE_SEED).sort_index()


def _save_html(snapshot, out_html: str | Path) -> Path:
    path = Path(out_html)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


PSI_STATTEST = "market_master_psi"


def _register_psi_stattest() -> str:
    """Our PSI (lib.psi: reference-quantile bins, floor 1e-4) as an Evidently stat test, registered once,
    so the drift report's per-column verdicts are the drift GATE's: one method, one threshold (PSI >
    DEFAULT_PSI_THRESHOLD per feature), one share (DRIFTED_SHARE_LIMIT)."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    if getattr(_register_psi_stattest, "done", False):
        return PSI_STATTEST

    def _psi(reference, current, feature_type, threshold):
        value = population_stability_index(reference.to_numpy(float), current.to_numpy(float))
        return value, value > threshold

    test = StatTest(
        name=PSI_STATTEST,
        display_name="PSI (market_master.lib.psi, the drift gate's method)",
        allowed_feature_types=[ColumnType.Numerical],
        default_threshold=DEFAULT_PSI_THRESHOLD,
    )
    register_stattest(test, _psi)
    _register_psi_stattest.done = True
    return PSI_STATTEST


def data_drift_report(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    columns: Sequence[str],
    out_html: str | Path,
    drift_share: float = DRIFT_SHARE,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
) -> dict:
    """Evidently DataDriftPreset on numeric `columns` with the drift gate's PSI per column (one verdict:
    see `_register_psi_stattest`); HTML to `out_html`; returns a summary dict.

    Summary: drift_share, n_drifted, n_columns, drifted_columns, dataset_drift (share >= drift_share,
    Evidently's rule), columns = {col: {score, method, threshold, drifted}}, row counts used.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = list(columns)
    if not columns:
        raise ValueError("data_drift_report needs at least one column")
    for side, df in (("reference", reference_df), ("current", current_df)):
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise KeyError(f"{side} frame lacks drift columns {missing}")
        if df[columns].dropna(how="all").empty:
            raise ValueError(f"{side} frame has no non-null rows in {columns}")
    # all rows (no sampling): the verdicts must be the gate's, computed on the same rows
    ref = reference_df[columns].astype(float)
    cur = current_df[columns].astype(float)
    definition = DataDefinition(numerical_columns=columns)
    preset = DataDriftPreset(
        # Evidently calls a dataset drifted at share >= drift_share, the gate at share > limit: nudge it
        columns=columns,
        drift_share=drift_share + 1e-9,
        method=_register_psi_stattest(),
        threshold=psi_threshold,
    )
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    html = _save_html(snapshot, out_html)
    per_column = _drift_per_column(snapshot.dict(), columns)
    drifted = [c for c in columns if per_column[c]["drifted"]]
    share = len(drifted) / len(columns)
    summary = {
        "report": "data_drift",
        "html_path": str(html),
        "n_columns": len(columns),
        "n_drifted": len(drifted),
        "drift_share": share,
        "drift_share_threshold": drift_share,
        "dataset_drift": share > drift_share,  # the gate passes at share <= limit
        "drifted_columns": drifted,
        "columns": per_column,
        "n_reference_rows": len(reference_df),
        "n_current_rows": len(current_df),
        "n_reference_rows_used": len(ref),
        "n_current_rows_used": len(cur),
    }
    log.info("drift report %s: %d/%d columns drifted", html, len(drifted), len(columns))
    return summary


def _drift_per_column(snapshot_dict: dict, columns: list[str]) -> dict[str, dict]:
    """Per-column score/method/threshold from ValueDrift metrics; drifted = its bound test FAILed."""
    status_by_metric = {
        t.get("metric_config", {}).get("metric_id"): t.get("status") for t in snapshot_dict.get("tests", [])
    }
    out: dict[str, dict] = {}
    for metric in snapshot_dict.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        status = status_by_metric.get(metric.get("id"))
        if status not in ("SUCCESS", "FAIL"):
            raise RuntimeError(
                f"Evidently ValueDrift({config.get('column')}) has no pass/fail test: {status!r}"
            )
        out[config["column"]] = {
            "score": float(metric["value"]),
            "method": config.get("method"),
            "threshold": config.get("threshold"),
            "drifted": status == "FAIL",
        }
    missing = [c for c in columns if c not in out]
    if missing:
        raise RuntimeError(f"Evidently drift report has no ValueDrift result for columns {missing}")
    return out


def classification_quality_report(
    y_true: Sequence,
    y_pred: Sequence,
    proba_df: pd.DataFrame | None,
    out_html: str | Path,
    labels: Sequence[str] | None = None,
    max_rows: int = MAX_EVIDENTLY_ROWS,
) -> dict:
    """Evidently ClassificationPreset HTML + sklearn numbers (macro-F1, accuracy, per-class P/R/F1).

    `proba_df` (optional) has one column per label, named `<label>` or `p_<label>`. What is scored, in
    the HTML and the numbers alike, is `y_pred`: the action that was SERVED (the model's banded decision
    rule, not the argmax of its probabilities). Evidently would derive labels from argmax(proba) if it got
    the probabilities, so it does not: they only feed `n_pred_not_argmax` (how often the two differ).
    """
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset

    y_true = pd.Series(np.asarray(y_true)).astype(str)
    y_pred = pd.Series(np.asarray(y_pred)).astype(str)
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"y_true ({len(y_true)}) and y_pred ({len(y_pred)}) must be non-empty, equal length")
    labels = [str(x) for x in labels] if labels is not None else sorted(set(y_true) | set(y_pred))
    frame = pd.DataFrame({"target": y_true, "prediction": y_pred})
    proba_cols = None
    n_pred_not_argmax = None
    if proba_df is not None:
        if len(proba_df) != len(y_true):
            raise ValueError(f"proba_df has {len(proba_df)} rows, y_true has {len(y_true)}")
        proba_cols = []
        for label in labels:
            src = label if label in proba_df.columns else f"p_{label}"
            if src not in proba_df.columns:
                raise KeyError(
                    f"proba_df lacks a probability column for class {label!r} ({label} or p_{label})"
                )
            frame[label] = proba_df[src].to_numpy(dtype=float)
            proba_cols.append(label)
        argmax = np.asarray(labels)[frame[proba_cols].to_numpy().argmax(axis=1)]
        n_pred_not_argmax = int((argmax != frame["prediction"].to_numpy()).sum())
    definition = DataDefinition(
        classification=[
            MulticlassClassification(target="target", prediction_labels="prediction", prediction_probas=None)
        ],
        categorical_columns=["target", "prediction"],
    )
    used = _sample(frame[["target", "prediction"]], max_rows)
    snapshot = Report([ClassificationPreset()]).run(
        Dataset.from_pandas(used, data_definition=definition), None
    )
    html = _save_html(snapshot, out_html)

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    summary = {
        "report": "classification_quality",
        "html_path": str(html),
        "n_rows": len(y_true),
        "n_rows_used_by_evidently": len(used),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            label: {"f1": float(f), "precision": float(p), "recall": float(r), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "n_pred_not_argmax": n_pred_not_argmax,
        "evidently_accuracy": _evidently_value(snapshot.dict(), "Accuracy"),
        "scored": "served actions (the model's decision rule), not the argmax of its probabilities",
    }
    log.info("classification report %s: macro-F1 %.4f on %d rows", html, summary["f1_macro"], len(y_true))
    return summary


def _evidently_value(snapshot_dict: dict, metric: str) -> float | None:
    """A scalar metric of an Evidently snapshot (e.g. Accuracy), to show the HTML scored the same labels."""
    for m in snapshot_dict.get("metrics", []):
        if m.get("config", {}).get("type") == f"evidently:metric_v2:{metric}":
            return float(m["value"])
    return None


_METRIC_KEY = re.compile(r"[^0-9A-Za-z_\-. /]")


def flatten_numeric(summary: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested summary as `a.b.c` keys (bools as 0/1; strings and lists skipped)."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        name = _METRIC_KEY.sub("_", f"{prefix}{key}")
        if isinstance(value, dict):
            out.update(flatten_numeric(value, f"{name}."))
        elif isinstance(value, bool | int | float | np.integer | np.floating) and math.isfinite(float(value)):
            out[name] = float(value)
    return out
