"""Ingestion + validation throughput on synthetic bars (1 year, 10 and 100 symbols).

Stages timed separately: simulate (SyntheticSource.fetch), normalize_bars, run_bar_checks (all quality
predicates incl. completeness) and PartitionStore.write_many (one Parquet file per hourly partition, into a
temporary folder). Prints bars/s per stage. Default run: well under a minute on 2 cores.

    .venv/bin/python benchmarks/bench_ingestion.py [--symbols 10 100] [--start 2023-01-03 --end 2023-12-29]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from market_master.lib.bars import normalize_bars, run_bar_checks
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.storage import PartitionStore


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run(n_symbols: int, start: str, end: str, write: bool) -> dict[str, float]:
    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    source = SyntheticSource(seed=1)
    bars, t_fetch = _timed(lambda: source.fetch(symbols, start, end))
    norm, t_norm = _timed(lambda: normalize_bars(bars))
    outcomes, t_check = _timed(lambda: run_bar_checks(norm, expected_symbols=symbols))
    failed = [o.name for o in outcomes if not o.passed]
    if failed:
        raise SystemExit(f"synthetic bars failed checks {failed}")
    t_write = float("nan")
    if write:
        with tempfile.TemporaryDirectory() as tmp:
            _, t_write = _timed(
                lambda: PartitionStore(Path(tmp)).write_many("hourly_bars", norm, "timestamp")
            )
    n = len(norm)
    row = {"symbols": n_symbols, "bars": n, "partitions": norm["timestamp"].nunique()}
    for stage, secs in (
        ("simulate", t_fetch),
        ("normalize", t_norm),
        ("checks", t_check),
        ("write", t_write),
    ):
        row[f"{stage}_s"] = secs
        row[f"{stage}_bars_per_s"] = n / secs if secs == secs else float("nan")
    ingest = t_fetch + t_norm + t_check
    row["ingest_validate_bars_per_s"] = n / ingest
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--start", default="2023-01-03")
    parser.add_argument("--end", default="2023-12-29")
    parser.add_argument("--no-write", action="store_true", help="skip the per-partition Parquet write")
    args = parser.parse_args()
    run(2, args.start, "2023-01-10", write=False)  # warm the calendar cache and imports
    print(f"range {args.start} .. {args.end} (synthetic, seed 1)")
    header = f"{'symbols':>7} {'bars':>8} {'simulate/s':>12} {'normalize/s':>12} {'checks/s':>12} {'ingest+validate/s':>18} {'write/s':>10} {'write s':>8}"
    print(header)
    for n in args.symbols:
        r = run(n, args.start, args.end, write=not args.no_write)
        print(
            f"{r['symbols']:>7} {r['bars']:>8} {r['simulate_bars_per_s']:>12,.0f} {r['normalize_bars_per_s']:>12,.0f} "
            f"{r['checks_bars_per_s']:>12,.0f} {r['ingest_validate_bars_per_s']:>18,.0f} "
            f"{r['write_bars_per_s']:>10,.0f} {r['write_s']:>8.2f}"
        )


if __name__ == "__main__":
    main()
