"""CSV source: real-dev loads as it is; each malformed input fails with a precise error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from market_master.lib.bars import BAR_COLUMNS, run_bar_checks
from market_master.lib.calendar import TZ
from market_master.lib.sources import DataSourceError, get_source
from market_master.lib.sources.csv_source import CsvSource

HEADER = "Datetime,Open,High,Low,Close,Adj Close,Volume\n"
ROWS = [
    "2024-03-08 09:30:00-05:00,10,11,9,10.5,10.4,100\n",
    "2024-03-08 10:30:00-05:00,10.5,11,10,10.8,10.7,90\n",
    "2024-03-11 09:30:00-04:00,10.8,11.2,10.6,11,10.9,120\n",
]


def _write(tmp_path: Path, symbol: str, text: str) -> Path:
    path = tmp_path / f"{symbol}_1h.csv"
    path.write_text(text)
    return path


def test_real_dev_loads_as_it_is(real_dev_dir):
    source = CsvSource(real_dev_dir)
    symbols = source.available_symbols()
    assert {"AAPL", "NVDA", "QQQ", "TSM"} <= set(symbols) and len(symbols) == 11
    bars = source.fetch(["AAPL", "NVDA", "TSM"], "2023-01-01", "2024-12-31")
    assert list(bars.columns) == BAR_COLUMNS
    assert bars.groupby("symbol").size().tolist() == [2518, 2518, 2518]
    assert str(bars["timestamp"].dt.tz) == TZ
    assert set(bars["timestamp"].dt.strftime("%H:%M")) == {f"{h:02d}:30" for h in range(9, 16)}
    outcomes = {o.name: o for o in run_bar_checks(bars)}
    assert all(o.passed for o in outcomes.values() if o.severity == "ERROR")
    missing = outcomes["bars_are_complete"].offending  # Yahoo has 3 bars on half-days
    assert set(missing["timestamp"].dt.strftime("%H:%M")) == {"12:30"}


def test_yahoo_columns_any_case_and_naive_times_localised(tmp_path):
    _write(tmp_path, "AAA", HEADER + "".join(ROWS))
    _write(tmp_path, "BBB", "date,OPEN,high,LOW,close,volume\n2024-03-08 10:30,1,2,0.5,1.5,7\n")
    berlin = tmp_path / "berlin"
    berlin.mkdir()
    _write(berlin, "BBB", "date,OPEN,high,LOW,close,volume\n2024-03-08 16:30,1,2,0.5,1.5,7\n")
    bars = get_source("csv", directory=tmp_path).fetch(["AAA", "BBB"], "2024-03-08", "2024-03-11")
    assert len(bars) == 4
    assert bars["timestamp"].iloc[2] == pd.Timestamp("2024-03-11 09:30", tz=TZ)
    assert bars.loc[bars["symbol"] == "BBB", "timestamp"].iloc[0] == pd.Timestamp("2024-03-08 10:30", tz=TZ)
    other = CsvSource(berlin, timezone="Europe/Berlin").fetch(["BBB"], "2024-03-08", "2024-03-08")
    assert other["timestamp"].iloc[0] == pd.Timestamp("2024-03-08 10:30", tz=TZ)
    assert bars.loc[0, "close"] == 10.5  # Close, not Adj Close


def test_missing_file_names_symbol_and_path(tmp_path):
    with pytest.raises(DataSourceError, match=r"ZZZ.*ZZZ_1h\.csv") as err:
        CsvSource(tmp_path).fetch(["ZZZ"], "2024-01-01", "2024-12-31")
    assert err.value.symbol == "ZZZ"


def test_missing_column_is_named_with_columns_found(tmp_path):
    _write(tmp_path, "AAA", "Datetime,Open,High,Low,Close\n2024-03-08 09:30:00-05:00,1,2,0.5,1.5\n")
    with pytest.raises(DataSourceError, match=r"missing column 'Volume'.*\['Datetime', 'Open'"):
        CsvSource(tmp_path).fetch(["AAA"])
    _write(tmp_path, "BBB", "When,Open,High,Low,Close,Volume\n")
    with pytest.raises(DataSourceError, match="missing column 'Datetime'"):
        CsvSource(tmp_path).fetch(["BBB"])


@pytest.mark.parametrize(
    ("bad_row", "column", "value"),
    [
        ("2024-03-08 11:30:00-05:00,10,eleven,9,10,100\n", "High", "eleven"),
        ("not-a-date,10,11,9,10,100\n", "Datetime", "not-a-date"),
    ],
)
def test_unparsable_value_names_file_line_column_value(tmp_path, bad_row, column, value):
    text = "Datetime,Open,High,Low,Close,Volume\n" + ROWS[0].replace(",10.4", "") + bad_row
    path = _write(tmp_path, "AAA", text)
    with pytest.raises(DataSourceError) as err:
        CsvSource(tmp_path).fetch(["AAA"])
    message = str(err.value)
    assert str(path) in message and "line 3" in message and repr(column) in message and repr(value) in message


def test_empty_range_is_an_error_not_an_empty_frame(tmp_path):
    _write(tmp_path, "AAA", HEADER + "".join(ROWS))
    with pytest.raises(DataSourceError, match="no bars in"):
        CsvSource(tmp_path).fetch(["AAA"], "2025-01-01", "2025-01-31")


def test_empty_binary_and_header_only_files_are_named(tmp_path):
    (tmp_path / "EMP_1h.csv").write_text("")
    (tmp_path / "PNG_1h.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    (tmp_path / "HDR_1h.csv").write_text(HEADER)
    source = CsvSource(tmp_path)
    for symbol, expected in (("EMP", "empty"), ("PNG", "not a text CSV"), ("HDR", "no data rows")):
        with pytest.raises(DataSourceError) as err:
            source.fetch([symbol])
        message = str(err.value)
        assert str(tmp_path / f"{symbol}_1h.csv") in message and expected in message, message
        assert "1900" not in message and "2200" not in message


def test_line_numbers_count_blank_lines_and_rows_carry_their_line(tmp_path):
    text = HEADER + ROWS[0] + "\n" + ROWS[1] + "2024-03-08 11:30:00-05:00,10,x,9,10,10,5\n"
    path = _write(tmp_path, "AAA", text)
    with pytest.raises(DataSourceError) as err:
        CsvSource(tmp_path).fetch(["AAA"])
    assert f"{path}: line 5, column 'High'" in str(err.value) and "'x'" in str(err.value)
    _write(tmp_path, "AAA", HEADER + ROWS[1] + "\n" + ROWS[0])  # out of order + a blank line
    bars = CsvSource(tmp_path).fetch_with_lines(["AAA"])
    assert bars["line"].tolist() == [4, 2] and bars["file"].eq(str(path)).all()
    assert bars["timestamp"].is_monotonic_increasing


def test_nonexistent_local_time_names_line_and_value(tmp_path):
    # 2024-03-10 02:30 does not exist in New York (DST starts)
    text = "Datetime,Open,High,Low,Close,Volume\n2024-03-08 09:30:00,1,2,0.5,1.5,1\n2024-03-10 02:30:00,1,2,0.5,1.5,1\n"
    path = _write(tmp_path, "AAA", text)
    with pytest.raises(DataSourceError) as err:
        CsvSource(tmp_path).fetch(["AAA"])
    assert f"{path}: line 3, column 'Datetime'" in str(err.value) and "2024-03-10 02:30:00" in str(err.value)
