"""Walk-forward out-of-sample history: the ONE implementation the asset graph and batch mode use.

The product is the hourly index decision, so what the gates and backtests judge must be hours that chose
nothing. This module replays the training procedure through time:

    sessions:  [ train window of fold k ][embargo][ OOS hours of fold k ][ OOS hours of fold k+1 ] ...

* Folds are cut in whole trading sessions of the post-warm-up hours. Fold k predicts the sessions
  ``[o_k, o_k + refit_every_sessions)``; its model is trained on the sessions before ``o_k`` minus
  ``embargo_sessions`` (the purge: a label looks one bar ahead, features up to a session back, so
  nothing of the training rows touches an OOS hour). The OOS hours are contiguous from the first fold
  on: the embargo session of fold k is the tail of fold k-1's OOS hours.
* ``scheme="expanding"`` trains on every session from the first; ``"rolling"`` on the last
  ``train_sessions``. ``train_sessions`` is also the first fold's training length (the history starts
  after it).
* Inside each fold ``training.train_candidates`` does exactly what the pipeline's champion search does,
  on the fold's past only: label thresholds fitted on the fold's inner training part, candidate selection
  and the decision rule (bands vs argmax, decision cuts) on its inner validation part. Nothing is fitted on
  or after the fold's OOS hours; a perturbation test (tests/lib/test_walk_forward.py) proves it.
* Cost is bounded by what is refit per fold: a *selection fold* (every ``select_every_folds``-th fold,
  the first included) trains every candidate and picks one; the folds between refit only the family
  selected at the latest selection fold (its label thresholds, decision rule and cuts are refit too).
  Both choices use the fold's own past only. Default cadence: refit every 20 sessions (about a month),
  select every 3rd fold (about a quarter); the first training window is 60 sessions (about a
  quarter of a year): on the default 250-session run that is 10 folds, 4 of them selection folds (``benchmarks/bench_walk_forward.py`` times 10 and 100 symbols).
* WSS thresholds: the fixed ``lib.signal.DEFAULT_THRESHOLDS`` (one trial: chosen before any data was
  seen), or ``sweep_thresholds=True``: each fold sweeps the grid on its own inner validation hours
  (never its OOS hours) and applies the best pair to its OOS hours.

``WalkForwardResult.n_trials`` counts every candidate x decision rule x threshold pair the procedure
tried in any fold: the DSR's trial count (conservative: selections made on each fold's past do not bias
its OOS hours, but the count covers them anyway).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from market_master.lib import backtest, calendar
from market_master.lib.candidates import baseline_predict, expected_score
from market_master.lib.labels import NO_LABEL, next_bar_log_return
from market_master.lib.prediction import OK, PROB_COLUMNS, ModelInfo, predict_hours
from market_master.lib.segments import Segments, post_warmup_hours
from market_master.lib.signal import DEFAULT_THRESHOLDS, WeightsLike, compute_wss, weights_long
from market_master.lib.training import TrainingConfig, TrainingResult, train_candidates

log = logging.getLogger(__name__)

SCHEMES = ("expanding", "rolling")
DECISION_RULES = 2  # ordinal bands of the expected score, or the argmax (chosen per fold on its validation)
INNER_VALIDATION_SHARE = 0.25


@dataclass(frozen=True)
class WalkForwardConfig:
    """Fold geometry and cadence (whole trading sessions), and how the WSS thresholds are set."""

    scheme: str = "expanding"
    train_sessions: int = 60
    refit_every_sessions: int = 20
    select_every_folds: int = 3
    embargo_sessions: int = 1
    validation_share: float = INNER_VALIDATION_SHARE
    buy_threshold: float = DEFAULT_THRESHOLDS.buy
    sell_threshold: float = DEFAULT_THRESHOLDS.sell
    sweep_thresholds: bool = False
    cost_bps: float = 1.0

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"WalkForwardConfig.scheme={self.scheme!r}: choose from {SCHEMES}")
        for name in ("train_sessions", "refit_every_sessions", "select_every_folds", "embargo_sessions"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"WalkForwardConfig.{name}={value!r}: must be an int >= 1")
        if self.train_sessions < 5:
            raise ValueError(f"WalkForwardConfig.train_sessions={self.train_sessions}: at least 5 sessions")
        if not 0.05 <= self.validation_share <= 0.5:
            raise ValueError(
                f"WalkForwardConfig.validation_share={self.validation_share} outside [0.05, 0.5]"
            )

    def inner_segments(self, embargo_bars: int) -> Segments:
        """The split inside a fold's training window: fit | embargo | validation (no test)."""
        return Segments(1.0 - self.validation_share, self.validation_share, 0.0, embargo_bars)

    def to_dict(self) -> dict:
        return {
            "scheme": self.scheme,
            "train_sessions": self.train_sessions,
            "refit_every_sessions": self.refit_every_sessions,
            "select_every_folds": self.select_every_folds,
            "embargo_sessions": self.embargo_sessions,
            "validation_share": self.validation_share,
            "buy_threshold": self.buy_threshold,
            "sell_threshold": self.sell_threshold,
            "sweep_thresholds": self.sweep_thresholds,
            "cost_bps": self.cost_bps,
        }


DEFAULT_WALK_FORWARD = WalkForwardConfig()


@dataclass(frozen=True)
class Fold:
    """One fold: training sessions [train_lo, train_hi) and OOS sessions [oos_lo, oos_hi) (indices into
    the session list), ``select``: whether it runs the full candidate search."""

    index: int
    train_lo: int
    train_hi: int
    oos_lo: int
    oos_hi: int
    select: bool


def plan_folds(n_sessions: int, config: WalkForwardConfig = DEFAULT_WALK_FORWARD) -> list[Fold]:
    """The folds over ``n_sessions`` post-warm-up sessions (empty when there is no OOS session)."""
    folds = []
    first = config.train_sessions + config.embargo_sessions
    for k, lo in enumerate(range(first, n_sessions, config.refit_every_sessions)):
        train_hi = lo - config.embargo_sessions
        train_lo = 0 if config.scheme == "expanding" else max(0, train_hi - config.train_sessions)
        hi = min(lo + config.refit_every_sessions, n_sessions)
        folds.append(Fold(k, train_lo, train_hi, lo, hi, select=k % config.select_every_folds == 0))
    return folds


def final_window(sessions: Sequence[pd.Timestamp], config: WalkForwardConfig) -> tuple[int, int]:
    """[lo, hi) session indices the model to deploy is trained on: the same window rule as a fold whose
    OOS hours would start after the last session (no embargo: nothing after it is scored)."""
    hi = len(sessions)
    lo = 0 if config.scheme == "expanding" else max(0, hi - config.train_sessions)
    return lo, hi


def session_days(features: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """(sorted post-warm-up hours, the session index of each of them)."""
    hours = post_warmup_hours(features)
    days = hours.tz_convert(calendar.TZ).normalize()
    _, session_of_hour = np.unique(days.asi8, return_inverse=True)
    return hours, session_of_hour


@dataclass
class WalkForwardResult:
    """The out-of-sample history and how it was made.

    ``predictions``: one row per (symbol, hour) of the OOS hours: the ``predict_hours`` columns plus
    ``fold``, ``candidate``, ``expected_score``, ``next_return``, ``label`` (the fold's label thresholds;
    -1 when the outcome is unknown) and ``pred`` / ``pred_<baseline>`` class indices.
    ``signal``: one row per OOS hour, the ``compute_wss`` columns plus ``pooled_expected_score``,
    ``fold``, ``buy_threshold``, ``sell_threshold``. ``folds``: one row per fold (windows, selection,
    champion, thresholds, seconds)."""

    config: WalkForwardConfig
    training: TrainingConfig
    predictions: pd.DataFrame
    signal: pd.DataFrame
    folds: pd.DataFrame
    n_trials: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    models: dict = field(default_factory=dict)

    @property
    def oos_start(self) -> pd.Timestamp | None:
        return self.signal["hour"].min() if len(self.signal) else None

    @property
    def oos_end(self) -> pd.Timestamp | None:
        return self.signal["hour"].max() if len(self.signal) else None

    def scored_rows(self) -> pd.DataFrame:
        """OOS rows with an ``ok`` prediction and a known label (what component metrics are computed on)."""
        p = self.predictions
        return p[(p["status"] == OK) & (p["label"] != NO_LABEL)].reset_index(drop=True)

    def hours_statement(self) -> str:
        """Which hours chose what: every report quotes it."""
        if self.folds.empty:
            return "no out-of-sample hours"
        f = self.folds
        thr = (
            "each fold's WSS thresholds were swept on its own inner validation hours"
            if self.config.sweep_thresholds
            else f"WSS thresholds fixed at buy {self.config.buy_threshold} / sell {self.config.sell_threshold}"
            " (chosen before any data, not fitted)"
        )
        return (
            f"out-of-sample hours {f['oos_start'].min()} .. {f['oos_end'].max()} in {len(f)} folds; each "
            f"fold's model, label thresholds, decision rule and candidate were chosen on hours before its "
            f"own OOS hours (training windows {f['train_start'].min()} .. {f['train_end'].max()}, "
            f"embargo {self.config.embargo_sessions} session(s)); {thr}; the promotion gates are judged on "
            f"these same OOS hours"
        )


def _fold_training(
    training: TrainingConfig, config: WalkForwardConfig, candidates: tuple[str, ...]
) -> TrainingConfig:
    """The training config of a fold: the inner split, the fold's candidates, no latency measurement (only
    the deployed model's latency is gated)."""
    segments = config.inner_segments(training.segments.embargo_bars)
    return replace(training, segments=segments, candidates=candidates, latency_rows=0)


def train_final(
    features: pd.DataFrame,
    training: TrainingConfig,
    config: WalkForwardConfig = DEFAULT_WALK_FORWARD,
) -> TrainingResult:
    """The model to deploy: the full candidate search on the newest window (``final_window``), with the same
    inner split as every fold. Latency is measured (it is gated)."""
    hours, session_of_hour = session_days(features)
    lo, hi = final_window(np.unique(session_of_hour), config)
    window = hours[(session_of_hour >= lo) & (session_of_hour < hi)]
    rows = features[features["timestamp"].between(window[0], window[-1])]
    fold_cfg = replace(training, segments=config.inner_segments(training.segments.embargo_bars))
    return train_candidates(rows.reset_index(drop=True), fold_cfg)


def _threshold_pairs(
    config: WalkForwardConfig, grid: Sequence[tuple[float, float]] | None
) -> list[tuple[float, float]]:
    if not config.sweep_thresholds:
        return [(config.buy_threshold, config.sell_threshold)]
    return list(grid) if grid is not None else backtest.default_threshold_grid()


def _fold_thresholds(
    result: TrainingResult,
    features: pd.DataFrame,
    weights: WeightsLike,
    proxy_forward: pd.Series | None,
    config: WalkForwardConfig,
    pairs: list[tuple[float, float]],
    universe: Sequence[str],
) -> tuple[float, float]:
    """(buy, sell): fixed, or the grid pair with the best after-cost Sharpe on the fold's inner
    validation hours (the last validation hour's outcome is unknown to the fold: not scored)."""
    if len(pairs) == 1 or proxy_forward is None:
        return pairs[0]
    valid_hours = pd.DatetimeIndex(pd.unique(result.validation["timestamp"])).sort_values()
    preds = predict_hours(features, result.champion, hours=valid_hours, universe=universe)
    wss = compute_wss(preds, weights)
    fwd = proxy_forward.reindex(valid_hours).copy()
    if len(fwd):
        fwd.iloc[-1] = np.nan
    series = pd.Series(wss["wss"].to_numpy(float), index=pd.DatetimeIndex(wss["hour"]))
    buy, sell, _ = backtest.sweep_thresholds(series.dropna(), fwd, pairs, config.cost_bps)
    return buy, sell


def _oos_rows(
    result: TrainingResult,
    frame: pd.DataFrame,
    oos_hours: pd.DatetimeIndex,
    universe: Sequence[str],
    fold: Fold,
) -> pd.DataFrame:
    """Predictions of the fold's champion and baselines on its OOS hours, labelled with its thresholds."""
    model = result.champion
    info = ModelInfo(name=f"walk_forward:{result.champion_name}", version=f"fold{fold.index}")
    preds = predict_hours(frame, model, hours=oos_hours, universe=universe, model_info=info)
    rows = frame[frame["timestamp"].isin(oos_hours)].rename(columns={"timestamp": "hour"})
    merged = preds.merge(rows, on=["hour", "symbol"], how="left", suffixes=("", "_f"))
    ok = merged["status"].eq(OK).to_numpy()
    proba = merged[PROB_COLUMNS].to_numpy(float)
    merged["expected_score"] = np.where(ok, expected_score(np.nan_to_num(proba)), np.nan)
    merged["pred"] = -1
    merged["label"] = NO_LABEL
    if ok.any():
        okf = merged[ok]
        merged.loc[ok, "pred"] = model.class_indices_from_proba(proba[ok])
        labels = result.thresholds.transform(okf)
        merged.loc[ok, "label"] = np.where(np.isfinite(okf["next_return"].to_numpy(float)), labels, NO_LABEL)
        for name, base in result.baselines.items():
            merged[f"pred_{name}"] = -1
            merged.loc[ok, f"pred_{name}"] = baseline_predict(base.baseline, okf)
    merged["fold"] = fold.index
    merged["candidate"] = result.champion_name
    keep = [c for c in preds.columns] + [
        "fold",
        "candidate",
        "expected_score",
        "next_return",
        "label",
        "pred",
    ]
    keep += [f"pred_{n}" for n in result.baselines if f"pred_{n}" in merged.columns]
    return merged[keep]


def pooled_expected_score(predictions: pd.DataFrame, weights: WeightsLike) -> pd.Series:
    """Per hour: the weight-averaged expected score of the ``ok`` predictions (renormalised over them)."""
    hours = pd.Index(pd.unique(predictions["hour"])).sort_values()
    wl = weights_long(hours, weights)
    m = wl.merge(predictions[["hour", "symbol", "status", "expected_score"]], on=["hour", "symbol"])
    m = m[m["status"].eq(OK) & (m["weight"] > 0)]
    m["_ws"] = m["weight"] * m["expected_score"]
    g = m.groupby("hour")
    out = g["_ws"].sum() / g["weight"].sum()
    return out.reindex(hours)


def run_walk_forward(
    features: pd.DataFrame,
    weights: WeightsLike,
    proxy_forward: pd.Series | None = None,
    config: WalkForwardConfig = DEFAULT_WALK_FORWARD,
    training: TrainingConfig | None = None,
    universe: Sequence[str] | None = None,
    grid: Sequence[tuple[float, float]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    keep_models: bool = False,
    folds: Sequence[Fold] | None = None,
) -> WalkForwardResult:
    """The out-of-sample history of ``training``'s procedure over ``features`` (see module docstring).

    ``proxy_forward``: the index proxy's next-bar return by decision hour (needed only to sweep
    thresholds). ``universe``: the constituents predicted each hour (default: every symbol of
    ``features``). ``progress(done, total, message)`` is called after each fold. ``keep_models``: keep
    each fold's fitted model in ``models`` (tests inspect them; the asset does not store them).
    ``folds``: explicit fold boundaries (session indices of the post-warm-up hours, e.g. the deployments
    of a replay: ``lib.track_record.deployment_folds``) instead of ``plan_folds``' cadence; each must
    train strictly before its OOS sessions."""
    t_start = time.perf_counter()
    training = training or TrainingConfig()
    frame = features.sort_values(["symbol", "timestamp"], ignore_index=True)
    frame["next_return"] = next_bar_log_return(frame).to_numpy()
    universe = sorted(frame["symbol"].unique()) if universe is None else sorted(universe)
    hours, session_of_hour = session_days(frame)
    n_sessions = int(session_of_hour.max()) + 1 if len(hours) else 0
    folds = plan_folds(n_sessions, config) if folds is None else list(folds)
    for fold in folds:
        if not (0 <= fold.train_lo < fold.train_hi <= fold.oos_lo < fold.oos_hi <= n_sessions):
            raise ValueError(
                f"walk-forward: fold {fold} is not train-before-OOS within {n_sessions} sessions"
            )
    if not folds:
        raise ValueError(
            f"walk-forward: {n_sessions} post-warm-up sessions leave no out-of-sample session after the first "
            f"training window of {config.train_sessions} sessions + {config.embargo_sessions} embargo: "
            f"ingest more history or lower train_sessions"
        )
    pairs = _threshold_pairs(config, grid)
    all_candidates = training.candidates
    selected: tuple[str, ...] = all_candidates
    parts, signals, rows, models = [], [], [], {}
    for fold in folds:
        t0 = time.perf_counter()
        candidates = all_candidates if fold.select else selected
        in_train = (session_of_hour >= fold.train_lo) & (session_of_hour < fold.train_hi)
        in_oos = (session_of_hour >= fold.oos_lo) & (session_of_hour < fold.oos_hi)
        train_hours, oos_hours = hours[in_train], hours[in_oos]
        # the fold sees nothing at or after its training window's end: its frame ends there
        fold_rows = frame[frame["timestamp"].between(train_hours[0], train_hours[-1])].drop(
            columns="next_return"
        )
        result = train_candidates(
            fold_rows.reset_index(drop=True), _fold_training(training, config, candidates)
        )
        if fold.select:
            selected = (result.champion_name,)
        if keep_models:
            models[fold.index] = result.champion
        buy, sell = _fold_thresholds(result, fold_rows, weights, proxy_forward, config, pairs, universe)
        oos = _oos_rows(result, frame, oos_hours, universe, fold)
        sig = compute_wss(oos, weights, buy, sell)
        sig["fold"] = fold.index
        sig["buy_threshold"], sig["sell_threshold"] = buy, sell
        parts.append(oos)
        signals.append(sig)
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "fold": fold.index,
                "select": fold.select,
                "candidates": ",".join(candidates),
                "champion": result.champion_name,
                "decision_rule": "bands" if result.champion.decision_cuts is not None else "argmax",
                "train_start": train_hours[0],
                "train_end": train_hours[-1],
                "valid_start": result.split.valid_start,
                "oos_start": oos_hours[0],
                "oos_end": oos_hours[-1],
                "n_train_rows": len(fold_rows),
                "n_oos_hours": len(oos_hours),
                "buy_threshold": buy,
                "sell_threshold": sell,
                "seconds": seconds,
            }
        )
        log.info(
            "walk-forward fold %d/%d: %s on %s .. %s -> OOS %s .. %s (%.1fs)",
            fold.index + 1,
            len(folds),
            result.champion_name,
            train_hours[0],
            train_hours[-1],
            oos_hours[0],
            oos_hours[-1],
            seconds,
        )
        if progress is not None:
            progress(fold.index + 1, len(folds), f"fold {fold.index + 1}: {result.champion_name}")
    predictions = pd.concat(parts, ignore_index=True)
    signal = pd.concat(signals, ignore_index=True)
    signal["pooled_expected_score"] = (
        pooled_expected_score(predictions, weights).reindex(pd.DatetimeIndex(signal["hour"])).to_numpy()
    )
    n_trials = len(all_candidates) * DECISION_RULES * len(pairs)
    return WalkForwardResult(
        config=config,
        training=training,
        predictions=predictions,
        signal=signal,
        folds=pd.DataFrame(rows),
        n_trials=n_trials,
        seconds=time.perf_counter() - t_start,
        models=models,
    )
