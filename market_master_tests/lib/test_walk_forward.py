"""Walk-forward out-of-sample history: fold geometry, no look-ahead (a perturbation test), and gates that
judge the traded signal (planted index-timing vs cross-section-only signals, a random walk)."""

import numpy as np
import pandas as pd
import pytest

from market_master.lib import gates, oos_evaluation
from market_master.lib.backtest import weighted_constituent_returns
from market_master.lib.evaluation import time_series_ic
from market_master.lib.features import FeatureConfig, compute_features
from market_master.lib.labels import NO_LABEL
from market_master.lib.signal import compute_wss
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.training import TrainingConfig
from market_master.lib.walk_forward import WalkForwardConfig, plan_folds, run_walk_forward, session_days

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
WEIGHTS = {s: w for s, w in zip(SYMBOLS, [0.3, 0.2, 0.15, 0.15, 0.1, 0.1], strict=True)}
SMALL = WalkForwardConfig(train_sessions=25, refit_every_sessions=10, select_every_folds=2)
FAST = TrainingConfig(candidates=("LogReg",), bootstrap_n=50)


def _bars(predictability=0.7, seed=42, end="2024-05-31"):
    return SyntheticSource(seed=seed, predictability=predictability).fetch(SYMBOLS, "2024-01-02", end)


def test_folds_are_contiguous_purged_and_select_on_cadence():
    folds = plan_folds(
        100, WalkForwardConfig(train_sessions=30, refit_every_sessions=20, select_every_folds=2)
    )
    assert [(f.oos_lo, f.oos_hi) for f in folds] == [(31, 51), (51, 71), (71, 91), (91, 100)]
    assert all(f.train_hi == f.oos_lo - 1 and f.train_lo == 0 for f in folds)  # expanding, 1-session purge
    assert [f.select for f in folds] == [True, False, True, False]
    rolling = plan_folds(100, WalkForwardConfig(scheme="rolling", train_sessions=30, refit_every_sessions=20))
    assert all(f.train_hi - f.train_lo == 30 for f in rolling)
    assert plan_folds(31, WalkForwardConfig(train_sessions=30)) == []


def test_bad_config_and_too_little_history_are_refused():
    with pytest.raises(ValueError, match="scheme"):
        WalkForwardConfig(scheme="anchored")
    with pytest.raises(ValueError, match="refit_every_sessions"):
        WalkForwardConfig(refit_every_sessions=0)
    feats = compute_features(_bars(end="2024-02-15"), FeatureConfig())
    with pytest.raises(ValueError, match="no out-of-sample session"):
        run_walk_forward(feats, WEIGHTS, config=WalkForwardConfig(train_sessions=60), training=FAST)


@pytest.fixture(scope="module")
def planted():
    bars = _bars()
    feats = compute_features(bars, FeatureConfig())
    result = run_walk_forward(feats, WEIGHTS, config=SMALL, training=FAST, keep_models=True)
    return bars, feats, result


def test_history_has_one_prediction_per_symbol_and_oos_hour_with_its_fold(planted):
    _, feats, result = planted
    hours, session_of_hour = session_days(feats)
    first_oos = hours[session_of_hour == SMALL.train_sessions + SMALL.embargo_sessions][0]
    expected = hours[hours >= first_oos]
    assert pd.DatetimeIndex(result.signal["hour"]).equals(expected)  # contiguous, nothing skipped
    assert len(result.predictions) == len(expected) * len(SYMBOLS)
    assert not result.predictions.duplicated(["hour", "symbol"]).any()
    # every fold trained strictly before its OOS hours, a whole session earlier
    f = result.folds
    assert (f["train_end"] < f["oos_start"] - pd.Timedelta(hours=12)).all()
    by_fold = result.predictions.groupby("fold")["hour"].agg(["min", "max"])
    assert (by_fold["min"].to_numpy() == f["oos_start"].to_numpy()).all()
    assert result.n_trials == 1 * 2 * 1  # one candidate x two decision rules x one threshold pair
    assert "chosen on hours before its own OOS hours" in result.hours_statement()


def test_no_fold_depends_on_hours_after_its_training_window(planted):
    """Replace every bar after fold 1's training window with another market: folds 0 and 1 (their label
    thresholds, decision cuts and fitted model) must be bit-for-bit the same; later folds, which train on
    the new hours, must change (the test can fail)."""
    bars, feats, result = planted
    cut = result.folds.loc[1, "train_end"]
    other = _bars(seed=99)
    scale = (
        bars.loc[bars["timestamp"] == cut].set_index("symbol")["close"]
        / other.loc[other["timestamp"] == cut].set_index("symbol")["close"]
    )
    later = other[other["timestamp"] > cut].copy()
    for col in ("open", "high", "low", "close"):
        later[col] = later[col] * later["symbol"].map(scale)
    perturbed = pd.concat([bars[bars["timestamp"] <= cut], later]).sort_values(["symbol", "timestamp"])
    again = run_walk_forward(
        compute_features(perturbed, FeatureConfig()), WEIGHTS, config=SMALL, training=FAST, keep_models=True
    )
    probe = feats[~feats["warmup"]].head(300)
    for k in (0, 1):
        a, b = result.models[k], again.models[k]
        assert a.thresholds.to_dict() == b.thresholds.to_dict()
        assert a.decision_cuts == b.decision_cuts
        np.testing.assert_array_equal(a.predict_proba(probe), b.predict_proba(probe))
    # fold 2 selects its decision rule on new hours, fold 3 fits on them
    assert result.models[2].decision_cuts != again.models[2].decision_cuts
    assert not np.array_equal(result.models[3].predict_proba(probe), again.models[3].predict_proba(probe))


def _fwd(bars):
    return weighted_constituent_returns(bars, WEIGHTS)


def _planted_predictions(bars, score):
    """An ``ok`` prediction per (hour, symbol) whose action is the class of ``score`` (a Series)."""
    actions = np.array(["strong_sell", "sell", "hold", "buy", "strong_buy"], dtype=object)
    q = pd.qcut(score.rank(method="first"), 5, labels=False).to_numpy(int)
    frame = score.reset_index()
    frame.columns = ["hour", "symbol", "score"]
    frame["status"] = "ok"
    frame["action"] = actions[q]
    return frame


def test_timing_gate_passes_index_timing_and_fails_cross_section_only_signals():
    bars = _bars(predictability=0.0, seed=5, end="2024-06-28")
    fwd = _fwd(bars)
    nxt = bars.assign(r=bars.groupby("symbol")["close"].transform(lambda c: np.log(c.shift(-1) / c)))
    nxt = nxt.set_index(["timestamp", "symbol"])["r"].dropna()
    noise = np.random.default_rng(0).standard_normal(len(nxt))
    # timing only: every symbol gets the same (noisy) view of the index's next move -> no cross-section
    index_next = fwd.reindex(nxt.index.get_level_values(0)).to_numpy()
    timing = pd.Series(index_next / np.nanstd(index_next) + 1.5 * noise, index=nxt.index).dropna()
    # cross-section only: each symbol's next return minus the hour's mean -> ranks symbols, no timing
    demeaned = nxt - nxt.groupby(level=0).transform("mean")
    cross = pd.Series(demeaned.to_numpy() / demeaned.std() + 1.5 * noise, index=nxt.index)
    verdicts = {}
    for name, score in (("timing", timing), ("cross", cross)):
        # the same view for all symbols of an hour -> the hour-mean makes the timing signal explicit
        if name == "timing":
            score = score.groupby(level=0).transform("mean")
        sig = compute_wss(_planted_predictions(bars, score), WEIGHTS)
        hours = pd.DatetimeIndex(sig["hour"])
        ic = time_series_ic(sig["wss"].to_numpy(), fwd.reindex(hours).to_numpy(), hours)
        verdicts[name] = gates.signal_has_index_timing_skill(ic)
    assert verdicts["timing"].passed, verdicts["timing"].reason
    assert not verdicts["cross"].passed, verdicts["cross"].reason


def test_random_walk_fails_component_timing_and_economics_gates():
    bars = _bars(predictability=0.0, seed=11, end="2024-06-28")
    feats = compute_features(bars, FeatureConfig())
    result = run_walk_forward(feats, WEIGHTS, config=SMALL, training=FAST)
    fwd = _fwd(bars)
    skill = oos_evaluation.component_skill(result)
    comp = gates.champion_beats_baseline(
        skill["macro_f1"], skill["best_baseline_f1"], bootstrap_se=skill["margin_se"]
    )
    timing = gates.signal_has_index_timing_skill(oos_evaluation.index_timing(result, fwd))
    econ = gates.signal_beats_flat_and_buy_and_hold(oos_evaluation.index_economics(result, fwd))
    assert not comp.passed and not timing.passed and not econ.passed, (
        comp.reason,
        timing.reason,
        econ.reason,
    )
    assert (result.predictions["label"] != NO_LABEL).mean() > 0.9
