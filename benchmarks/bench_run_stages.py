"""Seconds per stage of `market-master run` (the table the command prints at its end), per size.

Each size runs the real CLI in a fresh process on a fresh data root (synthetic source, offline):
  default   the `make run` size: top-10 QQQ, 250 trading days (~1,750 hourly keys)
  100x1y    100 synthetic names x 250 trading days, weighted by a generated holdings file (or --holdings)

    .venv/bin/python benchmarks/bench_run_stages.py [--sizes default 100x1y] [--holdings H.csv]
        [--candidates LogReg,HGBT] [--keep]

Prints each run's stage table, its wall time and the load average before and after (a shared machine's
timings mean little without it).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE_LINE = re.compile(r"^  (\S.*?)\s+(\d+\.\d)$")


def holdings_file(path: Path, n: int) -> list[str]:
    """`n` synthetic names with Zipf-like weights (percent), like an index's long tail."""
    symbols = [f"S{i:03d}" for i in range(n)]
    raw = [1.0 / (i + 1) ** 0.8 for i in range(n)]
    total = sum(raw)
    lines = ["symbol,weight_pct,as_of"] + [
        f"{s},{100 * w / total:.4f},2025-04-28" for s, w in zip(symbols, raw, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return symbols


def run_size(name: str, args: argparse.Namespace, root: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "market_master.cli", "run"]
    if name == "100x1y":
        holdings = Path(args.holdings) if args.holdings else root / "holdings_100.csv"
        symbols = holdings_file(holdings, 100) if not args.holdings else None
        cmd += ["--holdings", str(holdings)]
        if symbols:
            cmd += ["--symbols", ",".join(symbols)]
    elif name != "default":
        raise SystemExit(f"unknown size {name!r}")
    if args.candidates:
        cmd += ["--candidates", args.candidates]
    env = {
        **os.environ,
        "MARKET_MASTER_HOME": str(root / "home"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("DAGSTER_HOME", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = proc.stdout.splitlines()
    start = next((i for i, line in enumerate(out) if line.startswith("Stages")), len(out))
    print(
        f"\n== {name}: exit {proc.returncode}, {wall:.0f} s wall; load average before "
        f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} (2 cores shared)"
    )
    verdict = [
        line for line in out if line.lstrip().startswith(("champion ", "gate ", "Production", "sensor "))
    ]
    print("\n".join(verdict))  # whether the run promoted is part of its result, not only its time
    print("\n".join(out[start:]) or proc.stderr[-2000:])
    if proc.returncode not in (0, 2):
        print(proc.stderr[-2000:])
    stages = {}
    for line in out[start + 3 :]:
        match = STAGE_LINE.match(line)
        if match:
            stages[match.group(1).strip()] = float(match.group(2))
    return stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["default", "100x1y"])
    ap.add_argument("--holdings", help="a 100-name holdings CSV instead of the generated one")
    ap.add_argument("--candidates", help="passed to `run --candidates` (default: all seven)")
    ap.add_argument("--keep", action="store_true", help="keep the data roots (printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-run-stages-"))
    for name in args.sizes:
        root = tmp / name
        root.mkdir()
        run_size(name, args, root)
    if args.keep:
        print(f"data roots under {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
