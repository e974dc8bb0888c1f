"""The live track record's pieces: deployments from stored predictions, their look-ahead, their folds,
and the hour-by-hour comparison with the walk-forward."""

import numpy as np
import pandas as pd
import pytest

from market_master.lib import calendar
from market_master.lib.track_record import (
    Deployment,
    compare_signals,
    deployment_folds,
    deployments,
    lookahead_violations,
)
from market_master.lib.walk_forward import WalkForwardConfig, session_days

NY = calendar.TZ


def _hours(day: str) -> list[pd.Timestamp]:
    return list(
        calendar.trading_bars(pd.Timestamp(day, tz=NY), pd.Timestamp(day, tz=NY) + pd.Timedelta(hours=23))
    )


def test_deployments_are_runs_of_one_version():
    h = _hours("2023-11-06") + _hours("2023-11-07")
    versions = ["1"] * 7 + ["2"] * 7
    preds = pd.DataFrame({"hour": h * 2, "symbol": ["A"] * 14 + ["B"] * 14, "model_version": versions * 2})
    through = {"1": h[0] - pd.Timedelta(days=3), "2": h[6]}
    served = deployments(preds, through)
    assert [(d.version, d.first_hour, d.last_hour) for d in served] == [("1", h[0], h[6]), ("2", h[7], h[13])]
    assert lookahead_violations(served) == []
    bad = [Deployment("3", h[7], h[7], h[8])]
    assert lookahead_violations(bad) and "v3" in lookahead_violations(bad)[0]
    mixed = preds.copy()
    mixed.loc[0, "model_version"] = "2"
    with pytest.raises(ValueError, match="more than one version"):
        deployments(mixed, through)


def _features(days: list[str]) -> pd.DataFrame:
    hours = [h for d in days for h in _hours(d)]
    return pd.DataFrame({"symbol": "A", "timestamp": hours, "warmup": False})


def test_deployment_folds_train_through_the_retrain_session_and_predict_the_served_ones():
    days = ["2023-11-06", "2023-11-07", "2023-11-08", "2023-11-09", "2023-11-10", "2023-11-13"]
    features = _features(days)
    hours, _ = session_days(features)
    served = [
        Deployment("1", hours[7 * 2 - 1], hours[7 * 2], hours[7 * 4 - 1]),  # trained through day 2
        Deployment("2", hours[7 * 4 - 1], hours[7 * 4], hours[-1]),  # retrained after day 4
    ]
    expanding = deployment_folds(features, served, WalkForwardConfig(train_sessions=5))
    assert [(f.train_lo, f.train_hi, f.oos_lo, f.oos_hi, f.select) for f in expanding] == [
        (0, 2, 2, 4, True),
        (0, 4, 4, 6, True),
    ]
    rolling = deployment_folds(features, served, WalkForwardConfig(scheme="rolling", train_sessions=5))
    assert [(f.train_lo, f.train_hi) for f in rolling] == [(0, 2), (0, 4)]
    mid_session = [Deployment("1", hours[3], hours[14], hours[20])]
    with pytest.raises(ValueError, match="not to the end of its session"):
        deployment_folds(features, mid_session, WalkForwardConfig(train_sessions=5))


def test_compare_signals_flags_every_difference():
    h = _hours("2023-11-06")[:3]
    a = pd.DataFrame(
        {
            "hour": h,
            "wss": [0.5, -0.2, np.nan],
            "decision": ["BUY", "HOLD", "HOLD"],
            "covered_weight": 1.0,
            "n_predicted": 3,
        }
    )
    same = compare_signals(a, a.copy())
    assert same["equal"].all()
    b = a.copy()
    b.loc[1, "wss"] = -0.2 + 1e-9
    b = b.iloc[:2]
    c = compare_signals(a, b)
    assert c["equal"].tolist() == [True, False, False]


def test_explicit_folds_must_train_before_their_oos_sessions():
    from market_master.lib.walk_forward import Fold, run_walk_forward

    features = _features(["2023-11-06", "2023-11-07", "2023-11-08"]).assign(close=100.0)
    overlapping = [Fold(0, 0, 2, 1, 3, select=True)]  # trains on a session it then predicts
    with pytest.raises(ValueError, match="not train-before-OOS"):
        run_walk_forward(features, {"A": 1.0}, folds=overlapping)
