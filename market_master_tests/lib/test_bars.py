"""Bar normalisation and quality predicates: each check fails on a crafted bad bar and names it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_master.lib import bars as B
from market_master.lib.calendar import TZ
from market_master.lib.sources.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return SyntheticSource(seed=5).fetch(["AAPL", "MSFT"], "2024-11-27", "2024-12-03")


def _find(outcomes, name):
    return next(o for o in outcomes if o.name == name)


def test_clean_bars_pass_every_check(good):
    outcomes = B.run_bar_checks(good, expected_symbols=["AAPL", "MSFT"])
    assert [o.name for o in outcomes if not o.passed] == []
    assert {o.severity for o in outcomes} == {"ERROR", "WARN"}
    assert B.validate_bars_or_raise(good).equals(good)


def test_normalize_sorts_casts_and_never_drops():
    raw = pd.DataFrame(
        {
            "volume": [5, 6, 6],
            "timestamp": ["2024-07-02 10:30", "2024-07-02 09:30", "2024-07-02 09:30"],
            "symbol": ["B", "A", "A"],
            "open": [1, 2, 2],
            "high": [1, 2, 2],
            "low": [1, 2, 2],
            "close": [1, 2, 2],
            "extra": [0, 0, 0],
        }
    )
    out = B.normalize_bars(raw)
    assert list(out.columns) == B.BAR_COLUMNS
    assert len(out) == 3 and out["symbol"].tolist() == ["A", "A", "B"]
    assert str(out["timestamp"].dt.tz) == TZ
    assert out["timestamp"].iloc[0] == pd.Timestamp("2024-07-02 09:30", tz=TZ)
    assert (out.dtypes[2:] == "float64").all()
    with pytest.raises(KeyError, match="volume"):
        B.normalize_bars(raw.drop(columns="volume"))


@pytest.mark.parametrize(
    ("check", "column", "value", "field"),
    [
        (B.high_is_at_least_open_and_close, "high", 0.5, "high"),
        (B.low_is_at_most_open_and_close, "low", 1e9, "low"),
        (B.prices_are_positive, "open", -1.0, "open"),
        (B.volume_is_non_negative, "volume", -10.0, "volume"),
        (B.values_are_finite, "close", np.nan, "close"),
        (B.values_are_finite, "volume", np.inf, "volume"),
    ],
)
def test_value_checks_name_the_offending_row(good, check, column, value, field):
    bad = good.copy()
    bad.loc[5, column] = value
    outcome = check(bad)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert outcome.offending["row"].tolist() == [5]
    assert outcome.offending["symbol"].iloc[0] == good.loc[5, "symbol"]
    assert outcome.offending["timestamp"].iloc[0] == good.loc[5, "timestamp"]
    if column in outcome.offending:
        assert outcome.offending[column].iloc[0] == value or np.isnan(value)
    with pytest.raises(B.BarValidationError) as err:
        B.validate_bars_or_raise(bad)
    assert err.value.field == field and err.value.rows == [5]


def test_duplicate_timestamps_listed_both_times(good):
    bad = pd.concat([good, good.iloc[[3]]], ignore_index=True)
    outcome = B.timestamps_are_unique(bad)
    assert not outcome.passed
    assert outcome.offending["row"].tolist() == [3, len(good)]
    with pytest.raises(B.BarValidationError) as err:
        B.validate_bars_or_raise(bad)
    assert err.value.field == "timestamp"


def test_off_calendar_timestamp_is_flagged(good):
    bad = good.copy()
    bad.loc[2, "timestamp"] = pd.Timestamp("2024-11-28 10:30", tz=TZ)  # Thanksgiving
    bad.loc[4, "timestamp"] = pd.Timestamp("2024-11-29 13:30", tz=TZ)  # after the half-day close
    outcome = B.timestamps_are_trading_bars(bad)
    assert outcome.offending["row"].tolist() == [2, 4]
    assert B.validate_bars_or_raise(bad, check_calendar=False) is not None
    with pytest.raises(B.BarValidationError, match="timestamp"):
        B.validate_bars_or_raise(bad)


def test_completeness_warns_about_missing_bars_and_symbols(good):
    gap = good.drop(index=[1, 2]).reset_index(drop=True)
    outcome = B.bars_are_complete(gap, expected_symbols=["AAPL", "MSFT", "NVDA"])
    assert not outcome.passed and outcome.severity == "WARN"
    missing = outcome.offending
    aapl = missing[missing["symbol"] == good.loc[1, "symbol"]]["timestamp"].tolist()
    assert aapl == good.loc[[1, 2], "timestamp"].tolist()
    n_grid = good["timestamp"].nunique()
    assert (missing["symbol"] == "NVDA").sum() == n_grid
    assert B.validate_bars_or_raise(gap) is not None  # a warning never blocks


def test_strict_validation_errors_name_field_and_rows(good):
    with pytest.raises(B.BarValidationError) as err:
        B.validate_bars_or_raise(good.drop(columns="low"))
    assert err.value.field == "low" and "missing column" in err.value.reason
    bad = good.astype({"close": object})
    bad.loc[7, "close"] = "abc"
    with pytest.raises(B.BarValidationError) as err:
        B.validate_bars_or_raise(bad)
    assert (err.value.field, err.value.rows) == ("close", [7])


def test_returns_are_sane_flags_a_bar_5000x_the_previous_close(good):
    assert B.returns_are_sane(good).passed
    bad = good.copy()
    i = int(np.flatnonzero(bad["symbol"].eq("MSFT"))[4])
    bad.loc[i, ["open", "high", "low", "close"]] = bad.loc[i - 1, "close"] * 5000
    outcome = B.returns_are_sane(bad)
    assert not outcome.passed and "10x" in outcome.description
    rows = outcome.offending
    assert rows["row"].tolist() == [i, i + 1]  # the jump and the way back, both named
    assert set(rows["symbol"]) == {"MSFT"} and "previous_close" in rows.columns
    # the first bar of a symbol is never compared with another symbol's close
    first_msft = int(np.flatnonzero(good["symbol"].eq("MSFT"))[0])
    shifted = good.copy()
    shifted.loc[first_msft:, PRICES] = shifted.loc[first_msft:, PRICES] * 50
    assert B.returns_are_sane(shifted).passed
    with pytest.raises(B.BarValidationError, match="close"):
        B.validate_bars_or_raise(bad)


PRICES = ["open", "high", "low", "close"]
