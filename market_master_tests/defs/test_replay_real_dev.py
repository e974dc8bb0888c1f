"""Replay on ../shared/data/real-dev (skipped when absent): the last week of 2024 (Christmas Eve half-day,
Christmas closed) through the real schedules, sensor and jobs. On real data the gates refuse (the honest
outcome), so the bootstrap champion is promoted FORCED (`--force-first`), as an operator would to watch
it; the track record of the replayed hours must still equal the walk-forward history of that version.
Timing: ~160 s on 2 busy cores (3 symbols, LogReg, in-memory instance)."""

import pandas as pd
import pytest

from market_master.lib import calendar
from market_master.lib.replay_plan import history_window, plan_replay

pytestmark = pytest.mark.slow


def test_real_dev_last_week_replay_equals_walk_forward(real_dev_dir, tmp_path, monkeypatch):
    import dagster as dg

    from market_master.definitions import build_definitions
    from market_master.defs.resources import MarketDataResource
    from market_master.local_run import LocalRunner, configure_dagster_env
    from market_master.replay import Replayer

    monkeypatch.setenv("MARKET_MASTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure_dagster_env()
    market = MarketDataResource(source="csv", csv_dir=str(real_dev_dir), symbols=["AAPL", "MSFT", "NVDA"])
    runner = LocalRunner(
        build_definitions({"market_data": market}), dg.DagsterInstance.ephemeral(), echo=False
    )
    config = {"candidates": ["LogReg"], "train_sessions": 20, "refit_every_sessions": 10}
    replayer = Replayer(
        runner, {"ops": {"walk_forward_history": {"config": config}}}, echo=False, force_first=True
    )
    plan = plan_replay("2024-12-23", "2024-12-31", retrain_every=0, monitoring_every=0)
    first, last = history_window(plan, 40)
    result = replayer.replay(plan, replayer.bootstrap(first, last))

    expected = plan.trading_hours()
    assert len(expected) == 5 * 7 + 4  # Dec 24 closes at 13:00, Dec 25 closed
    assert list(pd.DatetimeIndex(result.hours["hour"])) == list(expected)
    # real-dev (Yahoo 1h bars) has NO bar for the half-day's last half hour (Dec 24 12:30-13:00) although
    # the calendar has one: that hour's run fails at ingestion, naming the missing bars (a live finding)
    failed = result.hours[result.hours["error"].notna()]
    assert [f"{h:%m-%d %H:%M}" for h in failed["hour"]] == ["12-24 12:30"], failed
    assert failed["error"].str.contains("has no bars in").all()
    ok = result.hours[result.hours["error"].isna()]
    assert ok["model_version"].eq("1").all(), ok.drop(columns=["tick"])
    assert not [h for h in expected if h.tz_convert(calendar.TZ).day == 25]
    assert result.promotions == [{"at": result.promotions[0]["at"], "version": "1", "forced": True}]
    served = pd.DatetimeIndex(ok["hour"])
    track = replayer.track_record(served)
    assert track.lookahead == [] and len(track.comparison) == len(served)
    assert track.comparison["equal"].all(), track.comparison
    report = replayer.backtest(served)
    assert report["proxy"] == "QQQ" and report["n_bars"] + report["n_unpriced"] == len(served)
