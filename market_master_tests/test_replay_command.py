"""`market-master replay`: its window, its own home, and the refusals (the loop itself:
defs/test_replay_loop.py)."""

import pandas as pd

from market_master import cli
from market_master.lib import calendar
from market_master.replay_command import _window


def _args(*argv):
    return cli.build_parser().parse_args(["replay", *argv])


def test_window_from_start_end_or_last_sessions():
    start, end = _window(_args("--start", "2023-11-03", "--end", "2023-11-24"))
    assert start == pd.Timestamp("2023-11-03", tz=calendar.TZ)
    assert end.date() == pd.Timestamp("2023-11-24").date() and end.hour == 23
    start, _ = _window(_args("--days", "5", "--end", "2024-12-31"))
    assert start == pd.Timestamp("2024-12-24", tz=calendar.TZ)  # the last 5 sessions: 24, 26, 27, 30, 31


def test_non_empty_home_is_refused_before_any_work(tmp_path, capsys):
    home = tmp_path / "replay"
    home.mkdir()
    (home / "something").write_text("x")
    code = cli.main(["replay", "--home", str(home), "--start", "2023-11-06", "--end", "2023-11-07"])
    assert code == 2
    assert "is not empty" in capsys.readouterr().err


def test_defaults_are_the_daemons_cadence():
    args = _args()
    assert args.retrain_every == 1 and args.monitoring_every == 1 and args.source == "synthetic"
    assert args.func.__name__ == "cmd_replay"
