"""Feature throughput: rows/s of compute_features on 10 and 100 synthetic symbols x 1 year (one process)."""

from __future__ import annotations

import time

from market_master.lib.features import compute_features
from market_master.lib.sources.synthetic import SyntheticSource


def main() -> None:
    for n in (10, 100):
        bars = SyntheticSource(seed=1).fetch([f"S{i:03d}" for i in range(n)], "2024-01-02", "2024-12-31")
        compute_features(bars)
        best = min(_timed(bars) for _ in range(7))
        print(
            f"{n:>4} symbols  {len(bars):>7} rows  best {best * 1e3:7.1f} ms  {len(bars) / best / 1e6:5.2f} M rows/s"
        )


def _timed(bars) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    compute_features(bars)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
