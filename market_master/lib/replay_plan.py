"""The replay's simulated clock: when each schedule of the code location ticks over a stretch of history.

A replay runs the loop exactly as the daemon would live (market_master/replay.py drives the Dagster
side). This module only says WHEN, from the same cron strings the schedules are built from
(`lib.cadence`): every tick of the hourly signal schedule (bar close + its delay, on every weekday: the
schedule itself skips holidays and half-day afternoons), of the retrain schedule and of the monitoring
schedule, in simulated time order. The promotion sensor is not on a cron: the daemon ticks it every 30 s,
and only a champion materialization (the end of a retrain run) can change its answer, so the replay
ticks it right after each retrain run.

Cadence knobs: the daemon runs EVERY retrain and monitoring tick. A replay may thin them
(`retrain_every`, `monitoring_every`: every N-th tick of the window, 0 = none) to keep a long replay
affordable; 1 (the default) is what the daemon does. The hourly ticks are never thinned.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import takewhile

import pandas as pd

from market_master.lib import cadence, calendar

HOURLY, RETRAIN, MONITORING = "hourly", "retrain", "monitoring"
KINDS = (HOURLY, RETRAIN, MONITORING)
_ORDER = {HOURLY: 0, RETRAIN: 1, MONITORING: 2}  # same minute (never with the default crons): this order


@dataclass(frozen=True)
class Tick:
    """One schedule tick at simulated time `at` (America/New_York)."""

    at: pd.Timestamp
    kind: str
    schedule: str


@dataclass(frozen=True)
class ReplayPlan:
    """The ticks of [start, end] (simulated, New York), in time order."""

    start: pd.Timestamp
    end: pd.Timestamp
    ticks: tuple[Tick, ...]

    def of_kind(self, kind: str) -> list[Tick]:
        return [t for t in self.ticks if t.kind == kind]

    def trading_hours(self) -> pd.DatetimeIndex:
        """The bars whose hourly tick falls in the window: the hours that must get exactly one signal."""
        bars = [cadence.signal_tick_bar(t.at) for t in self.of_kind(HOURLY)]
        return pd.DatetimeIndex([b for b in bars if b is not None])


def _ticks(crons, start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    after = start - pd.Timedelta(microseconds=1)  # cron_ticks_after is strict: include a tick AT start
    return list(takewhile(lambda t: t <= end, cadence.cron_ticks_after(crons, after)))


def _every(ticks: list[pd.Timestamp], every: int) -> list[pd.Timestamp]:
    """Every `every`-th tick counting from the first one of the window (1: all, 0: none)."""
    if every < 0:
        raise ValueError(f"a replay cadence must be >= 0 (0 = never), got {every}")
    return [] if every == 0 else [t for i, t in enumerate(ticks) if (i + 1) % every == 0]


def plan_replay(
    start: calendar.TimeLike,
    end: calendar.TimeLike,
    retrain_every: int = 1,
    monitoring_every: int = 1,
) -> ReplayPlan:
    """Every schedule tick between `start` and `end` (inclusive; a bare date as `end` covers that day)."""
    lo = calendar.to_timestamp(start)
    hi = calendar.to_timestamp(end)
    if isinstance(end, str) and len(end.strip()) <= 10:
        hi = hi + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    if hi <= lo:
        raise ValueError(f"replay window {lo} .. {hi} is empty")
    ticks = [
        Tick(t, HOURLY, cadence.HOURLY_SIGNAL_SCHEDULE) for t in _ticks(cadence.HOURLY_SIGNAL_CRONS, lo, hi)
    ]
    ticks += [
        Tick(t, RETRAIN, cadence.RETRAIN_SCHEDULE)
        for t in _every(_ticks(cadence.RETRAIN_CRON, lo, hi), retrain_every)
    ]
    ticks += [
        Tick(t, MONITORING, cadence.MONITORING_SCHEDULE)
        for t in _every(_ticks(cadence.MONITORING_CRON, lo, hi), monitoring_every)
    ]
    ticks.sort(key=lambda t: (t.at, _ORDER[t.kind]))
    return ReplayPlan(lo, hi, tuple(ticks))


def history_window(plan: ReplayPlan, sessions: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first, last) bar backfilled before the replay, as an operator backfills before switching the
    schedules on: the `sessions` sessions up to the bar before the first one an hourly tick processes."""
    hours = plan.trading_hours()
    if not len(hours):
        raise ValueError(f"replay window {plan.start} .. {plan.end} has no trading hour")
    last = calendar.previous_bar_start(hours[0])
    start, _ = calendar.last_sessions_window(last, sessions)
    return calendar.trading_bars(start, last)[0], last


def progress_bar(done: int, total: int, elapsed: float, width: int = 20) -> str:
    """`[#####-----] 12/48  25% ETA 36 s`: ETA from the mean wall seconds per tick so far."""
    frac = done / total if total else 1.0
    filled = int(round(width * frac))
    eta = f"ETA {elapsed / done * (total - done):.0f} s" if done else "ETA ?"
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} {100 * frac:3.0f}% {eta}"
