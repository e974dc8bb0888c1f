"""signal_backtest: trade the walk-forward out-of-sample decisions against the index proxy's next-bar
return, through lib.backtest.backtest_report (the same report batch mode writes). Every hour it trades was
predicted by a fold model that never trained or was selected on it; the report says which hours chose the
models, the thresholds and the gates."""

import json

import dagster as dg
from pydantic import Field

from market_master.defs.resources import StorageResource
from market_master.defs.training.walk_forward import WalkForwardHistory
from market_master.lib import oos_evaluation
from market_master.lib.plots import plot_equity, plot_wss


class BacktestConfig(dg.Config):
    cost_bps: float = Field(default=1.0, description="cost per unit of position change, basis points")


@dg.asset(group_name="inference", kinds={"pandas", "matplotlib"})
def signal_backtest(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    storage: StorageResource,
    walk_forward_history: WalkForwardHistory,
) -> dg.MaterializeResult:
    """Signal vs buy-and-hold vs flat on the walk-forward OOS hours, after costs, annualised with 1,764
    bars/year, with PSR and DSR (trial count: every candidate x decision rule x threshold pair tried)."""
    history = walk_forward_history.result
    proxy = walk_forward_history.proxy
    signal = history.signal.sort_values("hour", ignore_index=True)
    if len(signal) < 2:
        raise dg.Failure("fewer than 2 walk-forward out-of-sample hours: ingest more history")
    report = oos_evaluation.index_economics(history, proxy.forward, config.cost_bps)
    table = oos_evaluation.metrics_table(history, proxy.forward, config.cost_bps)
    result = report["result"]
    out = storage.path("reports", "signal_backtest", "x").parent
    equity = plot_equity(result, out / "equity.png")
    buy, sell = float(signal["buy_threshold"].iloc[-1]), float(signal["sell_threshold"].iloc[-1])
    wss = plot_wss(signal, out / "wss.png", buy, sell)
    payload = {k: v for k, v in report.items() if k != "result"}
    payload["hours_statement"] = history.hours_statement()
    payload["proxy"] = proxy.note
    payload["folds"] = json.loads(history.folds.to_json(orient="records", date_format="iso"))
    payload["metrics_table"] = json.loads(table.to_json(orient="records"))
    (out / "backtest.json").write_text(json.dumps(payload, indent=2, default=str))
    result.metrics_table().to_csv(out / "backtest_metrics.csv")
    table.to_csv(out / "oos_metrics.csv", index=False)
    s = report["metrics"]["signal"]
    return dg.MaterializeResult(
        metadata={
            "hours": len(result.frame),
            "window": f"{signal['hour'].min()} .. {signal['hour'].max()} (walk-forward out of sample)",
            "hours_statement": history.hours_statement(),
            "proxy": proxy.note,
            "annualization_factor": f"{report['annualization_factor']:g} regular-session bars/year (7 x 252), not 8,760",
            "signal_total_return": float(s["total_return"]),
            "signal_sharpe": float(s["sharpe"]),
            "psr": float(report["psr"]),
            "dsr": float(report["dsr"]),
            "n_trials": int(report["n_trials"]),
            "buy_and_hold_total_return": float(report["metrics"]["buy_and_hold"]["total_return"]),
            "metrics": dg.MetadataValue.md(result.metrics_table().round(4).astype(str).to_markdown()),
            "oos_metrics": dg.MetadataValue.md(table.round(4).astype(str).to_markdown(index=False)),
            "equity_png": dg.MetadataValue.path(str(equity)),
            "wss_png": dg.MetadataValue.path(str(wss)),
            "backtest_json": dg.MetadataValue.path(str(out / "backtest.json")),
        }
    )
