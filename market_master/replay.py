"""Replay: the live loop over a stretch of history with a simulated clock, exactly as the daemon runs it.

At each tick of `lib.replay_plan` (simulated New York time) the REAL schedule of the code location is
evaluated (`build_schedule_context(scheduled_execution_time=tick)` + `evaluate_tick`: the hourly schedule
asks the calendar which bar just closed, or skips a holiday / half-day afternoon) and each RunRequest it
returns is executed in process (`LocalRunner`), like the daemon's run launcher would: the hourly
partition run (ingest the new bar, features, predictions, signal), the retrain run (walk-forward,
champion search, registration, the seven gates), the monitoring run. After each retrain run the REAL
promotion sensor is ticked with its cursor kept between ticks (`evaluate_tick`), and the promote_job it
requests runs. Run keys are de-duplicated as the daemon does.

What limits what is seen is the clock, not a special code path: an hourly run at a tick ingests only the
partition of the bar that just closed (the synthetic and CSV sources then return that bar only), the
retrain reads what is stored by then.

Before the first tick, `history_sessions` sessions are backfilled (one ingest_job range run) and one
retrain + sensor tick runs: what an operator does before switching the schedules on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from market_master.lib import cadence, calendar
from market_master.lib.backtest import backtest_report, forward_returns
from market_master.lib.replay_plan import HOURLY, MONITORING, RETRAIN, ReplayPlan, Tick, progress_bar
from market_master.lib.track_record import (
    Deployment,
    compare_signals,
    deployment_walk_forward,
    deployments,
    lookahead_violations,
)
from market_master.lib.walk_forward import WalkForwardResult
from market_master.local_run import LocalRunner, RunFailed, range_tags

SIMULATED_TIME_TAG = "market_master/simulated_time"
# failures are reported in the hour's line (first error line), not as Dagster's ERROR log with stack traces
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
REPLAY_TAG = "market_master/replay"


@dataclass
class ReplayResult:
    """What happened: one row per hourly tick that ran (`hours`), per retrain (`retrains`), per promotion."""

    plan: ReplayPlan
    hours: pd.DataFrame
    retrains: list[dict]
    promotions: list[dict]
    skipped: list[dict]
    seconds: float
    bootstrap_seconds: float

    track: TrackRecord | None = None

    @property
    def hours_per_minute(self) -> float:
        """Simulated trading hours replayed per wall-clock minute (bootstrap excluded)."""
        return 60.0 * len(self.hours) / self.seconds if self.seconds else float("nan")

    def summary(self) -> dict:
        """JSON-able numbers of the replay, with a one-line `line`."""
        h = self.hours
        signals = int(h["model_version"].notna().sum()) if len(h) else 0
        failed = int(h["error"].notna().sum()) if len(h) else 0
        decisions = h["decision"].value_counts().to_dict() if len(h) else {}
        skipped_hours = [s for s in self.skipped if s["schedule"] == cadence.HOURLY_SIGNAL_SCHEDULE]
        line = (
            f"replayed {len(h)} trading hours in {self.seconds:.0f} s ({self.hours_per_minute:.1f} hours/minute; "
            f"bootstrap {self.bootstrap_seconds:.0f} s): {signals} signals, {failed} failed hourly runs, "
            f"{len(self.retrains)} retrains, promotions: "
            + (", ".join(f"v{p['version']} at {_at(p['at'])}" for p in self.promotions) or "none")
            + f"; {len(skipped_hours)} hourly ticks skipped (holidays, half-day afternoons)"
        )
        return {
            "line": line,
            "hours": len(h),
            "signals": signals,
            "failed_hours": failed,
            "decisions": decisions,
            "retrains": self.retrains,
            "promotions": self.promotions,
            "skipped_hourly_ticks": len(skipped_hours),
            "skipped_ticks": [{**s, "at": str(s["at"])} for s in self.skipped],
            "seconds": round(self.seconds, 1),
            "bootstrap_seconds": round(self.bootstrap_seconds, 1),
            "hours_per_minute": round(self.hours_per_minute, 2),
        }


@dataclass
class TrackRecord:
    """The replayed signal next to the walk-forward recomputed with one fold per deployment."""

    served: list[Deployment]
    lookahead: list[str]
    walk_forward: WalkForwardResult
    comparison: pd.DataFrame  # lib.track_record.compare_signals: one row per hour, `equal`

    @property
    def equal_share(self) -> float:
        return float(self.comparison["equal"].mean()) if len(self.comparison) else float("nan")

    def summary(self) -> str:
        c = self.comparison
        return (
            f"track record: {int(c['equal'].sum())}/{len(c)} replayed hours equal the walk-forward OOS history "
            f"of the same versions ({len(self.served)} deployments: "
            + ", ".join(
                f"v{d.version} {d.first_hour:%m-%d %H:%M}..{d.last_hour:%m-%d %H:%M}" for d in self.served
            )
            + f"); look-ahead violations: {len(self.lookahead)}"
        )


@dataclass
class Replayer:
    """Drives the code location's schedules, sensor and jobs at simulated times against `runner`."""

    runner: LocalRunner
    retrain_run_config: dict = field(default_factory=dict)
    echo: bool = True
    out: Callable[[str], None] = print
    force_first: bool = False
    sensor_cursor: str | None = None
    retrains: list[dict] = field(default_factory=list)
    promotions: list[dict] = field(default_factory=list)
    _run_keys: set[str] = field(default_factory=set)

    def _schedule(self, name: str) -> dg.ScheduleDefinition:
        return self.runner.defs.resolve_schedule_def(name)

    def _say(self, line: str) -> None:
        if self.echo:
            self.out(line)

    # --- before the first tick -------------------------------------------------------------------
    def bootstrap(self, first_bar: pd.Timestamp, last_bar: pd.Timestamp) -> float:
        """Backfill [first_bar, last_bar] in one ingest run, then one retrain + sensor tick."""
        started = time.perf_counter()
        first, last = calendar.partition_key(first_bar), calendar.partition_key(last_bar)
        self._say(f"bootstrap: backfill {first} .. {last} (ingest_job, one range run)")
        self.runner.run(
            "ingest_job", run_config=QUIET, tags={**range_tags(first, last), REPLAY_TAG: "bootstrap"}
        )
        at = calendar.bar_end(last_bar)
        self._retrain(Tick(at, RETRAIN, "bootstrap"), dg.RunRequest(run_key=f"bootstrap-{last}"))
        record = self.retrains[-1]
        if self.force_first and record.get("version") and not record.get("promoted"):
            move = self.runner.move_production(
                {
                    "version": record["version"],
                    "force": True,
                    "actor": "market-master replay --force-first",
                    "reason": "replay --force-first: the bootstrap champion serves although its gates failed",
                }
            )
            record["promoted"] = record["version"]
            self.promotions.append({"at": at, "version": record["version"], "forced": True})
            self._say(
                f"{_at(at)}  FORCED: Production -> v{move['to_version']} (--force-first; gates: {move['gates']})"
            )
        return time.perf_counter() - started

    # --- the loop ---------------------------------------------------------------------------------
    def replay(self, plan: ReplayPlan, bootstrap_seconds: float = 0.0) -> ReplayResult:
        instance = self.runner.instance
        context_instance = None if instance.is_ephemeral else instance  # Dagster refuses ephemeral ones
        repository = self.runner.defs.get_repository_def()
        hours, skipped = [], []
        n_hourly = len(plan.of_kind(HOURLY))
        done = 0
        started = time.perf_counter()
        for tick in plan.ticks:
            context = dg.build_schedule_context(
                instance=context_instance,
                scheduled_execution_time=tick.at.to_pydatetime(),
                repository_def=repository,
            )
            data = self._schedule(tick.schedule).evaluate_tick(context)
            if tick.kind == HOURLY:
                done += 1
            # the daemon launches a run key once; runs without a key (retrain, monitoring) every tick
            requests = [
                r for r in data.run_requests or [] if r.run_key is None or r.run_key not in self._run_keys
            ]
            if not requests:
                reason = data.skip_message or "run key already launched"
                skipped.append({"at": tick.at, "schedule": tick.schedule, "reason": reason})
                continue
            for request in requests:
                if request.run_key is not None:
                    self._run_keys.add(request.run_key)
                if tick.kind == HOURLY:
                    row = self._hourly(tick, request)
                    hours.append(row)
                    bar = progress_bar(done, n_hourly, time.perf_counter() - started)
                    self._say(_hour_line(row) + f"  {bar}")
                elif tick.kind == RETRAIN:
                    self._retrain(tick, request)
                elif tick.kind == MONITORING:
                    self._monitoring(tick, request)
        return ReplayResult(
            plan=plan,
            hours=pd.DataFrame(hours),
            retrains=self.retrains,
            promotions=self.promotions,
            skipped=skipped,
            seconds=time.perf_counter() - started,
            bootstrap_seconds=bootstrap_seconds,
        )

    def _tags(self, tick: Tick, request: dg.RunRequest) -> dict[str, str]:
        tags = {**request.tags, SIMULATED_TIME_TAG: tick.at.isoformat(), REPLAY_TAG: tick.schedule}
        if request.run_key:
            tags["dagster/run_key"] = request.run_key
        return tags

    def _hourly(self, tick: Tick, request: dg.RunRequest) -> dict:
        key = request.partition_key
        bar = calendar.key_to_timestamp(key)
        t0 = time.perf_counter()
        error = None
        try:
            self.runner.run(
                self._schedule(tick.schedule).job_name,
                partition_key=key,
                run_config=_merge(QUIET, request.run_config or {}),
                tags=self._tags(tick, request),
            )
        except RunFailed as exc:
            error = str(exc).splitlines()[-1].strip()
        seconds = time.perf_counter() - t0
        row = {
            "tick": tick.at,
            "hour": bar,
            "lag_minutes": (tick.at - calendar.bar_end(bar)).total_seconds() / 60.0,
            "run_seconds": seconds,
            "error": error,
        }
        return row | self._stored_signal(key)

    def _stored_signal(self, key: str) -> dict:
        store = self.runner.defs.resources["storage"].partitions()
        # no stored signal for the hour (its run failed): not the pipeline's NO_SIGNAL decision, which is stored
        empty = {"model_version": None, "wss": float("nan"), "decision": "(none)", "covered_weight": 0.0}
        if not store.exists("index_signal", key):
            return empty
        signal = store.read("index_signal", [key])
        preds = store.read("component_predictions", [key])
        if signal.empty:
            return empty
        versions = sorted(set(preds["model_version"].dropna().astype(str))) if len(preds) else []
        row = signal.iloc[-1]
        return {
            "model_version": ",".join(versions) or None,
            "wss": float(row["wss"]),
            "decision": str(row["decision"]),
            "covered_weight": float(row["covered_weight"]),
        }

    # --- after the loop ----------------------------------------------------------------------------
    def track_record(self, hours: pd.DatetimeIndex) -> TrackRecord:
        """What was stored for `hours` (the replayed ones) against the walk-forward recomputed with the
        replay's deployments as folds, on the same stored features, weights and training procedure."""
        resources = self.runner.defs.resources
        store, objects = resources["storage"].partitions(), resources["storage"].objects()
        keys = [calendar.partition_key(h) for h in hours]
        stored = set(store.keys("index_signal"))
        replayed = store.read("index_signal", [k for k in keys if k in stored])
        predictions = store.read("component_predictions", [k for k in keys if k in stored])
        adapter = resources["mlflow"].adapter()
        versions = sorted(set(predictions["model_version"].dropna().astype(str)) - {""})
        trained_through = {
            v: _window_end(adapter.version_tags(v).get("validation_window"), v) for v in versions
        }
        served = deployments(predictions, trained_through)
        history = objects.read("walk_forward_history")
        features = store.read("feature_table", store.keys("feature_table"))
        wf = deployment_walk_forward(
            features, objects.read("index_weights"), served, history.result.config, history.training
        )
        return TrackRecord(served, lookahead_violations(served), wf, compare_signals(replayed, wf.signal))

    def backtest(self, hours: pd.DatetimeIndex, cost_bps: float = 1.0) -> dict:
        """The backtest report (lib.backtest.backtest_report, the one batch and the assets use) of the
        replayed decisions for `hours` against the stored index proxy's next-bar return. The trial count
        is the walk-forward's (every candidate x decision rule x threshold pair the retrains tried)."""
        resources = self.runner.defs.resources
        store, objects = resources["storage"].partitions(), resources["storage"].objects()
        keys = [calendar.partition_key(h) for h in hours]
        stored = set(store.keys("index_signal"))
        signal = store.read("index_signal", [k for k in keys if k in stored])
        bars = store.read("index_proxy_bars", [k for k in store.keys("index_proxy_bars")])
        if signal.empty or bars.empty:
            raise ValueError("the replay stored no index_signal or no index_proxy_bars to backtest")
        symbol = str(bars["symbol"].iloc[0])
        n_trials = objects.read("walk_forward_history").result.n_trials
        report = backtest_report(
            signal[["hour", "decision"]], forward_returns(bars, symbol), cost_bps, n_trials
        )
        report["proxy"] = symbol
        return report

    def _retrain(self, tick: Tick, request: dg.RunRequest) -> None:
        t0 = time.perf_counter()
        run_config = _merge(_merge(QUIET, request.run_config or {}), self.retrain_run_config)
        try:
            result = self.runner.run(
                "retrain_job", allow_failed_gates=True, run_config=run_config, tags=self._tags(tick, request)
            )
        except RunFailed as exc:
            self._say(f"{_at(tick.at)}  retrain FAILED: {str(exc).splitlines()[-1].strip()}")
            self.retrains.append(
                {"at": tick.at, "version": None, "promoted": None, "gates_passed": False, "error": str(exc)}
            )
            return
        meta = result.asset_materializations_for_node("champion_model")[0].metadata
        version = str(meta["model_version"].value)
        record = {
            "at": tick.at,
            "version": version,
            "run_id": result.run_id,
            "gates_passed": _gates_passed(self.runner.instance, result.run_id),
            "seconds": time.perf_counter() - t0,
        }
        promoted = self._tick_sensor(tick)
        record["promoted"] = promoted
        self.retrains.append(record)

    def _tick_sensor(self, tick: Tick) -> str | None:
        """One sensor tick (cursor kept); runs the promote_job it requests. Returns the promoted version."""
        result = self.runner.tick_promotion_sensor(cursor=self.sensor_cursor)
        self.sensor_cursor = result.cursor
        for request in result.run_requests or []:
            if request.run_key in self._run_keys:
                continue
            self._run_keys.add(request.run_key)
            self.runner.run_request(request)
            version = request.tags.get("market_master/model_version")
            self.promotions.append({"at": tick.at, "version": version})
            self._say(f"{_at(tick.at)}  sensor: Production -> v{version} ({request.run_key})")
            return version
        self._say(f"{_at(tick.at)}  sensor: {result.skip_message or 'no request'}")
        return None

    def _monitoring(self, tick: Tick, request: dg.RunRequest) -> None:
        try:
            self.runner.run(
                "monitoring_job",
                run_config=_merge(QUIET, request.run_config or {}),
                tags=self._tags(tick, request),
            )
            self._say(f"{_at(tick.at)}  monitoring_job done")
        except RunFailed as exc:
            self._say(f"{_at(tick.at)}  monitoring FAILED: {str(exc).splitlines()[-1].strip()}")


def _gates_passed(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether every gate check of the retrain run passed (what the sensor decides on)."""
    from market_master.defs.promotion.verdicts import gate_verdicts
    from market_master.defs.training.checks import GATE_NAMES

    passed = gate_verdicts(instance, run_id).passed
    return all(passed.get(gate) is True for gate in GATE_NAMES)


def _window_end(window: str | None, version: str) -> pd.Timestamp:
    if not window or ".." not in window:
        raise ValueError(f"model version {version} has no validation_window tag (got {window!r})")
    return pd.Timestamp(window.split("..", 1)[1])


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _at(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%d %H:%M %Z}"


def _hour_line(row: dict) -> str:
    version = f"v{row['model_version']}" if row.get("model_version") else "  -"
    wss = f"{row['wss']:+.3f}" if pd.notna(row["wss"]) else "   nan"
    tail = f"  FAILED: {row['error']}" if row.get("error") else ""
    return (
        f"{_at(row['hour'])}  {version:>4}  WSS {wss}  {row['decision']:<9}  covered {row['covered_weight']:.3f}"
        f"  lag {row['lag_minutes']:.0f} min + {row['run_seconds']:.1f} s{tail}"
    )
