"""Batch outputs: ``BatchResult``, the Markdown report, ``backtest.json`` and the files written next to them.

``write_outputs(result, extra)`` writes predictions (Parquet + CSV), ``wss.csv``, ``signals.csv``,
``backtest.json``, ``threshold_sweep.csv`` (when swept), ``equity.png``, ``wss.png`` and ``report.md`` into
``result.out_dir`` and records each path in ``result.files``. The pipeline itself lives in ``lib.batch``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from market_master.lib import plots
from market_master.lib.backtest import BacktestResult
from market_master.lib.signal import SIGNAL_COLUMNS

log = logging.getLogger(__name__)

# wss.csv: the compute_wss columns with the segment instead of the decision (signals.csv has that)
WSS_COLUMNS = ["hour", "segment", *(c for c in SIGNAL_COLUMNS if c not in ("hour", "decision"))]


@dataclass
class BatchResult:
    """Everything a batch run produced; ``files`` maps output name -> path."""

    out_dir: Path
    predictions: pd.DataFrame
    signal: pd.DataFrame
    test_backtest: BacktestResult
    validation_backtest: BacktestResult | None
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
    folds: pd.DataFrame | None = None  # walk-forward runs: one row per fold (windows, pick, thresholds)
    fold_models: dict[int, Any] = field(default_factory=dict)

    @property
    def walk_forward(self) -> bool:
        return self.folds is not None


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars unwrapped and non-finite floats as None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return jsonable(value.item())
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def backtest_payload(result: BatchResult, extra: dict[str, Any]) -> dict[str, Any]:
    """The ``backtest.json`` content (before ``jsonable``)."""
    return {
        "proxy": result.proxy,
        "model": result.model_name,
        "segments": result.segments,
        "thresholds": {
            "buy": result.buy_threshold,
            "sell": result.sell_threshold,
            "swept_on": _swept_on(result),
        },
        "annualization_factor": result.test_backtest.annualization_factor,
        "test": result.test_backtest.metrics,
        "validation": result.validation_backtest.metrics if result.validation_backtest else None,
        "psr_test": result.psr,
        "dsr_test": result.dsr,
        "n_trials": result.n_trials,
        "notes": result.notes + result.test_backtest.notes,
        **{k: v.to_dict("records") if isinstance(v, pd.DataFrame) else v for k, v in extra.items()},
    }


def _swept_on(result: BatchResult) -> str:
    if not result.walk_forward:
        return "validation" if result.sweep_table is not None else "given, not swept"
    swept = result.folds["buy_threshold"].nunique() > 1 or result.sweep_table is not None
    return "each fold's own inner validation hours" if swept else "fixed for every fold"


def write_outputs(result: BatchResult, extra: dict[str, Any]) -> None:
    """Write every batch output into ``result.out_dir`` (see module docstring)."""
    out = result.out_dir
    files = result.files
    preds = result.predictions.copy()
    preds.to_parquet(out / "predictions.parquet", index=False)
    preds.to_csv(out / "predictions.csv", index=False)
    files["predictions.parquet"] = out / "predictions.parquet"
    files["predictions.csv"] = out / "predictions.csv"

    result.signal[WSS_COLUMNS].to_csv(out / "wss.csv", index=False)
    files["wss.csv"] = out / "wss.csv"
    signals = result.signal[["hour", "segment", "wss", "decision"]].copy()
    # the thresholds each hour was decided with (walk-forward folds may each have their own)
    for side, value in (("buy_threshold", result.buy_threshold), ("sell_threshold", result.sell_threshold)):
        signals[side] = result.signal[side] if side in result.signal else value
    signals.to_csv(out / "signals.csv", index=False)
    files["signals.csv"] = out / "signals.csv"

    payload = backtest_payload(result, extra)
    (out / "backtest.json").write_text(json.dumps(jsonable(payload), indent=2, default=str))
    files["backtest.json"] = out / "backtest.json"
    if result.sweep_table is not None:
        result.sweep_table.to_csv(out / "threshold_sweep.csv", index=False)
        files["threshold_sweep.csv"] = out / "threshold_sweep.csv"
    if result.folds is not None:
        result.folds.to_csv(out / "folds.csv", index=False)
        files["folds.csv"] = out / "folds.csv"
        extra["oos_metrics"].to_csv(out / "oos_metrics.csv", index=False)
        files["oos_metrics.csv"] = out / "oos_metrics.csv"

    window = "Walk-forward out-of-sample hours" if result.walk_forward else "Test window"
    files["equity.png"] = plots.plot_equity(
        result.test_backtest, out / "equity.png", title=f"{window} vs {result.proxy}"
    )
    starts = {k: pd.Timestamp(v["start"]) for k, v in result.segments.items() if k != "embargo"}
    files["wss.png"] = plots.plot_wss(
        result.signal, out / "wss.png", result.buy_threshold, result.sell_threshold, starts
    )
    (out / "report.md").write_text(render_report(result, extra))
    files["report.md"] = out / "report.md"
    log.info("batch outputs written to %s", out)


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x * 100:.2f}%" if pct else f"{x:.3f}"


def metrics_markdown(bt: BacktestResult) -> str:
    """The signal / buy-and-hold / flat table as Markdown."""
    lines = [
        "| strategy | total return | ann. return | Sharpe | max drawdown | hit rate | turnover/yr | exposure |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in bt.metrics.items():
        lines.append(
            f"| {name} | {_fmt(m['total_return'], True)} | {_fmt(m['annualized_return'], True)} "
            f"| {_fmt(m['sharpe'])} | {_fmt(m['max_drawdown'], True)} | {_fmt(m['hit_rate'], True)} "
            f"| {m['turnover_per_year']:.0f} | {_fmt(m['exposure'], True)} |"
        )
    return "\n".join(lines)


def _weights_lines(extra: dict[str, Any]) -> list[str]:
    lines = []
    if extra["single_snapshot"]:
        lines.append("- A single holdings snapshot was given: today's weights were applied to all history.")
    else:
        lines.append(
            "- Dated holdings history: each hour is weighted with the snapshot in force at that hour."
        )
    lines.append(
        f"- Share of holdings weight with bars: {extra['holdings_weight_with_bars'] * 100:.1f}% "
        "(renormalised over them)"
    )
    lines.append(
        f"- Symbols without weight (ignored in the WSS): {', '.join(extra['unweighted_symbols']) or 'none'}"
    )
    no_bars = extra["symbols_without_bars"]
    shown = ", ".join(no_bars[:30]) + (f" ... (+{len(no_bars) - 30})" if len(no_bars) > 30 else "")
    lines.append(f"- Weighted symbols without bars: {shown or 'none'}")
    return lines


def _segment_lines(result: BatchResult) -> list[str]:
    seg = result.segments
    if result.walk_forward:
        f = seg["first_training_window"]
        o = seg["out_of_sample"]
        return [
            f"- Walk-forward: first training window {f['start']} .. {f['end']}; out-of-sample hours "
            f"{o['start']} .. {o['end']} ({o['n_hours']} hours, {len(result.folds)} folds; folds.csv)",
            f"- Thresholds: {_swept_on(result)}; the latest fold's: BUY if WSS >= {result.buy_threshold:g}, "
            f"SELL if WSS <= {result.sell_threshold:g}",
        ]
    return [
        f"- Segments: train {seg['train']['start']} .. {seg['train']['end']}; validation "
        f"{seg['validation']['start']} .. {seg['validation']['end']}; test {seg['test']['start']} .. "
        f"{seg['test']['end']}",
        f"- Thresholds: BUY if WSS >= {result.buy_threshold:g}, SELL if WSS <= {result.sell_threshold:g} "
        + ("(swept on validation only)" if result.sweep_table is not None else "(given, not swept)"),
    ]


def render_report(result: BatchResult, extra: dict[str, Any]) -> str:
    """Human summary of a batch run (Markdown)."""
    reported = "out_of_sample" if result.walk_forward else "test"
    decisions = result.signal[result.signal["segment"] == reported]["decision"].value_counts().to_dict()
    status = result.predictions["status"].value_counts().to_dict()
    heading = (
        "## Walk-forward out-of-sample hours (each fold chose everything on hours before them)"
        if result.walk_forward
        else "## Test window (reported; never used for fitting or the sweep)"
    )
    trials = (
        "candidate(s) x 2 decision rules x threshold pairs"
        if result.walk_forward
        else "candidate(s) x threshold grid"
    )
    lines = [
        "# Market Master batch report",
        "",
        f"- Constituents with bars: {', '.join(extra['constituents'])}",
        f"- Proxy traded: {result.proxy}; model: {result.model_name}",
        *_segment_lines(result),
        f"- Costs: {extra['cost_bps']:g} bp per unit of position change; Sharpe annualised with "
        f"{result.test_backtest.annualization_factor:g} bars/year (7 x 252 trading hours)",
        f"- Prediction statuses: {status}; {reported} decisions: {decisions}",
        "",
        "## Weights",
        *_weights_lines(extra),
        "",
        heading,
        "",
        metrics_markdown(result.test_backtest),
        "",
        f"- PSR (P[true Sharpe > 0]): {_fmt(result.psr)}; DSR over {result.n_trials} trials "
        f"({extra['n_candidates']} {trials}): {_fmt(result.dsr)}",
    ]
    if result.walk_forward:
        lines += [
            "",
            "## Component and index metrics (out-of-sample hours; SE where one exists)",
            "",
            extra["oos_metrics"].round(4).astype(str).to_markdown(index=False),
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
