"""Why there is no signal: with no Production model, /health, /signal/index and `market-master status`
name the latest champion, the gates it failed with their numbers and the next retrain, in one line, from
the verdicts the REAL gate checks recorded on the registry version (the same numbers as the checks'
metadata). A stored signal is flagged stale with its age."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from market_master import cli
from market_master.defs.resources import MlflowResource
from market_master.defs.training.assets import ChampionRecord
from market_master.defs.training.checks import (
    GATE_NAMES,
    GateSettings,
    champion_beats_baseline,
    signal_has_index_timing_skill,
)
from market_master.defs.training.walk_forward import ProxyReturns, WalkForwardHistory
from market_master.lib import cadence, calendar
from market_master.lib.backtest import weighted_constituent_returns
from market_master.lib.features import compute_features
from market_master.lib.model_status import read_gate_verdicts
from market_master.lib.storage import PartitionStore
from market_master.lib.training import TrainingConfig
from market_master.lib.walk_forward import WalkForwardConfig, run_walk_forward
from market_master.lib.weights import embedded_top10
from market_master_tests.api.conftest import _adapter, _train

CLOCK = pd.Timestamp("2024-07-03 22:00", tz="UTC")  # 18:00 New York; July 4th is a holiday
NEXT_RETRAIN = pd.Timestamp("2024-07-05 17:30", tz=calendar.TZ)
JUDGED = (champion_beats_baseline, signal_has_index_timing_skill)
JUDGED_NAMES = {"champion_beats_baseline", "signal_has_index_timing_skill"}


@dataclass(frozen=True)
class RefusedEnv:
    root: Path
    tracking_uri: str
    version: str
    evaluations: dict  # gate -> AssetCheckEvaluation (what Dagster recorded)


@pytest.fixture(scope="module")
def refused(api_env, tmp_path_factory) -> RefusedEnv:
    """A champion registered (alias Staging only) whose real gate checks failed (thresholds set out of
    reach), run through Dagster like the pipeline does; no Production alias, no signal stored."""
    root = tmp_path_factory.mktemp("refused-home")
    (root / "mlflow").mkdir()
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    features = compute_features(api_env.bars)
    result = _train(features[features["timestamp"] < api_env.train_until].reset_index(drop=True), seed=3)
    registered = _adapter(root, uri).log_training(result)
    record = ChampionRecord(
        model_name=registered.name,
        version=str(registered.version),
        model_uri=registered.model_uri,
        run_id=registered.run_id,
        parent_run_id=registered.parent_run_id,
        champion_name=result.champion_name,
        result=result,
    )

    weights = embedded_top10().weights
    training = TrainingConfig(candidates=("LogReg",), bootstrap_n=50)
    walk_forward = run_walk_forward(
        features,
        weights,
        config=WalkForwardConfig(train_sessions=25, refit_every_sessions=15, select_every_folds=2),
        training=training,
    )
    history = WalkForwardHistory(
        result=walk_forward,
        proxy=ProxyReturns(weighted_constituent_returns(api_env.bars, weights), "basket", "test basket"),
        start=features["timestamp"].min(),
        end=features["timestamp"].max(),
        training=training,
    )

    @dg.asset(name="champion_model")
    def stand_in_champion() -> ChampionRecord:
        return record

    @dg.asset(name="walk_forward_history")
    def stand_in_history() -> WalkForwardHistory:
        return history

    with dg.instance_for_test() as instance:
        run = dg.materialize(
            [stand_in_champion, stand_in_history, *JUDGED],
            resources={
                "mlflow": MlflowResource(tracking_uri=uri),
                "gate_settings": GateSettings(min_z=1000.0, min_timing_z=1000.0),
            },
            instance=instance,
            raise_on_error=False,
        )
        evaluations = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert set(evaluations) == JUDGED_NAMES
    assert not any(e.passed for e in evaluations.values())
    return RefusedEnv(root, uri, record.version, evaluations)


def _app(api_env, **overrides):
    return create_app(api_env.settings(**overrides))


def _client(app, clock=CLOCK) -> TestClient:
    client = TestClient(app)
    client.__enter__()
    client.app.state.clock = lambda: clock
    return client


@pytest.fixture
def refused_client(api_env, refused):
    client = _client(_app(api_env, tracking_uri=refused.tracking_uri, data_root=refused.root))
    yield client
    client.__exit__(None, None, None)


def test_checks_record_their_verdict_on_the_judged_version(refused):
    tags = _adapter(refused.root, refused.tracking_uri).version_tags(refused.version)
    verdicts, expected = read_gate_verdicts(tags)
    assert expected == list(GATE_NAMES)
    assert set(verdicts) == set(refused.evaluations)
    for name, evaluation in refused.evaluations.items():
        verdict = verdicts[name]
        assert verdict.passed is False
        assert verdict.reason == evaluation.metadata["reason"].value
        assert verdict.dagster_run_id  # the run that judged it
        # every scalar number of the check's metadata, unchanged
        for key, value in evaluation.metadata.items():
            if key != "reason" and isinstance(value.value, int | float | str | bool):
                assert verdict.metrics[key] == value.value, key


def test_health_explains_the_refusal_in_one_line_with_the_checks_numbers(refused_client, refused):
    body = refused_client.get("/health").json()
    assert body["status"] == "no_model"
    status = body["production_status"]
    assert status["state"] == "gates_failed"
    assert status["latest_champion_version"] == refused.version
    line = status["explanation"]
    assert "\n" not in line
    assert line.startswith(f"no Production model: latest champion {status['model_name']} v{refused.version}")
    assert f"failed 2 of {len(GATE_NAMES)} gates" in line
    assert "next retrain due 2024-07-05 17:30 EDT (daily_retrain_schedule" in line
    assert pd.Timestamp(status["next_retrain_at"]) == NEXT_RETRAIN
    assert set(status["failed_gates"]) == set(refused.evaluations)
    assert set(status["not_recorded_gates"]) == set(GATE_NAMES) - set(refused.evaluations)
    assert line in body["warning"]
    # one verdict everywhere: the reason (with its numbers) and each metric as the check's metadata says
    for gate in status["gates"]:
        evaluation = refused.evaluations[gate["name"]]
        assert f"{gate['name']} ({evaluation.metadata['reason'].value})" in line
        assert gate["reason"] == evaluation.metadata["reason"].value
        for key, value in gate["metrics"].items():
            assert evaluation.metadata[key].value == value, key


def test_signal_404_says_why_instead_of_run_the_pipeline(refused_client):
    explanation = refused_client.get("/health").json()["production_status"]["explanation"]
    r = refused_client.get("/signal/index")
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "no_production_model"
    assert body["message"] == explanation
    assert "run the pipeline first" not in body["message"]
    assert {d["name"] for d in body["details"]} == JUDGED_NAMES


def test_a_stored_signal_without_a_model_is_served_with_the_reason(api_env, refused, tmp_path):
    src, dst = PartitionStore(api_env.root / "partitions"), PartitionStore(tmp_path / "partitions")
    key = api_env.signal_keys[-1]
    for asset in ("component_predictions", "index_signal"):
        dst.write(asset, key, src.read(asset, [key]))
    client = _client(_app(api_env, tracking_uri=refused.tracking_uri, data_root=tmp_path))
    try:
        body = client.get("/signal/index").json()
    finally:
        client.__exit__(None, None, None)
    assert body["production_status"]["state"] == "gates_failed"
    assert "NO MODEL SERVED: no Production model" in body["warning"]
    assert body["stale"] is True  # a March 2024 signal judged in July 2024


def test_no_champion_at_all_says_run_the_pipeline_first(api_env, tmp_path):
    (tmp_path / "mlflow").mkdir()
    client = _client(
        _app(api_env, tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'm.db'}", data_root=tmp_path)
    )
    try:
        status = client.get("/health").json()["production_status"]
        r = client.get("/signal/index")
    finally:
        client.__exit__(None, None, None)
    assert status["state"] == "no_champion"
    assert "run the pipeline first" in status["explanation"]
    assert r.status_code == 404 and r.json()["error"] == "nothing_stored"
    assert "run the pipeline first" in r.json()["message"]


def test_cli_status_prints_the_same_line(refused, refused_client, monkeypatch, capsys):
    api_line = refused_client.get("/health").json()["production_status"]["explanation"]
    monkeypatch.setenv("MARKET_MASTER_HOME", str(refused.root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cli.main(["status"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("signal: none stored")
    # the same verdict text; only the next retrain differs (the API was asked at CLOCK, the CLI now)
    before_retrain = api_line.split("; next retrain due")[0]
    assert lines[0].split("; next retrain due")[0] == before_retrain
    next_now = cadence.next_retrain(pd.Timestamp.now(tz="UTC"))
    assert f"next retrain due {cadence.describe_retrain(next_now)}" in lines[0]


def test_happy_path_has_no_explanation_and_a_fresh_signal(api_env):
    last = pd.Timestamp(api_env.signal_keys[-1][:10] + " " + api_env.signal_keys[-1][11:], tz=calendar.TZ)
    just_after = calendar.bar_end(last) + pd.Timedelta(minutes=6)
    client = _client(_app(api_env), clock=just_after)
    try:
        health = client.get("/health").json()
        body = client.get("/signal/index").json()
        client.app.state.clock = lambda: just_after + pd.Timedelta(days=5)
        later = client.get("/signal/index").json()
    finally:
        client.__exit__(None, None, None)
    assert health["status"] == "ok" and health["production_status"] is None
    assert body["stale"] is False and body["warning"] is None and body["production_status"] is None
    assert body["age_minutes"] == 6.0
    assert pd.Timestamp(body["expected_hour"]) <= last
    # the same stored signal five days later (after Good Friday and a weekend): flagged, with its age, never silently fresh
    assert later["stale"] is True
    assert later["age_minutes"] == pytest.approx(6.0 + 5 * 24 * 60)
    assert pd.Timestamp(later["expected_hour"]) > last
    assert later["warning"].startswith("STALE: the signal is for the bar at")
    assert later["wss"] == body["wss"] and later["components"] == body["components"]
