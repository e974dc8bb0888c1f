"""Running the code location's jobs in this process against the persistent Dagster instance, exactly as
the daemon would (same jobs, same sensor, same run configs): what `market-master run`, `promote` and
`rollback` do. Every run lands in DAGSTER_HOME, so the Dagster UI shows it afterwards.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from market_master import settings

PROMOTE_JOB = "promote_job"
LOCK_FILE = ".market-master.lock"
PID_TAG = "market_master/pid"  # the process running an in-process run (to fail it if that process died)


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
    return home


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    """Tags of ONE run over a partition range (the single-run backfill of every hourly asset)."""
    return {"dagster/asset_partition_range_start": first_key, "dagster/asset_partition_range_end": last_key}


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

    def tick_promotion_sensor(self) -> dg.SensorResult:
        """One evaluation of the promotion sensor against the instance (it looks at the latest champion)."""
        from market_master.defs.promotion.sensors import promote_champion_when_gates_pass
        from market_master.defs.promotion.verdicts import CHAMPION

        context = dg.build_multi_asset_sensor_context(
            monitored_assets=[CHAMPION], instance=self.instance, definitions=self.defs
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
