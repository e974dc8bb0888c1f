"""Running the code location's jobs in this process against the persistent Dagster instance, exactly as
the daemon would (same jobs, same sensor, same run configs): what `market-master run`, `promote` and
`rollback` do. Every run lands in DAGSTER_HOME, so the Dagster UI shows it afterwards.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import dagster as dg

from market_master import settings

PROMOTE_JOB = "promote_job"
LOCK_FILE = ".market-master.lock"
PID_TAG = "market_master/pid"  # the process running an in-process run (to fail it if that process died)
PROGRESS_EVERY_SECONDS = 15.0  # a line per 15 s at most: a 10-minute ingest prints ~40, not hundreds

# Dagster's own switches (env vars it reads per call), set for our in-process runs unless already set:
# - a single-run backfill writes ONE "materialization planned" event per asset (with the range as a
#   partition subset) instead of one per key: half of the per-key events of an ingest. Trade-off (Dagster's
#   note): the keys of a range run that FAILS are shown as missing, not failed, in the UI; the CLI names
#   the failure itself.
DAGSTER_ENV_DEFAULTS = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}
# - production (Postgres instance) only: a range run's materializations are stored 100 per INSERT
#   (`store_event_batch`, which dagster-postgres implements; the sqlite storage loops over `store_event`,
#   so it gains nothing there). benchmarks/bench_backfill.py, 100 symbols x 3,647 keys on Postgres:
#   259 s without, 61.5 s with. A batch is flushed when it is full or the step's output ends; a worker
#   killed mid-step loses at most the unflushed events of a step that then fails (its slices are
#   rewritten by the rerun, idempotently).
PRODUCTION_DAGSTER_ENV_DEFAULTS = {"DAGSTER_EVENT_BATCH_SIZE": "100"}


def configure_dagster_env() -> None:
    """Set DAGSTER_ENV_DEFAULTS (and in production mode PRODUCTION_DAGSTER_ENV_DEFAULTS) where the
    environment does not say otherwise."""
    defaults = dict(DAGSTER_ENV_DEFAULTS)
    if settings.is_production():
        defaults.update(PRODUCTION_DAGSTER_ENV_DEFAULTS)
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


def dagster_home() -> Path:
    """DAGSTER_HOME (default data/dagster): persistent so `make dagster` shows what `make run` did."""
    settings.check_production()  # production: DAGSTER_HOME must already hold deploy/dagster.yaml (Postgres)
    home = Path(os.environ.get("DAGSTER_HOME") or settings.data_root() / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():  # embedded mode only (production refused above without one)
        # run monitoring: the daemon marks runs whose worker died (kill -9) as failed instead of STARTED
        cfg.write_text(
            "telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: true\n  poll_interval_seconds: 30\n"
        )
    os.environ["DAGSTER_HOME"] = str(home)
    configure_dagster_env()
    return home


RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    """Tags of ONE run over a partition range (the single-run backfill of every hourly asset)."""
    return {RANGE_START_TAG: first_key, RANGE_END_TAG: last_key}


@dataclass
class Progress:
    """Counts the per-key materializations of a range run; `update` prints `done/total (pct), elapsed,
    ETA` at most every `every` seconds (the ETA from the rate since the first one)."""

    label: str
    total: int
    every: float = PROGRESS_EVERY_SECONDS
    out: TextIO | None = None
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    started: float = field(default=0.0, init=False)
    _first: float | None = field(default=None, init=False)
    _last_print: float = field(default=0.0, init=False)
    lines: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.started = self._last_print = self.clock()

    def update(self, n: int = 1) -> str | None:
        now = self.clock()
        if self._first is None:
            self._first = now
        self.done += n
        if now - self._last_print < self.every and self.done < self.total:
            return None
        if self.done >= self.total and self.lines == 0:
            return None  # finished before the first report: the run's own line says it all
        self._last_print = now
        line = self.line(now)
        print(line, file=self.out or sys.stdout, flush=True)
        self.lines += 1
        return line

    def line(self, now: float) -> str:
        pct = 100 * self.done / self.total if self.total else 100.0
        rate_time = now - (self._first or now)
        remaining = self.total - self.done
        if self.done >= self.total:
            eta = "done"
        elif rate_time > 0 and self.done > 1:
            eta = f"ETA {remaining * rate_time / (self.done - 1):.0f} s"
        else:
            eta = "ETA ?"
        return (
            f"      {self.label}: {self.done:,}/{self.total:,} partition materializations stored "
            f"({pct:.0f} %), {now - self.started:.0f} s, {eta}"
        )


class _ProgressHandler(logging.Handler):
    """Feeds the ASSET_MATERIALIZATION events of a run (a Dagster logger sees every event) to Progress."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(level=logging.DEBUG)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)
        if event is not None and event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            self.progress.update()


def progress_logger(progress: Progress) -> dg.LoggerDefinition:
    """A Dagster logger (added next to the job's console logger) that reports `progress`."""

    @dg.logger(description="market-master progress: materializations stored, ETA")
    def _progress(_init_context) -> logging.Logger:
        logger = logging.getLogger(f"market_master.progress.{id(progress)}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.handlers = [_ProgressHandler(progress)]
        return logger

    return _progress


@dataclass
class StageTimer:
    """Seconds per stage of a command, printed as a table at the end."""

    clock: Callable[[], float] = time.perf_counter
    stages: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = self.clock()
        try:
            yield
        finally:
            self.stages.append((name, self.clock() - started))

    def table(self) -> str:
        width = max([len("stage"), *(len(name) for name, _ in self.stages)])
        total = sum(seconds for _, seconds in self.stages)
        lines = [f"  {'stage':<{width}}  {'seconds':>8}", f"  {'-' * width}  {'-' * 8}"]
        lines += [f"  {name:<{width}}  {seconds:8.1f}" for name, seconds in self.stages]
        lines.append(f"  {'total':<{width}}  {total:8.1f}")
        return "\n".join(lines)


class RunFailed(RuntimeError):
    """A job failed; the message names the run and its last failure events."""


class DataRootBusy(RunFailed):
    """Another market-master command holds the data root."""


@contextmanager
def data_root_lock(root: Path) -> Iterator[None]:
    """One market-master command at a time per data root (two concurrent `run`s on a fresh root broke
    Dagster's sqlite instance creation). Non-blocking: the second command stops at once, naming the
    holder. The OS releases the lock when its process dies, kill -9 included.

    This is a LOCAL lock (flock on a local file): it guards the local data root and, in embedded mode,
    the sqlite stores under it. It cannot guard an s3:// store and does not pretend to: in production
    mode it is taken on the local scratch root only, and concurrent writers on other machines are made
    safe by the services instead: the Dagster instance is Postgres (concurrent runs are its normal
    case, no file to create), every slice or value is one whole-object PUT (a reader sees the old or the
    new object; two writers of one key write the same rows, derived from the key, and the last wins),
    and the registry alias moves are transactions of the MLflow server's Postgres store. Two runs that
    must not overlap are kept apart by Dagster's run queue (deploy/dagster.yaml), not by this lock."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = (root / LOCK_FILE).open("a+")
    except OSError as exc:
        raise RunFailed(
            f"the data root {root} is not writable ({exc.strerror}): set MARKET_MASTER_HOME"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown process"
        handle.close()
        raise DataRootBusy(
            f"another market-master command is using the data root {root} ({holder}): wait for it to "
            "finish, or point MARKET_MASTER_HOME at another root"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(
        f"pid {os.getpid()}: market-master {' '.join(sys.argv[1:2])} since {time.strftime('%H:%M:%S')}"
    )
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@dataclass
class LocalRunner:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    verbose: bool = False
    echo: bool = True
    progress_every: float = PROGRESS_EVERY_SECONDS  # seconds between progress lines of a range run

    def __post_init__(self) -> None:
        self.failed_interrupted = fail_interrupted_runs(self.instance)

    def run(self, job_name: str, allow_failed_gates: bool = False, **kwargs) -> dg.ExecuteInProcessResult:
        """Execute `job_name` in process; a failure raises RunFailed, except failed blocking gate checks
        when `allow_failed_gates` (a failed gate fails its run by design; the sensor reads the verdicts)."""
        started = time.perf_counter()
        quiet = {} if self.verbose else {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        kwargs["run_config"] = {**quiet, **(kwargs.get("run_config") or {})}
        kwargs["tags"] = {**(kwargs.get("tags") or {}), PID_TAG: str(os.getpid())}
        job = self.defs.resolve_job_def(job_name)
        total = self._materializations_expected(job, kwargs["tags"])
        if total and self.echo:
            progress = Progress(job_name, total, every=self.progress_every)
            job = job.with_logger_defs({**job.loggers, "progress": progress_logger(progress)})
            loggers = kwargs["run_config"].get("loggers") or {"console": {}}
            kwargs["run_config"] = {**kwargs["run_config"], "loggers": {**loggers, "progress": {}}}
        result = job.execute_in_process(instance=self.instance, raise_on_error=False, **kwargs)
        if self.echo:
            verdict = "succeeded" if result.success else "FAILED"
            print(
                f"      {job_name}: run {result.run_id[:8]} {verdict} in {time.perf_counter() - started:.1f} s"
            )
        if result.success or (allow_failed_gates and _only_gates_failed(result)):
            return result
        failures = [e.message for e in result.all_events if e.is_failure] + _step_errors(result)
        raise RunFailed(f"{job_name} failed (run {result.run_id}):\n  " + "\n  ".join(failures[-4:]))

    def _materializations_expected(self, job: dg.JobDefinition, tags: dict[str, str]) -> int:
        """Per-key materializations a range run of `job` stores (keys x partitioned assets), 0 if none."""
        first, last = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
        if job.partitions_def is None or not first or not last:
            return 0
        keys = job.partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))
        assets = [
            key
            for key in job.asset_layer.selected_asset_keys
            if self.defs.resolve_assets_def(key).partitions_def is not None
        ]
        return len(keys) * len(assets)

    def tick_promotion_sensor(self, cursor: str | None = None) -> dg.SensorResult:
        """One evaluation of the promotion sensor against the instance (it looks at the latest champion);
        `cursor`: the previous tick's (a replay keeps it between ticks, as the daemon does)."""
        from market_master.defs.promotion.sensors import promote_champion_when_gates_pass
        from market_master.defs.promotion.verdicts import CHAMPION

        context = dg.build_multi_asset_sensor_context(
            monitored_assets=[CHAMPION], instance=self.instance, definitions=self.defs, cursor=cursor
        )
        return promote_champion_when_gates_pass.evaluate_tick(context)

    def run_request(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """Execute what a sensor requested (promote_job with its config and tags)."""
        tags = {**request.tags, **({"dagster/run_key": request.run_key} if request.run_key else {})}
        return self.run(PROMOTE_JOB, run_config=request.run_config, tags=tags)

    def move_production(self, config: dict) -> dict:
        """Run promote_job with `config` (promote, forced promote or rollback): the one alias-move path.
        Returns the production_model materialization's metadata."""
        result = self.run(PROMOTE_JOB, run_config={"ops": {"production_model": {"config": config}}})
        return _metadata(result, "production_model")


def fail_interrupted_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark as FAILED the in-process runs left STARTED by a process that no longer exists (kill -9 of a
    `market-master` command): Dagster's run monitoring does this for daemon-launched runs only."""
    failed = []
    started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    for run in started:
        pid = run.tags.get(PID_TAG)
        if pid is None or _alive(int(pid)):
            continue
        instance.report_run_failed(run, f"process {pid} that ran it is gone (killed); marked failed")
        failed.append(run.run_id)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """The errors that failed steps, first line each, past Dagster's wrappers (e.g. an MLflow server gone
    away names its URL there, not in the step-failure message)."""
    errors = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None) if event.is_step_failure else None
        while error is not None and error.cls_name.startswith("Dagster") and error.cause is not None:
            error = error.cause
        if error is not None and not error.cls_name.startswith("Dagster"):
            first = (error.message.strip().splitlines() or [""])[0][:300]
            errors.append(f"{event.step_key}: {first}")
    return errors


def _only_gates_failed(result: dg.ExecuteInProcessResult) -> bool:
    from market_master.defs.promotion.verdicts import CHAMPION

    failed_steps = {e.step_key for e in result.all_events if e.is_step_failure}
    prefix = CHAMPION.to_python_identifier() + "_"
    return bool(failed_steps) and all(step.startswith(prefix) for step in failed_steps)


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict:
    materializations = result.asset_materializations_for_node(node)
    if not materializations:
        return {}
    return {k: v.value for k, v in materializations[-1].metadata.items()}
