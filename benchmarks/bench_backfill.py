"""Single-run backfill of ingest_job (hourly_bars + checks + feature_table) through Dagster, sqlite instance.

One run over a whole partition range (BackfillPolicy.single_run), synthetic source, a fresh data root and
a fresh DAGSTER_HOME, run the way `market-master run` runs it (LocalRunner: Dagster's env switches from
`local_run.DAGSTER_ENV_DEFAULTS`, the progress logger). Prints wall and CPU seconds, keys per second,
the events stored by kind and the DAGSTER_HOME growth per 1,000 keys; `--baseline` runs without our
env switches (what the code did before) for comparison.

    .venv/bin/python benchmarks/bench_backfill.py [--symbols 10 100] [--start 2023-01-03 --end 2024-12-31]
        [--baseline]
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg

from market_master.definitions import build_definitions, local_storage
from market_master.defs.resources import MarketDataResource
from market_master.local_run import DAGSTER_ENV_DEFAULTS, LocalRunner, configure_dagster_env, range_tags

warnings.filterwarnings("ignore")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def run(n_symbols: int, start: str, end: str) -> None:
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
        home = Path(tmp) / "dagster"
        home.mkdir()
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            before = _size_mb(home)
            load = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), time.process_time()
            result = LocalRunner(defs, instance, echo=False).run(
                "ingest_job", run_config=QUIET, tags=range_tags(keys[0], keys[-1])
            )
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert result.success
            kinds = collections.Counter(
                e.dagster_event.event_type_value for e in instance.all_logs(result.run_id) if e.dagster_event
            )
            growth = _size_mb(home) - before
        print(
            f"  {n_symbols:>4} symbols, {len(keys)} keys, ONE run: {wall:6.1f} s wall, {cpu:6.1f} s CPU "
            f"({len(keys) / wall:5.1f} keys/s), load average {load:.2f} -> {os.getloadavg()[0]:.2f}; "
            f"DAGSTER_HOME +{growth:.1f} MB ({1000 * growth / len(keys):.1f} MB per 1,000 keys)"
        )
        interesting = ("ASSET_MATERIALIZATION", "ASSET_MATERIALIZATION_PLANNED", "ASSET_CHECK_EVALUATION")
        print(
            "        events: "
            + ", ".join(f"{k} {kinds[k]}" for k in interesting)
            + f", all {sum(kinds.values())}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--start", default="2023-01-03")
    ap.add_argument("--end", default="2023-12-29")
    ap.add_argument("--baseline", action="store_true", help="without local_run.DAGSTER_ENV_DEFAULTS")
    args = ap.parse_args()
    if args.baseline:
        for name in DAGSTER_ENV_DEFAULTS:
            os.environ.pop(name, None)
    else:
        configure_dagster_env()
    switches = {k: os.environ.get(k) for k in DAGSTER_ENV_DEFAULTS}
    print(f"single-run backfill of ingest_job {args.start} .. {args.end}, sqlite instance, {switches}")
    for n in args.symbols:
        run(n, args.start, args.end)


if __name__ == "__main__":
    main()
