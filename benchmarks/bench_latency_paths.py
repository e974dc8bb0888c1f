"""Latency of an HGBT champion at index scale, per serving path, before and after the fix (issue 14, item 1).

Claim: at 100 symbols (124 input columns) sklearn's HGBT `predict_proba` costs ~9 ms CPU for ONE row on
2 cores because every call starts its OpenMP pool (2 threads spin: CPU > wall), not because of the one-hot
width or the model; `lib.compiled_trees` walks the same trees in ~0.2 ms. The hourly path predicted 100
rows, above the numpy path's 64-row limit, so it went back to sklearn's OpenMP predict every hour; the
compiled trees now take up to COMPILED_FAST_PATH_MAX_ROWS rows.

Prints, for a 100-symbol synthetic HGBT (trained with 1 OpenMP thread, 60 sessions), CPU and wall
p50 / p99 of each call's best of 3 rounds:
  * the pieces of one single-row predict (sklearn on an array with the library's and with 1 OpenMP
    thread, the compiled trees, ComponentModel.predict_proba on a one-row DataFrame);
  * the hourly path (`predict_hours`, all 100 symbols of one hour) before (64-row limit: sklearn) and after;
  * the API path (whole `POST /predict` in process, api.latency) as the gate measures it.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_latency_paths.py [--symbols 100] [--sessions 60]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from api.latency import api_predict_latency  # noqa: E402
from market_master.lib import calendar, gates  # noqa: E402
from market_master.lib import model as model_module  # noqa: E402
from market_master.lib.evaluation import best_call_times_ms  # noqa: E402
from market_master.lib.features import compute_features  # noqa: E402
from market_master.lib.prediction import ModelInfo  # noqa: E402
from market_master.lib.sources.synthetic import SyntheticSource  # noqa: E402
from market_master.lib.training import TrainingConfig, train_candidates  # noqa: E402


def line(name: str, cpu: np.ndarray, wall: np.ndarray) -> None:
    c, w = np.percentile(cpu, [50, 99]), np.percentile(wall, [50, 99])
    print(f"  {name:<58} CPU p50 {c[0]:7.2f} p99 {c[1]:7.2f} ms   wall p50 {w[0]:7.2f} p99 {w[1]:7.2f} ms")


def timed(name: str, call, n: int) -> None:
    t = best_call_times_ms(call, n, 3)
    line(name, t["cpu"], t["wall"])


def gate_line(name: str, gate: gates.GateResult) -> None:
    m = gate.metadata
    verdict = "PASS" if gate.passed else "FAIL"
    print(
        f"  {name:<58} CPU p50 {m['p50_ms']:7.2f} p99 {m['p99_ms']:7.2f} ms   wall p99 {m['p99_wall_ms']:7.2f} ms"
        f"  -> {verdict} (SLO {m['slo_ms']:g} ms)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--sessions", type=int, default=60)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()} on {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M:%S')}")
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    end = calendar.to_timestamp("2024-06-28 15:30")
    start, _ = calendar.last_sessions_window(end, args.sessions)
    bars = SyntheticSource(seed=1).fetch(symbols, start, end)
    features = compute_features(bars)
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="openmp"):
        result = train_candidates(
            features, TrainingConfig(candidates=("HGBT",), latency_rows=0, bootstrap_n=20)
        )
    model = result.champion
    clf = model.estimator.named_steps["clf"]
    print(
        f"{args.symbols} symbols, {len(features):,} feature rows; HGBT fit+select {time.perf_counter() - t0:.0f} s; "
        f"{clf.n_features_in_} input columns, {clf.n_iter_} x {len(clf._predictors[0])} trees; "
        f"OpenMP threads by default: {[d['num_threads'] for d in threadpool_info() if d['user_api'] == 'openmp']}"
    )
    rows = features[~features["warmup"]].tail(200).reset_index(drop=True)
    one = [rows.iloc[[i]] for i in range(len(rows))]
    mean, scale, cats, compiled = model._fast_parts()
    arrays = [
        np.hstack(
            [
                (r[model.feature_columns].to_numpy(np.float64) - mean) / scale,
                (r["symbol"].to_numpy(object)[:, None] == cats[None, :]).astype(np.float64),
            ]
        )
        for r in one
    ]
    print("single row (what the old latency_within_slo gate timed):")
    timed(
        "sklearn HGBT predict_proba, array, default OpenMP threads",
        lambda i: clf.predict_proba(arrays[i]),
        200,
    )
    with threadpool_limits(limits=1, user_api="openmp"):
        timed(
            "sklearn HGBT predict_proba, array, 1 OpenMP thread", lambda i: clf.predict_proba(arrays[i]), 200
        )
    timed("compiled trees (lib.compiled_trees), array", lambda i: compiled.predict_proba(arrays[i]), 200)
    timed("ComponentModel.predict_proba, one-row DataFrame", lambda i: model.predict_proba(one[i]), 200)

    print(f"hourly path (predict_hours, all {args.symbols} symbols of one hour; the hourly_batch gate):")
    saved = model_module.COMPILED_FAST_PATH_MAX_ROWS
    try:
        model_module.COMPILED_FAST_PATH_MAX_ROWS = model_module.FAST_PATH_MAX_ROWS  # before: 64-row limit
        gate_line(
            "before: > 64 rows -> sklearn predict (default OpenMP)",
            gates.hourly_batch_latency(model, features, symbols),
        )
    finally:
        model_module.COMPILED_FAST_PATH_MAX_ROWS = saved
    gate_line("after: compiled trees up to 2048 rows", gates.hourly_batch_latency(model, features, symbols))

    print("API path (whole POST /predict in process, one request per symbol; the api_predict gate):")
    gate_line("POST /predict, 17 bars", api_predict_latency(model, ModelInfo("bench", "1"), bars))
    print(f"load average {os.getloadavg()} at the end")


if __name__ == "__main__":
    main()
