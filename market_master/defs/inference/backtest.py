"""signal_backtest: trade the stored index signal out of sample (hours after the Production model's
validation window, i.e. never hours it was fitted or selected on), through lib.backtest.backtest_report,
the same report batch mode uses."""

import json

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.inference.loading import production_version, production_window, weights_lookup
from market_master.defs.resources import MlflowResource, StorageResource
from market_master.lib.backtest import backtest_report, weighted_constituent_returns
from market_master.lib.plots import plot_equity, plot_wss
from market_master.lib.storage import AssetSlices
from market_master.lib.weights import WeightsHistory


class BacktestConfig(dg.Config):
    cost_bps: float = Field(default=1.0, description="cost per unit of position change, basis points")


@dg.asset(group_name="inference", kinds={"pandas", "matplotlib"})
def signal_backtest(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    storage: StorageResource,
    mlflow: MlflowResource,
    index_signal: AssetSlices,
    hourly_bars: AssetSlices,
    index_weights: WeightsHistory,
) -> dg.MaterializeResult:
    """Signal vs buy-and-hold vs flat on the weighted constituents' next-bar return (point-in-time weights),
    after costs, annualised with 1,764 bars/year, with PSR/DSR (one trial: thresholds were not swept here)."""
    info = production_version(mlflow)
    # the first hour after everything the Production version was fitted or selected on
    _, after = production_window(mlflow, info, "validation_window")
    signal = index_signal.read_all()
    if signal.empty:
        raise dg.Failure("index_signal has no stored rows: materialize it first")
    signal = signal[signal["hour"] > after].sort_values("hour", ignore_index=True)
    if len(signal) < 2:
        raise dg.Failure(f"fewer than 2 signal hours after the model's validation window end {after}")
    bars = hourly_bars.read_between(signal["hour"].min(), signal["hour"].max() + pd.Timedelta(days=5))
    _, _, caveat = weights_lookup(index_weights)
    proxy = weighted_constituent_returns(bars, index_weights)
    report = backtest_report(signal[["hour", "decision"]], proxy, config.cost_bps, n_trials=1)
    result = report["result"]
    out = storage.path("reports", "signal_backtest", "x").parent
    equity = plot_equity(result, out / "equity.png")
    # the thresholds each hour was decided with (stored by index_signal); the latest ones are drawn
    buy, sell = float(signal["buy_threshold"].iloc[-1]), float(signal["sell_threshold"].iloc[-1])
    wss = plot_wss(signal, out / "wss.png", buy, sell)
    payload = {k: v for k, v in report.items() if k != "result"}
    payload["notes"] = list(payload.get("notes", [])) + [caveat]
    (out / "backtest.json").write_text(json.dumps(payload, indent=2, default=str))
    table = result.metrics_table()
    table.to_csv(out / "backtest_metrics.csv")
    s = report["metrics"]["signal"]
    return dg.MaterializeResult(
        metadata={
            "hours": len(signal),
            "window": f"{signal['hour'].min()} .. {signal['hour'].max()} (after {after})",
            "annualization_factor": f"{report['annualization_factor']:g} regular-session bars/year (7 x 252), not 8,760",
            "signal_total_return": float(s["total_return"]),
            "signal_sharpe": float(s["sharpe"]),
            "psr": float(report["psr"]),
            "dsr": float(report["dsr"]),
            "buy_and_hold_total_return": float(report["metrics"]["buy_and_hold"]["total_return"]),
            "metrics": dg.MetadataValue.md(table.round(4).astype(str).to_markdown()),
            "weights_note": caveat,
            "model": f"{info.name} v{info.version}",
            "equity_png": dg.MetadataValue.path(str(equity)),
            "wss_png": dg.MetadataValue.path(str(wss)),
            "backtest_json": dg.MetadataValue.path(str(out / "backtest.json")),
        }
    )
