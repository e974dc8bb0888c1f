"""Backtest of the hourly index decision, Sharpe with a stated factor, PSR, DSR, validation-only sweep.

Conventions (also in docs/signal_and_backtest.md):

* The decision at hour t is known once bar t (the bar STARTING at t) has closed. It sets the position
  BUY +1, SELL -1, HOLD 0, held over the NEXT bar: from close(t) to close(next bar). ``proxy_returns`` is
  therefore a Series indexed by the decision hour t whose value is that forward close-to-close return
  (``forward_returns`` builds it from bars). The 15:30 (or half-day 12:30) bar's forward return spans the
  night: a position held at the close carries the overnight gap. Forward returns follow the calendar:
  NaN unless the next row is exactly ``calendar.next_bar_start(t)`` (a missing bar is never bridged).
* ``backtest_report`` is the one summary (metrics of signal / buy_and_hold / flat, PSR, DSR) that batch
  mode and the ``signal_backtest`` asset both report.
* Costs: ``cost_bps`` basis points per unit of position change, charged on the bar the change happens
  (entering +1 from flat costs 1 unit, flipping -1 -> +1 costs 2). The start is flat.
* Annualisation: ``BARS_PER_YEAR = 1764`` = 7 regular-session hourly bars x 252 sessions, the bars that
  are actually traded in a year. Using 8,760 (24 x 365 clock hours) would scale an hourly Sharpe by
  sqrt(8760 / 1764) ~ 2.2x too much. The factor used is stored in every result.
* PSR / DSR after Bailey & Lopez de Prado ("The Sharpe Ratio Efficient Frontier", 2012; "The Deflated
  Sharpe Ratio", 2014), on the per-bar (non-annualised) Sharpe, skewness and kurtosis adjusted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from market_master.lib import calendar
from market_master.lib.signal import (
    BUY,
    HOLD,
    NO_SIGNAL,
    SELL,
    WeightsLike,
    decisions_from_wss,
    is_point_in_time,
    normalize_snapshot,
    weights_long,
)

BARS_PER_YEAR = 1764  # 7 x 252 regular-session hourly bars; NOT 8,760 (would overstate Sharpe ~2.2x)
EULER_MASCHERONI = 0.5772156649015329
POSITION_OF = {BUY: 1.0, SELL: -1.0, HOLD: 0.0, NO_SIGNAL: 0.0}
_N = NormalDist()


def default_threshold_grid() -> list[tuple[float, float]]:
    """(buy, sell) pairs for the validation sweep: 6 x 6 = 36 trials, always sell < buy."""
    levels = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5)
    return [(b, -s) for b in levels for s in levels]


# ---------------------------------------------------------------- statistics


def sharpe_ratio(
    returns: Sequence[float] | pd.Series | np.ndarray, periods_per_year: float = BARS_PER_YEAR
) -> float:
    """Annualised Sharpe: mean / std (ddof=1) x sqrt(periods_per_year). NaN if < 2 returns or std 0."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return float("nan")
    sd = r.std(ddof=1)
    if not np.isfinite(sd) or sd == 0:
        return float("nan")
    return float(r.mean() / sd * math.sqrt(periods_per_year))


def _moments(r: np.ndarray) -> tuple[float, float, float]:
    """Per-period Sharpe (population std), skewness and (non-excess) kurtosis, as in Bailey & LdP."""
    mu = r.mean()
    sd = r.std(ddof=0)
    if sd == 0 or not np.isfinite(sd):
        return float("nan"), float("nan"), float("nan")
    z = (r - mu) / sd
    return float(mu / sd), float((z**3).mean()), float((z**4).mean())


def probabilistic_sharpe_ratio(
    returns: Sequence[float] | pd.Series | np.ndarray, sr_benchmark: float = 0.0
) -> float:
    """PSR(SR*) = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2)).

    SR is the per-period (NOT annualised) Sharpe of ``returns``, ``sr_benchmark`` is per-period too,
    g3 the skewness and g4 the kurtosis (3 for a normal). Probability that the true Sharpe exceeds SR*.
    NaN for fewer than 3 returns or zero variance.
    """
    r = np.asarray(returns, dtype=float)
    if r.size < 3:
        return float("nan")
    sr, g3, g4 = _moments(r)
    if not np.isfinite(sr):
        return float("nan")
    denom = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2
    if denom <= 0:
        return float("nan")
    return float(_N.cdf((sr - sr_benchmark) * math.sqrt(r.size - 1) / math.sqrt(denom)))


def expected_max_sharpe(n_trials: int, trials_sr_variance: float) -> float:
    """E[max SR] of N independent trials with zero true Sharpe (Euler-Mascheroni approximation).

    SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))); 0 for a single trial.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if trials_sr_variance < 0 or not math.isfinite(trials_sr_variance):
        raise ValueError(f"trials_sr_variance must be finite and >= 0, got {trials_sr_variance}")
    if n_trials == 1:
        return 0.0
    g = EULER_MASCHERONI
    return math.sqrt(trials_sr_variance) * (
        (1 - g) * _N.inv_cdf(1 - 1 / n_trials) + g * _N.inv_cdf(1 - 1 / (n_trials * math.e))
    )


def deflated_sharpe_ratio(
    returns: Sequence[float] | pd.Series | np.ndarray, n_trials: int, trials_sr_variance: float
) -> float:
    """DSR = PSR(SR0) with SR0 = expected max per-period Sharpe of ``n_trials`` trials.

    ``trials_sr_variance`` is the variance across the trials of their per-period (non-annualised) Sharpe.
    """
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, trials_sr_variance))


def per_period_sharpe(returns: Sequence[float] | pd.Series | np.ndarray) -> float:
    """Per-bar Sharpe with population std (the SR that PSR/DSR use); NaN for zero variance."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return float("nan")
    return _moments(r)[0]


def max_drawdown(returns: Sequence[float] | pd.Series | np.ndarray) -> float:
    """Largest peak-to-trough loss of the compounded equity (start 1.0) as a positive fraction."""
    r = np.asarray(returns, dtype=float)
    if r.size == 0:
        return 0.0
    equity = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    peaks = np.maximum.accumulate(equity)
    return float((1.0 - equity / peaks).max())


# ---------------------------------------------------------------- returns


def _calendar_next_ok(symbols: np.ndarray, timestamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Bool per row (rows sorted by symbol, time): the next row is the same symbol's CALENDAR next bar.

    Row t qualifies only if row t+1 has the same symbol and starts exactly at
    ``calendar.next_bar_start(t)``; a missing bar (or an off-calendar timestamp) breaks the chain, so a
    return never spans two bars (the same rule as ``labels.next_bar_log_return``). Last row: False.
    """
    n = len(symbols)
    ok = np.zeros(n, dtype=bool)
    if n < 2:
        return ok
    index = pd.DatetimeIndex(timestamps)
    if index.tz is None:
        raise ValueError("forward returns need tz-aware timestamps (canonical bars)")
    ns = index.tz_convert(calendar.TZ).as_unit("ns").asi8
    starts = calendar.trading_bars(index.min(), index.max()).as_unit("ns").asi8
    if len(starts) == 0:
        return ok
    nxt = np.searchsorted(starts, ns, side="right")  # first bar start strictly after t
    has_next = nxt < len(starts)
    next_ns = np.where(has_next, starts[np.minimum(nxt, len(starts) - 1)], -1)
    ok[:-1] = (symbols[1:] == symbols[:-1]) & has_next[:-1] & (ns[1:] == next_ns[:-1])
    return ok


def _forward(frame: pd.DataFrame) -> np.ndarray:
    """Calendar-aware close-to-close forward returns of ``frame`` (sorted by symbol, timestamp)."""
    close = frame["close"].to_numpy(dtype=float)
    ok = _calendar_next_ok(frame["symbol"].to_numpy(), frame["timestamp"])
    fwd = np.full(close.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        fwd[:-1] = np.where(ok[:-1], close[1:] / close[:-1] - 1.0, np.nan)
    return fwd


def forward_returns(bars: pd.DataFrame, symbol: str | None = None) -> pd.Series:
    """Close-to-close return from bar t to the calendar's next bar, indexed by t.

    NaN unless the symbol's next row starts exactly at ``calendar.next_bar_start(t)`` (a missing bar
    gives NaN, never a return over two bars) and for the last bar. ``bars`` are canonical bars
    (``symbol, timestamp, close`` ...); with ``symbol`` only that symbol.
    """
    frame = bars if symbol is None else bars[bars["symbol"] == symbol]
    if symbol is not None and frame.empty:
        raise ValueError(f"no bars for proxy symbol {symbol!r}")
    if frame["symbol"].nunique() > 1:
        raise ValueError(f"forward_returns needs one symbol, got {sorted(frame['symbol'].unique())}")
    frame = frame.sort_values("timestamp")
    fwd = _forward(frame)
    return pd.Series(fwd, index=pd.DatetimeIndex(frame["timestamp"], name="hour"), name="forward_return")


def weighted_constituent_returns(bars: pd.DataFrame, weights: WeightsLike) -> pd.Series:
    """Index proxy: sum_i w_i(t) r_i(t) of the constituents' calendar-aware forward returns, by hour t.

    ``weights``: one snapshot (dict / Series / ``WeightsSnapshot``), a callable ``hour -> snapshot`` or a
    ``WeightsHistory``; point-in-time weights weight each hour with the snapshot in force at that hour.
    Weights are renormalised at each hour over the weighted symbols that have a forward return there (a
    symbol missing its next bar does not count as a zero return). Hours without any: NaN.
    """
    if not is_point_in_time(weights):
        weights = normalize_snapshot(weights)
        sub = bars[bars["symbol"].isin(list(weights))]
        if sub.empty:
            raise ValueError(f"no bars for any weighted symbol {sorted(weights)}")
    else:
        sub = bars
        if sub.empty:
            raise ValueError("weighted_constituent_returns got no bars")
    sub = sub.sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    fwd = _forward(sub)
    hours = pd.DatetimeIndex(sub["timestamp"].unique()).sort_values()
    rows = pd.DataFrame({"hour": pd.DatetimeIndex(sub["timestamp"]), "symbol": sub["symbol"], "fwd": fwd})
    merged = rows.merge(weights_long(hours, weights), on=["hour", "symbol"], how="left")
    if not (merged["weight"].fillna(0.0) > 0).any():
        raise ValueError(f"no bars for any weighted symbol (bars hold {sorted(sub['symbol'].unique())})")
    w = merged["weight"].fillna(0.0).to_numpy(dtype=float)
    f = merged["fwd"].to_numpy(dtype=float)
    has = np.isfinite(f) & (w > 0)
    frame = pd.DataFrame(
        {"hour": merged["hour"], "wr": np.where(has, f * w, 0.0), "w": np.where(has, w, 0.0)}
    )
    g = frame.groupby("hour", sort=True)[["wr", "w"]].sum().reindex(hours, fill_value=0.0)
    out = (g["wr"] / g["w"].where(g["w"] > 0)).rename("forward_return")
    out.index = pd.DatetimeIndex(out.index, name="hour")
    return out


# ---------------------------------------------------------------- backtest


@dataclass
class BacktestResult:
    """Per-bar frame + metrics for the signal, buy-and-hold and always-flat over the same bars."""

    frame: pd.DataFrame
    metrics: dict[str, dict[str, float]]
    annualization_factor: float
    cost_bps: float
    n_unpriced: int
    notes: list[str] = field(default_factory=list)

    def metrics_table(self) -> pd.DataFrame:
        """One row per strategy (signal, buy_and_hold, flat), metric columns."""
        return pd.DataFrame(self.metrics).T.rename_axis("strategy")


def _metrics(
    positions: np.ndarray, fwd: np.ndarray, cost_bps: float, factor: float
) -> tuple[dict, np.ndarray]:
    prev = np.concatenate([[0.0], positions[:-1]])
    change = np.abs(positions - prev)
    net = positions * fwd - change * cost_bps / 1e4
    n = net.size
    total = float(np.prod(1.0 + net) - 1.0) if n else 0.0
    years = n / factor if n else float("nan")
    with np.errstate(over="ignore"):
        ann = float(np.expm1(np.log1p(total) / years)) if n and total > -1 else float("nan")
    active = positions != 0
    gross = positions * fwd
    sd = net.std(ddof=1) if n > 1 else float("nan")
    metrics = {
        "total_return": total,
        "annualized_return": ann,
        "annualized_volatility": float(sd * math.sqrt(factor)) if n > 1 else float("nan"),
        "sharpe": sharpe_ratio(net, factor),
        "psr": probabilistic_sharpe_ratio(net),
        "max_drawdown": max_drawdown(net),
        "hit_rate": float((gross[active] > 0).mean()) if active.any() else float("nan"),
        "turnover_per_year": float(change.sum() / n * factor) if n else 0.0,
        "exposure": float(np.abs(positions).mean()) if n else 0.0,
        "n_bars": float(n),
        "n_position_changes": float((change > 0).sum()),
        "annualization_factor": float(factor),
    }
    return metrics, net


def run_backtest(
    signal: pd.DataFrame,
    proxy_returns: pd.Series,
    cost_bps: float = 1.0,
    periods_per_year: float = BARS_PER_YEAR,
) -> BacktestResult:
    """Trade ``signal`` (columns ``hour, decision``) against ``proxy_returns`` (forward returns by hour).

    Hours whose forward return is unknown (the window's last bar, a proxy gap) cannot be traded: they are
    excluded from all three strategies and counted in ``n_unpriced``; hours of the proxy without a
    decision are not traded either. Raises on an unknown decision or a negative cost.
    """
    if cost_bps < 0 or not math.isfinite(cost_bps):
        raise ValueError(f"cost_bps must be finite and >= 0, got {cost_bps}")
    if {"hour", "decision"} - set(signal.columns):
        raise ValueError("signal needs columns 'hour' and 'decision'")
    bad = ~signal["decision"].isin(list(POSITION_OF))
    if bad.any():
        raise ValueError(
            f"unknown decisions {signal.loc[bad, ['hour', 'decision']].head(5).to_dict('records')}"
        )
    sig = signal.sort_values("hour")
    hours = pd.DatetimeIndex(sig["hour"])
    if hours.has_duplicates:
        raise ValueError(f"signal has duplicate hours, e.g. {list(hours[hours.duplicated()][:3])}")
    fwd_all = proxy_returns.reindex(hours).to_numpy(dtype=float)
    priced = np.isfinite(fwd_all)
    n_unpriced = int((~priced).sum())
    pos_all = sig["decision"].map(POSITION_OF).to_numpy(dtype=float)
    pos, fwd, hrs = pos_all[priced], fwd_all[priced], hours[priced]
    notes = []
    if n_unpriced:
        notes.append(f"{n_unpriced} decision hour(s) without a next-bar proxy return were not traded")

    metrics, frames = {}, {}
    for name, p in (("signal", pos), ("buy_and_hold", np.ones_like(fwd)), ("flat", np.zeros_like(fwd))):
        m, net = _metrics(p, fwd, cost_bps, periods_per_year)
        metrics[name] = m
        frames[name] = net
    frame = pd.DataFrame(
        {
            "hour": hrs,
            "decision": sig["decision"].to_numpy()[priced],
            "position": pos,
            "proxy_return": fwd,
            "strategy_return": frames["signal"],
            "buy_and_hold_return": frames["buy_and_hold"],
            "flat_return": frames["flat"],
        }
    )
    for name in ("strategy", "buy_and_hold", "flat"):
        frame[f"{name}_equity"] = np.cumprod(1.0 + frame[f"{name}_return"].to_numpy())
    return BacktestResult(
        frame=frame,
        metrics=metrics,
        annualization_factor=float(periods_per_year),
        cost_bps=float(cost_bps),
        n_unpriced=n_unpriced,
        notes=notes,
    )


STRATEGIES = ("signal", "buy_and_hold", "flat")


def backtest_report(
    signal: pd.DataFrame,
    proxy_returns: pd.Series,
    cost_bps: float,
    n_trials: int,
    trials_sr_variance: float | None = None,
    periods_per_year: float = BARS_PER_YEAR,
) -> dict[str, Any]:
    """Backtest ``signal`` (``hour, decision``) and summarise it: the one report batch and the assets share.

    Returns a dict: ``metrics`` (signal / buy_and_hold / flat -> metric dict, each with
    ``annualization_factor``), ``annualization_factor``, ``cost_bps``, ``n_bars`` (traded),
    ``n_unpriced``, ``psr`` (P[true Sharpe > 0] of the signal's after-cost returns), ``dsr`` (PSR against
    the expected max Sharpe of ``n_trials`` trials), ``n_trials``, ``trials_sr_variance`` and
    ``trials_sr_variance_source``, ``expected_max_sharpe_per_bar``, ``notes``, and ``result`` (the
    ``BacktestResult``, for its per-bar frame and plots). Every key except ``result`` is JSON-able
    (floats may be NaN).

    ``trials_sr_variance``: variance of the per-bar Sharpe across the trials (e.g. the validation sweep
    table's ``per_bar_sharpe``). None: one trial needs none (DSR = PSR); with several trials the null
    sampling variance of a per-bar Sharpe estimate, 1 / (n_bars - 1), is used and stated.
    """
    if int(n_trials) < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    result = run_backtest(signal, proxy_returns, cost_bps, periods_per_year)
    net = result.frame["strategy_return"].to_numpy(dtype=float)
    n = int(net.size)
    if trials_sr_variance is not None:
        variance, source = float(trials_sr_variance), "given (variance of the trials' per-bar Sharpe)"
    elif n_trials == 1:
        variance, source = 0.0, "single trial: nothing to deflate"
    else:
        variance = 1.0 / (n - 1) if n > 1 else float("nan")
        source = "null sampling variance of a per-bar Sharpe, 1 / (n_bars - 1)"
    psr = probabilistic_sharpe_ratio(net)
    if math.isfinite(variance):
        sr0 = expected_max_sharpe(int(n_trials), variance)
        dsr = deflated_sharpe_ratio(net, int(n_trials), variance)
    else:
        sr0, dsr = float("nan"), float("nan")
    return {
        "metrics": {name: dict(result.metrics[name]) for name in STRATEGIES},
        "annualization_factor": result.annualization_factor,
        "cost_bps": result.cost_bps,
        "n_bars": n,
        "n_unpriced": result.n_unpriced,
        "psr": psr,
        "dsr": dsr,
        "n_trials": int(n_trials),
        "trials_sr_variance": variance,
        "trials_sr_variance_source": source,
        "expected_max_sharpe_per_bar": sr0,
        "notes": list(result.notes),
        "result": result,
    }


def trials_sr_variance(table: pd.DataFrame | None) -> float:
    """Sample variance (ddof=1) of the finite ``per_bar_sharpe`` values of a sweep table (0 if < 2)."""
    if table is None:
        return 0.0
    sr = table["per_bar_sharpe"].to_numpy(dtype=float)
    sr = sr[np.isfinite(sr)]
    return float(np.var(sr, ddof=1)) if sr.size > 1 else 0.0


def sweep_thresholds(
    wss_valid: pd.Series | pd.DataFrame,
    proxy_valid: pd.Series,
    grid: Iterable[tuple[float, float]] | None = None,
    cost_bps: float = 1.0,
    periods_per_year: float = BARS_PER_YEAR,
) -> tuple[float, float, pd.DataFrame]:
    """Pick (buy, sell) maximising the after-cost Sharpe on VALIDATION data only.

    ``wss_valid``: a Series of WSS indexed by hour, or the ``compute_wss`` frame (``hour, wss``). The
    caller must pass only validation hours; nothing here sees the test window. Always-flat trials score
    Sharpe 0 (no risk, no return). Ties go to the first grid entry. ``table`` has one row per trial with
    ``sharpe``, ``per_bar_sharpe`` (for the DSR trial variance), return, turnover and exposure.
    """
    if isinstance(wss_valid, pd.DataFrame):
        wss = pd.Series(wss_valid["wss"].to_numpy(dtype=float), index=pd.DatetimeIndex(wss_valid["hour"]))
    else:
        wss = wss_valid.astype(float)
    if wss.empty:
        raise ValueError("sweep_thresholds got an empty validation WSS series")
    pairs = list(grid) if grid is not None else default_threshold_grid()
    if not pairs:
        raise ValueError("sweep_thresholds got an empty grid")
    rows = []
    hours = wss.index
    for buy, sell in pairs:
        decisions = decisions_from_wss(wss.to_numpy(), buy, sell)
        res = run_backtest(
            pd.DataFrame({"hour": hours, "decision": decisions}), proxy_valid, cost_bps, periods_per_year
        )
        m = res.metrics["signal"]
        net = res.frame["strategy_return"].to_numpy()
        sr = m["sharpe"]
        rows.append(
            {
                "buy": float(buy),
                "sell": float(sell),
                "sharpe": 0.0 if not np.isfinite(sr) and m["exposure"] == 0 else sr,
                "per_bar_sharpe": per_period_sharpe(net) if m["exposure"] > 0 else 0.0,
                "total_return": m["total_return"],
                "turnover_per_year": m["turnover_per_year"],
                "exposure": m["exposure"],
                "n_bars": m["n_bars"],
            }
        )
    table = pd.DataFrame(rows)
    score = table["sharpe"].fillna(-np.inf).to_numpy()
    best = int(np.argmax(score))
    return float(table.loc[best, "buy"]), float(table.loc[best, "sell"]), table
