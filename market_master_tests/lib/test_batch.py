"""Batch mode end to end on small synthetic CSVs: the walk-forward history (no model given) and a given
model's test window; no threshold sweep ever sees the hours it is judged on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from market_master.lib import backtest
from market_master.lib.batch import BatchInputError, load_csv_bars, run_batch, split_sessions
from market_master.lib.segments import Segments
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.walk_forward import WalkForwardConfig

SYMBOLS = ["AAA", "BBB", "CCC", "TSM"]  # TSM: bars but no weight
FAST = ("LogReg", "ET")
OUTPUTS = [
    "predictions.parquet",
    "predictions.csv",
    "wss.csv",
    "signals.csv",
    "backtest.json",
    "equity.png",
    "wss.png",
    "report.md",
    "folds.csv",
    "oos_metrics.csv",
]
# ~43 post-warm-up sessions of CSVs: first window 15 sessions, refit every 10, search every 2nd fold
SMALL_WF = WalkForwardConfig(train_sessions=15, refit_every_sessions=10, select_every_folds=2)
GRID = [(0.25, -0.25), (0.5, -0.5), (1.0, -1.0)]


def write_csvs(directory: Path, start: str, end: str, symbols=(*SYMBOLS, "QQQ")) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    bars = SyntheticSource(seed=11, predictability=0.8).fetch(list(symbols), start, end)
    for sym, g in bars.groupby("symbol"):
        out = g[["timestamp", "open", "high", "low", "close", "volume"]].rename(
            columns={"timestamp": "Datetime"}
        )
        out.to_csv(directory / f"{sym}_1h.csv", index=False)
    return directory


def write_holdings(path: Path) -> Path:
    rows = [
        ("AAA", 9.0, "Aaa Inc"),
        ("BBB", 6.0, "Bbb Corp"),
        ("CCC", 3.0, "Ccc Ltd"),
        ("NFLX", 2.0, "Netflix Inc"),  # weighted, no bars
    ]
    frame = pd.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "weight_pct": [r[1] for r in rows],
            "name": [r[2] for r in rows],
            "sector": "Information Technology",
            "shares": "1,000",
            "market_value": "10,000.00",
            "as_of": "2025-04-28",
        }
    )
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("batch-in")
    return write_csvs(root / "csv", "2024-03-01", "2024-05-03"), write_holdings(root / "holdings.csv")


@pytest.fixture(scope="module")
def batch_run(inputs, tmp_path_factory):
    csv_dir, holdings = inputs
    return run_batch(
        csv_dir,
        holdings,
        tmp_path_factory.mktemp("batch-out"),
        candidates=FAST,
        grid=GRID,
        walk_forward=SMALL_WF,
    )


def _test_start(csv_dir: Path) -> pd.Timestamp:
    """Where a given model's test segment starts (the last quarter of the sessions)."""
    hours = pd.DatetimeIndex(load_csv_bars(csv_dir)["timestamp"].unique())
    return split_sessions(hours)["test"].min()


def _early_model(batch_run):
    """The first fold's model: trained on the first 15 sessions, before any given-model test segment."""
    return batch_run.fold_models[0]


def test_batch_writes_every_output(batch_run):
    out = batch_run.out_dir
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    preds = pd.read_parquet(out / "predictions.parquet")
    assert set(preds["symbol"]) == set(SYMBOLS)  # QQQ is the proxy, not a constituent
    assert set(preds["status"]) <= {"ok", "warmup", "missing_bar"}
    assert preds.loc[preds["status"] != "ok", "action"].isna().all()
    signals = pd.read_csv(out / "signals.csv")
    assert set(signals["decision"]) <= {"BUY", "SELL", "HOLD", "NO_SIGNAL"}
    # NO_SIGNAL exactly where there is no WSS (warm-up hours): a missing WSS is never a HOLD
    assert (signals["decision"].eq("NO_SIGNAL") == signals["wss"].isna()).all()
    assert set(signals["segment"]) == {"out_of_sample"}  # only hours no fold trained or chose on
    assert len(signals) == preds["hour"].nunique()
    folds = pd.read_csv(out / "folds.csv")
    assert (pd.to_datetime(folds["train_end"], utc=True) < pd.to_datetime(folds["oos_start"], utc=True)).all()
    wss = pd.read_csv(out / "wss.csv")
    assert wss["unweighted_symbols"].fillna("").eq("TSM").all()
    assert wss["wss"].dropna().between(-2, 2).all()


def test_backtest_json_has_metrics_factor_psr_dsr_and_trials(batch_run):
    payload = json.loads((batch_run.out_dir / "backtest.json").read_text())
    assert payload["annualization_factor"] == backtest.BARS_PER_YEAR
    assert set(payload["test"]) == {"signal", "buy_and_hold", "flat"}
    assert payload["proxy"] == "QQQ"
    assert payload["n_trials"] == len(FAST) * 2 * len(GRID)  # candidates x decision rules x pairs
    assert payload["n_candidates"] == len(FAST)
    assert 0.0 <= payload["psr_test"] <= 1.0 and 0.0 <= payload["dsr_test"] <= 1.0
    assert payload["dsr_test"] <= payload["psr_test"] + 1e-12
    assert payload["thresholds"]["swept_on"] in (
        "each fold's own inner validation hours",
        "fixed for every fold",
    )
    assert "chosen on hours before its own OOS hours" in payload["hours_statement"]
    assert payload["unweighted_symbols"] == ["TSM"] and payload["symbols_without_bars"] == ["NFLX"]
    assert payload["holdings_weight_with_bars"] == pytest.approx(18 / 20)
    assert {r["metric"] for r in payload["oos_metrics"]} >= {"WSS time-series IC", "macro-F1 margin"}


def test_report_states_single_snapshot_and_symbol_gaps(batch_run):
    text = (batch_run.out_dir / "report.md").read_text()
    assert "today's weights were applied to all history" in text
    assert "TSM" in text and "NFLX" in text
    assert "| signal |" in text and "| buy_and_hold |" in text and "| flat |" in text


def test_segments_are_in_time_order(batch_run):
    seg = {k: (pd.Timestamp(v["start"]), pd.Timestamp(v["end"])) for k, v in batch_run.segments.items()}
    assert seg["first_training_window"][1] < seg["out_of_sample"][0] <= seg["out_of_sample"][1]


def test_each_fold_sweeps_only_hours_before_its_own_oos_hours(inputs, tmp_path, monkeypatch):
    csv_dir, holdings = inputs
    seen: list[pd.Timestamp] = []
    real = backtest.sweep_thresholds

    def spy(wss_valid, proxy_valid, grid=None, cost_bps=1.0, **kw):
        seen.append(max(wss_valid.index.max(), proxy_valid.dropna().index.max()))
        return real(wss_valid, proxy_valid, grid, cost_bps, **kw)

    monkeypatch.setattr(backtest, "sweep_thresholds", spy)
    res = run_batch(
        csv_dir, holdings, tmp_path / "out", candidates=("LogReg",), grid=GRID, walk_forward=SMALL_WF
    )
    assert len(seen) == len(res.folds)
    assert all(s < start for s, start in zip(seen, res.folds["oos_start"], strict=True))


def test_poisoning_later_hours_does_not_move_earlier_folds(inputs, tmp_path):
    csv_dir, holdings = inputs
    clean = run_batch(
        csv_dir, holdings, tmp_path / "clean", candidates=("LogReg",), grid=GRID, walk_forward=SMALL_WF
    )
    last_start = clean.folds["oos_start"].iloc[-1]
    poisoned = tmp_path / "poisoned"
    poisoned.mkdir()
    for f in csv_dir.glob("*_1h.csv"):
        frame = pd.read_csv(f)
        ts = pd.to_datetime(frame["Datetime"], utc=True).dt.tz_convert("America/New_York")
        late = ts > last_start
        # a wild but valid zig-zag in the last fold's OOS hours only (4x bar to bar: inside the 10x check)
        factor = pd.Series(1.0, index=frame.index)
        factor[late] = [2.0 if i % 2 else 0.5 for i in range(int(late.sum()))]
        for col in ("open", "high", "low", "close"):
            frame[col] = frame[col] * factor
        frame.loc[late, "high"] = frame.loc[late, ["open", "high", "low", "close"]].max(axis=1)
        frame.loc[late, "low"] = frame.loc[late, ["open", "high", "low", "close"]].min(axis=1)
        frame.to_csv(poisoned / f.name, index=False)
    dirty = run_batch(
        poisoned, holdings, tmp_path / "dirty", candidates=("LogReg",), grid=GRID, walk_forward=SMALL_WF
    )
    cols = ["champion", "decision_rule", "buy_threshold", "sell_threshold", "train_end"]
    pd.testing.assert_frame_equal(dirty.folds[cols], clean.folds[cols])
    before = clean.signal["hour"] < last_start
    pd.testing.assert_series_equal(dirty.signal.loc[before, "wss"], clean.signal.loc[before, "wss"])
    assert dirty.test_backtest.metrics["buy_and_hold"]["total_return"] != pytest.approx(
        clean.test_backtest.metrics["buy_and_hold"]["total_return"]
    )


def test_given_model_and_no_proxy_csv(inputs, batch_run, tmp_path):
    csv_dir, holdings = inputs
    no_proxy = tmp_path / "csv"
    no_proxy.mkdir()
    for f in csv_dir.glob("*_1h.csv"):
        if not f.name.startswith("QQQ"):
            (no_proxy / f.name).write_bytes(f.read_bytes())
    res = run_batch(
        no_proxy, holdings, tmp_path / "out", model=_early_model(batch_run), sweep=False, buy=0.5, sell=-0.5
    )
    assert res.proxy == "weighted constituents"
    assert (res.buy_threshold, res.sell_threshold) == (0.5, -0.5)
    assert res.n_trials == 1
    text = (tmp_path / "out" / "report.md").read_text()
    assert "model given" in text


def test_too_short_history_is_a_clear_error(inputs, tmp_path):
    csv_dir = write_csvs(tmp_path / "csv", "2024-03-01", "2024-03-20", symbols=("AAA", "QQQ"))
    holdings = write_holdings(tmp_path / "h.csv")
    with pytest.raises(BatchInputError, match="21 trading days"):
        run_batch(csv_dir, holdings, tmp_path / "out", candidates=("LogReg",))
    # enough days, too few for the walk-forward's first training window: says what to change
    with pytest.raises(BatchInputError, match="no out-of-sample session.*first training window of 60"):
        run_batch(inputs[0], inputs[1], tmp_path / "out2", candidates=("LogReg",))


def test_failed_error_check_names_the_rows(inputs, tmp_path):
    csv_dir, holdings = inputs
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in csv_dir.glob("*_1h.csv"):
        frame = pd.read_csv(f)
        if f.name.startswith("BBB"):
            frame.loc[5, "high"] = frame.loc[5, "low"] * 0.5
        frame.to_csv(bad / f.name, index=False)
    with pytest.raises(BatchInputError, match="high_is_at_least_open_and_close.*BBB"):
        run_batch(bad, holdings, tmp_path / "out", candidates=("LogReg",))


def test_split_sessions_shares():
    hours = pd.date_range("2024-01-01 09:30", periods=30, freq="D", tz="America/New_York")
    seg = split_sessions(hours)  # the pipeline's shares: 0.5 | 0.25 | 0.25
    assert [len(seg[k]) for k in ("train", "validation", "test")] == [15, 7, 8]
    seg = split_sessions(hours, Segments(train=0.6, validation=0.2, test=0.2))
    assert [len(seg[k]) for k in ("train", "validation", "test")] == [18, 6, 6]
    with pytest.raises(ValueError, match="has none"):
        split_sessions(hours, Segments(train=0.75, validation=0.25, test=0.0))


def _copy_without_proxy(csv_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in csv_dir.glob("*_1h.csv"):
        if not f.name.startswith("QQQ"):
            (dest / f.name).write_bytes(f.read_bytes())
    return dest


def test_given_model_that_saw_the_test_segment_is_refused(inputs, batch_run, tmp_path):
    csv_dir, holdings = inputs
    test_start = _test_start(csv_dir)
    model = _early_model(batch_run)
    late = dataclasses.replace(model, training_window=(model.training_window[0], test_start.isoformat()))
    with pytest.raises(BatchInputError, match=r"training_window ends 2024-.*test segment start 2024-"):
        run_batch(csv_dir, holdings, tmp_path / "a", model=late, sweep=False)
    # a model validated (selected) on test hours is refused too
    selected_late = dataclasses.replace(model)
    selected_late.validation_window = (model.training_window[1], str(test_start + pd.Timedelta(days=1)))
    with pytest.raises(BatchInputError, match="validation_window ends"):
        run_batch(csv_dir, holdings, tmp_path / "b", model=selected_late, sweep=False)
    # one hour before the test start is fine
    ok = dataclasses.replace(
        model, training_window=(model.training_window[0], str(test_start - pd.Timedelta(hours=1)))
    )
    res = run_batch(csv_dir, holdings, tmp_path / "c", model=ok, sweep=False)
    assert res.n_trials == 1


def test_no_proxy_csv_uses_point_in_time_weights(inputs, batch_run, tmp_path):
    csv_dir, _ = inputs
    no_proxy = _copy_without_proxy(csv_dir, tmp_path / "csv")
    switch = pd.Timestamp("2024-04-15", tz="America/New_York")
    first = {"AAA": 9.0, "BBB": 6.0, "CCC": 3.0}
    second = {"AAA": 1.0, "BBB": 1.0, "CCC": 10.0}
    rows = [(s, w, "2024-03-01") for s, w in first.items()] + [
        (s, w, "2024-04-15") for s, w in second.items()
    ]
    holdings = tmp_path / "history.csv"
    pd.DataFrame(rows, columns=["symbol", "weight_pct", "as_of"]).to_csv(holdings, index=False)
    res = run_batch(no_proxy, holdings, tmp_path / "out", model=_early_model(batch_run), sweep=False)
    assert res.proxy == "weighted constituents"

    # by hand: per-symbol next-bar returns (synthetic bars are complete) weighted by the snapshot in force
    closes = {}
    for sym in first:
        frame = pd.read_csv(no_proxy / f"{sym}_1h.csv")
        idx = pd.to_datetime(frame["Datetime"], utc=True).dt.tz_convert("America/New_York")
        closes[sym] = pd.Series(frame["close"].to_numpy(), index=idx)
    close = pd.DataFrame(closes)
    fwd = close.shift(-1) / close - 1.0

    def proxy_with(weights: dict[str, float]) -> pd.Series:
        w = pd.Series(weights)
        return (fwd[w.index] * w).sum(axis=1) / w.sum()

    expected = proxy_with(first).where(fwd.index < switch, proxy_with(second))
    frames = pd.concat([res.validation_backtest.frame, res.test_backtest.frame])
    assert frames["hour"].min() < switch < frames["hour"].max()  # both snapshots are exercised
    got = frames.set_index("hour")["proxy_return"]
    assert got.to_numpy() == pytest.approx(expected.reindex(got.index).to_numpy(), rel=1e-12)
    before = got.index < switch
    assert not got[before].to_numpy() == pytest.approx(
        proxy_with(second).reindex(got.index[before]).to_numpy()
    )
    assert "Dated holdings history" in (tmp_path / "out" / "report.md").read_text()


def _edited_copy(csv_dir: Path, dest: Path, symbol: str, edit) -> Path:
    dest.mkdir()
    for f in csv_dir.glob("*_1h.csv"):
        frame = pd.read_csv(f)
        if f.name.startswith(symbol + "_"):
            frame = edit(frame)
        frame.to_csv(dest / f.name, index=False)
    return dest


def test_failed_check_names_file_line_column_and_value_not_the_combined_row(inputs, tmp_path):
    csv_dir, holdings = inputs

    def lower_high(frame):
        frame.loc[5, "high"] = 1.25  # data row 5 -> line 7 (header = line 1)
        return frame

    bad = _edited_copy(csv_dir, tmp_path / "bad", "CCC", lower_high)
    with pytest.raises(BatchInputError) as err:
        run_batch(bad, holdings, tmp_path / "out", candidates=("LogReg",))
    message = str(err.value)
    assert f"{bad / 'CCC_1h.csv'} line 7" in message and "high=1.25" in message, message
    assert "'row'" not in message


def test_a_bar_5000x_the_last_close_is_refused(inputs, tmp_path):
    csv_dir, holdings = inputs

    def explode(frame):
        frame.loc[40, ["open", "high", "low", "close"]] = frame.loc[39, "close"] * 5000
        return frame

    bad = _edited_copy(csv_dir, tmp_path / "bad", "AAA", explode)
    with pytest.raises(BatchInputError, match=r"returns_are_sane.*10x.*AAA_1h.csv line 42"):
        run_batch(bad, holdings, tmp_path / "out", candidates=("LogReg",))


def test_proxy_not_covering_validation_and_test_is_an_error(inputs, tmp_path):
    csv_dir, holdings = inputs

    def first_month(frame):
        return frame[frame["Datetime"] < "2024-04-01"]

    short = _edited_copy(csv_dir, tmp_path / "short", "QQQ", first_month)
    with pytest.raises(BatchInputError) as err:
        run_batch(short, holdings, tmp_path / "out", candidates=("LogReg",), walk_forward=SMALL_WF)
    message = str(err.value)
    assert "index proxy QQQ" in message and "covers 2024-03-01" in message
    assert "out-of-sample hours 2024-" in message
    assert not (tmp_path / "out" / "backtest.json").exists()


def test_weights_far_from_100_percent_are_flagged_in_the_notes(inputs, tmp_path):
    csv_dir, _ = inputs
    holdings = tmp_path / "h.csv"
    pd.DataFrame(
        {"symbol": ["AAA", "BBB", "CCC"], "weight_pct": [150.0, 90.0, 60.0], "as_of": "2025-04-28"}
    ).to_csv(holdings, index=False)
    res = run_batch(
        csv_dir, holdings, tmp_path / "out", candidates=("LogReg",), sweep=False, walk_forward=SMALL_WF
    )
    warnings = [n for n in res.notes if n.startswith("WARN weights")]
    assert warnings and "300.0 %" in warnings[0]
    assert "300.0 %" in (tmp_path / "out" / "report.md").read_text()


def test_model_refusal_suggests_only_what_the_cli_offers(inputs, batch_run, tmp_path):
    import re

    from market_master import cli

    csv_dir, holdings = inputs
    test_start = _test_start(csv_dir)
    model = _early_model(batch_run)
    late = dataclasses.replace(model, training_window=(model.training_window[0], test_start.isoformat()))
    with pytest.raises(BatchInputError) as err:
        run_batch(csv_dir, holdings, tmp_path / "a", model=late, sweep=False)
    message = str(err.value)
    assert "shares" not in message  # the CLI cannot set the segment shares
    batch_parser = cli.build_parser()._subparsers._group_actions[0].choices["batch"]
    known = {opt for action in batch_parser._actions for opt in action.option_strings}
    assert set(re.findall(r"--[a-z][a-z-]*", message)) <= known
    source = (Path(cli.__file__).parent / "lib" / "batch.py").read_text()
    assert set(re.findall(r"(--[a-z][a-z-]*)", source)) <= known | {"--proxy", "--csv-dir"}
