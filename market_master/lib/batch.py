"""Batch mode: a folder of per-symbol 1-hour CSVs + a holdings file -> predictions, WSS, signals, backtest.

The same functions as the asset graph, in the same order: CsvSource -> bars.run_bar_checks (ERROR checks
fail loudly, naming the rows) -> features.compute_features -> training.train_candidates (or a given model)
-> prediction.predict_hours -> signal.compute_wss -> backtest.run_backtest.

Time segments, by whole sessions, with the pipeline's shares (``lib.segments.Segments``, default train
0.5 | validation 0.25 | test 0.25): train (the model is fitted there only; its last ``embargo_bars`` hours
are an embargo), validation (model selection and the threshold sweep; the decision at the last validation
hour is not scored because its outcome lies in the test window) and test (the reported numbers). The
sweep never sees a test hour.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_master.lib import backtest, calendar, oos_evaluation
from market_master.lib import bars as bars_lib
from market_master.lib.batch_report import BatchResult, write_outputs
from market_master.lib.features import FeatureConfig, compute_features
from market_master.lib.prediction import ModelInfo, predict_hours
from market_master.lib.proxy import MissingProxyError, proxy_symbols, require_proxy, split_constituents
from market_master.lib.segments import (
    DEFAULT_SEGMENTS,
    MIN_TRAIN_HOURS,
    Segments,
    SplitBoundaries,
    post_warmup_hours,
)
from market_master.lib.signal import DEFAULT_THRESHOLDS, compute_wss, decisions_from_wss, validate_thresholds
from market_master.lib.sources.csv_source import CsvSource
from market_master.lib.training import TrainingConfig
from market_master.lib.walk_forward import WalkForwardConfig, run_walk_forward
from market_master.lib.weights import load_holdings_csv, total_warning

__all__ = [
    "BatchInputError",
    "BatchResult",
    "check_model_is_out_of_sample",
    "run_batch",
    "split_sessions",
]

log = logging.getLogger(__name__)

MIN_TRADING_DAYS = 21


class BatchInputError(ValueError):
    """The batch inputs cannot produce an honest result (too short, failed bar checks, no symbols ...)."""


# ---------------------------------------------------------------- inputs


def load_csv_bars(csv_dir: Path) -> pd.DataFrame:
    """All ``<SYM>_1h.csv`` files of ``csv_dir`` as canonical bars plus each row's ``file`` and ``line``
    (1-based, header = line 1); raises if there are none."""
    if not Path(csv_dir).is_dir():
        raise BatchInputError(f"--csv-dir {csv_dir} is not a directory")
    source = CsvSource(csv_dir)
    symbols = source.available_symbols()
    if not symbols:
        raise BatchInputError(f"no '<SYMBOL>_1h.csv' files in {csv_dir}")
    return source.fetch_with_lines(symbols)


ORIGIN_COLUMNS = ["file", "line"]


def _where(row: Mapping[str, Any], origin: pd.DataFrame | None, columns: list[str]) -> str:
    """'<file> line <n>: symbol S, timestamp T, column=value ...' for one offending row."""
    values = ", ".join(f"{c}={row[c]!r}" for c in columns if c in row)
    stamp = f"{row['symbol']} {row['timestamp']}" if "timestamp" in row else str(row.get("symbol"))
    if origin is not None and "row" in row:
        file, line = origin.iloc[int(row["row"])][ORIGIN_COLUMNS]
        return f"{file} line {int(line)} ({stamp}): {values}"
    return f"{stamp}: {values}"


def check_bars_or_raise(frame: pd.DataFrame, origin: pd.DataFrame | None = None) -> list[str]:
    """Run the bar quality checks; raise on any failed ERROR check (naming each offending row by file and
    line when ``origin`` - the ``file`` and ``line`` of every row of ``frame`` - is given, with the columns
    at fault and their values), return WARN notes."""
    notes = []
    for outcome in bars_lib.run_bar_checks(frame):
        if outcome.passed:
            continue
        if outcome.severity == bars_lib.ERROR:
            columns = [c for c in outcome.offending.columns if c not in ("row", "symbol", "timestamp")]
            shown = [_where(r, origin, columns) for r in outcome.offending.head(5).to_dict("records")]
            more = f" (+{outcome.n_offending - 5} more)" if outcome.n_offending > 5 else ""
            raise BatchInputError(
                f"bar check {outcome.name} failed ({outcome.description}) on {outcome.n_offending} row(s): "
                + "; ".join(shown)
                + more
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


def _read_bars(
    csv_dir: Path, proxy_symbol: str | None
) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str], list[str]]:
    """(constituent bars, proxy bars or None, constituents, WARN notes); raises on failed ERROR checks
    or when no constituent is left. The proxy's file is read as the proxy; files of other index proxies
    (`lib.proxy.proxy_symbols`: SPY, NQ=F ...) are never constituents: left out, with a note."""
    all_bars = load_csv_bars(csv_dir)
    file_symbols = sorted(all_bars["symbol"].unique())
    kept, other_proxies, _ = split_constituents(file_symbols, proxy_symbols(proxy_symbol))
    other_proxies = [s for s in other_proxies if s != proxy_symbol]
    ignored_notes = (
        [f"{csv_dir}: {other_proxies} are index proxies, not constituents: their CSVs are not used"]
        if other_proxies
        else []
    )
    proxy_bars = None
    if proxy_symbol and proxy_symbol in file_symbols:
        proxy_rows = all_bars[all_bars["symbol"] == proxy_symbol].reset_index(drop=True)
        notes_proxy = check_bars_or_raise(proxy_rows[bars_lib.BAR_COLUMNS], proxy_rows[ORIGIN_COLUMNS])
        proxy_bars = proxy_rows[bars_lib.BAR_COLUMNS]
    constituents = kept
    if not constituents:
        raise BatchInputError(
            f"{csv_dir} holds no constituent CSV besides the index proxies {[proxy_symbol, *other_proxies]}"
        )
    rows = all_bars[all_bars["symbol"].isin(constituents)].reset_index(drop=True)
    bars = rows[bars_lib.BAR_COLUMNS]
    notes = check_bars_or_raise(bars, rows[ORIGIN_COLUMNS])
    if proxy_bars is not None:
        notes += [f"proxy {proxy_symbol}: {n}" for n in notes_proxy]
    return bars, proxy_bars, constituents, ignored_notes + notes


def check_proxy_covers(
    proxy_bars: pd.DataFrame | None, proxy_symbol: str | None, seg: dict[str, pd.DatetimeIndex]
) -> None:
    """Raise BatchInputError when the proxy CSV does not cover the windows in ``seg`` that are traded
    (validation and test for a given model, the out-of-sample hours of a walk-forward): the sweep and the
    backtest would run on zero (or too few) bars and report nothing as a result."""
    if proxy_bars is None:
        return
    need = " and ".join(f"{name} {h.min()} .. {h.max()}" for name, h in seg.items())
    have = proxy_bars["timestamp"]
    if have.empty:
        raise BatchInputError(f"the index proxy {proxy_symbol} CSV has no bars; the backtest needs {need}")
    lo, hi = have.min(), have.max()
    if lo > min(h.min() for h in seg.values()) or hi < max(h.max() for h in seg.values()):
        raise BatchInputError(
            f"the index proxy {proxy_symbol} CSV covers {lo} .. {hi}, but the backtest needs {need}: "
            f"extend {proxy_symbol}_1h.csv over those windows, or pass --proxy '' to trade the weighted "
            f"constituents instead"
        )


def _read_weights(
    holdings_path: Path, constituents: list[str], last_hour: pd.Timestamp, proxies: frozenset[str]
) -> tuple[Any, dict[str, Any]]:
    """(weights limited to the constituents, the weights facts reported in backtest.json)."""
    unit_warnings = [w for w in map(total_warning, load_holdings_csv(holdings_path).snapshots) if w]
    for warning in unit_warnings:
        log.warning("WEIGHTS LOOK WRONG: %s", warning)
    weights, single_snapshot = load_weights(holdings_path)
    snapshot = dict(weights) if single_snapshot else dict(weights(last_hour))
    listed = sorted({s for snap in load_holdings_csv(holdings_path).snapshots for s in snap.weights})
    _, held_proxies, proxy_message = split_constituents(listed, proxies, f"holdings {holdings_path}")
    if proxy_message:
        log.warning(proxy_message)
    snapshot = {s: w for s, w in snapshot.items() if s not in held_proxies}
    weighted = {s for s, w in snapshot.items() if w > 0}
    if not set(constituents) & weighted:
        raise BatchInputError(f"none of the CSV symbols {constituents} has a weight in {holdings_path}")
    facts = {
        "unweighted_symbols": sorted(set(constituents) - weighted),
        "symbols_without_bars": sorted(weighted - set(constituents)),
        "holdings_weight_with_bars": (
            sum(w for s, w in snapshot.items() if s in constituents) / sum(snapshot.values())
        ),
        "single_snapshot": single_snapshot,
        "weights_warnings": unit_warnings,
        "excluded_proxy_symbols": held_proxies,
        "proxy_note": proxy_message,
    }
    return _restrict(weights, set(constituents)), facts


def _proxy_returns(
    bars: pd.DataFrame, proxy_bars: pd.DataFrame | None, proxy_symbol: str | None, weights: Any, single: bool
) -> tuple[pd.Series, str, list[str]]:
    """(forward returns of the traded proxy by hour, its name, notes)."""
    if proxy_bars is not None:
        return backtest.forward_returns(proxy_bars), str(proxy_symbol), []
    note = f"no {proxy_symbol} CSV: the proxy is the weighted constituents' next-bar return" + (
        "" if single else " (point-in-time weights of the holdings history)"
    )
    return backtest.weighted_constituent_returns(bars, weights), "weighted constituents", [note]


def _proxy_for_features(
    bars: pd.DataFrame, proxy_bars: pd.DataFrame | None, proxy_symbol: str | None, config: FeatureConfig
) -> pd.DataFrame | None:
    """The proxy's bars for index-context features (None when the config does not use them); raises
    BatchInputError naming the proxy and the hours where constituents have a bar and the proxy none."""
    if not config.index_context:
        return None
    if not proxy_symbol or proxy_symbol != config.proxy_symbol:
        raise BatchInputError(
            f"the features use the index proxy {config.proxy_symbol}'s context but batch reads the proxy "
            f"{proxy_symbol or '(none: --proxy empty)'}: pass --proxy {config.proxy_symbol}"
        )
    if proxy_bars is None:
        raise BatchInputError(
            f"the features use index context: the index proxy {proxy_symbol} needs its file "
            f"{proxy_symbol}_1h.csv in the CSV directory"
        )
    try:
        require_proxy(bars, proxy_bars, proxy_symbol, f"{proxy_symbol}_1h.csv")
    except MissingProxyError as exc:
        raise BatchInputError(str(exc)) from exc
    return proxy_bars


# ---------------------------------------------------------------- segments


def check_enough_sessions(hours: pd.DatetimeIndex) -> None:
    """At least ``MIN_TRADING_DAYS`` sessions of bars, or a clear error."""
    n = len(pd.DatetimeIndex(hours).tz_convert(calendar.TZ).normalize().unique())
    if n < MIN_TRADING_DAYS:
        raise BatchInputError(
            f"batch mode needs at least {MIN_TRADING_DAYS} trading days of bars, got {n} "
            f"({hours.min()} .. {hours.max()})"
        )


def split_sessions(
    hours: pd.DatetimeIndex, segments: Segments = DEFAULT_SEGMENTS
) -> dict[str, pd.DatetimeIndex]:
    """Split the hours by whole sessions into train / validation / test (in time order) with the shares of
    ``segments`` (each rounded down to whole sessions; test gets the rest)."""
    if not segments.has_test:
        raise ValueError(f"batch mode reports on its own test segment: {segments} has none")
    hours = pd.DatetimeIndex(hours).unique().sort_values()
    check_enough_sessions(hours)
    days = hours.tz_convert(calendar.TZ).normalize()
    sessions = days.unique()
    n = len(sessions)
    n_train = int(math.floor(n * segments.train))
    n_valid = int(math.floor(n * segments.validation))
    if min(n_train, n_valid, n - n_train - n_valid) < 1:
        raise BatchInputError(f"{n} sessions are too few for the shares {segments}")
    bounds = {
        "train": sessions[:n_train],
        "validation": sessions[n_train : n_train + n_valid],
        "test": sessions[n_train + n_valid :],
    }
    return {name: hours[days.isin(s)] for name, s in bounds.items()}


def _training_split(
    rows: pd.DataFrame, seg: dict[str, pd.DatetimeIndex], embargo_bars: int
) -> SplitBoundaries:
    """The segments as training boundaries: the train segment's post-warm-up hours without its last
    ``embargo_bars`` (the embargo) | the validation segment. No test: batch keeps its own."""
    hours = post_warmup_hours(rows)
    train = hours[hours.isin(seg["train"])][:-embargo_bars]
    valid = hours[hours.isin(seg["validation"])]
    if len(train) < MIN_TRAIN_HOURS or len(valid) == 0:
        raise BatchInputError(
            f"the segments leave {len(train)} post-warm-up training hours (embargo {embargo_bars}) and "
            f"{len(valid)} validation hours; need >= {MIN_TRAIN_HOURS} and >= 1"
        )
    return SplitBoundaries.from_hours(train, valid, embargo_bars)


# ---------------------------------------------------------------- model


def train_on_segments(
    features: pd.DataFrame,
    seg: dict[str, pd.DatetimeIndex],
    candidates: tuple[str, ...] | None,
    feature_config: FeatureConfig,
    seed: int,
    segments: Segments = DEFAULT_SEGMENTS,
) -> tuple[Any, dict[str, pd.DatetimeIndex]]:
    """Train every candidate on the train segment; the champion is picked on the validation segment.

    ``training.train_candidates`` gets the train + validation rows only (never a test row) and the
    segments' own boundaries (``_training_split``). It fits on its training window only. Returns the
    TrainingResult and the segments redrawn on its exact boundaries (the embargo hours belong to neither
    train nor validation).
    """
    from market_master.lib import training  # imports mlflow (seconds): only when batch trains

    fit_hours = seg["train"].append(seg["validation"])
    rows = features[features["timestamp"].isin(fit_hours)].reset_index(drop=True)
    split = _training_split(rows, seg, segments.embargo_bars)
    config = training.TrainingConfig(
        segments=segments,
        seed=seed,
        feature_config=feature_config,
        latency_rows=0,  # serving latency is not a batch question (and costs minutes for tree ensembles)
        **({"candidates": tuple(candidates)} if candidates else {}),
    )
    result = training.train_candidates(rows, config, split=split)
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
        from market_master import settings
        from market_master.lib.mlflow_adapter import MlflowAdapter, parse_model_uri

        uri = tracking_uri or settings.default_tracking_uri()
        if not model.startswith("models:/"):
            return MlflowAdapter(uri).load_model_uri(model), ModelInfo(name=model)
        ref = parse_model_uri(model)
        adapter = MlflowAdapter(uri, model_name=ref.name)
        version = ref.version or adapter.require_alias_version(ref.alias)  # pinned once: alias may move
        return adapter.load_model(version), ModelInfo(name=ref.name, version=version, alias=ref.alias)
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
                f"test segment start {test_start}: the test table would be in-sample. Give CSVs that extend "
                f"past the model's windows (the test segment is the last quarter of the sessions), or drop "
                f"--model-uri to train a model on the train segment in batch"
            )


@dataclass
class _ChosenModel:
    """The model batch predicts with; ``training`` is the TrainingResult when batch trained it."""

    model: Any
    info: ModelInfo
    name: str
    n_candidates: int
    training: Any = None


def _choose_model(
    model: Any,
    features: pd.DataFrame,
    seg: dict[str, pd.DatetimeIndex],
    training_args: tuple[tuple[str, ...] | None, FeatureConfig, int, Segments],
    tracking_uri: str | None,
) -> tuple[_ChosenModel, dict[str, pd.DatetimeIndex], list[str]]:
    """Train (``model`` None; ``training_args`` as ``train_on_segments`` takes them after ``seg``) or
    resolve the given model. Returns (chosen, segments, notes)."""
    if model is None:
        result, seg = train_on_segments(features, seg, *training_args)
        name = result.champion_name
        chosen = _ChosenModel(
            result.champion,
            ModelInfo(name=f"batch:{name}"),
            f"{name} (trained in batch)",
            len(result.candidates),
            result,
        )
        return chosen, seg, []
    the_model, info = resolve_model(model, tracking_uri)
    check_model_is_out_of_sample(the_model, seg["test"].min())
    name = info.name or "given model"
    note = f"model given ({name}): no training in batch; the train segment is unused"
    return _ChosenModel(the_model, info, name, 1), seg, [note]


# ---------------------------------------------------------------- thresholds and backtests


@dataclass
class _Market:
    """What the sweep and the backtests share: features, universe, weights, segments and proxy returns."""

    features: pd.DataFrame
    constituents: list[str]
    weights: Any
    seg: dict[str, pd.DatetimeIndex]
    proxy_fwd: pd.Series
    cost_bps: float

    @property
    def proxy_valid(self) -> pd.Series:
        """Forward returns of the validation hours; the last is NaN (its outcome is the first test bar)."""
        out = self.proxy_fwd.reindex(self.seg["validation"]).copy()
        if len(out):
            out.iloc[-1] = np.nan
        return out


def _sweep_candidates(
    result: Any, market: _Market, proxy_valid: pd.Series, grid: list[tuple[float, float]]
) -> pd.DataFrame:
    """Every candidate x every threshold pair on the validation segment (the DSR's trials)."""
    tables = []
    for name, cand in result.candidates.items():
        preds = predict_hours(
            market.features, cand.model, hours=market.seg["validation"], universe=market.constituents
        )
        wss = compute_wss(preds, market.weights)
        _, _, table = backtest.sweep_thresholds(
            pd.Series(wss["wss"].to_numpy(), index=pd.DatetimeIndex(wss["hour"])),
            proxy_valid,
            grid,
            market.cost_bps,
        )
        tables.append(table.assign(candidate=name))
    return pd.concat(tables, ignore_index=True)


def _sweep_on_validation(
    market: _Market, signal: pd.DataFrame, chosen: _ChosenModel, grid: list[tuple[float, float]]
) -> tuple[float, float, pd.DataFrame]:
    """(buy, sell) with the best after-cost Sharpe on the validation segment, and the table of every trial
    (every candidate x grid pair when batch trained several, else the chosen model's grid)."""
    valid_hours = market.seg["validation"]
    proxy_valid = market.proxy_valid
    wss_valid = pd.Series(signal["wss"].to_numpy(), index=pd.DatetimeIndex(signal["hour"])).reindex(
        valid_hours
    )
    buy, sell, table = backtest.sweep_thresholds(wss_valid, proxy_valid, grid, market.cost_bps)
    if chosen.training is not None and len(chosen.training.candidates) > 1:
        table = _sweep_candidates(chosen.training, market, proxy_valid, grid)
    return buy, sell, table


@dataclass
class _Scored:
    """The thresholds applied, the sweep's trials and the backtests of the validation and test segments."""

    buy: float
    sell: float
    trials: pd.DataFrame | None
    n_trials: int
    validation: backtest.BacktestResult
    test_report: dict[str, Any]
    trials_var: float


def _decide_and_backtest(
    market: _Market,
    signal: pd.DataFrame,
    chosen: _ChosenModel,
    grid: list[tuple[float, float]] | None,
    thresholds: tuple[float, float] | None,
) -> _Scored:
    """Sweep (buy, sell) on validation (``thresholds`` None) or keep the given pair; set ``decision`` and
    ``segment`` on ``signal``; backtest the validation segment and report the test segment (PSR, DSR)."""
    grid_pairs = list(grid) if grid is not None else backtest.default_threshold_grid()
    if thresholds is None:
        buy, sell, trials = _sweep_on_validation(market, signal, chosen, grid_pairs)
        n_trials = chosen.n_candidates * len(grid_pairs)
    else:
        (buy, sell), trials, n_trials = thresholds, None, chosen.n_candidates
    signal["decision"] = decisions_from_wss(signal["wss"].to_numpy(), buy, sell)
    signal["segment"] = _segment_of(signal["hour"], market.seg)
    valid_bt = backtest.run_backtest(
        signal[signal["segment"] == "validation"], market.proxy_valid, market.cost_bps
    )
    trials_var = backtest.trials_sr_variance(trials)
    report = backtest.backtest_report(
        signal[signal["segment"] == "test"], market.proxy_fwd, market.cost_bps, n_trials, trials_var
    )
    return _Scored(buy, sell, trials, n_trials, valid_bt, report, trials_var)


# ---------------------------------------------------------------- run


def run_batch(
    csv_dir: str | Path,
    holdings_path: str | Path,
    out_dir: str | Path,
    model: Any = None,
    segments: Segments = DEFAULT_SEGMENTS,
    cost_bps: float = 1.0,
    buy: float = DEFAULT_THRESHOLDS.buy,
    sell: float = DEFAULT_THRESHOLDS.sell,
    sweep: bool = True,
    proxy_symbol: str | None = "QQQ",
    grid: list[tuple[float, float]] | None = None,
    feature_config: FeatureConfig | None = None,
    candidates: tuple[str, ...] | None = None,
    seed: int = 42,
    tracking_uri: str | None = None,
    walk_forward: WalkForwardConfig | None = None,
) -> BatchResult:
    """Run the batch workflow and write every output to ``out_dir`` (see module docstring).

    ``model``: None (the walk-forward out-of-sample history of the training procedure over every
    ``candidates``: ``walk_forward`` sets its geometry, the pipeline's by default; ``sweep`` sweeps each
    fold's thresholds on its own inner validation hours), a ComponentModel, or a model URI (then
    ``segments`` - the train / validation / test shares and the embargo - split the hours, the model must
    not have seen the test segment, and the thresholds are swept on validation).
    """
    validate_thresholds(buy, sell)
    feature_config = feature_config or FeatureConfig()
    bars, proxy_bars, constituents, notes = _read_bars(Path(csv_dir), proxy_symbol)
    weights, weight_facts = _read_weights(
        Path(holdings_path), constituents, bars["timestamp"].max(), proxy_symbols(proxy_symbol)
    )
    notes += [f"WARN weights: {w}" for w in weight_facts["weights_warnings"]]
    if weight_facts["proxy_note"]:
        notes.append(weight_facts["proxy_note"])
    if weight_facts["single_snapshot"]:
        notes.append("a single holdings snapshot was given: today's weights were applied to all history")
    hours = pd.DatetimeIndex(bars["timestamp"].unique()).sort_values()
    check_enough_sessions(hours)
    features = compute_features(
        bars, feature_config, proxy=_proxy_for_features(bars, proxy_bars, proxy_symbol, feature_config)
    )
    proxy_fwd, proxy_name, proxy_notes = _proxy_returns(
        bars, proxy_bars, proxy_symbol, weights, weight_facts["single_snapshot"]
    )
    notes += proxy_notes
    out_dir = Path(out_dir)
    if model is None:
        wf = walk_forward or WalkForwardConfig()
        wf = dataclasses.replace(
            wf, sweep_thresholds=sweep, buy_threshold=buy, sell_threshold=sell, cost_bps=cost_bps
        )
        training = TrainingConfig(
            seed=seed,
            feature_config=feature_config,
            latency_rows=0,  # serving latency is not a batch question
            **({"candidates": tuple(candidates)} if candidates else {}),
        )
        return _walk_forward_batch(
            _WalkForwardInputs(features, weights, weight_facts, constituents, proxy_fwd, proxy_name),
            proxy_bars,
            proxy_symbol,
            wf,
            training,
            grid,
            out_dir,
            notes,
        )
    seg = split_sessions(hours, segments)
    check_proxy_covers(proxy_bars, proxy_symbol, seg)
    training_args = (candidates, feature_config, seed, segments)
    chosen, seg, model_notes = _choose_model(model, features, seg, training_args, tracking_uri)
    notes += model_notes

    predictions = predict_hours(
        features, chosen.model, hours=hours, universe=constituents, model_info=chosen.info
    )
    signal = compute_wss(predictions, weights, buy, sell)
    market = _Market(features, constituents, weights, seg, proxy_fwd, cost_bps)
    scored = _decide_and_backtest(market, signal, chosen, grid, None if sweep else (buy, sell))

    out_dir.mkdir(parents=True, exist_ok=True)
    result = BatchResult(
        out_dir=out_dir,
        predictions=predictions,
        signal=signal,
        test_backtest=scored.test_report["result"],
        validation_backtest=scored.validation,
        buy_threshold=scored.buy,
        sell_threshold=scored.sell,
        sweep_table=scored.trials,
        segments=_segment_bounds(seg),
        n_trials=scored.n_trials,
        dsr=scored.test_report["dsr"],
        psr=scored.test_report["psr"],
        proxy=proxy_name,
        model_name=chosen.name,
        model=chosen.model,
        notes=notes,
    )
    write_outputs(result, _report_extra(weight_facts, chosen, scored.trials_var, cost_bps, constituents))
    return result


@dataclass
class _WalkForwardInputs:
    features: pd.DataFrame
    weights: Any
    weight_facts: dict[str, Any]
    constituents: list[str]
    proxy_fwd: pd.Series
    proxy_name: str


def _walk_forward_batch(
    data: _WalkForwardInputs,
    proxy_bars: pd.DataFrame | None,
    proxy_symbol: str | None,
    wf: WalkForwardConfig,
    training: TrainingConfig,
    grid: list[tuple[float, float]] | None,
    out_dir: Path,
    notes: list[str],
) -> BatchResult:
    """Batch without a given model: the walk-forward out-of-sample history (``lib.walk_forward``, the
    same implementation the asset graph runs), backtested on its OOS hours only."""
    try:
        history = run_walk_forward(
            data.features,
            data.weights,
            data.proxy_fwd,
            wf,
            training,
            universe=data.constituents,
            grid=grid,
            keep_models=True,
        )
    except ValueError as exc:
        raise BatchInputError(str(exc)) from exc
    oos = pd.DatetimeIndex(history.signal["hour"])
    check_proxy_covers(proxy_bars, proxy_symbol, {"out-of-sample hours": oos})
    report = oos_evaluation.index_economics(history, data.proxy_fwd, wf.cost_bps)
    signal = history.signal.copy()
    signal["segment"] = "out_of_sample"
    folds = history.folds
    first = folds.iloc[0]
    segments = {
        "first_training_window": {
            "start": str(first["train_start"]),
            "end": str(first["train_end"]),
            "n_hours": "",
        },
        "out_of_sample": {"start": str(oos.min()), "end": str(oos.max()), "n_hours": str(len(oos))},
    }
    last = folds.iloc[-1]
    out_dir.mkdir(parents=True, exist_ok=True)
    result = BatchResult(
        out_dir=out_dir,
        predictions=history.predictions,
        signal=signal,
        test_backtest=report["result"],
        validation_backtest=None,
        buy_threshold=float(last["buy_threshold"]),
        sell_threshold=float(last["sell_threshold"]),
        sweep_table=None,
        segments=segments,
        n_trials=history.n_trials,
        dsr=report["dsr"],
        psr=report["psr"],
        proxy=data.proxy_name,
        model_name=f"walk-forward ({len(folds)} folds; latest: {last['champion']})",
        model=history.models[int(last["fold"])],
        notes=[history.hours_statement(), *notes],
        folds=folds,
        fold_models=history.models,
    )
    table = oos_evaluation.metrics_table(history, data.proxy_fwd, wf.cost_bps)
    extra = {
        **data.weight_facts,
        "n_candidates": len(training.candidates),
        "trials_sr_variance": report["trials_sr_variance"],
        "cost_bps": wf.cost_bps,
        "constituents": data.constituents,
        "walk_forward": wf.to_dict(),
        "hours_statement": history.hours_statement(),
        "oos_metrics": table,
    }
    write_outputs(result, extra)
    return result


def _segment_bounds(seg: dict[str, pd.DatetimeIndex]) -> dict[str, dict[str, str]]:
    """First / last hour and hour count of every non-empty segment (``BatchResult.segments``)."""
    return {
        name: {"start": str(h.min()), "end": str(h.max()), "n_hours": str(len(h))}
        for name, h in seg.items()
        if len(h)
    }


def _report_extra(
    weight_facts: dict[str, Any],
    chosen: _ChosenModel,
    trials_var: float,
    cost_bps: float,
    constituents: list[str],
) -> dict[str, Any]:
    """The backtest.json / report.md facts beyond ``BatchResult``."""
    training = chosen.training
    return {
        **weight_facts,
        "n_candidates": chosen.n_candidates,
        "trials_sr_variance": trials_var,
        "cost_bps": cost_bps,
        "constituents": constituents,
        "champion_macro_f1_validation": (
            training.candidates[training.champion_name].metrics.get("macro_f1")
            if training is not None
            else None
        ),
    }


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
