"""The two latency gates time the serving paths themselves, on a small universe.

`hourly_batch_within_slo` must time `predict_hours` predicting EVERY universe symbol of ONE hour (the
component_predictions asset's call), and `api_predict_within_slo` whole `POST /predict` requests answered
200 by the real app serving the champion: spies on those functions count what was timed, so a stand-in
(one row through `predict_proba`, a handler skipping validation) fails these tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import api.inference
from api.latency import api_predict_latency
from market_master.lib import gates, prediction
from market_master.lib.features import compute_features
from market_master.lib.model import COMPILED_FAST_PATH_MAX_ROWS, FAST_PATH_MAX_ROWS
from market_master.lib.prediction import ModelInfo
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.training import TrainingConfig, train_candidates

UNIVERSE = ["AAA", "BBB", "CCC", "DDD", "EEE"]


@pytest.fixture(scope="module")
def small_universe():
    bars = SyntheticSource(seed=5).fetch(UNIVERSE, "2024-01-02", "2024-03-28")
    features = compute_features(bars)
    result = train_candidates(features, TrainingConfig(candidates=("HGBT",), latency_rows=0, bootstrap_n=20))
    return result.champion, bars, features


def test_hourly_gate_times_predict_hours_for_the_whole_universe_of_one_hour(small_universe, monkeypatch):
    model, _, features = small_universe
    calls = []
    real = prediction.predict_hours

    def spy(frame, m, hours=None, universe=None, model_info=None):
        out = real(frame, m, hours=hours, universe=universe, model_info=model_info)
        calls.append((m, list(hours), list(universe), out))
        return out

    monkeypatch.setattr(prediction, "predict_hours", spy)
    gate = gates.hourly_batch_latency(model, features, UNIVERSE, n_hours=4, rounds=2)
    assert gate.name == "hourly_batch_within_slo" and gate.passed, gate.reason
    assert len(calls) == 1 + 4 * 2  # one warm-up call, then every hour in every round
    for m, hours, universe, out in calls:
        assert m is model and len(hours) == 1 and universe == UNIVERSE
        assert list(out["symbol"]) == UNIVERSE and set(out["status"]) == {"ok"}
    meta = gate.metadata
    assert (
        meta["n_symbols"] == len(UNIVERSE) and meta["n"] == 4 and meta["slo_ms"] == gates.HOURLY_BATCH_SLO_MS
    )
    assert 0 < meta["p50_ms"] <= meta["p99_ms"] <= meta["max_ms"] and meta["p99_wall_ms"] > 0
    failed = gates.hourly_batch_latency(model, features, UNIVERSE, n_hours=2, slo_ms=1e-6, rounds=1)
    assert not failed.passed and f"{failed.metadata['p99_ms']:.2f} ms CPU > SLO" in failed.reason


def test_api_gate_times_whole_post_predict_requests_of_the_champion(small_universe, monkeypatch):
    model, bars, _ = small_universe
    served = []
    real = api.inference.predict_isolated

    def spy(m, info, windows):
        served.append((m, info, [len(w) for w in windows]))
        return real(m, info, windows)

    monkeypatch.setattr(api.inference, "predict_isolated", spy)
    gate = api_predict_latency(model, ModelInfo("mm", "3"), bars, rounds=2)
    assert gate.name == "api_predict_within_slo" and gate.passed, gate.reason
    # one request per symbol, each through the batcher's model call with the champion itself
    assert gate.metadata["n"] == len(UNIVERSE) and gate.metadata["slo_ms"] == gates.API_PREDICT_SLO_MS
    assert sum(len(w) for _, _, w in served) == 1 + len(UNIVERSE) * 2
    assert all(m is model and info.version == "3" for m, info, _ in served)
    assert {n for _, _, w in served for n in w} == {model.feature_config.warmup + 1}
    assert gate.metadata["bars_per_request"] == model.feature_config.warmup + 1
    failed = api_predict_latency(model, ModelInfo("mm", "3"), bars, n_requests=2, slo_ms=1e-6, rounds=1)
    assert not failed.passed and failed.metadata["p99_ms"] > 0 and "POST /predict" in failed.reason


def test_an_index_sized_hour_of_hgbt_stays_on_the_compiled_trees(small_universe, monkeypatch):
    """100 rows (one hour of the NASDAQ-100) used to leave the numpy path (> 64 rows) for sklearn's
    predict, whose OpenMP pool cost ~9 ms CPU per call on 2 cores: the compiled trees take every hour of
    an index-sized universe, with the same probabilities."""
    model, _, features = small_universe
    rows = features[~features["warmup"]].head(100).reset_index(drop=True)
    assert FAST_PATH_MAX_ROWS < len(rows) <= COMPILED_FAST_PATH_MAX_ROWS
    expected = model.estimator.predict_proba(rows[["symbol", *model.feature_columns]])
    clf = model.estimator.named_steps["clf"]
    monkeypatch.setattr(clf, "predict_proba", lambda x: pytest.fail("sklearn predict on an hour's rows"))
    monkeypatch.setattr(type(model.estimator), "predict_proba", lambda *a: pytest.fail("pipeline predict"))
    got = model.predict_proba(rows)
    fitted = [int(c) for c in model.estimator.classes_]
    np.testing.assert_allclose(got[:, fitted], expected, atol=1e-12)
    hour = pd.Timestamp(rows["timestamp"].iloc[-1])
    assert set(prediction.predict_hours(features, model, hours=[hour])["status"]) == {"ok"}
