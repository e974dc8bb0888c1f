"""Time split with embargoes and a held-out test segment, all seven candidates end to end on tiny data,
champion picked on validation only, test metrics, hour-clustered IC and the latest-bar pin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from market_master.lib.candidates import BASELINE_NAMES, CANDIDATE_NAMES
from market_master.lib.evaluation import information_coefficient
from market_master.lib.features import FEATURE_COLUMNS, compute_features
from market_master.lib.labels import CLASSES
from market_master.lib.segments import Segments
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.training import TrainingConfig, time_split, train_candidates


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return compute_features(SyntheticSource(seed=11).fetch(["AAA", "BBB", "CCC"], "2024-01-02", "2024-03-08"))


@pytest.fixture(scope="module")
def result(features):
    return train_candidates(features, TrainingConfig(svc_max_rows=300, latency_rows=5, latency_rounds=1))


def test_time_split_orders_hours_with_embargo(features) -> None:
    cfg = TrainingConfig()  # the pipeline's segments: train 0.5 | validation 0.25 | test 0.25, embargo 7
    s = time_split(features, cfg)
    hours = pd.DatetimeIndex(pd.unique(features.loc[~features["warmup"], "timestamp"])).sort_values()
    assert s.train_end < s.valid_start <= s.valid_end < s.test_start <= s.test_end == hours[-1]
    gap1 = hours[(hours > s.train_end) & (hours < s.valid_start)]
    gap2 = hours[(hours > s.valid_end) & (hours < s.test_start)]
    assert len(gap1) == 7 and len(gap2) == 7
    assert (
        s.n_valid_hours
        == int(np.ceil(0.25 * len(hours)))
        == len(hours[(hours >= s.valid_start) & (hours <= s.valid_end)])
    )
    assert s.n_test_hours == int(np.ceil(0.25 * len(hours))) == len(hours[hours >= s.test_start])
    assert s.n_train_hours + 14 + s.n_valid_hours + s.n_test_hours == len(hours)
    train, valid = s.masks(features["timestamp"])
    test = s.test_mask(features["timestamp"])
    assert not (train & valid).any() and not (valid & test).any() and not (train & test).any()
    assert {"test_start", "test_end", "n_test_hours"} <= set(s.to_dict())
    with pytest.raises(ValueError, match="embargo"):
        Segments(embargo_bars=0)
    with pytest.raises(ValueError, match="Segments.test"):
        Segments(train=0.74, validation=0.25, test=0.01)
    with pytest.raises(ValueError, match="at least 0.2"):
        Segments(train=0.1, validation=0.5, test=0.4)
    with pytest.raises(ValueError, match="must be 1"):
        Segments(train=0.6, validation=0.3, test=0.2)


def test_time_split_without_test_segment_keeps_the_old_split(features) -> None:
    s = time_split(features, TrainingConfig(segments=Segments(train=0.75, validation=0.25, test=0.0)))
    hours = pd.DatetimeIndex(pd.unique(features.loc[~features["warmup"], "timestamp"])).sort_values()
    assert s.test_start is None and s.test_end is None and s.n_test_hours == 0
    assert s.valid_end == hours[-1] and s.n_train_hours == len(hours) - s.n_valid_hours - 7
    assert not s.test_mask(features["timestamp"]).any()
    assert s.to_dict()["test_start"] is None


def test_all_seven_train_and_champion_is_best(result) -> None:
    assert tuple(result.candidates) == CANDIDATE_NAMES
    assert tuple(result.baselines) == ("majority", "stratified", "momentum")
    table = result.table()
    best = table.loc[list(CANDIDATE_NAMES), "macro_f1"].max()
    assert table.loc[result.champion_name, "macro_f1"] == best
    assert result.champion_beats_best_baseline == (result.margin > 0)
    for name, cand in result.candidates.items():
        m = cand.metrics
        assert 0 <= m["macro_f1"] <= 1 and m["model_size_mb"] < 50, name
        assert {
            "log_loss",
            "f1_strong_buy",
            "intraday_macro_f1",
            "overnight_macro_f1",
            "ic",
            "latency_p99_ms",
        } <= set(m)
    assert result.candidates["SVC"].metrics["train_rows"] == 300


def test_training_window_precedes_validation(result) -> None:
    v = result.validation
    assert pd.Timestamp(result.champion.training_window[1]) < v["timestamp"].min()
    assert set(v["label"]) <= set(range(5)) and {f"pred_{c}" for c in CANDIDATE_NAMES} <= set(v.columns)


def test_prediction_uses_latest_bar(result, features) -> None:
    """The newest bar of each symbol has no label yet, but it is what the model predicts from."""
    latest = features.groupby("symbol").tail(1)
    assert latest["timestamp"].max() > result.validation["timestamp"].max()
    frame = result.champion.predict_frame(latest[["symbol", *FEATURE_COLUMNS]])
    assert list(frame["action"].unique()) and set(frame["action"]) <= set(CLASSES)
    np.testing.assert_allclose(frame[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="non-finite"):
        result.champion.predict_proba(features.head(3))


def test_held_out_test_segment_reports_champion_and_baselines(result) -> None:
    split, test = result.split, result.test
    assert result.has_test and test["timestamp"].min() >= split.test_start > split.valid_end
    assert test["timestamp"].max() <= split.test_end
    assert result.validation["timestamp"].max() <= split.valid_end
    assert set(result.test_metrics) == {result.champion_name, *BASELINE_NAMES}
    expected_cols = {"symbol", "timestamp", "close", "next_return", "is_last_bar_of_day", "label", "hour"}
    expected_cols |= {f"pred_{n}" for n in result.test_metrics} | {f"p_{c}" for c in CLASSES}
    assert expected_cols <= set(test.columns)
    champ = result.test_metrics[result.champion_name]
    keys = {
        "macro_f1",
        "accuracy",
        "log_loss",
        "ic",
        "ic_z",
        "ic_hour_mean",
        "ic_hour_z",
        "intraday_macro_f1",
    }
    assert keys <= set(champ)
    # The test numbers are recomputed from the test frame, not copied from validation.
    from sklearn.metrics import f1_score

    f1 = f1_score(test["label"], test[f"pred_{result.champion_name}"], labels=range(5), average="macro")
    assert champ["macro_f1"] == pytest.approx(f1)
    best = max(
        BASELINE_NAMES, key=lambda b: (result.test_metrics[b]["macro_f1"], result.test_metrics[b]["accuracy"])
    )
    assert result.test_best_baseline_name == best
    assert result.test_margin == pytest.approx(champ["macro_f1"] - result.test_metrics[best]["macro_f1"])
    assert result.test_margin_se > 0 and champ["margin_se"] == result.test_margin_se
    assert result.champion.validation_window == (split.valid_start.isoformat(), split.valid_end.isoformat())
    assert result.test_table().loc[result.champion_name, "kind"] == "candidate"


def test_champion_is_chosen_without_the_test_segment(features, result) -> None:
    """Scrambling every bar after the validation window changes the test numbers, never the choice."""
    hours = pd.DatetimeIndex(pd.unique(features["timestamp"])).sort_values()
    cut = hours[hours.get_loc(result.split.valid_end) + 1]  # the last validation label reads this bar
    scrambled = features.copy()
    later = scrambled["timestamp"] > cut
    scrambled.loc[later, "close"] *= np.exp(np.random.default_rng(1).normal(0, 0.03, int(later.sum())))
    cfg = TrainingConfig(candidates=("LogReg", "HGBT"), svc_max_rows=300, latency_rows=0, latency_rounds=1)
    a = train_candidates(features, cfg)
    b = train_candidates(scrambled, cfg)
    assert a.champion_name == b.champion_name
    for name in cfg.candidates:
        assert a.candidates[name].metrics["macro_f1"] == b.candidates[name].metrics["macro_f1"]
    assert a.test_metrics[a.champion_name]["macro_f1"] != b.test_metrics[b.champion_name]["macro_f1"]


def test_hour_clustered_ic_matches_per_hour_spearman() -> None:
    rng = np.random.default_rng(0)
    hours = np.repeat(np.arange(40), 8)
    market = np.repeat(rng.normal(size=40), 8)
    score = rng.normal(size=320) + market
    ret = 0.2 * score + rng.normal(size=320) + 3 * market
    out = information_coefficient(score, ret, hours)
    per = np.array([spearmanr(score[hours == h], ret[hours == h]).statistic for h in range(40)])
    assert out["ic_hour_mean"] == pytest.approx(per.mean())
    assert out["ic_hour_z"] == pytest.approx(per.mean() / (per.std(ddof=1) / np.sqrt(40)))
    assert out["ic_hours"] == 40 and {"ic", "ic_z"} <= set(out)
    # The shared hourly factor inflates the row-wise z well above the hour-clustered one.
    assert out["ic_z"] > out["ic_hour_z"]
