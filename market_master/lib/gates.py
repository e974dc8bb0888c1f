"""Promotion gates: predicates with numbers in and a verdict + metadata out (no registry side effects).

Each gate returns a `GateResult`; `all_passed(results)` combines them. Defaults and their reasons are in
docs/gates_and_promotion.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from market_master.lib.evaluation import best_call_times_ms
from market_master.lib.psi import DEFAULT_PSI_THRESHOLD, DRIFTED_SHARE_LIMIT, feature_drift_table

if TYPE_CHECKING:
    from market_master.lib.mlflow_adapter import MlflowAdapter

MetadataValue = float | int | str | bool | list | dict | None

# Default gate thresholds: the one home (the Dagster GateSettings resource reads them; reasons in the docs).
BASELINE_MARGIN = 0.01
MIN_Z = 2.0
MIN_TIMING_Z = 2.0  # index timing: day-clustered z of the WSS's time-series IC
MIN_DSR = 0.95  # index economics: P[after-cost Sharpe > the best of n_trials by luck]
MIN_COMPARABLE_HOURS = 7  # not worse than Production: at least one session neither model saw
PRODUCTION_TOLERANCE = -0.005
# Latency, per serving path (docs/gates_and_promotion.md: "Latency budgets"):
HOURLY_BATCH_SLO_MS = 1000.0  # predict every constituent of one hour: 1 s of an hour's budget
API_PREDICT_SLO_MS = 50.0  # one whole POST /predict in process: half of a 100 ms interactive budget


@dataclass(frozen=True)
class GateResult:
    """Verdict of one gate: `reason` is a sentence a human reads; `metadata` holds the numbers."""

    name: str
    passed: bool
    reason: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


def all_passed(results: Sequence[GateResult]) -> bool:
    return bool(results) and all(r.passed for r in results)


def _require_finite(**values: float) -> None:
    bad = {k: v for k, v in values.items() if v is None or not math.isfinite(v)}
    if bad:
        raise ValueError(f"gate inputs must be finite numbers: {bad}")


def champion_beats_baseline(
    champion_f1: float,
    best_baseline_f1: float,
    margin: float = BASELINE_MARGIN,
    bootstrap_se: float | None = None,
    min_z: float = MIN_Z,
) -> GateResult:
    """Champion macro-F1 must beat the best baseline by `margin` and, given an SE, by `min_z` SEs."""
    _require_finite(champion_f1=champion_f1, best_baseline_f1=best_baseline_f1, margin=margin)
    diff = champion_f1 - best_baseline_f1
    meta: dict[str, MetadataValue] = {
        "champion_f1": champion_f1,
        "best_baseline_f1": best_baseline_f1,
        "diff": diff,
        "margin": margin,
        "bootstrap_se": bootstrap_se,
        "min_z": min_z,
        "z": None,
    }
    if bootstrap_se is not None:
        _require_finite(bootstrap_se=bootstrap_se)
        if bootstrap_se <= 0:
            raise ValueError(f"bootstrap_se must be > 0, got {bootstrap_se}")
        meta["z"] = diff / bootstrap_se
    if diff < margin:
        return GateResult(
            "champion_beats_baseline", False, f"macro-F1 gain {diff:+.4f} < margin {margin}", meta
        )
    if meta["z"] is not None and meta["z"] < min_z:
        return GateResult(
            "champion_beats_baseline",
            False,
            f"macro-F1 gain {diff:+.4f} is only {meta['z']:.2f} bootstrap SEs (< {min_z})",
            meta,
        )
    return GateResult("champion_beats_baseline", True, f"macro-F1 gain {diff:+.4f} >= margin {margin}", meta)


def champion_not_worse_than_production(
    champion_f1: float | None,
    production_f1: float | None,
    tolerance: float = PRODUCTION_TOLERANCE,
    comparable_hours: int | None = None,
    min_hours: int = MIN_COMPARABLE_HOURS,
) -> GateResult:
    """Champion macro-F1 minus Production's must be >= tolerance, both scored on the same hours that
    NEITHER model trained or was selected on (``comparable_hours`` of them). No Production model, or fewer
    than ``min_hours`` such hours: nothing to compare, and the verdict says so (it passes: the other gates
    judge the champion on its own out-of-sample hours) instead of scoring rows a model has seen."""
    name = "champion_not_worse_than_production"
    if production_f1 is None and comparable_hours is None:
        meta = {"champion_f1": champion_f1, "production_f1": None, "note": "no Production model yet"}
        return GateResult(name, True, "no Production model yet", meta)
    meta: dict[str, MetadataValue] = {
        "champion_f1": champion_f1,
        "production_f1": production_f1,
        "comparable_hours": comparable_hours,
        "min_hours": min_hours,
        "tolerance": tolerance,
    }
    if comparable_hours is not None and comparable_hours < min_hours:
        reason = (
            f"not compared: {comparable_hours} hour(s) that neither model trained or was selected on "
            f"(< {min_hours}); no in-sample rows are scored"
        )
        return GateResult(name, True, reason, meta)
    _require_finite(champion_f1=champion_f1, production_f1=production_f1, tolerance=tolerance)
    diff = champion_f1 - production_f1
    meta["diff"] = diff
    where = f" on {comparable_hours} hours neither model saw" if comparable_hours is not None else ""
    if diff < tolerance:
        return GateResult(name, False, f"champion is {diff:+.4f} vs Production{where} (< {tolerance})", meta)
    return GateResult(name, True, f"champion is {diff:+.4f} vs Production{where} (>= {tolerance})", meta)


def signal_has_index_timing_skill(timing: dict, min_z: float = MIN_TIMING_Z) -> GateResult:
    """The traded signal times the index: the time-series IC of the WSS against the proxy's next-bar return
    (``evaluation.time_series_ic``: ``ts_ic``, ``ts_ic_z`` day-clustered) must be positive with z >= min_z.
    The pooled expected score's IC (``pooled_ts_ic``...) and the cross-sectional IC ride along as
    diagnostics: ranking symbols against each other is not what /NQ trades."""
    name = "signal_has_index_timing_skill"
    ic, z = timing.get("ts_ic"), timing.get("ts_ic_z")
    meta: dict[str, MetadataValue] = {**timing, "min_z": min_z}
    if (
        ic is None
        or z is None
        or not (math.isfinite(ic) and math.isfinite(z))
        or not timing.get("ts_ic_hours")
    ):
        return GateResult(name, False, "index timing IC is undefined (no priced out-of-sample hours)", meta)
    hours = int(timing["ts_ic_hours"])
    if ic <= 0 or z < min_z:
        return GateResult(
            name,
            False,
            f"WSS timing IC {ic:+.4f} (day-clustered z={z:.2f}, {hours} h) is not significant (< {min_z})",
            meta,
        )
    return GateResult(
        name, True, f"WSS timing IC {ic:+.4f} with day-clustered z={z:.2f} >= {min_z} ({hours} h)", meta
    )


def signal_beats_flat_and_buy_and_hold(report: dict, min_dsr: float = MIN_DSR) -> GateResult:
    """Index economics of the decision rule on the out-of-sample hours (``backtest.backtest_report``):
    the after-cost Sharpe must beat flat after deflation (DSR >= min_dsr, trial count = every candidate,
    decision rule and threshold pair tried) and beat buy-and-hold's Sharpe on the same hours."""
    name = "signal_beats_flat_and_buy_and_hold"
    sig, bh = report["metrics"]["signal"], report["metrics"]["buy_and_hold"]
    meta: dict[str, MetadataValue] = {
        "signal_sharpe": sig["sharpe"],
        "buy_and_hold_sharpe": bh["sharpe"],
        "signal_total_return": sig["total_return"],
        "buy_and_hold_total_return": bh["total_return"],
        "flat_total_return": 0.0,
        "psr": report["psr"],
        "dsr": report["dsr"],
        "n_trials": report["n_trials"],
        "n_bars": report["n_bars"],
        "cost_bps": report["cost_bps"],
        "min_dsr": min_dsr,
    }
    dsr, s, b = report["dsr"], sig["sharpe"], bh["sharpe"]
    if not (math.isfinite(dsr) and math.isfinite(s)):
        return GateResult(name, False, "Sharpe / DSR undefined (no position taken or no priced hours)", meta)
    text = (
        f"after {report['cost_bps']:g} bp costs over {report['n_bars']} OOS hours: Sharpe {s:.2f} vs "
        f"buy-and-hold {b:.2f}, DSR {dsr:.3f} ({report['n_trials']} trials)"
    )
    if dsr < min_dsr:
        return GateResult(name, False, f"{text}: DSR < {min_dsr}", meta)
    if math.isfinite(b) and s <= b:
        return GateResult(name, False, f"{text}: not better than buy-and-hold", meta)
    return GateResult(name, True, text, meta)


def feature_drift_below_limit(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    columns: Sequence[str],
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    max_drifted_share: float = DRIFTED_SHARE_LIMIT,
) -> GateResult:
    """Share of features with PSI > psi_threshold (bins from the reference) must be <= max_drifted_share."""
    table = feature_drift_table(reference_df, current_df, columns, psi_threshold=psi_threshold)
    drifted = table.loc[table["drifted"], "column"].tolist()
    share = len(drifted) / len(table)
    meta: dict[str, MetadataValue] = {
        "drifted_share": share,
        "n_drifted": len(drifted),
        "n_columns": len(table),
        "drifted_columns": drifted,
        "psi": {c: float(p) for c, p in zip(table["column"], table["psi"], strict=True)},
        "psi_threshold": psi_threshold,
        "max_drifted_share": max_drifted_share,
    }
    passed = share <= max_drifted_share
    verb = "<=" if passed else ">"
    return GateResult(
        "feature_drift_below_limit",
        passed,
        f"{len(drifted)}/{len(table)} features drifted (share {share:.2f} {verb} {max_drifted_share})",
        meta,
    )


def _timed_verdict(
    name: str, call: Callable[[int], object], n: int, rounds: int, slo_ms: float, what: str
) -> GateResult:
    """p99 over `n` calls (`call(i)`) of each call's best CPU time across `rounds` <= slo_ms. CPU time of
    this process (all its threads: OpenMP workers spinning count), not elapsed time: another process on a
    busy 2-core machine pre-empts the call and inflates its wall time, but not the CPU the serving path
    itself spends. The wall-clock p99 is reported beside it."""
    times = best_call_times_ms(call, n, rounds)
    p99 = float(np.percentile(times["cpu"], 99))
    meta: dict[str, MetadataValue] = {
        "p99_ms": p99,
        "p50_ms": float(np.percentile(times["cpu"], 50)),
        "max_ms": float(times["cpu"].max()),
        "p99_wall_ms": float(np.percentile(times["wall"], 99)),
        "measured_as": f"CPU time of the process per {what}, each call's best of {rounds} rounds",
        "slo_ms": slo_ms,
        "n": n,
        "rounds": rounds,
    }
    passed = p99 <= slo_ms
    verb = "<=" if passed else ">"
    return GateResult(name, passed, f"{what}: p99 {p99:.2f} ms CPU {verb} SLO {slo_ms:g} ms", meta)


def hourly_batch_within_slo(
    predict_hour: Callable[[int], object],
    n_hours: int,
    n_symbols: int,
    slo_ms: float = HOURLY_BATCH_SLO_MS,
    rounds: int = 3,
) -> GateResult:
    """The hourly path: `predict_hour(i)` predicts ALL `n_symbols` symbols of hour i the way the
    component_predictions asset does (``prediction.predict_hours``); p99 over `n_hours` hours of each
    hour's best CPU time <= slo_ms (HOURLY_BATCH_SLO_MS: the docs give the budget)."""
    what = f"hourly batch ({n_symbols} symbols, predict_hours)"
    gate = _timed_verdict("hourly_batch_within_slo", predict_hour, n_hours, rounds, slo_ms, what)
    gate.metadata["n_symbols"] = n_symbols
    gate.metadata["per_symbol_ms"] = gate.metadata["p99_ms"] / max(n_symbols, 1)
    return gate


def hourly_batch_latency(
    model: object,
    features: pd.DataFrame,
    universe: Sequence[str],
    n_hours: int = 20,
    slo_ms: float = HOURLY_BATCH_SLO_MS,
    rounds: int = 3,
) -> GateResult:
    """`hourly_batch_within_slo` on the serving path itself: ``prediction.predict_hours`` (the function
    the component_predictions asset calls) on ONE hour's feature rows for the whole `universe`, for each
    of the last `n_hours` hours of `features` (a feature_table slice)."""
    from market_master.lib.prediction import predict_hours  # noqa: PLC0415 - prediction imports calendars

    hours = pd.DatetimeIndex(features["timestamp"].unique()).sort_values()[-n_hours:]
    if len(hours) == 0:
        raise ValueError("hourly_batch_latency: no feature rows to time")
    by_hour = [features[features["timestamp"] == h] for h in hours]
    symbols = list(universe)
    gate = hourly_batch_within_slo(
        lambda i: predict_hours(by_hour[i], model, hours=[hours[i]], universe=symbols),
        n_hours=len(hours),
        n_symbols=len(symbols),
        slo_ms=slo_ms,
        rounds=rounds,
    )
    gate.metadata["hours"] = f"{hours[0]} .. {hours[-1]}"
    return gate


def api_predict_within_slo(
    post_predict: Callable[[int], object], n: int, slo_ms: float = API_PREDICT_SLO_MS, rounds: int = 3
) -> GateResult:
    """The API path: `post_predict(i)` sends request i as a whole ``POST /predict`` to the app in process
    (parsing, checks, features, model, response); p99 over `n` requests of each request's best CPU time
    <= slo_ms (API_PREDICT_SLO_MS: the docs give the budget)."""
    return _timed_verdict(
        "api_predict_within_slo", post_predict, n, rounds, slo_ms, "POST /predict in process"
    )


def _probability_matrix(output: object) -> np.ndarray:
    if isinstance(output, pd.DataFrame):
        proba_cols = [c for c in output.columns if str(c).startswith("p_")]
        frame = output[proba_cols] if proba_cols else output.select_dtypes("number")
        return frame.to_numpy(dtype=float)
    return np.asarray(output, dtype=float)


def model_loads_and_predicts(
    model_uri: str,
    input_example: pd.DataFrame | np.ndarray,
    n_classes: int | None = None,
    atol: float = 1e-6,
    *,
    adapter: MlflowAdapter,
) -> GateResult:
    """Load `model_uri` as a pyfunc through `adapter` (registry URIs resolve against ITS tracking URI),
    predict `input_example`: one row of finite probabilities in [0, 1] summing to 1 per input row
    (columns `p_*` when the output is a DataFrame)."""
    name = "model_loads_and_predicts"
    meta: dict[str, MetadataValue] = {"model_uri": model_uri, "n_rows": len(input_example)}
    try:
        start = time.perf_counter()
        model = adapter.load_pyfunc_uri(model_uri)
        meta["load_s"] = time.perf_counter() - start
        proba = _probability_matrix(model.predict(input_example))
    except Exception as exc:  # the gate reports any load/predict failure as its verdict
        return GateResult(name, False, f"{type(exc).__name__}: {exc}", meta)
    meta["output_shape"] = list(proba.shape)
    problems = []
    if proba.ndim != 2 or proba.shape[0] != len(input_example):
        problems.append(f"output shape {proba.shape} is not ({len(input_example)}, n_classes)")
    elif n_classes is not None and proba.shape[1] != n_classes:
        problems.append(f"{proba.shape[1]} probability columns, expected {n_classes}")
    else:
        bad_rows = np.flatnonzero(
            ~np.isfinite(proba).all(axis=1)
            | (proba < -atol).any(axis=1)
            | (proba > 1 + atol).any(axis=1)
            | ~np.isclose(proba.sum(axis=1), 1.0, atol=atol)
        )
        if bad_rows.size:
            problems.append(f"rows {bad_rows[:10].tolist()} are not finite probabilities summing to 1")
        meta["n_bad_rows"] = int(bad_rows.size)
    if problems:
        return GateResult(name, False, "; ".join(problems), meta)
    return GateResult(
        name, True, f"loaded and predicted {proba.shape[0]} rows x {proba.shape[1]} classes", meta
    )
