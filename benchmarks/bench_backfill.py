"""Single-run backfill time of ingest_job (hourly_bars + checks + feature_table) through Dagster.

One run over a whole partition range (BackfillPolicy.single_run), synthetic source, a fresh data root.
Reports wall time per case for a persistent sqlite instance (what `dagster dev` uses) and an in-memory
one, so Dagster's per-partition event cost is visible next to the work itself.

    .venv/bin/python benchmarks/bench_backfill.py [--symbols 10 100] [--start 2023-01-03 --end 2023-12-29]
"""

import argparse
import contextlib
import os
import tempfile
import time
import warnings

import dagster as dg

from market_master.definitions import build_definitions, local_storage
from market_master.defs.resources import MarketDataResource

warnings.filterwarnings("ignore")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def run(n_symbols: int, start: str, end: str, persistent: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        defs = build_definitions(
            {
                "market_data": MarketDataResource(symbols=[f"S{i:03d}" for i in range(n_symbols)]),
                **local_storage(tmp),
            }
        )
        job = defs.resolve_job_def("ingest_job")
        keys = job.partitions_def.get_partition_keys_in_range(
            dg.PartitionKeyRange(f"{start}-09:30", f"{end}-15:30")
        )
        if persistent:
            os.makedirs(tmp + "/dagster")
        instance_cm = (
            dg.instance_for_test(temp_dir=tmp + "/dagster")
            if persistent
            else contextlib.nullcontext(dg.DagsterInstance.ephemeral())
        )
        with instance_cm as instance:
            t0 = time.perf_counter()
            res = job.execute_in_process(
                instance=instance,
                run_config=QUIET,
                tags={
                    "dagster/asset_partition_range_start": keys[0],
                    "dagster/asset_partition_range_end": keys[-1],
                },
            )
            elapsed = time.perf_counter() - t0
            assert res.success
    return elapsed, len(keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--symbols", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--start", default="2023-01-03")
    ap.add_argument("--end", default="2023-12-29")
    args = ap.parse_args()
    print(f"single-run backfill of ingest_job {args.start} .. {args.end}")
    for n in args.symbols:
        for persistent in (True, False):
            secs, n_keys = run(n, args.start, args.end, persistent)
            kind = "sqlite instance" if persistent else "in-memory instance"
            print(
                f"  {n:>4} symbols, {n_keys} partitions, ONE run, {kind:<18}: {secs:6.1f} s "
                f"({n_keys / secs:6.1f} partitions/s)"
            )


if __name__ == "__main__":
    main()
