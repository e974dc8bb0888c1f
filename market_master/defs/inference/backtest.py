"""signal_backtest: trade the stored index signal out of sample (hours after the model's training window)."""

import json

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.inference.loading import load_production_model, weights_lookup
from market_master.defs.resources import MlflowResource, StorageResource
from market_master.lib.backtest import BARS_PER_YEAR, run_backtest, weighted_constituent_returns
from market_master.lib.plots import plot_equity, plot_wss


class BacktestConfig(dg.Config):
    cost_bps: float = Field(default=1.0, description="cost per unit of position change, basis points")
    buy_threshold: float = Field(default=0.5, description="drawn on the WSS plot (use index_signal's value)")
    sell_threshold: float = Field(default=-0.5, description="drawn on the WSS plot (use index_signal's value)")


@dg.asset(group_name="inference", deps=["index_signal", "hourly_bars"], kinds={"pandas", "matplotlib"})
def signal_backtest(
    context: dg.AssetExecutionContext, config: BacktestConfig, storage: StorageResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    """Signal vs buy-and-hold vs flat on the weighted constituent next-bar return, after costs, over the
    stored signal hours that follow the Production model's training window (never in-sample hours)."""
    model, info = load_production_model(mlflow)
    store = storage.partitions()
    train_end = pd.Timestamp(model.training_window[1])
    keys = store.keys("index_signal")
    signal = store.read("index_signal", keys) if keys else pd.DataFrame()
    if signal.empty:
        raise dg.Failure("index_signal has no stored partitions: materialize it first")
    signal = signal[signal["hour"] > train_end].sort_values("hour")
    if len(signal) < 2:
        raise dg.Failure(f"fewer than 2 signal hours after the training window end {train_end}")
    bars = store.read_between("hourly_bars", signal["hour"].min(), signal["hour"].max() + pd.Timedelta(days=5))
    weights_at, _, caveat = weights_lookup(storage)
    proxy = weighted_constituent_returns(bars, weights_at(signal["hour"].iloc[-1]))
    result = run_backtest(signal[["hour", "decision"]], proxy, cost_bps=config.cost_bps)
    out = storage.path("reports", "signal_backtest", "x").parent
    equity = plot_equity(result, out / "equity.png")
    wss = plot_wss(signal, out / "wss.png", config.buy_threshold, config.sell_threshold)
    table = result.metrics_table()
    (out / "backtest.json").write_text(json.dumps({"metrics": result.metrics, "notes": result.notes + [caveat]}, indent=2, default=str))
    table.to_csv(out / "backtest_metrics.csv")
    s = result.metrics["signal"]
    return dg.MaterializeResult(
        metadata={
            "hours": len(signal),
            "window": f"{signal['hour'].min()} .. {signal['hour'].max()}",
            "annualization_factor": f"{BARS_PER_YEAR} regular-session bars/year (7 x 252), not 8,760",
            "signal_total_return": float(s["total_return"]),
            "signal_sharpe": float(s["sharpe"]),
            "buy_and_hold_total_return": float(result.metrics["buy_and_hold"]["total_return"]),
            "metrics": dg.MetadataValue.md(table.round(4).astype(str).to_markdown()),
            "weights_note": caveat,
            "model": f"{info.name} v{info.version}",
            "equity_png": dg.MetadataValue.path(str(equity)),
            "wss_png": dg.MetadataValue.path(str(wss)),
        }
    )
