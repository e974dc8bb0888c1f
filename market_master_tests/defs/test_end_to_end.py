"""`market-master run` end to end on small synthetic data, in a tmp data root (its own MLflow + Dagster).

planted signal (predictability 1.0) -> every gate passes -> the sensor promotes -> Production v1 -> predictions + WSS;
predictability=0 -> the baseline gate fails -> the sensor skips -> Production stays v1;
rollback/promote through the CLI; a second rollback with nothing to roll back to fails clearly.
"""

import pytest

from market_master import cli, settings
from market_master.lib.aliases import PRODUCTION_ALIAS
from market_master.lib.mlflow_adapter import MlflowAdapter
from market_master.lib.storage import PartitionStore

pytestmark = pytest.mark.slow

ARGS = ["run", "--days", "130", "--signal-days", "5", "--end", "2024-06-28", "--candidates", "LogReg,HGBT"]


def test_planted_signal_promotes_then_null_does_not_then_rollback(isolated_home, capsys):
    adapter = MlflowAdapter(settings.default_tracking_uri(), model_name=settings.MODEL_NAME)

    assert cli.main([*ARGS, "--predictability", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "Production: (unset) -> v1" in out
    for gate in (
        "champion_beats_baseline",
        "model_loads_and_predicts",
        "hourly_batch_within_slo",
        "api_predict_within_slo",
    ):
        assert f"gate {gate}" in out
    assert "FAIL" not in out
    assert "decision" in out and "covered weight" in out
    table = out[out.index("Stages (seconds, wall clock):") :].splitlines()
    assert [line.split()[0] for line in table[3:]] == ["setup", "1", "2", "3", "4", "5", "6", "total"]
    assert adapter.alias_version(PRODUCTION_ALIAS) == "1"
    store = PartitionStore(isolated_home / "partitions")
    signal = store.read("index_signal", [store.latest_key("index_signal")])
    assert len(signal) == 1 and signal["decision"].iloc[0] in {"BUY", "SELL", "HOLD"}
    preds = store.read("component_predictions", [store.latest_key("component_predictions")])
    assert set(preds["status"]) == {"ok"} and preds["model_version"].eq("1").all()
    assert list((isolated_home / "monitoring").glob("feature_drift_*.html"))
    assert (isolated_home / "reports" / "signal_backtest" / "equity.png").exists()

    # a random walk: the champion cannot beat the baselines -> no promotion
    assert cli.main([*ARGS, "--predictability", "0", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "gate champion_beats_baseline" in out and "FAIL" in out
    assert "sensor skipped" in out and "champion_beats_baseline" in out
    assert adapter.alias_version(PRODUCTION_ALIAS) == "1"

    # v2 failed its gates: a manual promote is refused unless forced, and a forced one says so
    assert cli.main(["promote", "--version", "2", "--reason", "test"]) == 2
    err = capsys.readouterr().err
    assert "did not pass its gates" in err and "champion_beats_baseline FAILED" in err
    assert adapter.alias_version(PRODUCTION_ALIAS) == "1"
    assert cli.main(["promote", "--version", "2", "--reason", "test", "--force"]) == 0
    assert "FORCED past failed gates" in capsys.readouterr().out
    assert adapter.alias_version(PRODUCTION_ALIAS) == "2"
    assert cli.main(["rollback", "--reason", "bad model"]) == 0
    assert adapter.alias_version(PRODUCTION_ALIAS) == "1"
    assert cli.main(["rollback", "--reason", "again"]) == 2
    assert "no earlier version" in capsys.readouterr().err
    assert cli.main(["history"]) == 0
    assert "rollback" in capsys.readouterr().out
    # every alias move is also production_model asset metadata (sensor-driven and manual ones)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey("production_model"), limit=10).records
    moves = [
        (
            r.asset_materialization.metadata["from_version"].value,
            r.asset_materialization.metadata["to_version"].value,
        )
        for r in records
    ]
    assert moves[:3] == [("2", "1"), ("1", "2"), ("none", "1")]
    # ... each one a run of the same promote_job (one alias-move path), the forced one recorded as forced
    with dg.DagsterInstance.get() as instance:
        assert {instance.get_run_by_id(r.run_id).job_name for r in records[:3]} == {"promote_job"}
    assert [r.asset_materialization.metadata["forced"].value for r in records[:3]] == [False, True, False]
