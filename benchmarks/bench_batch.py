"""Batch-mode wall time on synthetic CSVs: full run (train + predict + WSS + backtest + outputs) and
predict-only (a given model), for N symbols x 1 year of 1-hour bars.

    .venv/bin/python benchmarks/bench_batch.py --symbols 10 100 --candidates LogReg,ET

CSVs are written to a temporary directory (never into the repo). Prints one line per case.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from market_master.lib.batch import run_batch
from market_master.lib.sources.synthetic import SyntheticSource

START, END = "2023-01-03", "2023-12-29"


def write_inputs(root: Path, n_symbols: int) -> tuple[Path, Path]:
    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    csv_dir = root / "csv"
    csv_dir.mkdir(parents=True)
    bars = SyntheticSource(seed=3, predictability=0.5).fetch([*symbols, "QQQ"], START, END)
    for sym, g in bars.groupby("symbol"):
        g[["timestamp", "open", "high", "low", "close", "volume"]].rename(
            columns={"timestamp": "Datetime"}
        ).to_csv(csv_dir / f"{sym}_1h.csv", index=False)
    weights = pd.DataFrame(
        {"symbol": symbols, "weight_pct": [100.0 / (i + 1) for i in range(n_symbols)], "as_of": "2023-01-03"}
    )
    holdings = root / "holdings.csv"
    weights.to_csv(holdings, index=False)
    return csv_dir, holdings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--candidates", default="LogReg,ET", help="comma-separated, or 'all'")
    args = parser.parse_args()
    candidates = None if args.candidates == "all" else tuple(args.candidates.split(","))
    for n in args.symbols:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            t0 = time.perf_counter()
            csv_dir, holdings = write_inputs(root, n)
            t_write = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = run_batch(csv_dir, holdings, root / "out", candidates=candidates)
            t_full = time.perf_counter() - t0
            t0 = time.perf_counter()
            run_batch(csv_dir, holdings, root / "out2", model=res.model, sweep=False)
            t_predict = time.perf_counter() - t0
            n_rows = len(res.predictions)
            print(
                f"{n} symbols x 1 year ({n_rows} symbol-hours, candidates={args.candidates}): "
                f"full batch {t_full:.1f} s, predict-only batch (given model) {t_predict:.1f} s "
                f"[CSV writing {t_write:.1f} s, champion {res.model_name}]"
            )


if __name__ == "__main__":
    main()
