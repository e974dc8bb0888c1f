"""Train on the real-dev bars and print the out-of-sample table (realdata; skips when ../shared is absent)."""

from __future__ import annotations

import pandas as pd
import pytest

from market_master.lib.features import compute_features
from market_master.lib.sources.csv_source import CsvSource
from market_master.lib.training import TrainingConfig, train_candidates

SYMBOLS = ["AAPL", "AMD", "AMZN", "GOOGL", "INTC", "META", "MSFT", "NVDA", "TSLA", "TSM"]


@pytest.mark.realdata
@pytest.mark.slow
def test_real_dev_out_of_sample_table(real_dev_dir) -> None:
    bars = CsvSource(real_dev_dir).fetch(SYMBOLS, "2023-07-26", "2024-12-31")
    result = train_candidates(compute_features(bars), TrainingConfig(latency_rows=20, latency_rounds=2))
    table = result.table()[
        ["kind", "macro_f1", "accuracy", "log_loss", "ic", "intraday_macro_f1", "overnight_macro_f1"]
    ]
    with pd.option_context("display.width", 200):
        print(f"\nsplit {result.split.to_dict()}\n{table.round(4).to_string()}")
        print(f"champion {result.champion_name} margin {result.margin:+.4f} (SE {result.margin_se:.4f})")
    assert len(result.validation) > 5_000
    assert table["macro_f1"].between(0, 1).all()
