"""The promotion sensor, ticked with build_sensor_context/evaluate_tick against a real instance.

A stand-in `champion_model` asset (same key, same gate-check names, verdicts chosen by the test) is
materialized into an ephemeral instance; the REAL sensor then reads that run's check records.
"""

import dagster as dg
import pytest

from market_master.definitions import defs
from market_master.defs.promotion.sensors import promote_champion_when_gates_pass
from market_master.defs.training.checks import GATE_NAMES


def _materialize_champion(instance: dg.DagsterInstance, version: str, failing: set[str]) -> str:
    @dg.asset(
        name="champion_model", check_specs=[dg.AssetCheckSpec(g, asset="champion_model") for g in GATE_NAMES]
    )
    def fake_champion():
        return dg.MaterializeResult(
            metadata={"model_version": version, "model_name": "mm-test-model"},
            check_results=[dg.AssetCheckResult(check_name=g, passed=g not in failing) for g in GATE_NAMES],
        )

    res = dg.materialize([fake_champion], instance=instance)
    assert res.success
    return res.run_id


def _tick(instance, cursor=None):
    ctx = dg.build_multi_asset_sensor_context(
        monitored_assets=[dg.AssetKey("champion_model")], instance=instance, cursor=cursor, definitions=defs
    )
    return promote_champion_when_gates_pass.evaluate_tick(ctx)


def test_passing_champion_yields_exactly_one_run_request_with_idempotent_key():
    with dg.instance_for_test() as instance:
        run_id = _materialize_champion(instance, "7", failing=set())
        result = _tick(instance)
        assert len(result.run_requests) == 1
        req = result.run_requests[0]
        assert req.run_key == "promote-mm-test-model-v7"
        cfg = req.run_config["ops"]["production_model"]["config"]
        assert cfg["version"] == "7" and run_id in cfg["reason"] and cfg["force"] is False
        # the same materialization on the next tick (cursor advanced) requests nothing more
        again = _tick(instance, cursor=result.cursor)
        assert not again.run_requests


@pytest.mark.parametrize(
    "failing", [{"champion_beats_baseline"}, {"hourly_batch_within_slo", "feature_drift_is_below_limit"}]
)
def test_failing_gate_yields_no_run_request_and_names_the_gate(failing):
    with dg.instance_for_test() as instance:
        _materialize_champion(instance, "3", failing=failing)
        result = _tick(instance)
        assert not result.run_requests
        assert "Production unchanged" in result.skip_message
        for gate in failing:
            assert f"{gate} FAILED" in result.skip_message
        for gate in set(GATE_NAMES) - failing:
            assert gate not in result.skip_message


def test_pending_gates_are_decided_on_a_later_tick_not_skipped_for_good():
    """A tick that sees the champion before its gate checks finished must not consume it."""
    from market_master.defs.promotion.sensors import decide_promotion

    with dg.instance_for_test() as instance:

        @dg.asset(name="champion_model")
        def champion_without_verdicts():
            return dg.MaterializeResult(metadata={"model_version": "5", "model_name": "mm-test-model"})

        # the champion is materialized, its gate checks have not reported yet, the run is still going
        first = dg.materialize([champion_without_verdicts], instance=instance)
        record = instance.fetch_materializations(dg.AssetKey("champion_model"), limit=1).records[0]
        real_get_run = instance.get_run_by_id

        class _Running:
            is_finished = False

        instance.get_run_by_id = lambda rid: _Running() if rid == first.run_id else real_get_run(rid)
        assert decide_promotion(instance, record.event_log_entry).pending
        pending = _tick(instance)
        assert not pending.run_requests and "still running" in pending.skip_message
        # the run ends without verdicts: refused, naming the gates that were never evaluated
        instance.get_run_by_id = real_get_run
        ended = _tick(instance, cursor=pending.cursor)
        assert not ended.run_requests and "champion_beats_baseline not evaluated" in ended.skip_message
        # a new champion whose gates all passed: the next tick promotes it
        _materialize_champion(instance, "6", failing=set())
        later = _tick(instance, cursor=ended.cursor)
        assert [r.run_key for r in later.run_requests] == ["promote-mm-test-model-v6"]


def test_only_the_latest_champion_is_promoted():
    with dg.instance_for_test() as instance:
        _materialize_champion(instance, "1", failing=set())
        _materialize_champion(instance, "2", failing=set())
        result = _tick(instance)
        assert [r.run_key for r in result.run_requests] == ["promote-mm-test-model-v2"]


def test_no_materialization_no_request():
    with dg.instance_for_test() as instance:
        result = _tick(instance)
        assert not result.run_requests
