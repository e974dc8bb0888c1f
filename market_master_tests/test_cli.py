"""`market-master` CLI errors a user can cause: one `error: ...` line on stderr, exit 2, no traceback, and
before any expensive work where the problem is knowable up front."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from market_master import cli
from market_master.lib.sources.synthetic import SyntheticSource

SYMBOLS = ["AAPL", "MSFT", "NVDA"]


def _csv_dir(path: Path, start="2024-03-04", end="2024-03-08", edit=None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    bars = SyntheticSource().fetch([*SYMBOLS, "QQQ"], start, end)  # QQQ: the index proxy's file
    for sym, g in bars.groupby("symbol"):
        g = g.rename(columns={"timestamp": "Datetime"}).drop(columns="symbol").reset_index(drop=True)
        if edit and sym == "NVDA":
            g = edit(g)
        g.to_csv(path / f"{sym}_1h.csv", index=False)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_batch_data_source_error_is_one_line_exit_2(tmp_path, isolated_home, capsys):
    csv_dir = _csv_dir(tmp_path / "csv")
    (csv_dir / "META_1h.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    holdings = tmp_path / "h_2025-04-28.csv"
    holdings.write_text("symbol,weight_pct\nAAPL,9\nMSFT,8\n")
    code = cli.main(
        ["batch", "--csv-dir", str(csv_dir), "--holdings", str(holdings), "--out", str(tmp_path / "o")]
    )
    assert code == 2
    assert "META_1h.csv" in _one_error_line(capsys)


def test_run_before_the_first_partition_stops_up_front(isolated_home, capsys):
    args = ["run", "--days", "30", "--signal-days", "5", "--end", "2023-01-20", "--candidates", "LogReg"]
    assert cli.main(args) == 2
    line = _one_error_line(capsys)
    assert "first allowed date is 2023-01-03" in line and "2022-" in line and "2023-01-20" in line
    assert not (isolated_home / "partitions").exists()  # nothing was ingested


def test_run_on_a_read_only_data_root_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    # root ignores file modes, so use a path the kernel refuses to create for anyone
    monkeypatch.setenv("MARKET_MASTER_HOME", "/sys/market-master-test-home")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert cli.main(["run", "--days", "30", "--end", "2024-06-28"]) == 2
    line = _one_error_line(capsys)
    assert "data root /sys/market-master-test-home is not writable" in line


def _run_on_csv_with_close(tmp_path, row: int, value: str) -> int:
    """`market-master run` over five days of CSVs where NVDA's close on `row` is replaced by `value`."""

    def edit(g):
        g["close"] = g["close"].astype(object)
        g.loc[row, "close"] = value
        return g

    csv_dir = _csv_dir(tmp_path / "csv", edit=edit)
    args = ["run", "--source", "csv", "--csv-dir", str(csv_dir), "--days", "5", "--signal-days", "1"]
    return cli.main([*args, "--end", "2024-03-08", "--candidates", "LogReg"])


def test_run_csv_with_bad_rows_prints_them_and_does_not_retry(tmp_path, isolated_home, capsys):
    assert _run_on_csv_with_close(tmp_path, 3, "") == 2  # "" -> NaN: values_are_finite
    captured = capsys.readouterr()
    assert "bar check values_are_finite FAILED" in captured.out
    assert "NVDA" in captured.out and "2024-03-04 12:30:00-05:00" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "values_are_finite" in err[0] and err[0].startswith("error: ")


def test_run_csv_input_error_is_one_line_and_names_the_file(tmp_path, isolated_home, capsys):
    assert _run_on_csv_with_close(tmp_path, 2, "12,5") == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "NVDA_1h.csv: line 4, column 'close'" in err[0] and "'12,5'" in err[0], err[0]
    assert "not retried" in err[0]


def test_training_text_counts_the_sessions_the_data_has(tmp_path, isolated_home):
    import argparse

    import dagster as dg

    from market_master.definitions import local_storage
    from market_master.defs.ingestion.assets import hourly_bars
    from market_master.defs.resources import MarketDataResource

    csv_dir = _csv_dir(tmp_path / "csv", "2024-03-04", "2024-03-15")  # 10 sessions
    res = dg.materialize(
        [hourly_bars],
        resources={
            "market_data": MarketDataResource(symbols=SYMBOLS, source="csv", csv_dir=str(csv_dir)),
            **local_storage(str(isolated_home)),
        },
        tags={
            "dagster/asset_partition_range_start": "2024-02-26-09:30",
            "dagster/asset_partition_range_end": "2024-03-15-15:30",
        },
    )
    args = argparse.Namespace(days=15, signal_days=2)
    text = cli._training_days_text(args, res, "2024-02-26-09:30", "2024-03-13-15:30")
    assert "only 8 sessions of the 13 requested" in text and "10 of 15" in text
    assert "on 13 sessions" not in text


def test_weights_sum_of_300_percent_is_flagged(tmp_path):
    import dagster as dg

    from market_master.definitions import local_storage
    from market_master.defs.ingestion.assets import hourly_bars, index_weights
    from market_master.defs.resources import MarketDataResource

    holdings = tmp_path / "h.csv"
    pd.DataFrame({"symbol": SYMBOLS, "weight_pct": [150.0, 90.0, 60.0], "as_of": "2025-04-28"}).to_csv(
        holdings, index=False
    )
    res = dg.materialize(
        [hourly_bars, index_weights],
        selection=[index_weights],
        resources={"market_data": MarketDataResource(symbols=SYMBOLS), **local_storage(str(tmp_path))},
        run_config={"ops": {"index_weights": {"config": {"holdings_csv": str(holdings)}}}},
    )
    md = res.asset_materializations_for_node("index_weights")[0].metadata
    assert md["raw_weight_total_pct (latest snapshot)"].value == pytest.approx(300.0)
    assert "300.0 %" in md["weights_warning"].value[0]
