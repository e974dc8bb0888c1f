"""predict_hours statuses, one batched model call, timestamp_next over weekends/holidays/half-days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_master.lib import calendar
from market_master.lib.features import FEATURE_COLUMNS, FeatureConfig, compute_features
from market_master.lib.labels import CLASSES
from market_master.lib.prediction import (
    PREDICTION_COLUMNS,
    ModelInfo,
    next_bar_starts,
    predict_hours,
    predict_latest,
)
from market_master.lib.sources.synthetic import SyntheticSource

TZ = "America/New_York"


class ReturnSoftmaxModel:
    """A small deterministic classifier: softmax of (class score x last return); counts its calls."""

    feature_columns = list(FEATURE_COLUMNS)

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        self.calls.append(len(features))
        r = features["ret_1"].to_numpy()[:, None] * 500.0
        logits = r * np.array([-2.0, -1.0, 0.0, 1.0, 2.0])[None, :]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    b = SyntheticSource(seed=7).fetch(["AAA", "BBB"], "2024-07-01", "2024-07-12")
    # BBB misses the 2024-07-10 11:30 bar
    gap = (b["symbol"] == "BBB") & (b["timestamp"] == pd.Timestamp("2024-07-10 11:30", tz=TZ))
    assert gap.sum() == 1
    return b[~gap].reset_index(drop=True)


@pytest.fixture(scope="module")
def features(bars) -> pd.DataFrame:
    return compute_features(bars, FeatureConfig(warmup=16))


def test_statuses_and_non_ok_rows_never_carry_an_action(features):
    model = ReturnSoftmaxModel()
    out = predict_hours(
        features, model, universe=["AAA", "BBB", "ZZZ"], model_info=ModelInfo("m", "3", "Staging")
    )
    assert list(out.columns) == PREDICTION_COLUMNS
    hours = features["timestamp"].unique()
    assert len(out) == len(hours) * 3
    by = out.set_index(["hour", "symbol"])
    first = pd.Timestamp(hours.min())
    assert by.loc[(first, "AAA"), "status"] == "warmup"
    assert by.loc[(pd.Timestamp("2024-07-10 11:30", tz=TZ), "BBB"), "status"] == "missing_bar"
    assert by.loc[(pd.Timestamp("2024-07-10 11:30", tz=TZ), "AAA"), "status"] == "ok"
    assert (out.loc[out["symbol"] == "ZZZ", "status"] == "missing_bar").all()
    # warm-up count per symbol is exactly the config's
    assert (out[(out["symbol"] == "AAA")]["status"] == "warmup").sum() == 16

    non_ok = out[out["status"] != "ok"]
    assert len(non_ok) > 0
    assert non_ok["action"].isna().all()
    assert non_ok[[f"p_{c}" for c in CLASSES] + ["confidence"]].isna().all().all()

    ok = out[out["status"] == "ok"]
    probs = ok[[f"p_{c}" for c in CLASSES]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert (ok["action"].to_numpy() == np.asarray(CLASSES)[probs.argmax(axis=1)]).all()
    assert np.allclose(ok["confidence"], probs.max(axis=1))
    assert set(ok["action"]) <= set(CLASSES) and ok["action"].nunique() > 1
    assert (out["model_name"] == "m").all() and (out["model_version"] == "3").all()
    assert (out["model_alias"] == "Staging").all()
    # ONE batched model call for all ok rows
    assert model.calls == [len(ok)]


def test_predictions_match_the_model_on_the_same_feature_rows(features):
    model = ReturnSoftmaxModel()
    out = predict_hours(features, model, universe=["AAA"])
    ok = out[out["status"] == "ok"].reset_index(drop=True)
    rows = features[(features["symbol"] == "AAA") & ~features["warmup"]].reset_index(drop=True)
    expected = ReturnSoftmaxModel().predict_proba(rows)
    assert np.allclose(ok[[f"p_{c}" for c in CLASSES]].to_numpy(), expected)


def test_requested_hours_subset_and_unknown_hour_is_missing(features):
    hrs = [pd.Timestamp("2024-07-11 10:30", tz=TZ), "2024-07-11 11:30"]
    out = predict_hours(features, ReturnSoftmaxModel(), hours=hrs)
    assert sorted(out["hour"].unique()) == [
        pd.Timestamp(h, tz=TZ) for h in ("2024-07-11 10:30", "2024-07-11 11:30")
    ]
    assert (out["status"] == "ok").all()
    later = predict_hours(features, ReturnSoftmaxModel(), hours=["2024-07-15 09:30"])
    assert (later["status"] == "missing_bar").all() and later["action"].isna().all()


@pytest.mark.parametrize(
    ("hour", "expected"),
    [
        ("2024-07-12 15:30", "2024-07-15 09:30"),  # Friday close -> Monday open (weekend)
        ("2024-07-03 15:30", "2024-07-05 09:30"),  # half-day afternoon, July 4th holiday
        ("2024-07-03 12:30", "2024-07-05 09:30"),  # half-day's last bar -> over the holiday
        ("2024-11-29 11:30", "2024-11-29 12:30"),  # half-day morning keeps hourly bars
        ("2024-11-29 12:30", "2024-12-02 09:30"),  # half-day close -> Monday
        ("2024-07-11 10:30", "2024-07-11 11:30"),
    ],
)
def test_timestamp_next_follows_the_calendar(hour, expected):
    got = next_bar_starts([hour])[0]
    assert got == pd.Timestamp(expected, tz=TZ)
    assert got == calendar.next_bar_start(hour)


def test_timestamp_next_column_is_vectorised_and_consistent(features):
    out = predict_hours(features, ReturnSoftmaxModel())
    expected = [calendar.next_bar_start(h) for h in out["hour"].unique()]
    got = out.drop_duplicates("hour")["timestamp_next"].tolist()
    assert got == expected
    assert str(out["timestamp_next"].dt.tz) == TZ


def test_predict_latest_is_the_last_bar(features):
    latest = predict_latest(features, ReturnSoftmaxModel(), "BBB")
    last = features.loc[features["symbol"] == "BBB", "timestamp"].max()
    assert latest["hour"] == last and latest["symbol"] == "BBB"
    assert latest["status"] == "ok" and latest["action"] in CLASSES
    assert latest["timestamp_next"] == calendar.next_bar_start(last)
    with pytest.raises(KeyError):
        predict_latest(features, ReturnSoftmaxModel(), "NOPE")


def test_predict_latest_on_short_history_is_warmup(bars):
    short = compute_features(bars[bars["symbol"] == "AAA"].head(10).reset_index(drop=True))
    latest = predict_latest(short, ReturnSoftmaxModel(), "AAA")
    assert latest["status"] == "warmup" and latest["action"] is None


def test_non_finite_feature_in_an_ok_row_raises_naming_it(features):
    bad = features.copy()
    idx = bad.index[(bad["symbol"] == "AAA") & ~bad["warmup"]][3]
    bad.loc[idx, "ret_3"] = np.nan
    with pytest.raises(ValueError, match="AAA"):
        predict_hours(bad, ReturnSoftmaxModel())
