"""Weights: embedded default, holdings CSVs, point-in-time history, normalisation that reports everything."""

from __future__ import annotations

import datetime as dt

import pytest

from market_master.lib.weights import (
    DEFAULT_UNIVERSE,
    WeightsError,
    WeightsSnapshot,
    embedded_top10,
    load_holdings_csv,
    normalize_weights,
)


def test_embedded_top10_matches_the_holdings_export():
    snap = embedded_top10()
    assert list(DEFAULT_UNIVERSE) == [
        "AAPL",
        "MSFT",
        "NVDA",
        "AMZN",
        "AVGO",
        "META",
        "NFLX",
        "COST",
        "TSLA",
        "GOOGL",
    ]
    assert snap.as_of == dt.date(2025, 4, 28)
    assert snap.weights["AAPL"] == pytest.approx(0.08823) and snap.weights["GOOGL"] == pytest.approx(0.02618)
    norm = normalize_weights(snap, DEFAULT_UNIVERSE)
    assert sum(norm.weights.values()) == pytest.approx(1.0)
    assert norm.weights["AAPL"] == pytest.approx(8.823 / 49.234)
    assert norm.missing_weight == [] and norm.without_bars == [] and norm.outside_universe_weight == 0.0


def test_real_holdings_file_loads_as_is(real_dev_dir):
    history = load_holdings_csv(real_dev_dir / "qqq_holdings_2025-04-28.csv")
    snap = history.latest()
    assert history.as_of_dates == [dt.date(2025, 4, 28)]
    assert len(snap.weights) > 100 - 5 and sum(snap.weights.values()) == pytest.approx(1.0, abs=1e-3)
    for symbol, weight in embedded_top10().weights.items():
        assert snap.weights[symbol] == pytest.approx(weight)
    real_dev = ["AAPL", "AMD", "AMZN", "GOOGL", "INTC", "META", "MSFT", "NVDA", "TSLA", "TSM"]
    norm = normalize_weights(history.at("2024-06-03 10:30"), real_dev)
    assert norm.missing_weight == ["TSM"]  # not a NASDAQ-100 member
    assert set(norm.weights) == set(real_dev) - {"TSM"}
    assert norm.applied_backwards  # 2024 bars precede the only snapshot
    assert norm.outside_universe_weight == pytest.approx(1.0 - norm.used_raw_weight, abs=1e-3)


def test_history_is_point_in_time(tmp_path):
    path = tmp_path / "holdings.csv"
    path.write_text(
        "symbol,weight,as_of\nAAA,0.6,2024-01-02\nBBB,0.4,2024-01-02\nAAA,0.3,2024-06-03\nBBB,0.5,2024-06-03\nCCC,0.2,2024-06-03\n"
    )
    history = load_holdings_csv(path)
    assert history.at("2024-06-03 09:30").as_of == dt.date(2024, 6, 3)
    assert history.at("2024-05-31 15:30").as_of == dt.date(2024, 1, 2)
    assert history.at("2024-05-31 15:30").weights == {"AAA": 0.6, "BBB": 0.4}
    early = history.at("2023-12-29 15:30")
    assert early.as_of == dt.date(2024, 1, 2) and early.applied_backwards
    assert not history.at("2024-01-02 09:30").applied_backwards


def test_normalisation_lists_missing_without_bars_and_outside():
    snap = WeightsSnapshot(dt.date(2024, 1, 2), {"AAA": 0.5, "BBB": 0.25, "CCC": 0.15, "DDD": 0.1}, "test")
    norm = normalize_weights(snap, ["AAA", "BBB", "CCC", "ZZZ"], symbols_with_bars=["AAA", "CCC", "ZZZ"])
    assert norm.weights == pytest.approx({"AAA": 0.5 / 0.65, "CCC": 0.15 / 0.65})
    assert norm.missing_weight == ["ZZZ"]
    assert norm.without_bars == ["BBB"]
    assert norm.outside_universe_weight == pytest.approx(0.1)
    with pytest.raises(WeightsError, match="no universe symbol can be weighted"):
        normalize_weights(snap, ["ZZZ"])


def test_holdings_errors_are_precise(tmp_path):
    bad = tmp_path / "h_2024-01-02.csv"
    bad.write_text("symbol,weight_pct\nAAA,50\nBBB,abc\n")
    with pytest.raises(WeightsError, match=r"line 3, column 'weight_pct'.*'abc'"):
        load_holdings_csv(bad)
    bad.write_text("symbol,share\nAAA,50\n")
    with pytest.raises(WeightsError, match="missing column 'weight_pct'"):
        load_holdings_csv(bad)
    bad.write_text("symbol,weight_pct\nAAA,50\nAAA,20\n")
    with pytest.raises(WeightsError, match=r"duplicate symbol.*\[2, 3\]"):
        load_holdings_csv(bad)
    bad.write_text("symbol,weight_pct\nAAA,60\nBBB,40\n")
    assert load_holdings_csv(bad).latest().as_of == dt.date(2024, 1, 2)  # date from the file name


def test_weights_far_from_100_percent_warn_and_zero_total_is_refused(tmp_path):
    from market_master.lib.weights import total_warning

    def snap(weights):
        return WeightsSnapshot(as_of=dt.date(2025, 4, 28), weights=weights, source="test")

    assert total_warning(embedded_top10()) is None  # a top-10 subset (~50 %) is plausible
    assert "300.0 %" in total_warning(snap({"AAA": 1.5, "BBB": 0.9, "CCC": 0.6}))
    assert "fractions given as weight_pct" in total_warning(snap({"AAA": 0.005, "BBB": 0.003}))
    path = tmp_path / "h_2025-04-28.csv"
    path.write_text("symbol,weight_pct\nAAA,0\nBBB,0\n")
    with pytest.raises(WeightsError, match=r"h_2025-04-28.csv.*every weight .* is zero"):
        load_holdings_csv(path)
