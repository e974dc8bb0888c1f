"""The full-index example: examples/nasdaq100_holdings_2025-04-28.csv (101 securities of the NASDAQ-100,
both Alphabet share classes, approximate weights) loads as a holdings file and becomes the universe of
`market-master run --holdings` on the synthetic source."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from market_master import cli
from market_master.lib.weights import load_holdings_csv, normalize_weights
from market_master.settings import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "nasdaq100_holdings_2025-04-28.csv"
PROXIES = {"QQQ", "QQQM", "ONEQ", "TQQQ", "SQQQ", "NDX", "^NDX", "NQ", "/NQ"}


def test_example_holdings_is_a_plausible_nasdaq_100_snapshot():
    raw = pd.read_csv(EXAMPLE, dtype=str)
    assert list(raw.columns) == ["symbol", "weight_pct", "name", "as_of"]
    assert len(raw) == 101 and raw["symbol"].is_unique
    assert set(raw["as_of"]) == {"2025-04-28"}
    assert not set(raw["symbol"]) & PROXIES
    assert {"GOOGL", "GOOG"} <= set(raw["symbol"])  # share classes are separate securities
    history = load_holdings_csv(EXAMPLE)
    (snapshot,) = history.snapshots
    assert snapshot.as_of.isoformat() == "2025-04-28"
    assert sum(snapshot.weights.values()) == pytest.approx(1.0, abs=0.001)
    assert all(w > 0 for w in snapshot.weights.values())
    # the heaviest names agree with the embedded top-10 default (same as_of)
    from market_master.lib.weights import embedded_top10

    for symbol, weight in embedded_top10().weights.items():
        assert snapshot.weights[symbol] == pytest.approx(weight)


def _run_args(**overrides) -> argparse.Namespace:
    args = cli.build_parser().parse_args(["run", "--holdings", str(EXAMPLE)])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_run_with_the_example_takes_all_101_names_as_its_universe():
    market = cli._market_resource(_run_args())
    assert len(market.symbols) == 101 and market.symbols[:3] == ["AAPL", "MSFT", "NVDA"]
    weights = normalize_weights(load_holdings_csv(EXAMPLE).latest(), market.symbols)
    assert not weights.missing_weight and weights.outside_universe_weight == 0.0
    assert sum(weights.weights.values()) == pytest.approx(1.0)
    # --symbols still narrows it
    assert cli._market_resource(_run_args(symbols="AAPL,MSFT")).symbols == ["AAPL", "MSFT"]


def test_holdings_universe_keeps_names_of_every_dated_snapshot_and_drops_proxies(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(
        "symbol,weight_pct,as_of\nAAPL,9,2024-01-02\nSMCI,1,2024-01-02\nQQQ,5,2024-01-02\n"
        "AAPL,9,2025-01-02\nPLTR,2,2025-01-02\n"
    )
    assert cli.holdings_universe(str(path)) == ["AAPL", "PLTR", "SMCI"]
