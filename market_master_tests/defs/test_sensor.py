"""The promotion sensor, ticked with build_sensor_context/evaluate_tick against a real instance.

A stand-in `champion_model` asset (same key, same gate-check names, verdicts chosen by the test) is
materialized into an ephemeral instance; the REAL sensor then reads that run's check records.
"""

import dagster as dg
import pytest

from market_master.defs.promotion.sensors import promote_champion_when_gates_pass
from market_master.defs.training.checks import GATE_NAMES


def _materialize_champion(instance: dg.DagsterInstance, version: str, failing: set[str]) -> str:
    @dg.asset(name="champion_model", check_specs=[dg.AssetCheckSpec(g, asset="champion_model") for g in GATE_NAMES])
    def fake_champion():
        return dg.MaterializeResult(
            metadata={"model_version": version, "model_name": "mm-test-model"},
            check_results=[dg.AssetCheckResult(check_name=g, passed=g not in failing) for g in GATE_NAMES],
        )

    res = dg.materialize([fake_champion], instance=instance)
    assert res.success
    return res.run_id


def _tick(instance, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    return promote_champion_when_gates_pass.evaluate_tick(ctx)


def test_passing_champion_yields_exactly_one_run_request_with_idempotent_key():
    with dg.instance_for_test() as instance:
        run_id = _materialize_champion(instance, "7", failing=set())
        result = _tick(instance)
        assert len(result.run_requests) == 1
        req = result.run_requests[0]
        assert req.run_key == "promote-mm-test-model-v7"
        cfg = req.run_config["ops"]["production_model"]["config"]
        assert cfg["version"] == "7" and run_id in cfg["reason"]
        # the same materialization on the next tick (cursor advanced) requests nothing more
        again = _tick(instance, cursor=result.cursor)
        assert not again.run_requests


@pytest.mark.parametrize("failing", [{"champion_beats_baseline"}, {"latency_within_slo", "feature_drift_is_below_limit"}])
def test_failing_gate_yields_no_run_request_and_names_the_gate(failing):
    with dg.instance_for_test() as instance:
        _materialize_champion(instance, "3", failing=failing)
        result = _tick(instance)
        assert not result.run_requests
        assert "Production unchanged" in result.skip_message
        for gate in failing:
            assert gate in result.skip_message
        for gate in set(GATE_NAMES) - failing:
            assert gate not in result.skip_message


def test_no_materialization_no_request():
    with dg.instance_for_test() as instance:
        result = _tick(instance)
        assert not result.run_requests
