"""`market-master replay`: the live loop over a stretch of history with a simulated clock (market_master/replay.py).

    market-master replay --start 2023-11-03 --end 2023-11-24            # synthetic, 3 weeks
    market-master replay --source csv --csv-dir ../shared/data/real-dev --days 21 --end 2024-12-31

The replay writes into its own home (`--home`, default <data root>/replay): data root, Dagster instance
and MLflow registry of its own, never the live ones (a replay must not move the live Production alias).
The Dagster UI shows its runs afterwards: `DAGSTER_HOME=<home>/dagster make dagster`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from market_master import settings
from market_master.lib.sources.synthetic import DEFAULT_PREDICTABILITY

DEFAULT_HISTORY_SESSIONS = 80


def add_parser(sub) -> None:
    from market_master.lib.walk_forward import DEFAULT_WALK_FORWARD as WF

    p = sub.add_parser(
        "replay",
        help="the hourly loop over history with a simulated clock (real schedules, sensor and jobs)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", default="synthetic", choices=["synthetic", "csv", "yfinance"])
    p.add_argument(
        "--csv-dir", help="directory of <SYMBOL>_1h.csv (source csv, e.g. bars recorded from yfinance)"
    )
    p.add_argument("--holdings", help="holdings CSV (default: embedded top-10 QQQ weights)")
    p.add_argument("--symbols", help="comma-separated universe (csv default: every CSV but the proxies)")
    p.add_argument("--start", help="first simulated day (default: --days sessions before --end)")
    p.add_argument("--end", help="last simulated day (default: the last completed session)")
    p.add_argument("--days", type=int, default=10, help="sessions replayed when --start is not given")
    p.add_argument(
        "--history-sessions",
        type=int,
        default=DEFAULT_HISTORY_SESSIONS,
        help=f"sessions backfilled before the first tick, then one retrain (default {DEFAULT_HISTORY_SESSIONS})",
    )
    p.add_argument(
        "--retrain-every", type=int, default=1, help="run every N-th retrain tick (1: as the daemon)"
    )
    p.add_argument("--monitoring-every", type=int, default=1, help="run every N-th monitoring tick (0: none)")
    p.add_argument(
        "--candidates", help="comma-separated subset of RF,ET,GB,HGBT,MLP,SVC,LogReg (default: all)"
    )
    p.add_argument("--train-sessions", type=int, default=WF.train_sessions, help="walk-forward first window")
    p.add_argument("--refit-every-sessions", type=int, default=WF.refit_every_sessions)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--predictability", type=float, default=DEFAULT_PREDICTABILITY, help="synthetic only: planted signal"
    )
    p.add_argument(
        "--home", help="the replay's own data root + DAGSTER_HOME (default <data root>/replay); must be empty"
    )
    p.add_argument(
        "--in-memory-instance",
        action="store_true",
        help="an in-memory Dagster instance (about 2x faster per hour; the UI cannot show the runs)",
    )
    p.add_argument(
        "--force-first",
        action="store_true",
        help="promote the bootstrap champion even if its gates fail (recorded as FORCED, as `promote --force`): "
        "later versions still move only through the sensor's gates",
    )
    p.add_argument("--cost-bps", type=float, default=1.0)
    p.add_argument("--no-track-record", action="store_true", help="skip the walk-forward comparison")
    p.set_defaults(func=cmd_replay)


def _window(args) -> tuple[pd.Timestamp, pd.Timestamp]:
    from market_master.lib import calendar

    if args.end:
        end = (
            pd.Timestamp(args.end, tz=calendar.TZ).normalize()
            + pd.Timedelta(days=1)
            - pd.Timedelta(seconds=1)
        )
    else:
        end = calendar.last_completed_bar(pd.Timestamp.now(tz=calendar.TZ)).normalize() + pd.Timedelta(days=1)
    if args.start:
        return pd.Timestamp(args.start, tz=calendar.TZ), end
    first, _ = calendar.last_sessions_window(calendar.last_completed_bar(end), args.days)
    return pd.Timestamp(first).tz_convert(calendar.TZ).normalize(), end


def _prepare_home(args) -> Path:
    from market_master.cli import CliError

    home = Path(args.home or settings.data_root() / "replay").resolve()
    if home.exists() and any(home.iterdir()):
        raise CliError(f"replay home {home} is not empty: remove it or pass another --home")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["MARKET_MASTER_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the replay's own registry, never the live one
    return home


def _run_config(args) -> dict:
    config: dict = {"train_sessions": args.train_sessions, "refit_every_sessions": args.refit_every_sessions}
    if args.candidates:
        config["candidates"] = args.candidates.split(",")
    ops: dict = {"walk_forward_history": {"config": config}}
    if args.holdings:
        ops["index_weights"] = {"config": {"holdings_csv": str(Path(args.holdings).resolve())}}
    return {"ops": ops}


def cmd_replay(args) -> int:
    import dagster as dg

    from market_master.cli import _market_resource, _openmp_threads
    from market_master.definitions import build_definitions
    from market_master.lib.replay_plan import HOURLY, history_window, plan_replay
    from market_master.local_run import LocalRunner, dagster_home
    from market_master.replay import Replayer

    if settings.is_production():
        from market_master.cli import CliError

        raise CliError("replay runs in embedded mode only (its own data root, instance and registry)")
    start, end = _window(args)
    plan = plan_replay(start, end, args.retrain_every, args.monitoring_every)
    first, last = history_window(plan, args.history_sessions)
    home = _prepare_home(args)
    market = _market_resource(args)
    dagster_home()
    instance = dg.DagsterInstance.ephemeral() if args.in_memory_instance else dg.DagsterInstance.get()
    runner = LocalRunner(build_definitions({"market_data": market}), instance, echo=False)
    replayer = Replayer(runner, retrain_run_config=_run_config(args), force_first=args.force_first)
    print(
        f"replay: {args.source}, {len(market.symbols)} symbols, {plan.start:%Y-%m-%d} .. {plan.end:%Y-%m-%d} "
        f"({len(plan.of_kind(HOURLY))} hourly ticks, {len(plan.trading_hours())} trading hours); "
        f"history {first:%Y-%m-%d} .. {last:%Y-%m-%d %H:%M}; home {home}"
    )
    with _openmp_threads():
        bootstrap_seconds = replayer.bootstrap(first, last)
        result = replayer.replay(plan, bootstrap_seconds)
        hours = pd.DatetimeIndex(result.hours["hour"]) if len(result.hours) else pd.DatetimeIndex([])
        summary = result.summary()
        print(summary["line"])
        if not args.no_track_record and summary["signals"]:
            t0 = time.perf_counter()
            track = replayer.track_record(hours)
            summary["track_record"] = {
                "equal_hours": int(track.comparison["equal"].sum()),
                "hours": len(track.comparison),
                "deployments": [
                    {"version": d.version, "first_hour": str(d.first_hour), "last_hour": str(d.last_hour)}
                    for d in track.served
                ],
                "lookahead_violations": track.lookahead,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(track.summary())
        if summary["signals"]:
            report = replayer.backtest(hours, args.cost_bps)
            summary["backtest"] = {k: v for k, v in report.items() if k != "result"}
            print(_backtest_line(report))
    out = home / "reports" / "replay"
    out.mkdir(parents=True, exist_ok=True)
    result.hours.to_csv(out / "hours.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(
        f"written: {out / 'hours.csv'}, {out / 'summary.json'}; Dagster UI: DAGSTER_HOME={home / 'dagster'} make dagster"
    )
    return 0 if summary["signals"] else 2


def _backtest_line(report: dict) -> str:
    s, b = report["metrics"]["signal"], report["metrics"]["buy_and_hold"]
    return (
        f"track record vs {report['proxy']} over {report['n_bars']} traded hours ({report['cost_bps']:g} bp costs): "
        f"signal total {s['total_return']:+.2%}, Sharpe {s['sharpe']:.2f}, max DD {s['max_drawdown']:.2%}; "
        f"buy-and-hold total {b['total_return']:+.2%}, Sharpe {b['sharpe']:.2f}; DSR {report['dsr']:.3f} "
        f"({report['n_trials']} trials)"
    )
