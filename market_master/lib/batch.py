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

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_master.lib import backtest, calendar, plots
from market_master.lib import bars as bars_lib
from market_master.lib.features import FeatureConfig, compute_features
from market_master.lib.prediction import ModelInfo, predict_hours
from market_master.lib.signal import compute_wss, decide, validate_thresholds
from market_master.lib.sources.csv_source import CsvSource
from market_master.lib.weights import load_holdings_csv

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
        proxy_fwd = backtest.weighted_constituent_returns(
            cbars, _restrict_snapshot(snapshot, set(constituents))
        )
        proxy_name = "weighted constituents"
        notes.append(f"no {proxy_symbol} CSV: the proxy is the weighted constituents' next-bar return")

    training_result = None
    if model is None:
        training_result, seg = train_on_segments(features, seg, candidates, feature_config, seed)
        the_model = training_result.champion
        model_name = f"{training_result.champion_name} (trained in batch)"
        info = ModelInfo(name=f"batch:{training_result.champion_name}")
        n_candidates = len(training_result.candidates)
    else:
        the_model, info = resolve_model(model, tracking_uri)
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
    test_bt = backtest.run_backtest(signal[signal["segment"] == "test"], proxy_fwd, cost_bps)

    n_trials = n_candidates * (len(grid_pairs) if sweep else 1)
    trial_sr = trials["per_bar_sharpe"].to_numpy(dtype=float) if trials is not None else np.array([])
    trial_sr = trial_sr[np.isfinite(trial_sr)]
    trials_var = float(np.var(trial_sr, ddof=1)) if trial_sr.size > 1 else 0.0
    test_returns = test_bt.frame["strategy_return"].to_numpy()
    psr = backtest.probabilistic_sharpe_ratio(test_returns)
    dsr = backtest.deflated_sharpe_ratio(test_returns, n_trials, trials_var)

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
    _write_outputs(result, extra)
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


# ---------------------------------------------------------------- outputs


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _jsonable(value.item())
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _write_outputs(result: BatchResult, extra: dict[str, Any]) -> None:
    out = result.out_dir
    files = result.files
    preds = result.predictions.copy()
    preds.to_parquet(out / "predictions.parquet", index=False)
    preds.to_csv(out / "predictions.csv", index=False)
    files["predictions.parquet"] = out / "predictions.parquet"
    files["predictions.csv"] = out / "predictions.csv"

    wss_cols = [
        "hour",
        "segment",
        "wss",
        "covered_weight",
        "n_predicted",
        "n_symbols",
        "missing_symbols",
        "unweighted_symbols",
        "reason",
    ]
    result.signal[wss_cols].to_csv(out / "wss.csv", index=False)
    files["wss.csv"] = out / "wss.csv"
    signals = result.signal[["hour", "segment", "wss", "decision"]].copy()
    signals["buy_threshold"] = result.buy_threshold
    signals["sell_threshold"] = result.sell_threshold
    signals.to_csv(out / "signals.csv", index=False)
    files["signals.csv"] = out / "signals.csv"

    payload = {
        "proxy": result.proxy,
        "model": result.model_name,
        "segments": result.segments,
        "thresholds": {"buy": result.buy_threshold, "sell": result.sell_threshold, "swept_on": "validation"},
        "annualization_factor": result.test_backtest.annualization_factor,
        "test": result.test_backtest.metrics,
        "validation": result.validation_backtest.metrics if result.validation_backtest else None,
        "psr_test": result.psr,
        "dsr_test": result.dsr,
        "n_trials": result.n_trials,
        "notes": result.notes + result.test_backtest.notes,
        **extra,
    }
    (out / "backtest.json").write_text(json.dumps(_jsonable(payload), indent=2, default=str))
    files["backtest.json"] = out / "backtest.json"
    if result.sweep_table is not None:
        result.sweep_table.to_csv(out / "threshold_sweep.csv", index=False)
        files["threshold_sweep.csv"] = out / "threshold_sweep.csv"

    files["equity.png"] = plots.plot_equity(
        result.test_backtest, out / "equity.png", title=f"Test window vs {result.proxy}"
    )
    starts = {k: pd.Timestamp(v["start"]) for k, v in result.segments.items() if k != "embargo"}
    files["wss.png"] = plots.plot_wss(
        result.signal, out / "wss.png", result.buy_threshold, result.sell_threshold, starts
    )
    (out / "report.md").write_text(render_report(result, extra))
    files["report.md"] = out / "report.md"
    log.info("batch outputs written to %s", out)


def _fmt(x: float, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x * 100:.2f}%" if pct else f"{x:.3f}"


def metrics_markdown(bt: backtest.BacktestResult) -> str:
    """The signal / buy-and-hold / flat table as Markdown."""
    lines = [
        "| strategy | total return | ann. return | Sharpe | max drawdown | hit rate | turnover/yr | exposure |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in bt.metrics.items():
        lines.append(
            f"| {name} | {_fmt(m['total_return'], True)} | {_fmt(m['annualized_return'], True)} | {_fmt(m['sharpe'])} "
            f"| {_fmt(m['max_drawdown'], True)} | {_fmt(m['hit_rate'], True)} | {m['turnover_per_year']:.0f} "
            f"| {_fmt(m['exposure'], True)} |"
        )
    return "\n".join(lines)


def render_report(result: BatchResult, extra: dict[str, Any]) -> str:
    """Human summary of a batch run (Markdown)."""
    seg = result.segments
    decisions = result.signal[result.signal["segment"] == "test"]["decision"].value_counts().to_dict()
    status = result.predictions["status"].value_counts().to_dict()
    lines = [
        "# Market Master batch report",
        "",
        f"- Constituents with bars: {', '.join(extra['constituents'])}",
        f"- Proxy traded: {result.proxy}; model: {result.model_name}",
        f"- Segments: train {seg['train']['start']} .. {seg['train']['end']}; validation {seg['validation']['start']} .. "
        f"{seg['validation']['end']}; test {seg['test']['start']} .. {seg['test']['end']}",
        f"- Thresholds: BUY if WSS >= {result.buy_threshold:g}, SELL if WSS <= {result.sell_threshold:g} "
        + ("(swept on validation only)" if result.sweep_table is not None else "(given, not swept)"),
        f"- Costs: {extra['cost_bps']:g} bp per unit of position change; Sharpe annualised with "
        f"{result.test_backtest.annualization_factor:g} bars/year (7 x 252 trading hours)",
        f"- Prediction statuses: {status}; test decisions: {decisions}",
        "",
        "## Weights",
    ]
    if extra["single_snapshot"]:
        lines.append("- A single holdings snapshot was given: today's weights were applied to all history.")
    lines.append(
        f"- Share of holdings weight with bars: {extra['holdings_weight_with_bars'] * 100:.1f}% (renormalised over them)"
    )
    lines.append(
        f"- Symbols without weight (ignored in the WSS): {', '.join(extra['unweighted_symbols']) or 'none'}"
    )
    no_bars = extra["symbols_without_bars"]
    shown = ", ".join(no_bars[:30]) + (f" ... (+{len(no_bars) - 30})" if len(no_bars) > 30 else "")
    lines.append(f"- Weighted symbols without bars: {shown or 'none'}")
    lines += [
        "",
        "## Test window (reported; never used for fitting or the sweep)",
        "",
        metrics_markdown(result.test_backtest),
        "",
        f"- PSR (P[true Sharpe > 0]): {_fmt(result.psr)}; DSR over {result.n_trials} trials "
        f"({extra['n_candidates']} candidate(s) x threshold grid): {_fmt(result.dsr)}",
    ]
    if result.validation_backtest is not None:
        lines += [
            "",
            "## Validation window (threshold sweep)",
            "",
            metrics_markdown(result.validation_backtest),
        ]
    notes = result.notes + result.test_backtest.notes
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += [
        "",
        "Files: predictions.parquet/.csv, wss.csv, signals.csv, backtest.json, equity.png, wss.png.",
    ]
    return "\n".join(lines) + "\n"
