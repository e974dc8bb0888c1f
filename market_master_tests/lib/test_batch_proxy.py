"""Batch mode and the index proxy: proxy files are read as the proxy (never a constituent), a holdings file
listing a proxy has it excluded with a note, index-context features need the proxy's file and hours."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from market_master.lib.batch import BatchInputError, run_batch
from market_master.lib.features import FeatureConfig
from market_master_tests.lib.test_batch import SMALL_WF, write_csvs

SYMBOLS = ["AAA", "BBB", "CCC"]


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch-proxy")
    return write_csvs(root / "csv", "2024-03-01", "2024-05-03", symbols=(*SYMBOLS, "QQQ", "SPY"))


def _holdings(path: Path, *extra: tuple[str, float]) -> Path:
    rows = [("AAA", 9.0), ("BBB", 6.0), ("CCC", 3.0), *extra]
    pd.DataFrame(rows, columns=["symbol", "weight_pct"]).assign(as_of="2025-04-28").to_csv(path, index=False)
    return path


def test_proxy_files_and_proxy_holdings_are_never_constituents(csv_dir, tmp_path):
    holdings = _holdings(tmp_path / "h.csv", ("QQQ", 5.0), ("SPY", 1.0))
    res = run_batch(
        csv_dir, holdings, tmp_path / "out", candidates=("LogReg",), sweep=False, walk_forward=SMALL_WF
    )
    assert sorted(res.predictions["symbol"].unique()) == SYMBOLS
    assert res.proxy == "QQQ"
    report = json.loads((tmp_path / "out" / "backtest.json").read_text())
    text = json.dumps(report)
    assert "excluded_proxy_symbols" in text and '"QQQ"' in text
    notes = " ".join(res.notes)
    assert "['SPY'] are index proxies, not constituents: their CSVs are not used" in notes
    assert "['QQQ', 'SPY'] are index proxies, not constituents: excluded" in notes
    # the holdings' proxy weight is not counted as weight held by constituents without bars
    assert report.get("symbols_without_bars", []) == [] or "QQQ" not in report["symbols_without_bars"]


def test_index_context_needs_the_proxy_file(csv_dir, tmp_path):
    no_proxy = tmp_path / "csv"
    no_proxy.mkdir()
    for f in csv_dir.glob("*_1h.csv"):
        if not f.name.startswith("QQQ"):
            (no_proxy / f.name).write_bytes(f.read_bytes())
    with pytest.raises(BatchInputError, match=r"index proxy QQQ needs its file QQQ_1h.csv"):
        run_batch(
            no_proxy,
            _holdings(tmp_path / "h.csv"),
            tmp_path / "out",
            feature_config=FeatureConfig(index_context=True),
        )


def test_index_context_names_the_proxy_hours_missing(csv_dir, tmp_path):
    holey = tmp_path / "csv"
    holey.mkdir()
    for f in csv_dir.glob("*_1h.csv"):
        frame = pd.read_csv(f)
        if f.name.startswith("QQQ"):
            frame = frame[~frame["Datetime"].str.startswith("2024-04-02 13:30")]
        frame.to_csv(holey / f.name, index=False)
    with pytest.raises(BatchInputError, match=r"QQQ has no bar at 1 hour\(s\).*2024-04-02T13:30:00-04:00"):
        run_batch(
            holey,
            _holdings(tmp_path / "h.csv"),
            tmp_path / "out",
            feature_config=FeatureConfig(index_context=True),
        )
    with pytest.raises(BatchInputError, match="pass --proxy QQQ"):
        run_batch(
            csv_dir,
            _holdings(tmp_path / "h.csv"),
            tmp_path / "out",
            proxy_symbol="",
            feature_config=FeatureConfig(index_context=True),
        )
