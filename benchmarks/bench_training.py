"""Per-candidate fit time, size and single-row latency at N synthetic symbols x 1 year.

Usage: python benchmarks/bench_training.py 10   (run the 100-symbol size once: it takes minutes)
"""

from __future__ import annotations

import sys
import time

from market_master.lib.features import compute_features
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.training import TrainingConfig, train_candidates


def main(n_symbols: int) -> None:
    bars = SyntheticSource(seed=1).fetch([f"S{i:03d}" for i in range(n_symbols)], "2024-01-02", "2024-12-31")
    t0 = time.perf_counter()
    result = train_candidates(compute_features(bars), TrainingConfig(latency_rows=100, latency_rounds=3))
    total = time.perf_counter() - t0
    cols = ["train_rows", "fit_time_s", "model_size_mb", "latency_p50_ms", "latency_p99_ms", "macro_f1"]
    print(f"{n_symbols} symbols, {len(bars)} rows, total {total:.1f} s (incl. latency probes)")
    print(result.table().loc[list(result.candidates), cols].round(3).to_string())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
