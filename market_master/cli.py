"""`market-master`: the pipeline end to end, batch/backtest mode, and registry alias moves.

market-master run                      # offline, embedded synthetic default: ingest -> train -> gates
                                       # -> sensor promotes -> predictions + WSS -> monitoring + backtest
market-master batch --csv-dir D --holdings H.csv --out OUT
market-master promote --version 3 --reason "..."
market-master rollback --reason "..."
market-master history
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

from market_master import settings

log = logging.getLogger("market_master")
INDEX_PROXIES = {"QQQ"}  # an index ETF's own CSV is the backtest proxy, not a constituent


def dagster_home() -> Path:
    """DAGSTER_HOME (default data/dagster): persistent so `make dagster` shows what `make run` did."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.data_root() / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _range_tags(first_key: str, last_key: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first_key, "dagster/asset_partition_range_end": last_key}


def _windows(args) -> tuple[pd.Timestamp, list[pd.Timestamp], str, str, str]:
    from market_master.lib import calendar

    if args.end:
        now = pd.Timestamp(args.end, tz=calendar.TZ)
        now = now + pd.Timedelta(days=1) if len(args.end) <= 10 else now  # a bare date covers that whole day
    else:
        now = pd.Timestamp.now(tz=calendar.TZ)
    end = calendar.last_completed_bar(now)
    sessions = calendar.sessions_between(end - pd.Timedelta(days=int(args.days * 1.6) + 10), end)
    if len(sessions) < args.days:
        raise SystemExit(f"calendar has only {len(sessions)} sessions before {end}")
    days = sessions[-args.days :]
    first = calendar.trading_bars(days[0].date(), days[0].date())[0]
    signal_first_day = days[-args.signal_days]
    signal_first = calendar.trading_bars(signal_first_day.date(), signal_first_day.date())[0]
    train_end = calendar.previous_bar_start(signal_first)
    return (
        end,
        days,
        calendar.partition_key(first),
        calendar.partition_key(train_end),
        calendar.partition_key(signal_first),
    )


def cmd_run(args) -> int:
    import dagster as dg

    from market_master.definitions import build_definitions
    from market_master.defs.promotion.sensors import gate_evaluations, promote_champion_when_gates_pass
    from market_master.defs.resources import MarketDataResource
    from market_master.defs.training.checks import GATE_NAMES
    from market_master.lib import calendar, registry
    from market_master.lib.storage import PartitionStore

    t0 = time.perf_counter()
    home = dagster_home()
    symbols = args.symbols.split(",") if args.symbols else None
    if args.source == "csv" and not args.csv_dir:
        raise SystemExit("--source csv needs --csv-dir")
    if args.source == "csv" and symbols is None:
        from market_master.lib.sources.csv_source import CsvSource

        symbols = [s for s in CsvSource(args.csv_dir).available_symbols() if s not in INDEX_PROXIES]
    market = MarketDataResource(
        source=args.source,
        seed=args.seed,
        predictability=args.predictability,
        csv_dir=str(Path(args.csv_dir).resolve()) if args.csv_dir else None,
        **({"symbols": symbols} if symbols else {}),
    )
    defs = build_definitions({"market_data": market})
    instance = dg.DagsterInstance.get()
    end, days, first_key, train_end_key, signal_first_key = _windows(args)
    last_key = calendar.partition_key(end)
    print(
        f"Market Master: source={args.source}, {len(market.symbols)} symbols, {len(days)} trading days "
        f"{first_key} .. {last_key}; DAGSTER_HOME={home}; data root={settings.data_root()}"
    )

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}} if not args.verbose else {}

    def run(job_name: str, allow_failed_checks: bool = False, **kw):
        t = time.perf_counter()
        kw["run_config"] = {**quiet, **(kw.get("run_config") or {})}
        res = defs.resolve_job_def(job_name).execute_in_process(instance=instance, raise_on_error=False, **kw)
        print(
            f"      {job_name}: run {res.run_id[:8]} {'succeeded' if res.success else 'FAILED'} in {time.perf_counter() - t:.1f} s"
        )
        failed_steps = {e.step_key for e in res.all_events if e.is_step_failure}
        if (
            not res.success
            and allow_failed_checks
            and failed_steps
            and all(k.startswith("champion_model_") for k in failed_steps)
        ):
            return res  # a failed blocking gate fails its run by design; the sensor reads the verdicts
        if not res.success:
            failures = [e.message for e in res.all_events if e.is_failure]
            raise SystemExit(f"{job_name} failed (run {res.run_id}):\n  " + "\n  ".join(failures[-3:]))
        return res

    print(f"[1/6] ingest + quality checks + features (single run over {first_key} .. {last_key}) ...")
    run("ingest_job", tags=_range_tags(first_key, last_key))
    print(
        f"[2/6] weights + pooled training on {args.days - args.signal_days} days up to {train_end_key} + gates ..."
    )
    holdings = {"config": {"holdings_csv": str(Path(args.holdings).resolve())}} if args.holdings else {}
    res = run(
        "retrain_job",
        allow_failed_checks=True,
        run_config={
            "ops": {
                "candidate_models": {
                    "config": {
                        "window_days": args.days - args.signal_days,
                        "end": train_end_key,
                        **({"candidates": args.candidates.split(",")} if args.candidates else {}),
                    }
                },
                **({"index_weights": holdings} if holdings else {}),
            }
        },
    )
    evaluations = gate_evaluations(instance, res.run_id)
    champion = res.asset_materializations_for_node("champion_model")[0].metadata
    version = str(champion["model_version"].value)
    test_f1 = f", held-out test {champion['test_macro_f1'].value:.4f}" if "test_macro_f1" in champion else ""
    print(
        f"      champion {champion['champion'].value} v{version}: validation macro-F1 {champion['macro_f1'].value:.4f}"
        f"{test_f1} (alias Staging)"
    )
    for gate in GATE_NAMES:
        ev = evaluations.get(gate)
        verdict = "not evaluated" if ev is None else ("PASS" if ev.passed else "FAIL")
        reason = ev.metadata["reason"].value if ev is not None and "reason" in ev.metadata else ""
        print(f"      gate {gate:<36} {verdict:<5} {reason}")
    print("[3/6] promotion sensor tick ...")
    uri, name = settings.default_tracking_uri(), settings.MODEL_NAME
    before = registry.get_alias_version(uri, name, "Production")
    # The daemon keeps the sensor's cursor in the instance; this one-shot tick keeps it in DAGSTER_HOME so
    # each champion materialization is decided once.
    cursor_file = home / "promote_champion_when_gates_pass.cursor"
    ctx = dg.build_multi_asset_sensor_context(
        monitored_assets=[dg.AssetKey("champion_model")],
        instance=instance,
        definitions=defs,
        cursor=cursor_file.read_text() if cursor_file.exists() else None,
    )
    tick = promote_champion_when_gates_pass.evaluate_tick(ctx)
    if tick.cursor:
        cursor_file.write_text(tick.cursor)
    if tick.run_requests:
        req = tick.run_requests[0]
        run("promote_job", run_config=req.run_config, tags={**req.tags, "dagster/run_key": req.run_key})
        after = registry.get_alias_version(uri, name, "Production")
        print(f"      Production: {before or '(unset)'} -> v{after}")
    else:
        print(f"      sensor skipped: {tick.skip_message}")
        print(f"      Production stays at {('v' + before) if before else '(unset)'}")
        if before is None:
            print("No Production model: no signal can be produced. See the failed gates above.")
            return 2
    print(f"[4/6] predictions + WSS signal with {name}@Production over {signal_first_key} .. {last_key} ...")
    run("inference_job", tags=_range_tags(signal_first_key, last_key))
    print("[5/6] monitoring (Evidently drift + classification quality) + out-of-sample backtest ...")
    mon = run("monitoring_job")
    print("[6/6] latest signal")
    store = PartitionStore(settings.data_root() / "partitions")
    key = store.latest_key("index_signal", nonempty=True)
    latest = store.read("index_signal", [key]).iloc[-1]
    print(
        f"      hour {latest['hour']}  WSS {latest['wss']:+.3f}  decision {latest['decision']}  "
        f"covered weight {latest['covered_weight']:.3f}  (next bar {calendar.next_bar_start(latest['hour'])})"
    )
    for node in ("feature_drift_report", "classification_quality_report", "signal_backtest"):
        mats = mon.asset_materializations_for_node(node)
        if mats:
            md = mats[0].metadata
            paths = [str(v.value) for k, v in md.items() if k in ("html", "equity_png", "wss_png")]
            print(f"      {node}: {', '.join(paths)}")
    print(
        f"      tables: {settings.data_root() / 'partitions'} (component_predictions/, index_signal/ Parquet per hour),"
        f" {settings.data_root() / 'reports' / 'signal_backtest'}"
    )
    print(
        f"Done in {time.perf_counter() - t0:.0f} s. UIs: `make dagster` (assets, checks, runs), `make mlflow-ui` "
        f"(runs, registry), `make api` (FastAPI at http://127.0.0.1:8000/docs)."
    )
    return 0


def cmd_batch(args) -> int:
    from market_master.lib.batch import run_batch

    result = run_batch(
        args.csv_dir,
        args.holdings,
        args.out,
        model=args.model_uri,
        cost_bps=args.cost_bps,
        buy=args.buy,
        sell=args.sell,
        sweep=not args.no_sweep,
        proxy_symbol=args.proxy or None,
        tracking_uri=settings.default_tracking_uri() if args.model_uri else None,
    )
    print(result.test_backtest.metrics_table().round(4).to_string())
    print(
        f"thresholds BUY >= {result.buy_threshold:+.2f}, SELL <= {result.sell_threshold:+.2f}; "
        f"PSR {result.psr:.3f}, DSR {result.dsr:.3f} ({result.n_trials} trials)"
    )
    for name, path in result.files.items():
        print(f"  {name}: {path}")
    return 0


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - getuser can fail in containers without a passwd entry
        return "cli"


def cmd_promote(args) -> int:
    from market_master.lib import registry

    move = registry.promote(
        settings.default_tracking_uri(), settings.MODEL_NAME, args.version, actor=_actor(), reason=args.reason
    )
    print(
        f"{move.model_name}@{move.alias}: {move.from_version or '(unset)'} -> {move.to_version} ({move.reason})"
    )
    _refresh_local_copy()
    _record_in_dagster(move)
    return 0


def cmd_rollback(args) -> int:
    from market_master.lib import registry

    move = registry.rollback(
        settings.default_tracking_uri(), settings.MODEL_NAME, actor=_actor(), reason=args.reason
    )
    print(
        f"{move.model_name}@{move.alias}: {move.from_version} -> {move.to_version} (rollback: {move.reason})"
    )
    _refresh_local_copy()
    _record_in_dagster(move)
    return 0


def _record_in_dagster(move) -> None:
    """A manual alias move is also a production_model materialization (runless), so the asset's history
    in the Dagster UI shows every move, not only the sensor's."""
    import dagster as dg

    dagster_home()
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="production_model",
                description=f"{move.kind} via market-master CLI",
                metadata={
                    "model_name": move.model_name,
                    "alias": move.alias,
                    "from_version": move.from_version or "none",
                    "to_version": str(move.to_version),
                    "moved": True,
                    "actor": move.actor,
                    "reason": move.reason,
                    "kind": move.kind,
                },
            )
        )


def _refresh_local_copy() -> None:
    from market_master.lib import registry

    registry.export_local_copy(
        f"models:/{settings.MODEL_NAME}@Production",
        settings.data_root() / "models" / "production",
        tracking_uri=settings.default_tracking_uri(),
    )


def cmd_history(args) -> int:
    from market_master.lib import registry

    moves = registry.alias_history(settings.default_tracking_uri(), settings.MODEL_NAME, "Production")
    if not moves:
        print("no recorded Production moves")
    for m in moves:
        print(
            f"{m.at:%Y-%m-%d %H:%M:%S} {m.kind:<9} {m.from_version or '-':>4} -> {m.to_version:<4} {m.actor}: {m.reason}"
        )
    return 0


def cmd_dagster_home(args) -> int:
    print(dagster_home())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="market-master", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="the whole pipeline (default: offline synthetic source)")
    r.add_argument("--source", default="synthetic", choices=["synthetic", "csv", "yfinance"])
    r.add_argument("--csv-dir", help="directory of <SYMBOL>_1h.csv (source csv)")
    r.add_argument("--holdings", help="holdings CSV (default: embedded top-10 QQQ weights)")
    r.add_argument("--symbols", help="comma-separated universe (default: top-10 QQQ; csv: every CSV but QQQ)")
    r.add_argument("--days", type=int, default=250, help="trading days to ingest (default 250, about a year)")
    r.add_argument(
        "--signal-days", type=int, default=10, help="latest days predicted out of sample (default 10)"
    )
    r.add_argument("--end", help="last day/time (default: now; set it for csv data)")
    r.add_argument(
        "--candidates", help="comma-separated subset of RF,ET,GB,HGBT,MLP,SVC,LogReg (default: all)"
    )
    r.add_argument("--seed", type=int, default=42)
    r.add_argument("--verbose", action="store_true", help="show Dagster's DEBUG event log")
    r.add_argument(
        "--predictability", type=float, default=0.7, help="synthetic only: planted signal (0 = random walk)"
    )
    r.set_defaults(func=cmd_run)
    b = sub.add_parser("batch", help="CSV directory + holdings -> predictions, WSS, signals, backtest")
    b.add_argument("--csv-dir", required=True)
    b.add_argument("--holdings", required=True)
    b.add_argument("--out", required=True)
    b.add_argument(
        "--model-uri",
        help="use this model (e.g. models:/market-master-component-classifier@Production) instead of training",
    )
    b.add_argument("--cost-bps", type=float, default=1.0)
    b.add_argument("--buy", type=float, default=0.5)
    b.add_argument("--sell", type=float, default=-0.5)
    b.add_argument(
        "--no-sweep",
        action="store_true",
        help="keep --buy/--sell instead of sweeping on the validation window",
    )
    b.add_argument(
        "--proxy", default="QQQ", help="index proxy symbol among the CSVs ('' = weighted constituents)"
    )
    b.set_defaults(func=cmd_batch)
    pr = sub.add_parser("promote", help="move Production to a model version")
    pr.add_argument("--version", required=True)
    pr.add_argument("--reason", required=True)
    pr.set_defaults(func=cmd_promote)
    rb = sub.add_parser("rollback", help="move Production back to the version live before the current one")
    rb.add_argument("--reason", default="manual rollback")
    rb.set_defaults(func=cmd_rollback)
    sub.add_parser("history", help="recorded Production alias moves").set_defaults(func=cmd_history)
    sub.add_parser("dagster-home", help="create and print DAGSTER_HOME").set_defaults(func=cmd_dagster_home)
    return p


def _quiet_libraries() -> None:
    """Keep the console to what matters: our lines, warnings of our own, errors."""
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(beta|preview|Beta|Preview).*")
    for name in ("mlflow", "alembic", "evidently"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - top-level: one clear line, exit 2
        from market_master.lib.registry import RegistryError

        if isinstance(exc, RegistryError | ValueError | FileNotFoundError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
