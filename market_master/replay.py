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

from market_master.lib import calendar
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
        self.runner.run("ingest_job", tags={**range_tags(first, last), REPLAY_TAG: "bootstrap"})
        at = calendar.bar_end(last_bar)
        self._retrain(Tick(at, RETRAIN, "bootstrap"), dg.RunRequest(run_key=f"bootstrap-{last}"))
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
            requests = [r for r in data.run_requests or [] if r.run_key not in self._run_keys]
            if not requests:
                skipped.append({"at": tick.at, "schedule": tick.schedule, "reason": data.skip_message})
                continue
            for request in requests:
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
                run_config=request.run_config or None,
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
        empty = {"model_version": None, "wss": float("nan"), "decision": "NO_SIGNAL", "covered_weight": 0.0}
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

    def _retrain(self, tick: Tick, request: dg.RunRequest) -> None:
        t0 = time.perf_counter()
        run_config = _merge(request.run_config or {}, self.retrain_run_config)
        try:
            result = self.runner.run(
                "retrain_job", allow_failed_gates=True, run_config=run_config, tags=self._tags(tick, request)
            )
        except RunFailed as exc:
            self._say(f"{_at(tick.at)}  retrain FAILED: {str(exc).splitlines()[-1].strip()}")
            self.retrains.append({"at": tick.at, "version": None, "error": str(exc)})
            return
        meta = result.asset_materializations_for_node("champion_model")[0].metadata
        version = str(meta["model_version"].value)
        record = {"at": tick.at, "version": version, "seconds": time.perf_counter() - t0}
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
                "monitoring_job", run_config=request.run_config or None, tags=self._tags(tick, request)
            )
            self._say(f"{_at(tick.at)}  monitoring_job done")
        except RunFailed as exc:
            self._say(f"{_at(tick.at)}  monitoring FAILED: {str(exc).splitlines()[-1].strip()}")


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
