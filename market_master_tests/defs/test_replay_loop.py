"""The hourly loop, proved: three weeks of synthetic hours replayed through the REAL schedules, sensor and
jobs at simulated ticks (market_master/replay.py), across the DST change (Sun 2023-11-05), Thanksgiving
(Thu 2023-11-23, closed) and its half-day (Fri 2023-11-24, closes 13:00), with retrains inside the window.

Gate thresholds are relaxed for this small universe (3 symbols, a few weeks: the DSR and drift gates
cannot pass on so few hours); the sensor still decides on every gate's verdict.
"""

import pandas as pd
import pytest

from market_master.lib import calendar
from market_master.lib.replay_plan import history_window, plan_replay

pytestmark = pytest.mark.slow

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
START, END = "2023-11-03", "2023-11-24"  # Fri (EDT) .. Fri half-day, DST change and Thanksgiving inside
WALK_FORWARD = {"candidates": ["LogReg"], "train_sessions": 8, "refit_every_sessions": 5}


@pytest.fixture
def replayed(tmp_path, monkeypatch):
    import dagster as dg

    from market_master.definitions import build_definitions
    from market_master.defs.resources import MarketDataResource
    from market_master.defs.training.checks import GateSettings
    from market_master.local_run import LocalRunner, configure_dagster_env
    from market_master.replay import Replayer

    monkeypatch.setenv("MARKET_MASTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure_dagster_env()
    gates = GateSettings(
        min_dsr=0.0, max_drifted_share=1.0, min_z=0.0, min_timing_z=-9.0, latency_requests=10
    )
    defs = build_definitions(
        {"market_data": MarketDataResource(symbols=SYMBOLS, predictability=1.0), "gate_settings": gates}
    )
    runner = LocalRunner(defs, dg.DagsterInstance.ephemeral(), echo=False)
    lines: list[str] = []
    replayer = Replayer(
        runner,
        retrain_run_config={"ops": {"walk_forward_history": {"config": WALK_FORWARD}}},
        out=lines.append,
    )
    plan = plan_replay(START, END, retrain_every=5, monitoring_every=0)
    first, last = history_window(plan, 20)
    bootstrap = replayer.bootstrap(first, last)
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import Settings
    from market_master import settings

    api_settings = Settings(
        tracking_uri=settings.default_tracking_uri(),
        data_root=tmp_path / "home",
        admin_token="t",
        reload_poll_seconds=0,
    )
    with TestClient(create_app(api_settings)) as client:
        served_before = client.get("/health").json()["model_version"]
        result = replayer.replay(plan, bootstrap)
        reload = client.post("/admin/reload", headers={"Authorization": "Bearer t"}).json()
        health = client.get("/health").json()
        signal = client.get("/signal/index")
    return {
        "plan": plan,
        "result": result,
        "replayer": replayer,
        "lines": lines,
        "store": defs.resources["storage"].partitions(),
        "api": (served_before, reload, health, signal),
    }


def test_replay_every_trading_hour_one_signal_promotion_after_gates_api_follows_track_record(replayed):
    plan, result, store = replayed["plan"], replayed["result"], replayed["store"]
    expected = plan.trading_hours()
    # the calendar's hours: DST (EDT on Nov 3, EST from Nov 6), no Thanksgiving, half-day until 12:30
    days = expected.tz_convert(calendar.TZ).normalize()
    assert pd.Timestamp("2023-11-23", tz=calendar.TZ) not in set(days)
    half = expected[days == pd.Timestamp("2023-11-24", tz=calendar.TZ)]
    assert [f"{h:%H:%M}" for h in half.tz_convert(calendar.TZ)] == ["09:30", "10:30", "11:30", "12:30"]
    assert {f"{h:%H:%M %Z}" for h in expected.tz_convert(calendar.TZ)[:1]} == {"09:30 EDT"}
    assert f"{expected.tz_convert(calendar.TZ)[-1]:%H:%M %Z}" == "12:30 EST"
    assert len(expected) == 14 * 7 + 4

    # every trading hour exactly one hourly run and one stored signal row, nothing on the holiday
    hours = result.hours
    assert hours["error"].isna().all(), hours.loc[hours["error"].notna(), ["hour", "error"]]
    assert list(pd.DatetimeIndex(hours["hour"])) == list(expected)
    keys = [calendar.partition_key(h) for h in expected]
    signal = store.read("index_signal", keys)
    assert len(signal) == len(expected) and not signal["hour"].duplicated().any()
    assert set(signal["decision"]) <= {"BUY", "SELL", "HOLD"}
    stored = set(store.keys("index_signal"))
    holiday = [k for k in stored if k.startswith("2023-11-23")]
    half_afternoon = [k for k in stored if k.startswith("2023-11-24") and k[-5:] >= "13:30"]
    assert not holiday and not half_afternoon
    skipped = {
        s["at"].strftime("%m-%d %H:%M") for s in result.skipped if s["schedule"] == "hourly_signal_schedule"
    }
    assert "11-23 10:35" in skipped and "11-24 14:35" in skipped
    assert all(int(v) >= 1 for v in hours["model_version"])

    # retrains inside the window; a version serves only after its gates passed and the sensor moved it
    inside = [r for r in result.retrains if r["at"] >= plan.start]
    assert len(inside) >= 2
    for r in result.retrains:
        assert (r["promoted"] is not None) == r["gates_passed"], r
    promoted_inside = [p for p in result.promotions if p["at"] >= plan.start]
    assert promoted_inside, result.retrains
    for p in result.promotions:
        first_served = hours.loc[hours["model_version"] == p["version"], "tick"]
        assert first_served.empty or first_served.min() > p["at"]
    served_versions = list(dict.fromkeys(hours["model_version"]))
    assert served_versions == [p["version"] for p in result.promotions if p["version"] in served_versions]

    # the in-process API served the bootstrap version, and after a reload the version the sensor moved to
    served_before, reload, health, api_signal = replayed["api"]
    last = result.promotions[-1]["version"]
    assert served_before == result.promotions[0]["version"] != last
    assert reload["changed"] is True and health["model_version"] == last
    assert api_signal.status_code == 200
    assert api_signal.json()["hour"].startswith("2023-11-24T12:30")

    # the printed line per hour and the progress bar
    hour_lines = [line for line in replayed["lines"] if " WSS " in line]
    assert len(hour_lines) == len(expected) and "ETA" in hour_lines[-1] and "covered" in hour_lines[0]

    # the stored signal IS the walk-forward out-of-sample history of the same versions and hours
    track = replayed["replayer"].track_record(pd.DatetimeIndex(hours["hour"]))
    assert track.lookahead == []
    assert [d.version for d in track.served] == served_versions
    assert len(track.comparison) == len(expected)
    unequal = track.comparison[~track.comparison["equal"]]
    assert unequal.empty, unequal
    # ... and the backtest report is made from the replayed signal
    report = replayed["replayer"].backtest(pd.DatetimeIndex(hours["hour"]))
    assert report["n_bars"] + report["n_unpriced"] == len(expected) and report["proxy"] == "QQQ"
