"""Single-row predict latency of the champion candidates (what the retired single-row latency gate timed;
the gates now time the serving paths: benchmarks/bench_latency_paths.py).

Claim (issue: latency judged where it matters): sklearn's HistGradientBoostingClassifier spends its
single-row time in per-tree overhead (500 trees = 100 iterations x 5 classes); lib.compiled_trees walks
all trees at once. Prints p50/p99 (CPU and wall, each row's best of 3 rounds over 200 rows) for the
sklearn Pipeline, and for ComponentModel.predict_proba (the path the gate, the hourly run and the API use),
at 10 and 100 symbols.

    .venv/bin/python benchmarks/bench_single_row_latency.py
"""

import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

from market_master.lib.evaluation import best_call_times_ms  # noqa: E402
from market_master.lib.features import compute_features  # noqa: E402
from market_master.lib.sources.synthetic import SyntheticSource  # noqa: E402
from market_master.lib.training import TrainingConfig, train_candidates  # noqa: E402


def measure(n_symbols: int) -> None:
    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    features = compute_features(SyntheticSource(seed=1).fetch(symbols, "2024-01-02", "2024-06-28"))
    result = train_candidates(features, TrainingConfig(candidates=("HGBT", "LogReg"), latency_rows=0))
    rows_df = features[~features["warmup"]].reset_index(drop=True)
    rows = [rows_df.iloc[[i]] for i in range(200)]
    for name in ("HGBT", "LogReg"):
        model = result.candidates[name].model
        cols = ["symbol", *model.feature_columns]
        for path, call in (
            ("sklearn Pipeline", lambda i, m=model, c=cols: m.estimator.predict_proba(rows[i][c])),
            ("ComponentModel", lambda i, m=model: m.predict_proba(rows[i])),
        ):
            t = best_call_times_ms(call, len(rows), 3)
            cpu, wall = np.percentile(t["cpu"], [50, 99]), np.percentile(t["wall"], [50, 99])
            print(
                f"{n_symbols:>4} symbols  {name:<7} {path:<17} CPU p50 {cpu[0]:6.2f} p99 {cpu[1]:6.2f} ms"
                f"   wall p50 {wall[0]:6.2f} p99 {wall[1]:6.2f} ms"
            )


if __name__ == "__main__":
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}"
    )
    for n in (10, 100):
        measure(n)
