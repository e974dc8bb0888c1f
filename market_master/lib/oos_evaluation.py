"""What the gates, the backtest asset, batch and the docs read off a walk-forward history: one set of
numbers per question (component skill, index timing, index economics), computed here only.

Every number is on the walk-forward out-of-sample hours (``WalkForwardResult``), which chose nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from market_master.lib import backtest
from market_master.lib.candidates import BASELINE_NAMES
from market_master.lib.evaluation import (
    information_coefficient,
    macro_f1,
    paired_bootstrap_macro_f1,
    time_series_ic,
)
from market_master.lib.walk_forward import WalkForwardResult

BOOTSTRAP_N = 300


def component_skill(
    history: WalkForwardResult, bootstrap_n: int = BOOTSTRAP_N, seed: int = 42
) -> dict[str, Any]:
    """macro-F1 of the folds' models on their OOS rows vs the best of the baselines (fitted per fold on
    the same training rows), with the hour-block bootstrap SE of the difference; the cross-sectional IC
    (symbols ranked within each hour) as a diagnostic."""
    rows = history.scored_rows()
    if rows.empty:
        raise ValueError("component_skill: no out-of-sample row with an ok prediction and a known label")
    y = rows["label"].to_numpy(int)
    model_f1 = macro_f1(y, rows["pred"].to_numpy(int))
    base_f1 = {b: macro_f1(y, rows[f"pred_{b}"].to_numpy(int)) for b in BASELINE_NAMES if f"pred_{b}" in rows}
    best = max(base_f1, key=base_f1.get)
    boot = paired_bootstrap_macro_f1(
        y,
        rows["pred"].to_numpy(int),
        rows[f"pred_{best}"].to_numpy(int),
        rows["hour"].to_numpy(),
        n_boot=bootstrap_n,
        seed=seed,
    )
    ic = information_coefficient(
        rows["expected_score"].to_numpy(float), rows["next_return"].to_numpy(float), rows["hour"].to_numpy()
    )
    return {
        "macro_f1": model_f1,
        "best_baseline": best,
        "best_baseline_f1": base_f1[best],
        "baseline_f1": base_f1,
        "margin": boot.diff,
        "margin_se": boot.se,
        "rows": len(rows),
        "hours": int(rows["hour"].nunique()),
        "cross_sectional_ic": ic.get("ic_hour_mean", 0.0),
        "cross_sectional_ic_z": ic.get("ic_hour_z", 0.0),
    }


def index_timing(history: WalkForwardResult, proxy_forward: pd.Series) -> dict[str, Any]:
    """Time-series IC (day-clustered z) of the WSS against the proxy's next-bar return over the OOS hours,
    and of the pooled expected score (``pooled_*``)."""
    sig = history.signal
    hours = pd.DatetimeIndex(sig["hour"])
    fwd = proxy_forward.reindex(hours).to_numpy(float)
    wss = time_series_ic(sig["wss"].to_numpy(float), fwd, hours)
    pooled = time_series_ic(sig["pooled_expected_score"].to_numpy(float), fwd, hours)
    return wss | {f"pooled_{k}": v for k, v in pooled.items()}


def index_economics(
    history: WalkForwardResult, proxy_forward: pd.Series, cost_bps: float | None = None
) -> dict:
    """``backtest.backtest_report`` of the OOS decisions against the proxy, with the walk-forward's trial
    count (every candidate x decision rule x threshold pair tried)."""
    cost = history.config.cost_bps if cost_bps is None else cost_bps
    return backtest.backtest_report(
        history.signal[["hour", "decision"]], proxy_forward, cost, n_trials=history.n_trials
    )


def metrics_table(
    history: WalkForwardResult, proxy_forward: pd.Series, cost_bps: float | None = None
) -> pd.DataFrame:
    """The table the notes and docs quote: each metric with its standard error where one exists."""
    comp = component_skill(history)
    timing = index_timing(history, proxy_forward)
    econ = index_economics(history, proxy_forward, cost_bps)
    s, b = econ["metrics"]["signal"], econ["metrics"]["buy_and_hold"]
    n = max(econ["n_bars"], 2)
    sr_se = float(
        np.sqrt(
            (1 + 0.5 * backtest.per_period_sharpe(econ["result"].frame["strategy_return"]) ** 2) / (n - 1)
        )
    )
    rows = [
        ("component", "macro-F1 (model)", comp["macro_f1"], np.nan),
        ("component", f"macro-F1 (best baseline: {comp['best_baseline']})", comp["best_baseline_f1"], np.nan),
        ("component", "macro-F1 margin", comp["margin"], comp["margin_se"]),
        (
            "component",
            "cross-sectional IC (per hour, diagnostic)",
            comp["cross_sectional_ic"],
            _se(comp["cross_sectional_ic"], comp["cross_sectional_ic_z"]),
        ),
        ("index", "WSS time-series IC", timing["ts_ic"], timing["ts_ic_se"]),
        ("index", "pooled expected score time-series IC", timing["pooled_ts_ic"], timing["pooled_ts_ic_se"]),
        (
            "index",
            "signal Sharpe (after costs, annualised)",
            s["sharpe"],
            sr_se * np.sqrt(econ["annualization_factor"]),
        ),
        ("index", "buy-and-hold Sharpe", b["sharpe"], np.nan),
        ("index", "signal total return", s["total_return"], np.nan),
        ("index", "buy-and-hold total return", b["total_return"], np.nan),
        ("index", "PSR", econ["psr"], np.nan),
        ("index", f"DSR ({econ['n_trials']} trials)", econ["dsr"], np.nan),
    ]
    return pd.DataFrame(rows, columns=["level", "metric", "value", "se"])


def _se(value: float, z: float) -> float:
    return abs(value / z) if z else float("nan")
