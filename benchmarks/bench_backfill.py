"""Single-run backfill of ingest_job (hourly_bars + checks + feature_table) through Dagster, on a sqlite
instance (the embedded default) or on Postgres (`--storage postgres`: the production instance, a fresh
database per size on the server `deploy/services.sh` starts; `--event-batch-size N` sets Dagster's
DAGSTER_EVENT_BATCH_SIZE, which dagster-postgres turns into one INSERT per N events).

One run over a whole partition range (BackfillPolicy.single_run), synthetic source, a fresh data root and
a fresh DAGSTER_HOME, run the way `market-master run` runs it (LocalRunner: Dagster's env switches from
`local_run.DAGSTER_ENV_DEFAULTS`, the progress logger). Prints wall and CPU seconds, keys per second,
the events stored by kind and the DAGSTER_HOME growth per 1,000 keys; `--baseline` runs without our
env switches (what the code did before) for comparison.

    .venv/bin/python benchmarks/bench_backfill.py [--symbols 10 100] [--start 2023-01-03 --end 2024-12-31]
        [--baseline] [--storage sqlite|postgres] [--event-batch-size N]

Postgres: `make services`, then `eval "$(deploy/services.sh env)"` (the DAGSTER_PG_* variables) and run
this with --storage postgres; the growth reported is the database's size (pg_database_size).
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
from market_master.lib.storage import PartitionStore
from market_master.local_run import DAGSTER_ENV_DEFAULTS, LocalRunner, configure_dagster_env, range_tags

warnings.filterwarnings("ignore")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


class _Postgres:
    """A fresh database on the services' Postgres (DAGSTER_PG_* from `deploy/services.sh env`)."""

    def __init__(self, name: str) -> None:
        import psycopg2  # noqa: PLC0415 - production-only dependency

        self.name = name
        self.params = {
            "host": os.environ["DAGSTER_PG_HOST"],
            "port": int(os.environ["DAGSTER_PG_PORT"]),
            "user": os.environ["DAGSTER_PG_USER"],
            "password": os.environ.get("DAGSTER_PG_PASSWORD", ""),
        }
        self._admin = psycopg2.connect(dbname="postgres", **self.params)
        self._admin.autocommit = True
        with self._admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}"')

    def overrides(self) -> dict:
        db = {
            **self.params,
            "username": self.params["user"],
            "hostname": self.params["host"],
            "db_name": self.name,
        }
        del db["user"], db["host"]
        return {"storage": {"postgres": {"postgres_db": {**db, "scheme": "postgresql+psycopg2"}}}}

    def size_mb(self) -> float:
        with self._admin.cursor() as cur:
            cur.execute("SELECT pg_database_size(%s)", (self.name,))
            return cur.fetchone()[0] / 1e6

    def drop(self) -> None:
        with self._admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin.close()


INGEST_ASSETS = ("hourly_bars", "index_proxy_bars", "feature_table")  # all keyed by "timestamp"


def bare_write_seconds(store_root: Path, keys: list[str], scratch: Path) -> float:
    """The same slices the run stored, written again with the store's own `write_many` (one Arrow
    conversion per asset, one file per key, atomic) into a fresh root: the floor the backfill is compared
    with (no Dagster)."""
    source = PartitionStore(store_root / "partitions")
    frames = {asset: source.read(asset, keys) for asset in INGEST_ASSETS}
    target = PartitionStore(scratch / "partitions")
    t0 = time.perf_counter()
    for asset, frame in frames.items():
        target.write_many(asset, frame, "timestamp", all_keys=keys)
    return time.perf_counter() - t0


def run(n_symbols: int, start: str, end: str, storage: str) -> None:
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
        pg = _Postgres(f"bench_backfill_{n_symbols}") if storage == "postgres" else None
        size = pg.size_mb if pg else (lambda: _size_mb(home))
        overrides = pg.overrides() if pg else None
        with dg.instance_for_test(temp_dir=str(home), overrides=overrides) as instance:
            before = size()
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
            growth = size() - before
        bare = bare_write_seconds(Path(tmp), keys, Path(tmp) / "bare")
        if pg:
            pg.drop()
        where = "Postgres database" if pg else "DAGSTER_HOME"
        print(
            f"  {n_symbols:>4} symbols, {len(keys)} keys, ONE run: {wall:6.1f} s wall, {cpu:6.1f} s CPU "
            f"({len(keys) / wall:5.1f} keys/s), load average {load:.2f} -> {os.getloadavg()[0]:.2f}; "
            f"{where} +{growth:.1f} MB ({1000 * growth / len(keys):.1f} MB per 1,000 keys)"
        )
        print(
            f"        bare slice writes of the same {len(INGEST_ASSETS)} assets (store.write_many, no Dagster): "
            f"{bare:.1f} s; the backfill takes {wall / bare:.0f}x that"
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
    ap.add_argument("--storage", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--event-batch-size", type=int, default=None, help="DAGSTER_EVENT_BATCH_SIZE")
    args = ap.parse_args()
    if args.event_batch_size is not None:
        os.environ["DAGSTER_EVENT_BATCH_SIZE"] = str(args.event_batch_size)
    if args.baseline:
        for name in DAGSTER_ENV_DEFAULTS:
            os.environ.pop(name, None)
    else:
        configure_dagster_env()
    switches = {k: os.environ.get(k) for k in [*DAGSTER_ENV_DEFAULTS, "DAGSTER_EVENT_BATCH_SIZE"]}
    print(
        f"single-run backfill of ingest_job {args.start} .. {args.end}, {args.storage} instance, {switches}"
    )
    for n in args.symbols:
        run(n, args.start, args.end, args.storage)


if __name__ == "__main__":
    main()
