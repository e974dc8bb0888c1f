"""`market-master`: the pipeline end to end, batch/backtest mode, and registry alias moves.

market-master run                      # offline, embedded synthetic default: ingest -> train -> gates
                                       # -> sensor promotes -> predictions + WSS -> monitoring + backtest
market-master batch --csv-dir D --holdings H.csv --out OUT
market-master promote --version 3 --reason "..."
market-master rollback --reason "..."
market-master history
market-master status                   # Production, or why not (failed gates + numbers, next retrain)
market-master replay --start D --end D  # the hourly loop over history, simulated clock (replay_command.py)
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

from market_master import settings
from market_master.lib.sources.synthetic import DEFAULT_PREDICTABILITY

log = logging.getLogger("market_master")
INDEX_PROXIES = {"QQQ"}  # an index ETF's own CSV is the backtest proxy, not a constituent
MAX_ROWS_PRINTED = 10


class CliError(Exception):
    """A user-caused problem the CLI reports in one line (`error: ...`, exit 2) instead of a traceback."""


def _require_writable(path: Path, what: str) -> None:
    """Stop in one line when `path` cannot be created or written (before any work is done)."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise CliError(
            f"{what} {path} is not writable ({exc.strerror or exc}): point MARKET_MASTER_HOME (and "
            f"DAGSTER_HOME) at a writable directory"
        ) from exc


def _check_partition_start(first_key: str, last_key: str, args) -> None:
    """The hourly partitions start at PARTITIONS_START: a window before it cannot be ingested (Dagster
    would fail minutes later with an invariant error)."""
    from market_master.defs.partitions import PARTITIONS_START
    from market_master.lib import calendar

    if calendar.key_to_timestamp(first_key) < calendar.key_to_timestamp(PARTITIONS_START):
        raise CliError(
            f"the requested window {first_key} .. {last_key} ({args.days} trading days up to "
            f"--end {args.end or 'now'}) starts before the first partition: the first allowed date is "
            f"{PARTITIONS_START[:10]}; use a later --end or fewer --days"
        )


def _windows(args) -> tuple[pd.Timestamp, list[pd.Timestamp], str, str, str]:
    from market_master.lib import calendar

    if args.end:
        now = pd.Timestamp(args.end, tz=calendar.TZ)
        now = now + pd.Timedelta(days=1) if len(args.end) <= 10 else now  # a bare date covers that whole day
    else:
        now = pd.Timestamp.now(tz=calendar.TZ)
    end = calendar.last_completed_bar(now)
    start, _ = calendar.last_sessions_window(end, args.days)
    days = calendar.sessions_between(start, end)
    if len(days) < args.days:
        raise CliError(f"calendar has only {len(days)} sessions before {end}")
    signal_start, _ = calendar.last_sessions_window(end, args.signal_days)
    first = calendar.trading_bars(start, end)[0]
    signal_first = calendar.trading_bars(signal_start, end)[0]
    train_end = calendar.previous_bar_start(signal_first)
    return (
        end,
        days,
        calendar.partition_key(first),
        calendar.partition_key(train_end),
        calendar.partition_key(signal_first),
    )


def _market_resource(args):
    from market_master.defs.resources import MarketDataResource

    symbols = args.symbols.split(",") if args.symbols else None
    if args.source == "csv" and not args.csv_dir:
        raise CliError("--source csv needs --csv-dir")
    if args.csv_dir and not Path(args.csv_dir).is_dir():
        raise CliError(f"--csv-dir {args.csv_dir} is not a directory")
    if args.source == "csv" and symbols is None:
        from market_master.lib.sources.csv_source import CsvSource

        symbols = [s for s in CsvSource(args.csv_dir).available_symbols() if s not in INDEX_PROXIES]
    if symbols is None and getattr(args, "holdings", None):
        symbols = holdings_universe(args.holdings)
    return MarketDataResource(
        source=args.source,
        seed=args.seed,
        predictability=args.predictability,
        csv_dir=str(Path(args.csv_dir).resolve()) if args.csv_dir else None,
        **({"symbols": symbols} if symbols else {}),
    )


def holdings_universe(path: str) -> list[str]:
    """Every symbol with a positive weight in any snapshot of a holdings file (a name that left the index
    still needs its bars for the hours it was weighted), heaviest of the latest snapshot first; index
    proxies (QQQ) excluded. The universe of `run --holdings` on the synthetic and yfinance sources."""
    from market_master.lib.weights import load_holdings_csv

    history = load_holdings_csv(path)
    ordered: dict[str, float] = {}
    for snapshot in reversed(history.snapshots):  # latest first
        for symbol, weight in sorted(snapshot.weights.items(), key=lambda kv: -kv[1]):
            if weight > 0 and symbol not in INDEX_PROXIES:
                ordered.setdefault(symbol, weight)
    return list(ordered)


def _retrain_config(args, train_end_key: str) -> dict:
    training = {"window_days": args.days - args.signal_days, "end": train_end_key}
    if args.candidates:
        training["candidates"] = args.candidates.split(",")
    ops: dict = {"walk_forward_history": {"config": training}}
    if args.holdings:
        ops["index_weights"] = {"config": {"holdings_csv": str(Path(args.holdings).resolve())}}
    return {"ops": ops}


def _print_champion_and_gates(runner, result) -> None:
    from market_master.defs.promotion.verdicts import gate_verdicts
    from market_master.defs.training.checks import GATE_NAMES

    champion = result.asset_materializations_for_node("champion_model")[0].metadata
    test_f1 = f", held-out test {champion['test_macro_f1'].value:.4f}" if "test_macro_f1" in champion else ""
    print(
        f"      champion {champion['champion'].value} v{champion['model_version'].value}: validation macro-F1 "
        f"{champion['macro_f1'].value:.4f}{test_f1} (alias Staging)"
    )
    verdicts = gate_verdicts(runner.instance, result.run_id)
    for gate in GATE_NAMES:
        verdict = {True: "PASS", False: "FAIL", None: "not evaluated"}[verdicts.passed.get(gate)]
        print(f"      gate {gate:<36} {verdict:<5} {verdicts.reasons.get(gate, '')}")


def _promote_if_gates_pass(runner) -> str | None:
    """Tick the promotion sensor; run what it requests. Returns the Production version afterwards."""
    from market_master.lib.aliases import PRODUCTION_ALIAS
    from market_master.lib.mlflow_adapter import MlflowAdapter

    adapter = MlflowAdapter(settings.default_tracking_uri(), model_name=settings.MODEL_NAME)
    before = adapter.alias_version(PRODUCTION_ALIAS)
    tick = runner.tick_promotion_sensor()
    if tick.run_requests:
        runner.run_request(tick.run_requests[0])
        after = adapter.alias_version(PRODUCTION_ALIAS)
        print(f"      Production: {before or '(unset)'} -> v{after}")
        return after
    print(f"      sensor skipped: {tick.skip_message}")
    print(f"      Production stays at {('v' + before) if before else '(unset)'}")
    return before


def _partition_store():
    """The partition store the pipeline writes (MARKET_MASTER_STORE, else the data root)."""
    from market_master.lib.storage import PartitionStore, join

    return PartitionStore(join(settings.store_root(), "partitions"))


def _print_latest_signal(monitoring_result, last_bar: pd.Timestamp) -> None:
    """The last hour that HAS a signal (a WSS from at least one weighted symbol), its lag behind the last
    completed bar, and how many later hours had none (a missing WSS is NO_SIGNAL, never a HOLD)."""
    from market_master.lib import calendar
    from market_master.lib.storage import AssetSlices

    signals = AssetSlices(_partition_store(), "index_signal")
    start, end = signals.last_sessions(3)
    recent = signals.read_between(start, end).sort_values("hour")
    with_signal = recent[recent["n_predicted"] > 0]
    if with_signal.empty:
        print(f"      no hour since {start.date()} has a signal: {recent['reason'].iloc[-1]}")
        return
    latest = with_signal.iloc[-1]
    lag = calendar.trading_bars(latest["hour"], last_bar)
    later = recent[recent["hour"] > latest["hour"]]
    print(
        f"      hour {latest['hour']}  WSS {latest['wss']:+.3f}  decision {latest['decision']}  "
        f"covered weight {latest['covered_weight']:.3f}  (next bar {calendar.next_bar_start(latest['hour'])}; "
        f"{len(lag) - 1} bar(s) behind the last completed bar {last_bar})"
    )
    if len(later):
        print(f"      {len(later)} later hour(s) have NO_SIGNAL (no weighted symbol had a bar to predict)")
    for node in ("feature_drift_report", "classification_quality_report", "signal_backtest"):
        mats = monitoring_result.asset_materializations_for_node(node)
        if mats:
            paths = [
                str(v.value) for k, v in mats[0].metadata.items() if k in ("html", "equity_png", "wss_png")
            ]
            print(f"      {node}: {', '.join(paths)}")
            md = mats[0].metadata
            if "n_drifted" in md:  # the same PSI verdict as the gate feature_drift_is_below_limit
                verdict = "DRIFT" if md["dataset_drift"].value else "no drift"
                print(
                    f"        PSI drift: {md['n_drifted'].value}/{md['n_columns'].value} features ({verdict})"
                )
    print(
        f"      tables: {_partition_store().root} (component_predictions/, index_signal/ Parquet per "
        f"hour), {settings.data_root() / 'reports' / 'signal_backtest'}"
    )


def _print_failed_bar_checks(instance) -> list[str]:
    """Print the failed blocking bar checks of the latest ingest run with their offending rows (symbol,
    timestamp, values: the checks' `offending_rows` metadata), as batch names them. Returns their names."""
    import dagster as dg

    from market_master.defs.ingestion.checks import ERROR_CHECKS

    runs = instance.get_runs(filters=dg.RunsFilter(job_name="ingest_job"), limit=1)
    if not runs:
        return []
    failed = []
    for record in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if evaluation.passed or evaluation.check_name not in ERROR_CHECKS:
            continue
        failed.append(evaluation.check_name)
        meta = evaluation.metadata
        n_rows = meta["n_offending_rows"].value if "n_offending_rows" in meta else "?"
        description = meta["description"].value if "description" in meta else ""
        print(f"      bar check {evaluation.check_name} FAILED ({description}): {n_rows} offending row(s)")
        if "offending_rows" in meta:
            table = str(meta["offending_rows"].value).splitlines()
            for line in table[: MAX_ROWS_PRINTED + 2]:  # header + separator + rows
                print(f"        {line}")
            if isinstance(n_rows, int) and n_rows > MAX_ROWS_PRINTED:
                print(f"        ... {n_rows - MAX_ROWS_PRINTED} more (Dagster UI: the check's metadata)")
    return failed


def _step_failure_reasons(instance) -> list[str]:
    """The step failures' own messages (e.g. a dg.Failure's description) of the latest ingest run."""
    import dagster as dg

    runs = instance.get_runs(filters=dg.RunsFilter(job_name="ingest_job"), limit=1)
    if not runs:
        return []
    reasons = []
    for record in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = getattr(record.dagster_event.event_specific_data, "error", None)
        while error is not None and error.cls_name not in ("Failure", None) and error.cause is not None:
            error = error.cause
        if error is not None:
            message = error.message.strip().splitlines()
            reasons.append(
                message[0].removeprefix("dagster._core.definitions.events.Failure: ") if message else ""
            )
    return [r for r in reasons if r]


def _sessions_with_bars(ingested) -> int | None:
    """Sessions with at least one bar in the ingest run: its per-key `rows` metadata (None: no metadata)."""
    mats = ingested.asset_materializations_for_node("hourly_bars")
    if not mats or "rows" not in mats[0].metadata:
        return None
    return len({m.partition[:10] for m in mats if m.partition and m.metadata["rows"].value > 0})


def _training_days_text(args, ingested, first_key: str, train_end_key: str) -> str:
    """'on N sessions up to KEY', counting the sessions the DATA has when it holds fewer than asked."""

    asked = args.days - args.signal_days
    have = _sessions_with_bars(ingested)
    if have is None or have >= args.days:
        return f"on {asked} sessions up to {train_end_key}"
    bars = _partition_store().read_between("hourly_bars", first_key, train_end_key)
    n_train = bars["timestamp"].dt.normalize().nunique() if len(bars) else 0
    return (
        f"up to {train_end_key}: the data has bars on only {n_train} sessions of the {asked} requested "
        f"({have} of {args.days} in the whole ingest window)"
    )


def _print_weights_warnings(trained) -> None:
    mats = trained.asset_materializations_for_node("index_weights")
    warnings = mats[0].metadata.get("weights_warning") if mats else None
    for warning in warnings.value if warnings is not None else []:
        print(f"      WARNING weights: {warning}")


def cmd_run(args) -> int:
    from market_master.local_run import StageTimer

    timer = StageTimer()
    try:
        with _openmp_threads():
            return _run_pipeline(args, timer)
    finally:
        if timer.stages:
            print("Stages (seconds, wall clock):")
            print(timer.table())


@contextlib.contextmanager
def _openmp_threads():
    """OpenMP threads of the run (HGBT, ...): MARKET_MASTER_OPENMP_THREADS, default 1; 0 = the library's
    default. On a loaded 2-core machine OpenMP's spinning threads made one HGBT fit 100-160 s instead of
    10 s (benchmarks/bench_run_stages.py); models are the same (a feature's histogram is one thread's)."""
    threads = int(os.environ.get("MARKET_MASTER_OPENMP_THREADS", "1"))
    if threads <= 0:
        yield
        return
    import sklearn.ensemble  # noqa: F401 - load the OpenMP runtime first: threadpoolctl limits loaded ones
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="openmp"):
        yield


def _run_pipeline(args, timer) -> int:
    with timer.stage("setup (imports, definitions, instance)"):
        import dagster as dg

        from market_master.definitions import build_definitions
        from market_master.lib import calendar
        from market_master.local_run import LocalRunner, RunFailed, dagster_home, range_tags

        t0 = time.perf_counter()
        _require_writable(settings.data_root(), "data root")
        if os.environ.get("DAGSTER_HOME"):
            _require_writable(Path(os.environ["DAGSTER_HOME"]), "DAGSTER_HOME")
        end, days, first_key, train_end_key, signal_first_key = _windows(args)
        last_key = calendar.partition_key(end)
        _check_partition_start(first_key, last_key, args)
        home = dagster_home()
        market = _market_resource(args)
        runner = LocalRunner(
            build_definitions({"market_data": market}), dg.DagsterInstance.get(), args.verbose
        )
    print(
        f"Market Master: source={args.source}, {len(market.symbols)} symbols, {len(days)} trading days "
        f"{first_key} .. {last_key}; DAGSTER_HOME={home}; data root={settings.data_root()}"
    )
    print(f"[1/6] ingest + quality checks + features (single run over {first_key} .. {last_key}) ...")
    # failures are reported below in our own words (rows, one error line), not as Dagster's ERROR log
    silent = {} if args.verbose else {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    try:
        with timer.stage("1 ingest + checks + features"):
            ingested = runner.run("ingest_job", tags=range_tags(first_key, last_key), run_config=silent)
    except RunFailed as exc:
        failed = _print_failed_bar_checks(runner.instance)
        if failed:
            raise CliError(
                f"ingest stopped: blocking bar check(s) {', '.join(failed)} failed on the rows printed above "
                f"(fix the input data; {str(exc).splitlines()[0]})"
            ) from exc
        reasons = _step_failure_reasons(runner.instance)
        if reasons:
            raise CliError(f"ingest failed: {'; '.join(reasons)}") from exc
        raise
    print(
        f"[2/6] weights + pooled training {_training_days_text(args, ingested, first_key, train_end_key)} + gates ..."
    )
    with timer.stage("2 weights + training + gates"):
        trained = runner.run(
            "retrain_job", allow_failed_gates=True, run_config=_retrain_config(args, train_end_key)
        )
    _print_weights_warnings(trained)
    _print_champion_and_gates(runner, trained)
    print("[3/6] promotion sensor tick ...")
    with timer.stage("3 promotion sensor"):
        production = _promote_if_gates_pass(runner)
    if production is None:
        print(_status_line())
        return 2
    print(
        f"[4/6] predictions + WSS signal with {settings.MODEL_NAME}@Production over {signal_first_key} .. {last_key} ..."
    )
    with timer.stage("4 predictions + signal"):
        runner.run("inference_job", tags=range_tags(signal_first_key, last_key))
    print("[5/6] monitoring (Evidently drift + classification quality) + out-of-sample backtest ...")
    with timer.stage("5 monitoring + backtest"):
        monitored = runner.run("monitoring_job")
    print("[6/6] latest signal")
    with timer.stage("6 latest signal"):
        _print_latest_signal(monitored, end)
    print(
        f"Done in {time.perf_counter() - t0:.0f} s. UIs: `make dagster` (assets, checks, runs), `make mlflow-ui` "
        f"(runs, registry), `make api` (FastAPI at http://127.0.0.1:8000/docs)."
    )
    return 0


def cmd_batch(args) -> int:
    from market_master.lib.batch import run_batch

    _require_writable(Path(args.out), "--out")
    from market_master.lib.walk_forward import WalkForwardConfig

    try:
        walk_forward = WalkForwardConfig(
            scheme=args.scheme,
            train_sessions=args.train_sessions,
            refit_every_sessions=args.refit_every_sessions,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if args.index_context and not args.proxy:
        raise CliError("--index-context needs the index proxy's CSV: pass --proxy SYMBOL (e.g. QQQ)")
    from market_master.lib.features import FeatureConfig

    feature_config = FeatureConfig(index_context=args.index_context, proxy_symbol=args.proxy or "QQQ")
    result = run_batch(
        args.csv_dir,
        args.holdings,
        args.out,
        model=args.model_uri,
        feature_config=feature_config,
        walk_forward=walk_forward,
        candidates=tuple(args.candidates.split(",")) if args.candidates else None,
        cost_bps=args.cost_bps,
        buy=args.buy,
        sell=args.sell,
        sweep=not args.no_sweep,
        proxy_symbol=args.proxy or None,
        tracking_uri=settings.default_tracking_uri() if args.model_uri else None,
    )
    window = "walk-forward out-of-sample hours" if result.walk_forward else "test window"
    seg = result.segments.get("out_of_sample") or result.segments["test"]
    print(f"{window} {seg['start']} .. {seg['end']} vs {result.proxy}:")
    print(result.test_backtest.metrics_table().round(4).to_string())
    print(
        f"thresholds BUY >= {result.buy_threshold:+.2f}, SELL <= {result.sell_threshold:+.2f}; "
        f"PSR {result.psr:.3f}, DSR {result.dsr:.3f} ({result.n_trials} trials)"
    )
    for name, path in result.files.items():
        print(f"  {name}: {path}")
    for note in result.notes:
        if note.startswith("WARN weights"):
            print(f"WARNING {note.removeprefix('WARN ')}")
    return 0


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - getuser can fail in containers without a passwd entry
        return "cli"


def _move_production(config: dict) -> int:
    """promote / rollback: a run of promote_job, the same job the sensor requests."""
    import dagster as dg

    from market_master.definitions import build_definitions
    from market_master.local_run import LocalRunner, dagster_home

    dagster_home()
    with dg.DagsterInstance.get() as instance:
        runner = LocalRunner(build_definitions(), instance, echo=False)
        move = runner.move_production({"actor": _actor(), **config})
    forced = " FORCED past failed gates" if move["forced"] else ""
    print(
        f"{move['model_name']}@{move['alias']}: {move['from_version']} -> {move['to_version']} "
        f"({move['kind']}{forced}: {move['reason']}); gates: {move['gates']}"
    )
    return 0


def cmd_promote(args) -> int:
    return _move_production({"version": str(args.version), "reason": args.reason, "force": args.force})


def cmd_rollback(args) -> int:
    return _move_production({"rollback": True, "reason": args.reason})


def cmd_history(args) -> int:
    from market_master.lib.aliases import PRODUCTION_ALIAS
    from market_master.lib.mlflow_adapter import MlflowAdapter

    adapter = MlflowAdapter(settings.default_tracking_uri(), model_name=settings.MODEL_NAME)
    moves = adapter.alias_history(PRODUCTION_ALIAS)
    if not moves:
        print("no recorded Production moves")
    for m in moves:
        print(
            f"{m.at:%Y-%m-%d %H:%M:%S} {m.kind:<9} {m.from_version or '-':>4} -> {m.to_version:<4} {m.actor}: {m.reason}"
        )
    return 0


def _status_line() -> str:
    """The one status line (`market-master status`, the same text as the API's explanation)."""
    from market_master.lib.mlflow_adapter import MlflowAdapter
    from market_master.lib.model_status import model_status, no_champion_status, registry_missing

    uri = settings.default_tracking_uri()
    if registry_missing(uri):  # do not create an empty store just to say it is empty
        return no_champion_status(settings.MODEL_NAME).line
    return model_status(MlflowAdapter(uri, model_name=settings.MODEL_NAME)).line


def _latest_signal_line() -> str:
    from market_master.lib import cadence
    from market_master.lib.storage import PartitionStore

    store = PartitionStore(settings.data_root() / "partitions")
    key = store.latest_key("index_signal", nonempty=True)
    if key is None:
        return f"signal: none stored under {store.root}"
    row = store.read("index_signal", [key]).sort_values("hour").iloc[-1]
    grace = pd.Timedelta(minutes=cadence.SIGNAL_GRACE_MINUTES)
    stale, age, expected = cadence.signal_freshness(row["hour"], pd.Timestamp.now(tz="UTC"), grace)
    fresh = f"STALE, expected the bar at {expected}" if stale else "fresh"
    return (
        f"signal: hour {row['hour']} decision {row['decision']} WSS {row['wss']:+.3f}: {fresh} "
        f"({age:.0f} minutes after its bar closed)"
    )


def cmd_status(args) -> int:
    """Two lines: what serves (or why nothing does: the latest champion's failed gates with their
    numbers, the next retrain) and the latest stored signal's freshness. Exit 0 with a Production
    model, 1 without."""
    from market_master.lib.aliases import PRODUCTION_ALIAS
    from market_master.lib.mlflow_adapter import MlflowAdapter
    from market_master.lib.model_status import registry_missing

    print(_status_line())
    print(_latest_signal_line())
    if registry_missing(settings.default_tracking_uri()):
        return 1
    adapter = MlflowAdapter(settings.default_tracking_uri(), model_name=settings.MODEL_NAME)
    try:
        return 0 if adapter.alias_version(PRODUCTION_ALIAS) is not None else 1
    except Exception:  # noqa: BLE001 - unknown model: the line above already said so
        return 1


def cmd_dagster_home(args) -> int:
    from market_master.local_run import dagster_home

    print(dagster_home())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from market_master.lib.signal import DEFAULT_THRESHOLDS
    from market_master.lib.walk_forward import DEFAULT_WALK_FORWARD as WF_DEFAULTS

    p = argparse.ArgumentParser(
        prog="market-master", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="the whole pipeline (default: offline synthetic source)")
    r.add_argument("--source", default="synthetic", choices=["synthetic", "csv", "yfinance"])
    r.add_argument("--csv-dir", help="directory of <SYMBOL>_1h.csv (source csv)")
    r.add_argument(
        "--holdings",
        help="holdings CSV (default: embedded top-10 QQQ weights); without --symbols its names are the "
        "universe (synthetic / yfinance), e.g. examples/nasdaq100_holdings_2025-04-28.csv",
    )
    r.add_argument(
        "--symbols",
        help="comma-separated universe (default: the --holdings names, else top-10 QQQ; csv: every CSV but QQQ)",
    )
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
        "--predictability",
        type=float,
        default=DEFAULT_PREDICTABILITY,
        help="synthetic only: planted signal (default %(default)s; 0 = random walk)",
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
    b.add_argument("--buy", type=float, default=DEFAULT_THRESHOLDS.buy)
    b.add_argument("--sell", type=float, default=DEFAULT_THRESHOLDS.sell)
    b.add_argument(
        "--no-sweep",
        action="store_true",
        help="keep --buy/--sell instead of sweeping (each walk-forward fold on its own validation hours)",
    )
    b.add_argument("--candidates", help="comma-separated candidates (default: all seven)")
    b.add_argument(
        "--train-sessions",
        type=int,
        default=WF_DEFAULTS.train_sessions,
        help="walk-forward: first training window",
    )
    b.add_argument(
        "--refit-every-sessions",
        type=int,
        default=WF_DEFAULTS.refit_every_sessions,
        help="walk-forward: refit cadence",
    )
    b.add_argument("--scheme", default=WF_DEFAULTS.scheme, choices=["expanding", "rolling"])
    b.add_argument(
        "--proxy", default="QQQ", help="index proxy symbol among the CSVs ('' = weighted constituents)"
    )
    b.add_argument(
        "--index-context",
        action="store_true",
        help="add the proxy's index-context features (its returns, each symbol's return relative to it)",
    )
    b.set_defaults(func=cmd_batch)
    pr = sub.add_parser("promote", help="move Production to a model version")
    pr.add_argument("--version", required=True)
    pr.add_argument("--reason", required=True)
    pr.add_argument(
        "--force",
        action="store_true",
        help="promote although the version's gates failed (recorded as forced)",
    )
    pr.set_defaults(func=cmd_promote)
    rb = sub.add_parser("rollback", help="move Production back to the version live before the current one")
    rb.add_argument("--reason", default="manual rollback")
    rb.set_defaults(func=cmd_rollback)
    sub.add_parser("history", help="recorded Production alias moves").set_defaults(func=cmd_history)
    sub.add_parser(
        "status", help="what serves, or why nothing does (failed gates, next retrain); signal freshness"
    ).set_defaults(func=cmd_status)
    sub.add_parser("dagster-home", help="create and print DAGSTER_HOME").set_defaults(func=cmd_dagster_home)
    from market_master.replay_command import add_parser as add_replay_parser

    add_replay_parser(sub)
    return p


KNOWN_NOISE = ("Add type hints to the `predict` method",)


def _quiet_libraries() -> None:
    """Keep the console to what matters: our lines, warnings of our own, errors."""
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(beta|preview|Beta|Preview).*")
    # mlflow warns at class definition that ComponentPyfunc.predict has no type hints (its signature is
    # logged); it warns inside its own `catch_warnings` + `simplefilter("once")`, which shadows any filter,
    # so its known notices are dropped where warnings are shown (every other warning is shown as before)
    warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
    shown = warnings.showwarning

    def _show_unless_noise(message, category, filename, lineno, file=None, line=None):
        if not any(noise in str(message) for noise in KNOWN_NOISE):
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = _show_unless_noise
    for name in ("mlflow", "alembic", "evidently"):
        logging.getLogger(name).setLevel(logging.ERROR)


# commands that write the data root (partitions, the Dagster instance, the registry): one at a time
ROOT_WRITERS = ("run", "promote", "rollback")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        settings.check_production()  # production mode: refuse local stand-ins for the services
        if args.command not in ROOT_WRITERS:
            return args.func(args)
        from market_master.local_run import data_root_lock

        with data_root_lock(settings.data_root()):
            return args.func(args)
    except Exception as exc:  # noqa: BLE001 - top-level: one clear line, exit 2
        from market_master.lib.mlflow_adapter import RegistryError
        from market_master.lib.sources import DataSourceError
        from market_master.local_run import RunFailed

        # ValueError covers BatchInputError, WeightsError, BarValidationError and bad thresholds
        user_errors = (CliError, RunFailed, RegistryError, DataSourceError, ValueError, KeyError)
        # settings.SettingsError is a ValueError
        file_errors = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)
        if isinstance(exc, user_errors + file_errors):
            message = " | ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
            print(f"error: {message}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
