"""Batch mode: a folder of per-symbol 1-hour CSVs + a holdings file -> predictions, WSS, signals, backtest.

The same functions as the asset graph, in the same order: CsvSource -> bars.run_bar_checks (ERROR checks
fail loudly, naming the rows) -> features.compute_features -> training.train_candidates (or a given model)
-> prediction.predict_hours -> signal.compute_wss -> backtest.run_backtest.

Time segments, by whole sessions: train (first ``train_fraction``: the model is fitted there only),
validation (next ``valid_fraction``: threshold sweep; the decision at the last validation hour is not
scored because its outcome lies in the test window) and test (the rest: the reported numbers). The
sweep never sees a test hour.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_master.lib import backtest, calendar
from market_master.lib import bars as bars_lib
from market_master.lib.batch_report import metrics_markdown, render_report, write_outputs
from market_master.lib.features import FeatureConfig, compute_features
from market_master.lib.prediction import ModelInfo, predict_hours
from market_master.lib.signal import compute_wss, decide, validate_thresholds
from market_master.lib.sources.csv_source import CsvSource
from market_master.lib.weights import load_holdings_csv

__all__ = [
    "BatchInputError",
    "BatchResult",
    "check_model_is_out_of_sample",
    "metrics_markdown",
    "render_report",
    "run_batch",
    "split_sessions",
]

log = logging.getLogger(__name__)

MIN_TRADING_DAYS = 21
SEGMENTS = ("train", "validation", "test")


class BatchInputError(ValueError):
    """The batch inputs cannot produce an honest result (too short, failed bar checks, no symbols ...)."""


@dataclass
class BatchResult:
    """Everything a batch run produced; ``files`` maps output name -> path."""

    out_dir: Path
    predictions: pd.DataFrame
    signal: pd.DataFrame
    test_backtest: backtest.BacktestResult
    validation_backtest: backtest.BacktestResult | None
    buy_threshold: float
    sell_threshold: float
    sweep_table: pd.DataFrame | None
    segments: dict[str, dict[str, str]]
    n_trials: int
    dsr: float
    psr: float
    proxy: str
    model_name: str
    model: Any = None
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- inputs


def load_csv_bars(csv_dir: Path) -> pd.DataFrame:
    """All ``<SYM>_1h.csv`` files of ``csv_dir`` as canonical bars (raises if there are none)."""
    source = CsvSource(csv_dir)
    symbols = source.available_symbols()
    if not symbols:
        raise BatchInputError(f"no '<SYMBOL>_1h.csv' files in {csv_dir}")
    return source.fetch(symbols)


def check_bars_or_raise(frame: pd.DataFrame) -> list[str]:
    """Run the bar quality checks; raise on any failed ERROR check (naming rows), return WARN notes."""
    notes = []
    for outcome in bars_lib.run_bar_checks(frame):
        if outcome.passed:
            continue
        shown = outcome.offending.head(5).to_dict("records")
        if outcome.severity == bars_lib.ERROR:
            raise BatchInputError(
                f"bar check {outcome.name} failed ({outcome.description}) on {outcome.n_offending} row(s), "
                f"e.g. {shown}"
            )
        missing = outcome.offending
        per_symbol = missing.groupby("symbol").size().to_dict() if "symbol" in missing else {}
        notes.append(f"WARN {outcome.name}: {outcome.n_offending} missing bar(s) {per_symbol}")
    return notes


def load_weights(holdings_path: Path) -> tuple[Any, bool]:
    """Holdings file -> (weights, is_single_snapshot): a dict for one ``as_of`` date, else ``hour -> dict``."""
    history = load_holdings_csv(holdings_path)
    if len(history.snapshots) == 1:
        return dict(history.snapshots[0].weights), True

    def weights_at(hour: pd.Timestamp) -> dict[str, float]:
        return dict(history.at(hour).weights)

    return weights_at, False


# ---------------------------------------------------------------- segments


def split_sessions(
    hours: pd.DatetimeIndex, train_fraction: float, valid_fraction: float
) -> dict[str, pd.DatetimeIndex]:
    """Split the hours by whole sessions into train / validation / test (in time order)."""
    if not (0 < train_fraction < 1 and 0 < valid_fraction < 1 and train_fraction + valid_fraction < 1):
        raise ValueError(
            f"need 0 < train_fraction, valid_fraction and their sum < 1; got {train_fraction}, {valid_fraction}"
        )
    hours = pd.DatetimeIndex(hours).unique().sort_values()
    days = hours.tz_convert(calendar.TZ).normalize()
    sessions = days.unique()
    n = len(sessions)
    if n < MIN_TRADING_DAYS:
        raise BatchInputError(
            f"batch mode needs at least {MIN_TRADING_DAYS} trading days of bars, got {n} "
            f"({hours.min()} .. {hours.max()})"
        )
    n_train = int(math.floor(n * train_fraction))
    n_valid = int(math.floor(n * valid_fraction))
    if min(n_train, n_valid, n - n_train - n_valid) < 1:
        raise BatchInputError(f"{n} sessions are too few for fractions {train_fraction}/{valid_fraction}")
    bounds = {
        "train": sessions[:n_train],
        "validation": sessions[n_train : n_train + n_valid],
        "test": sessions[n_train + n_valid :],
    }
    return {name: hours[days.isin(s)] for name, s in bounds.items()}


# ---------------------------------------------------------------- model


def train_on_segments(
    features: pd.DataFrame,
    seg: dict[str, pd.DatetimeIndex],
    candidates: tuple[str, ...] | None,
    feature_config: FeatureConfig,
    seed: int,
) -> tuple[Any, dict[str, pd.DatetimeIndex]]:
    """Train every candidate on the train segment; the champion is picked on the validation segment.

    ``training.train_candidates`` gets the train + validation rows only (never a test row) with its
    validation fraction set so that its own validation window (after a 7-bar embargo) is our validation
    segment. It fits on its training window only. Returns the TrainingResult and the segments redrawn on
    its exact boundaries (the embargo hours belong to neither train nor validation).
    """
    from market_master.lib import training  # imports mlflow (seconds): only when batch trains

    fit_hours = seg["train"].append(seg["validation"])
    rows = features[features["timestamp"].isin(fit_hours)].reset_index(drop=True)
    post = pd.DatetimeIndex(rows.loc[~rows["warmup"].to_numpy(bool), "timestamp"].unique())
    frac = len(seg["validation"]) / max(1, len(post))
    kwargs: dict[str, Any] = {
        "seed": seed,
        "valid_fraction": float(np.clip(frac, 0.05, 0.8)),
        "feature_config": feature_config,
        "latency_rows": 0,  # serving latency is not a batch question (and costs minutes for tree ensembles)
    }
    if candidates:
        kwargs["candidates"] = tuple(candidates)
    if "test_fraction" in {f.name for f in dataclasses.fields(training.TrainingConfig)}:
        kwargs["test_fraction"] = 0.0  # batch keeps its own test segment (never shown to training)
    result = training.train_candidates(rows, training.TrainingConfig(**kwargs))
    split = result.split
    hours = fit_hours.sort_values()
    new = {
        "train": hours[hours <= split.train_end],
        "embargo": hours[(hours > split.train_end) & (hours < split.valid_start)],
        "validation": hours[(hours >= split.valid_start) & (hours <= split.valid_end)],
        "test": seg["test"],
    }
    return result, new


def resolve_model(model: Any, tracking_uri: str | None = None) -> tuple[Any, ModelInfo]:
    """A model object is used as is; a string is an MLflow model URI (``models:/name@alias``, runs:/ ...)."""
    if isinstance(model, str):
        import mlflow

        from market_master import settings
        from market_master.lib.model import load_component_model

        mlflow.set_tracking_uri(tracking_uri or settings.default_tracking_uri())
        name, version, alias = (None, None, None)
        if model.startswith("models:/"):
            from market_master.lib.registry import parse_model_uri

            name, version, alias = parse_model_uri(model)
        return load_component_model(model), ModelInfo(name=name or model, version=version, alias=alias)
    return model, ModelInfo(name=getattr(model, "name", None) or type(model).__name__)


def check_model_is_out_of_sample(model: Any, test_start: pd.Timestamp) -> None:
    """Raise BatchInputError if the model saw the test segment: its ``training_window`` end (or
    ``validation_window`` end, when the model has one) is on or after ``test_start``; the reported test
    table would then be in-sample. A model without a ``training_window`` cannot be checked: refused too."""
    windows = {"training_window": getattr(model, "training_window", None)}
    if getattr(model, "validation_window", None) is not None:
        windows["validation_window"] = model.validation_window
    if windows["training_window"] is None:
        raise BatchInputError(
            f"the given model {type(model).__name__} has no training_window: cannot check that the test "
            f"segment (from {test_start}) is out of sample"
        )
    for name, window in windows.items():
        end = pd.Timestamp(window[1])
        if end.tz is None:
            end = end.tz_localize(calendar.TZ)
        if end >= test_start:
            raise BatchInputError(
                f"the given model's {name} ends {end} (window {window[0]} .. {window[1]}), on/after the "
                f"test segment start {test_start}: the test table would be in-sample. Give bars that extend "
                f"past the model's windows, or lower train_fraction/valid_fraction so the test starts later"
            )


def _sweep_candidates(
    result: Any,
    features: pd.DataFrame,
    valid_hours: pd.DatetimeIndex,
    constituents: list[str],
    wss_weights: Any,
    proxy_valid: pd.Series,
    grid: list[tuple[float, float]],
    cost_bps: float,
) -> pd.DataFrame:
    """Every candidate x every threshold pair on the validation segment (the DSR's trials)."""
    tables = []
    for name, cand in result.candidates.items():
        preds = predict_hours(features, cand.model, hours=valid_hours, universe=constituents)
        wss = compute_wss(preds, wss_weights)
        _, _, table = backtest.sweep_thresholds(
            pd.Series(wss["wss"].to_numpy(), index=pd.DatetimeIndex(wss["hour"])), proxy_valid, grid, cost_bps
        )
        tables.append(table.assign(candidate=name))
    return pd.concat(tables, ignore_index=True)


# ---------------------------------------------------------------- run


def run_batch(
    csv_dir: str | Path,
    holdings_path: str | Path,
    out_dir: str | Path,
    model: Any = None,
    train_fraction: float = 0.6,
    valid_fraction: float = 0.2,
    cost_bps: float = 1.0,
    buy: float = 0.5,
    sell: float = -0.5,
    sweep: bool = True,
    proxy_symbol: str | None = "QQQ",
    grid: list[tuple[float, float]] | None = None,
    feature_config: FeatureConfig | None = None,
    candidates: tuple[str, ...] | None = None,
    seed: int = 42,
    tracking_uri: str | None = None,
) -> BatchResult:
    """Run the batch workflow and write every output to ``out_dir`` (see module docstring).

    ``model``: None (train all ``candidates`` on the train segment), a ComponentModel, or a model URI.
    """
    validate_thresholds(buy, sell)
    csv_dir, out_dir = Path(csv_dir), Path(out_dir)
    feature_config = feature_config or FeatureConfig()
    notes: list[str] = []

    all_bars = load_csv_bars(csv_dir)
    file_symbols = sorted(all_bars["symbol"].unique())
    proxy_bars = None
    if proxy_symbol and proxy_symbol in file_symbols:
        proxy_bars = all_bars[all_bars["symbol"] == proxy_symbol].reset_index(drop=True)
    constituents = [s for s in file_symbols if s != proxy_symbol]
    if not constituents:
        raise BatchInputError(f"{csv_dir} holds no constituent CSV besides the proxy {proxy_symbol}")
    cbars = all_bars[all_bars["symbol"].isin(constituents)].reset_index(drop=True)
    notes += check_bars_or_raise(cbars)
    if proxy_bars is not None:
        notes += [f"proxy {proxy_symbol}: {n}" for n in check_bars_or_raise(proxy_bars)]

    weights, single_snapshot = load_weights(Path(holdings_path))
    snapshot = dict(weights) if single_snapshot else dict(weights(cbars["timestamp"].max()))
    weighted = {s for s, w in snapshot.items() if w > 0}
    if not set(constituents) & weighted:
        raise BatchInputError(f"none of the CSV symbols {constituents} has a weight in {holdings_path}")
    unweighted = sorted(set(constituents) - weighted)
    no_bars = sorted(weighted - set(constituents))
    covered_share = sum(w for s, w in snapshot.items() if s in constituents) / sum(snapshot.values())
    wss_weights = _restrict(weights, set(constituents))
    if single_snapshot:
        notes.append("a single holdings snapshot was given: today's weights were applied to all history")

    hours = pd.DatetimeIndex(cbars["timestamp"].unique()).sort_values()
    seg = split_sessions(hours, train_fraction, valid_fraction)
    features = compute_features(cbars, feature_config)

    if proxy_bars is not None:
        proxy_fwd = backtest.forward_returns(proxy_bars)
        proxy_name = str(proxy_symbol)
    else:
        proxy_fwd = backtest.weighted_constituent_returns(cbars, wss_weights)
        proxy_name = "weighted constituents"
        notes.append(
            f"no {proxy_symbol} CSV: the proxy is the weighted constituents' next-bar return"
            + ("" if single_snapshot else " (point-in-time weights of the holdings history)")
        )

    training_result = None
    if model is None:
        training_result, seg = train_on_segments(features, seg, candidates, feature_config, seed)
        the_model = training_result.champion
        model_name = f"{training_result.champion_name} (trained in batch)"
        info = ModelInfo(name=f"batch:{training_result.champion_name}")
        n_candidates = len(training_result.candidates)
    else:
        the_model, info = resolve_model(model, tracking_uri)
        check_model_is_out_of_sample(the_model, seg["test"].min())
        model_name = info.name or "given model"
        n_candidates = 1
        notes.append(f"model given ({model_name}): no training in batch; the train segment is unused")

    predictions = predict_hours(features, the_model, hours=hours, universe=constituents, model_info=info)
    signal = compute_wss(predictions, wss_weights, buy, sell)

    valid_hours = seg["validation"]
    proxy_valid = _validation_proxy(proxy_fwd, valid_hours)
    wss_valid = pd.Series(signal["wss"].to_numpy(), index=pd.DatetimeIndex(signal["hour"])).reindex(
        valid_hours
    )
    grid_pairs = list(grid) if grid is not None else backtest.default_threshold_grid()
    sweep_table, trials = None, None
    best_buy, best_sell = buy, sell
    if sweep:
        best_buy, best_sell, sweep_table = backtest.sweep_thresholds(
            wss_valid, proxy_valid, grid_pairs, cost_bps
        )
        if training_result is not None and len(training_result.candidates) > 1:
            trials = _sweep_candidates(
                training_result,
                features,
                valid_hours,
                constituents,
                wss_weights,
                proxy_valid,
                grid_pairs,
                cost_bps,
            )
        else:
            trials = sweep_table
    signal["decision"] = decide(signal["wss"].to_numpy(), best_buy, best_sell)
    signal["segment"] = _segment_of(signal["hour"], seg)

    valid_bt = backtest.run_backtest(signal[signal["segment"] == "validation"], proxy_valid, cost_bps)
    n_trials = n_candidates * (len(grid_pairs) if sweep else 1)
    trials_var = backtest.trials_sr_variance(trials)
    report = backtest.backtest_report(
        signal[signal["segment"] == "test"], proxy_fwd, cost_bps, n_trials, trials_var
    )
    test_bt, psr, dsr = report["result"], report["psr"], report["dsr"]

    segments = {
        name: {"start": str(h.min()), "end": str(h.max()), "n_hours": str(len(h))}
        for name, h in seg.items()
        if len(h)
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    result = BatchResult(
        out_dir=out_dir,
        predictions=predictions,
        signal=signal,
        test_backtest=test_bt,
        validation_backtest=valid_bt,
        buy_threshold=best_buy,
        sell_threshold=best_sell,
        sweep_table=trials,
        segments=segments,
        n_trials=n_trials,
        dsr=dsr,
        psr=psr,
        proxy=proxy_name,
        model_name=model_name,
        model=the_model,
        notes=notes,
    )
    extra = {
        "unweighted_symbols": unweighted,
        "symbols_without_bars": no_bars,
        "holdings_weight_with_bars": covered_share,
        "single_snapshot": single_snapshot,
        "n_candidates": n_candidates,
        "trials_sr_variance": trials_var,
        "cost_bps": cost_bps,
        "constituents": constituents,
        "champion_macro_f1_validation": (
            training_result.candidates[training_result.champion_name].metrics.get("macro_f1")
            if training_result is not None
            else None
        ),
    }
    write_outputs(result, extra)
    return result


def _validation_proxy(proxy_fwd: pd.Series, valid_hours: pd.DatetimeIndex) -> pd.Series:
    """Forward returns of the validation hours; the last one is NaN (its outcome is the first test bar)."""
    out = proxy_fwd.reindex(valid_hours).copy()
    if len(out):
        out.iloc[-1] = np.nan
    return out


def _restrict_snapshot(snapshot: Mapping[str, float], keep: set[str]) -> dict[str, float]:
    return {s: w for s, w in snapshot.items() if s in keep and w > 0}


def _restrict(weights: Any, keep: set[str]) -> Any:
    """Weights limited to symbols that have bars (renormalised later by compute_wss)."""
    if callable(weights) and not isinstance(weights, Mapping):
        return lambda hour: _restrict_snapshot(weights(hour), keep)
    return _restrict_snapshot(weights, keep)


def _segment_of(hours: pd.Series, seg: dict[str, pd.DatetimeIndex]) -> np.ndarray:
    out = np.full(len(hours), "", dtype=object)
    idx = pd.DatetimeIndex(hours)
    for name, h in seg.items():
        out[idx.isin(h)] = name
    return out
