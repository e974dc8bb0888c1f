"""Seeded 1-hour bar simulator with a planted, known amount of short-term predictability.

Every path is simulated from a fixed `epoch` (2022-01-03) on the XNYS bar grid, so any sub-range equals
the same range of a longer fetch; a symbol's path depends only on (seed, symbol) through a stable hash,
the market factor only on the seed.

Model, per symbol i and bar t (log returns; k = bar of day, s_k an intraday U-shaped volatility factor):

    z_t        i.i.d. Student-t (5 dof), unit variance, clipped to +-8    (idiosyncratic shock)
    sigma2_t = omega + a * sigma2_{t-1} * z_{t-1}^2 + b * sigma2_{t-1}  (GARCH(1,1), a=0.06, b=0.90)
    v_t      = s_k * sigma_t                                             (current volatility)
    m_t      = w_t * e_t - KAPPA_MARKET * predictability * e_{t-1} * w_t    (market factor: GARCH/Student-t
               shock e_t with volatility w_t, seeded by `seed` alone, and a planted INDEX-level reversal)
    r_t      = beta_i * m_t + v_t * z_t + mu_t                            (open -> close)
    mu_t     = -KAPPA * predictability * z_{t-1} * v_t                    (planted reversal)
    gap_t    = beta_i * g_t + u_t on the first bar of a session, else 0   (previous close -> open)

so E[r_t | past] = -beta_i * KAPPA_MARKET * predictability * e_{t-1} * w_t - KAPPA * predictability *
z_{t-1} * v_t: a reversal of the previous standardised market shock (what an index timing signal can
trade: the idiosyncratic part averages out across constituents, the market part does not) and of the
previous standardised idiosyncratic shock (what ranks symbols against each other), each scaled by its
current volatility. At predictability 0.7 the market factor's next-bar correlation with e_{t-1} is about
-0.2. With KAPPA = 0.65 the correlation of the next
bar's close-to-close return (divided by v_t) with z_{t-1} is about -0.25 at predictability 0.5 (and
-0.45 at 1.0); at predictability 0 the returns have no dependence on the past in their mean (only
volatility clusters). Bars: open_t = close_{t-1} * exp(gap_t), close_t = open_t * exp(r_t), high/low
extend max/min(open, close) by exponential wicks of size ~ v_t / 2, volume follows an intraday U-shape
times lognormal noise times (1 + 0.5 |z_t|).

What `predictability=1.0` (DEFAULT_PREDICTABILITY) means: the planted part of the next bar's return is
-0.65 z_{t-1} v_t, a reversal of about two thirds of the previous standardised shock; corr(next
standardised return, z_{t-1}) ~ -0.45 (-0.25 at 0.5, -0.33 at 0.7). That is strong next to anything real
(hourly reversal in real large caps is a few hundredths, and real-dev shows no significant directional IC):
it is a TEST SIGNAL, sized so the default `market-master run` promotes under the gates on the traded index
signal (walk-forward timing IC and after-cost DSR over every trial); 0.7 failed the DSR gate on one default
window (DSR 0.857). The IC sees the signal from 0.3 up (hour-clustered z > 3). See docs/modelling.md, "Planted signal and the default".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_master.lib.bars import BAR_COLUMNS
from market_master.lib.calendar import TimeLike, bar_of_day, to_timestamp, trading_bars
from market_master.lib.proxy import DEFAULT_PROXY_SYMBOLS
from market_master.lib.weights import embedded_top10

# The embedded default's planted signal: a TEST signal, far stronger than anything real. 1.0 since the
# gates judge the traded index signal on walk-forward hours (DSR over every trial): 0.7 failed the
# economics gate on the default run's window of 2026-12-04 (Sharpe 3.33 vs buy-and-hold 1.92, DSR 0.857 <
# 0.95 with 14 trials on 1,239 OOS hours) although its timing IC was z 4.6; 1.0 passed every gate on the
# windows ending 2026-12-04 and 2026-06-30 (DSR 1.000, timing IC z 7.5 / 7.8). docs/modelling.md.
DEFAULT_PREDICTABILITY = 1.0

KAPPA = 0.65
KAPPA_MARKET = 0.3
T_DOF = 5.0
GARCH_A = 0.06
GARCH_B = 0.90
SHOCK_CLIP = 8.0
MARKET_VOL = 0.003
MARKET_GAP_VOL = 0.003
REST_IDIO_VOL = 0.0008  # the rest of the index (~90 names): a diversified residual next to the market factor
REST_GAP_VOL = 0.0008
INTRADAY_VOL = np.array([1.35, 1.05, 0.9, 0.85, 0.85, 0.95, 1.1])
INTRADAY_VOLUME = np.array([2.0, 1.3, 1.0, 0.85, 0.85, 1.0, 1.6])

_STREAM_SHOCK, _STREAM_GAP, _STREAM_WICK, _STREAM_VOLUME, _STREAM_PARAMS = range(5)


def stable_hash(text: str) -> int:
    """A process-independent 63-bit hash (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") >> 1


def _std_t(rng: np.random.Generator, n: int) -> np.ndarray:
    z = rng.standard_t(T_DOF, size=n) * np.sqrt((T_DOF - 2.0) / T_DOF)
    return np.clip(z, -SHOCK_CLIP, SHOCK_CLIP)


def _garch_sigma(z: np.ndarray, unconditional_var: np.ndarray) -> np.ndarray:
    """sigma_t for shocks z of shape (n, k): sigma2_t = omega + (a z_{t-1}^2 + b) sigma2_{t-1}."""
    omega = unconditional_var * (1.0 - GARCH_A - GARCH_B)
    coef = GARCH_A * z**2 + GARCH_B
    sig2 = np.empty_like(z)
    sig2[0] = unconditional_var
    for t in range(1, len(z)):
        sig2[t] = omega + coef[t - 1] * sig2[t - 1]
    return np.sqrt(sig2)


def _tile_timestamps(index: pd.DatetimeIndex, times: int) -> pd.DatetimeIndex:
    ns = np.tile(index.tz_convert("UTC").as_unit("ns").asi8, times)
    return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC").tz_convert(index.tz)


@dataclass(frozen=True)
class SimulatedPaths:
    """Bars plus the hidden state that generated them (rows aligned with `bars`)."""

    bars: pd.DataFrame
    shock: np.ndarray
    volatility: np.ndarray


class SyntheticSource:
    """Deterministic simulator; `fetch` returns canonical bars for any range after `epoch`."""

    name = "synthetic"

    def __init__(
        self,
        seed: int = 42,
        predictability: float = DEFAULT_PREDICTABILITY,
        epoch: TimeLike = "2022-01-03",
        proxies: Iterable[str] | None = None,
        proxy_weights: Mapping[str, float] | None = None,
    ) -> None:
        """`proxies`: symbols simulated as the index proxy (default `lib.proxy.DEFAULT_PROXY_SYMBOLS`);
        `proxy_weights`: the constituents inside the proxy as fractions of the whole index (default the
        embedded QQQ top-10); the rest of the index (1 - their sum) is the market factor plus a small
        diversified residual."""
        if not 0.0 <= predictability <= 1.5:
            raise ValueError(f"predictability must be in [0, 1.5], got {predictability}")
        self.seed = int(seed)
        self.predictability = float(predictability)
        self.epoch = to_timestamp(epoch)
        self.proxies = frozenset(DEFAULT_PROXY_SYMBOLS if proxies is None else (str(p) for p in proxies))
        weights = dict(embedded_top10().weights if proxy_weights is None else proxy_weights)
        bad = [s for s in weights if s in self.proxies]
        total = float(sum(weights.values()))
        if bad or not weights or min(weights.values()) < 0 or total > 1.0:
            raise ValueError(
                f"proxy_weights must weight non-proxy constituents, >= 0, summing to <= 1 (got {weights})"
            )
        self.proxy_weights = dict(sorted(weights.items()))

    def fetch(self, symbols: Sequence[str], start: TimeLike, end: TimeLike) -> pd.DataFrame:
        """Canonical bars for `symbols` with start <= bar start <= end."""
        return self.simulate(symbols, start, end).bars

    def simulate(self, symbols: Sequence[str], start: TimeLike, end: TimeLike) -> SimulatedPaths:
        """Bars plus the standardised shocks z_t and current volatilities v_t behind them."""
        start_ts = to_timestamp(start)
        if start_ts < self.epoch:
            raise ValueError(f"start {start_ts} precedes the simulation epoch {self.epoch}")
        syms = sorted(dict.fromkeys(str(s) for s in symbols))
        if not syms:
            raise ValueError("no symbols requested")
        grid = trading_bars(self.epoch, end)
        keep = np.asarray(grid >= start_ts)
        n_all, n_keep = len(grid), int(keep.sum())
        if n_keep == 0:
            bars = pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS})
            bars["symbol"] = bars["symbol"].astype(object)
            bars["timestamp"] = pd.DatetimeIndex([], tz=grid.tz)
            return SimulatedPaths(bars, np.empty(0), np.empty(0))
        k = bar_of_day(grid)
        first = k == 0
        season = INTRADAY_VOL[k][:, None]

        m_rng = np.random.default_rng([self.seed, 0, _STREAM_SHOCK])
        e = _std_t(m_rng, n_all)[:, None]
        m_sigma = season * _garch_sigma(e, np.array([MARKET_VOL**2]))
        e_prev = np.vstack([np.zeros((1, 1)), e[:-1]])
        # planted INDEX timing: the market factor partly reverses its previous standardised shock
        m = m_sigma * e - KAPPA_MARKET * self.predictability * e_prev * m_sigma
        g_rng = np.random.default_rng([self.seed, 0, _STREAM_GAP])
        g = np.where(first[:, None], MARKET_GAP_VOL * _std_t(g_rng, n_all)[:, None], 0.0)

        const = [s for s in syms if s not in self.proxies]
        proxies = [s for s in syms if s in self.proxies]
        cols: dict[str, list[np.ndarray]] = {c: [] for c in ("open", "high", "low", "close", "volume")}
        shocks, vols, order = [], [], []
        if const:
            p = self._constituent_paths(const, n_all, k, first, season, m, g)
            for c in cols:
                cols[c].append(p[c])
            shocks.append(p["z"])
            vols.append(p["vol"])
            order += const
        for sym in proxies:
            p = self._proxy_path(sym, n_all, k, first, season, m, g, m_sigma)
            for c in cols:
                cols[c].append(p[c])
            shocks.append(p["z"])
            vols.append(p["vol"])
            order.append(sym)
        perm = np.argsort(np.array(order, dtype=object), kind="stable")
        syms = [order[i] for i in perm]
        arrays = {c: np.hstack(a)[:, perm] for c, a in cols.items()}
        z = np.hstack(shocks)[:, perm]
        vol = np.hstack(vols)[:, perm]

        n_sym = len(syms)
        bars = pd.DataFrame(
            {
                "symbol": np.repeat(np.array(syms, dtype=object), n_keep),
                "timestamp": _tile_timestamps(grid[keep], n_sym),
                **{c: a[keep].T.reshape(-1) for c, a in arrays.items()},
            }
        )
        return SimulatedPaths(bars[BAR_COLUMNS], z[keep].T.reshape(-1), vol[keep].T.reshape(-1))

    def _constituent_paths(
        self,
        syms: list[str],
        n_all: int,
        k: np.ndarray,
        first: np.ndarray,
        season: np.ndarray,
        m: np.ndarray,
        g: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """OHLCV, shocks z, volatilities, log returns r (open -> close) and gaps of constituents, (n_all, n)."""
        z, u, wick, vnoise = (np.empty((n_all, len(syms))) for _ in range(4))
        wick2 = np.empty((n_all, len(syms)))
        beta, idio_vol, price0, base_volume = (np.empty(len(syms)) for _ in range(4))
        for j, sym in enumerate(syms):
            h = stable_hash(sym)
            p = np.random.default_rng([self.seed, h, _STREAM_PARAMS]).random(5)
            beta[j] = 0.8 + 0.4 * p[0]
            idio_vol[j] = 0.003 + 0.003 * p[1]
            price0[j] = 20.0 + 480.0 * p[2]
            base_volume[j] = 10 ** (5.5 + 1.5 * p[3])
            gap_vol = 0.003 + 0.003 * p[4]
            z[:, j] = _std_t(np.random.default_rng([self.seed, h, _STREAM_SHOCK]), n_all)
            u[:, j] = gap_vol * _std_t(np.random.default_rng([self.seed, h, _STREAM_GAP]), n_all)
            w = np.random.default_rng([self.seed, h, _STREAM_WICK]).standard_exponential((n_all, 2))
            wick[:, j], wick2[:, j] = w[:, 0], w[:, 1]
            vnoise[:, j] = np.random.default_rng([self.seed, h, _STREAM_VOLUME]).standard_normal(n_all)

        vol = season * _garch_sigma(z, idio_vol**2)
        z_prev = np.vstack([np.zeros((1, len(syms))), z[:-1]])
        mu = -KAPPA * self.predictability * z_prev * vol
        r = beta * m + vol * z + mu
        gap = np.where(first[:, None], beta * g + u, 0.0)
        gap[0] = 0.0
        log_close = np.log(price0) + np.cumsum(gap + r, axis=0)
        close = np.exp(log_close)
        open_ = np.exp(log_close - r)
        high = np.maximum(open_, close) * np.exp(0.5 * vol * wick)
        low = np.minimum(open_, close) * np.exp(-0.5 * vol * wick2)
        volume = np.round(
            base_volume * INTRADAY_VOLUME[k][:, None] * np.exp(0.3 * vnoise) * (1.0 + 0.5 * np.abs(z))
        )
        return {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "z": z,
            "vol": vol,
            "r": r,
            "gap": gap,
            "beta": beta,
        }

    def _proxy_path(
        self,
        sym: str,
        n_all: int,
        k: np.ndarray,
        first: np.ndarray,
        season: np.ndarray,
        m: np.ndarray,
        g: np.ndarray,
        m_sigma: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """The index proxy, consistent with its simulated constituents (log returns, bar by bar):

            r_P   = sum_i w_i r_i + w_rest (m_t + s_k sigma_rest_t e_t)          (open -> close)
            gap_P = sum_i w_i gap_i + w_rest (g_t + u_t) on a session's first bar (previous close -> open)

        with w_i the constituents' fractions of the whole index (`proxy_weights`), w_rest = 1 - sum w_i
        the rest of the index, driven by the SAME market factor m_t (beta 1) plus a small diversified
        GARCH residual (REST_IDIO_VOL). The planted reversal of the constituents flows in with their
        weights. Depends only on (seed, proxy symbol, proxy_weights), never on the requested symbols.
        """
        names = list(self.proxy_weights)
        w = np.array([self.proxy_weights[s] for s in names])
        w_rest = max(0.0, 1.0 - float(w.sum()))
        c = self._constituent_paths(names, n_all, k, first, season, m, g)
        h = stable_hash(sym)
        p = np.random.default_rng([self.seed, h, _STREAM_PARAMS]).random(5)
        price0 = 100.0 + 400.0 * p[2]
        base_volume = 10 ** (6.5 + 1.0 * p[3])
        e_rest = _std_t(np.random.default_rng([self.seed, h, _STREAM_SHOCK]), n_all)[:, None]
        rest_vol = season * _garch_sigma(e_rest, np.array([REST_IDIO_VOL**2]))
        u_rest = REST_GAP_VOL * _std_t(np.random.default_rng([self.seed, h, _STREAM_GAP]), n_all)[:, None]
        r = c["r"] @ w[:, None] + w_rest * (m + rest_vol * e_rest)
        gap = c["gap"] @ w[:, None] + w_rest * np.where(first[:, None], g + u_rest, 0.0)
        gap[0] = 0.0
        beta_p = float(c["beta"] @ w) + w_rest
        vol = np.sqrt((c["vol"] ** 2) @ (w**2)[:, None] + (w_rest * rest_vol) ** 2 + (beta_p * m_sigma) ** 2)
        z = r / vol
        wk = np.random.default_rng([self.seed, h, _STREAM_WICK]).standard_exponential((n_all, 2))
        vnoise = np.random.default_rng([self.seed, h, _STREAM_VOLUME]).standard_normal((n_all, 1))
        log_close = np.log(price0) + np.cumsum(gap + r, axis=0)
        close = np.exp(log_close)
        open_ = np.exp(log_close - r)
        high = np.maximum(open_, close) * np.exp(0.5 * vol * wk[:, :1])
        low = np.minimum(open_, close) * np.exp(-0.5 * vol * wk[:, 1:])
        volume = np.round(
            base_volume * INTRADAY_VOLUME[k][:, None] * np.exp(0.3 * vnoise) * (1.0 + 0.5 * np.abs(z))
        )
        return {"open": open_, "high": high, "low": low, "close": close, "volume": volume, "z": z, "vol": vol}
