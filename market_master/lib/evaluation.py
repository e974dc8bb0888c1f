"""Classification metrics for the five classes, timing/size, session split, bootstrap SE and IC."""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, f1_score, log_loss

from market_master.lib.calendar import TZ
from market_master.lib.labels import CLASSES

K = len(CLASSES)
LABELS = list(range(K))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of the five classes' F1 (a class never true nor predicted scores 0)."""
    return float(f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None) -> dict:
    """macro_f1, accuracy, f1_<class>, log_loss (when probabilities are given), n."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    out: dict[str, float] = {"n": float(len(y_true))}
    if len(y_true) == 0:
        return out | {"macro_f1": float("nan"), "accuracy": float("nan")}
    out["macro_f1"] = macro_f1(y_true, y_pred)
    out["accuracy"] = float(accuracy_score(y_true, y_pred))
    per = f1_score(y_true, y_pred, labels=LABELS, average=None, zero_division=0)
    out |= {f"f1_{c}": float(v) for c, v in zip(CLASSES, per, strict=True)}
    if proba is not None:
        p = np.clip(np.asarray(proba, dtype=np.float64), 1e-15, 1.0)
        p = p / p.sum(axis=1, keepdims=True)
        out["log_loss"] = float(log_loss(y_true, p, labels=LABELS))
    return out


def session_split_metrics(y_true: np.ndarray, y_pred: np.ndarray, is_last_bar: np.ndarray) -> dict:
    """macro-F1 and accuracy on intraday transitions vs overnight ones (from the session's last bar)."""
    last = np.asarray(is_last_bar).astype(bool)
    out = {}
    for name, mask in (("intraday", ~last), ("overnight", last)):
        m = classification_metrics(np.asarray(y_true)[mask], np.asarray(y_pred)[mask])
        out[f"{name}_macro_f1"] = m["macro_f1"]
        out[f"{name}_accuracy"] = m["accuracy"]
        out[f"{name}_n"] = m["n"]
    return out


def _confusions(y_true: np.ndarray, y_pred: np.ndarray, block: np.ndarray) -> np.ndarray:
    """(n_blocks, K*K) confusion counts per block."""
    codes, uniques = pd.factorize(block)
    flat = codes * K * K + y_true * K + y_pred
    return np.bincount(flat, minlength=len(uniques) * K * K).reshape(len(uniques), K * K).astype(float)


def _macro_f1_from_confusion(conf: np.ndarray) -> np.ndarray:
    """macro-F1 for each row of (B, K*K) confusion counts (true x pred)."""
    c = conf.reshape(-1, K, K)
    tp = np.einsum("bkk->bk", c)
    pred = c.sum(axis=1)
    true = c.sum(axis=2)
    denom = pred + true
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return f1.mean(axis=1)


@dataclass(frozen=True)
class BootstrapResult:
    diff: float
    se: float
    n_blocks: int
    n_boot: int

    @property
    def z(self) -> float:
        return self.diff / self.se if self.se > 0 else float("inf") * np.sign(self.diff)


def paired_bootstrap_macro_f1(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    blocks: np.ndarray,
    n_boot: int = 500,
    seed: int = 0,
) -> BootstrapResult:
    """macro-F1(a) - macro-F1(b) and its bootstrap SE, resampling whole blocks (e.g. hours) with replacement.

    All symbols of one hour move together (market factor), so rows are resampled by hour, not one by one.
    """
    y = np.asarray(y_true, dtype=np.int64)
    ca = _confusions(y, np.asarray(pred_a, dtype=np.int64), np.asarray(blocks))
    cb = _confusions(y, np.asarray(pred_b, dtype=np.int64), np.asarray(blocks))
    diff = float(
        _macro_f1_from_confusion(ca.sum(0, keepdims=True))[0]
        - _macro_f1_from_confusion(cb.sum(0, keepdims=True))[0]
    )
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(ca), np.full(len(ca), 1.0 / len(ca)), size=n_boot).astype(float)
    d = _macro_f1_from_confusion(w @ ca) - _macro_f1_from_confusion(w @ cb)
    return BootstrapResult(diff=diff, se=float(d.std(ddof=1)), n_blocks=len(ca), n_boot=n_boot)


def information_coefficient(
    score: np.ndarray, next_return: np.ndarray, hours: np.ndarray | None = None
) -> dict:
    """Spearman correlation of the expected score with the realised next return.

    `ic_z` = atanh(ic) sqrt(n-3) treats rows as independent; rows of one hour share the market factor, so
    it is optimistic. With `hours` given, the hour-clustered version is added: the Spearman IC within each
    hour (hours with >= 3 usable rows and non-constant score and return), `ic_hour_mean` = their mean and
    `ic_hour_z` = mean / (std / sqrt(n_hours)), with `ic_hours` = n_hours. Read `ic_hour_z` for significance.
    """
    s = np.asarray(score, dtype=float)
    r = np.asarray(next_return, dtype=float)
    ok = np.isfinite(s) & np.isfinite(r)
    n = int(ok.sum())
    out = {"ic": 0.0, "ic_z": 0.0, "ic_n": float(n)}
    if n >= 4 and np.ptp(s[ok]) > 0:
        ic = float(spearmanr(s[ok], r[ok]).statistic)
        out |= {"ic": ic, "ic_z": float(np.arctanh(np.clip(ic, -0.999999, 0.999999)) * np.sqrt(n - 3))}
    if hours is not None:
        if len(hours) != len(s):
            raise ValueError(f"information_coefficient: {len(hours)} hours for {len(s)} scores")
        out |= hour_clustered_ic(s[ok], r[ok], np.asarray(hours)[ok])
    return out


def hour_clustered_ic(score: np.ndarray, next_return: np.ndarray, hours: np.ndarray) -> dict:
    """Per-hour Spearman IC, then its mean and z = mean / (std / sqrt(n_hours)) over the hours."""
    frame = pd.DataFrame({"h": hours, "s": score, "r": next_return})
    ranks = frame.groupby("h", sort=False)[["s", "r"]].rank()
    ranks["h"] = frame["h"]
    g = ranks.groupby("h", sort=False)
    dev = ranks[["s", "r"]] - g[["s", "r"]].transform("mean")
    dev["h"] = frame["h"]
    dev["sr"] = dev["s"] * dev["r"]
    dev["ss"] = dev["s"] ** 2
    dev["rr"] = dev["r"] ** 2
    agg = dev.groupby("h", sort=False)[["sr", "ss", "rr"]].sum()
    agg["n"] = g.size()
    valid = (agg["n"] >= 3) & (agg["ss"] > 0) & (agg["rr"] > 0)
    per_hour = (agg["sr"] / np.sqrt(agg["ss"] * agg["rr"]))[valid].to_numpy()
    k = len(per_hour)
    if k < 2:
        return {"ic_hour_mean": 0.0, "ic_hour_z": 0.0, "ic_hours": float(k)}
    mean = float(per_hour.mean())
    sd = float(per_hour.std(ddof=1))
    z = mean / (sd / np.sqrt(k)) if sd > 0 else 0.0
    return {"ic_hour_mean": mean, "ic_hour_z": float(z), "ic_hours": float(k)}


def model_size_bytes(obj: object) -> int:
    """Pickled size in bytes."""
    return len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def best_call_times_ms(call, n: int, rounds: int) -> dict[str, np.ndarray]:
    """`call(i)` for i in 0..n-1, `rounds` times (after one warm-up call): each i's BEST time in ms, by two
    clocks. `cpu`: CPU time of this process (`time.process_time`), which other processes on a busy machine
    do not inflate: what a latency verdict should use. `wall`: elapsed time, for information."""
    if n < 1 or rounds < 1:
        raise ValueError(f"n and rounds must be >= 1, got n={n}, rounds={rounds}")
    call(0)
    cpu, wall = np.full(n, np.inf), np.full(n, np.inf)
    for _ in range(rounds):
        for i in range(n):
            c0, w0 = time.process_time(), time.perf_counter()
            call(i)
            w1, c1 = time.perf_counter(), time.process_time()
            cpu[i], wall[i] = min(cpu[i], c1 - c0), min(wall[i], w1 - w0)
    return {"cpu": cpu * 1e3, "wall": wall * 1e3}


def single_row_latency_ms(predict, frame: pd.DataFrame, n_rows: int = 100, rounds: int = 3) -> dict:
    """p50/p99 of predict(one-row frame) in ms (CPU time) over `n_rows` rows, each row's best of `rounds`."""
    rows = [frame.iloc[[i]] for i in range(min(n_rows, len(frame)))]
    if not rows:
        return {"latency_p50_ms": float("nan"), "latency_p99_ms": float("nan")}
    ms = best_call_times_ms(lambda i: predict(rows[i]), len(rows), rounds)["cpu"]
    return {"latency_p50_ms": float(np.percentile(ms, 50)), "latency_p99_ms": float(np.percentile(ms, 99))}


def time_series_ic(signal: np.ndarray, forward_return: np.ndarray, hours: np.ndarray) -> dict:
    """Index timing skill: the Spearman correlation, over hours, of one signal value per hour (the WSS, or
    the pooled expected score) with the index proxy's next-bar return, and its DAY-clustered z.

    Both series are ranked (ties averaged) over the hours where both are finite and standardised, so the
    IC is the mean of the products u_t = x_t y_t. Hours of one session share news and volatility, so the
    standard error is clustered by session date: SE^2 = G/(G-1) * sum_d (sum_{t in d} (u_t - IC))^2 / n^2
    (G sessions, n hours). Returns ``ts_ic``, ``ts_ic_se``, ``ts_ic_z``, ``ts_ic_hours``, ``ts_ic_days``;
    IC 0 and z 0 when the signal is constant (a signal that never varies cannot time anything)."""
    s = np.asarray(signal, dtype=float)
    r = np.asarray(forward_return, dtype=float)
    if not len(s) == len(r) == len(hours):
        raise ValueError(f"time_series_ic: {len(s)} signals, {len(r)} returns, {len(hours)} hours")
    ok = np.isfinite(s) & np.isfinite(r)
    n = int(ok.sum())
    stamps = pd.DatetimeIndex(np.asarray(hours)[ok])
    days = (stamps if stamps.tz is not None else stamps.tz_localize("UTC")).tz_convert(TZ).normalize()
    g = int(len(pd.unique(days)))
    out = {
        "ts_ic": 0.0,
        "ts_ic_se": float("nan"),
        "ts_ic_z": 0.0,
        "ts_ic_hours": float(n),
        "ts_ic_days": float(g),
    }
    if n < 4 or g < 2 or np.ptp(s[ok]) == 0 or np.ptp(r[ok]) == 0:
        return out
    x = pd.Series(s[ok]).rank().to_numpy()
    y = pd.Series(r[ok]).rank().to_numpy()
    x = (x - x.mean()) / x.std()
    y = (y - y.mean()) / y.std()
    u = x * y
    ic = float(u.mean())
    sums = pd.Series(u - ic).groupby(days.asi8).sum().to_numpy()
    se = float(np.sqrt(g / (g - 1) * (sums**2).sum()) / n)
    out |= {"ts_ic": ic, "ts_ic_se": se, "ts_ic_z": ic / se if se > 0 else 0.0}
    return out
