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
    NonFiniteFeaturesError,
    next_bar_starts,
    predict_hours,
    predict_latest,
    predict_windows,
)
from market_master.lib.sources.synthetic import SyntheticSource

TZ = "America/New_York"


class ReturnSoftmaxModel:
    """A small deterministic classifier: softmax of (class score x last return); counts its calls."""

    feature_columns = list(FEATURE_COLUMNS)
    feature_config = FeatureConfig(warmup=16)

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        self.calls.append(len(features))
        r = features["ret_1"].to_numpy()[:, None] * 500.0
        logits = r * np.array([-2.0, -1.0, 0.0, 1.0, 2.0])[None, :]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


class TrainedOnModel(ReturnSoftmaxModel):
    """The same classifier, but it says which symbols it was trained on (like ComponentModel)."""

    def __init__(self, trained_symbols: list[str]) -> None:
        super().__init__()
        self.trained_symbols = trained_symbols


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


def test_predict_latest_is_the_last_bar(bars, features):
    latest = predict_latest(bars, ReturnSoftmaxModel(), "BBB", ModelInfo("m", "2", "Production"))
    last = bars.loc[bars["symbol"] == "BBB", "timestamp"].max()
    assert latest["hour"] == last and latest["symbol"] == "BBB"
    assert latest["status"] == "ok" and latest["action"] in CLASSES
    assert latest["timestamp_next"] == calendar.next_bar_start(last)
    assert (latest["model_name"], latest["model_version"], latest["model_alias"]) == ("m", "2", "Production")
    row = predict_hours(features, ReturnSoftmaxModel(), hours=[last], universe=["BBB"]).iloc[0]
    for col in [f"p_{c}" for c in CLASSES] + ["confidence"]:
        assert latest[col] == pytest.approx(row[col], abs=1e-12)
    with pytest.raises(KeyError):
        predict_latest(bars, ReturnSoftmaxModel(), "NOPE")


def test_predict_latest_on_short_history_is_warmup(bars):
    latest = predict_latest(bars[bars["symbol"] == "AAA"].head(10), ReturnSoftmaxModel(), "AAA")
    assert latest["status"] == "warmup" and latest["action"] is None and np.isnan(latest["confidence"])


def test_symbol_the_model_was_not_trained_on_is_unknown_symbol(features):
    model = TrainedOnModel(["AAA"])
    out = predict_hours(features, model, universe=["AAA", "BBB", "ZZZ"])
    bbb = out[out["symbol"] == "BBB"]
    gap = bbb["hour"] == pd.Timestamp("2024-07-10 11:30", tz=TZ)
    assert (bbb.loc[~gap, "status"] == "unknown_symbol").all()
    assert (bbb.loc[gap, "status"] == "missing_bar").all()  # no bar at all stays missing_bar
    assert bbb["action"].isna().all() and bbb[["p_hold", "confidence"]].isna().all().all()
    assert (out.loc[out["symbol"] == "ZZZ", "status"] == "missing_bar").all()
    aaa = out[out["symbol"] == "AAA"]
    assert set(aaa["status"]) == {"ok", "warmup"}
    # the unknown symbol never reaches the model: one call with AAA's ok rows only
    assert model.calls == [int((aaa["status"] == "ok").sum())]
    plain = predict_hours(features, ReturnSoftmaxModel(), universe=["AAA"])
    assert np.allclose(aaa["p_buy"].to_numpy(), plain["p_buy"].to_numpy(), equal_nan=True)


def _windows(bars: pd.DataFrame) -> list[pd.DataFrame]:
    a = bars[bars["symbol"] == "AAA"].reset_index(drop=True)
    b = bars[bars["symbol"] == "BBB"].reset_index(drop=True)
    return [a.iloc[:40], b.iloc[10:27], a.iloc[5:30], b.iloc[:12], a.iloc[3:20]]


def test_predict_windows_equals_predict_hours_on_each_window(bars):
    windows = _windows(bars)
    model = ReturnSoftmaxModel()
    out = predict_windows(windows, model, ModelInfo("m", 7, None))
    assert model.calls == [4]  # ONE model call: the four windows past the warm-up
    assert [r["symbol"] for r in out] == ["AAA", "BBB", "AAA", "BBB", "AAA"]
    assert [r["status"] for r in out] == ["ok", "ok", "ok", "warmup", "ok"]
    for w, row in zip(windows, out, strict=True):
        assert list(row) == PREDICTION_COLUMNS
        hour = w["timestamp"].iloc[-1]
        ref = predict_hours(
            compute_features(w.reset_index(drop=True), FeatureConfig(warmup=16)),
            ReturnSoftmaxModel(),
            hours=[hour],
            universe=[w["symbol"].iloc[0]],
        ).iloc[0]
        assert row["hour"] == hour and row["timestamp_next"] == ref["timestamp_next"]
        assert row["status"] == ref["status"] and row["action"] == ref["action"]
        got = np.array([row[f"p_{c}"] for c in CLASSES] + [row["confidence"]])
        want = ref[[f"p_{c}" for c in CLASSES] + ["confidence"]].to_numpy(dtype=float)
        assert np.allclose(got, want, atol=1e-12, equal_nan=True)
        assert row["model_version"] == "7" and row["model_alias"] is None
    assert predict_windows([], model) == []


def test_predict_windows_unknown_symbol_and_bad_windows(bars):
    windows = _windows(bars)
    out = predict_windows(windows, TrainedOnModel(["BBB"]))
    assert [r["status"] for r in out] == [
        "unknown_symbol",
        "ok",
        "unknown_symbol",
        "warmup",
        "unknown_symbol",
    ]
    assert out[0]["action"] is None
    swapped = windows[1].iloc[[0, 2, 1, *range(3, 17)]]
    with pytest.raises(ValueError, match="window 1: timestamps must be strictly increasing, row 2"):
        predict_windows([windows[0], swapped], ReturnSoftmaxModel())
    with pytest.raises(ValueError, match="window 1 is empty"):
        predict_windows([windows[0], windows[0].iloc[:0]], ReturnSoftmaxModel())
    mixed = pd.concat([windows[1], windows[0].tail(1)], ignore_index=True)
    with pytest.raises(ValueError, match="window 0 holds several symbols"):
        predict_windows([mixed], ReturnSoftmaxModel())


def test_predict_windows_non_finite_last_bar_names_the_window(bars):
    windows = _windows(bars)
    extreme = windows[2].copy()
    extreme.loc[extreme.index[-1], ["open", "high", "close"]] = 1e308
    with pytest.raises(NonFiniteFeaturesError, match="window 1: AAA") as info:
        predict_windows([windows[0], extreme], ReturnSoftmaxModel())
    assert info.value.positions == [1]


def test_non_finite_feature_in_an_ok_row_raises_naming_it(features):
    bad = features.copy()
    idx = bad.index[(bad["symbol"] == "AAA") & ~bad["warmup"]][3]
    bad.loc[idx, "ret_3"] = np.nan
    with pytest.raises(ValueError, match="AAA"):
        predict_hours(bad, ReturnSoftmaxModel())
