"""Faults around a data root, with real processes: a second command while one holds the root stops at
once with a clear message; a kill while MLflow creates its store leaves no store or a complete one."""

import os
import signal
import subprocess
import sys
import time

from market_master import cli
from market_master.lib.mlflow_adapter import MlflowAdapter

HOLD = (
    "import sys, time; from pathlib import Path; from market_master.local_run import data_root_lock\n"
    "with data_root_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)\n"
)


def test_a_second_command_on_a_busy_data_root_stops_with_the_holder_named(tmp_path, monkeypatch, capsys):
    root = tmp_path / "home"
    monkeypatch.setenv("MARKET_MASTER_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        assert cli.main(["rollback", "--reason", "x"]) == 2
        err = capsys.readouterr().err
        assert "another market-master command is using the data root" in err and f"pid {holder.pid}" in err
        assert time.perf_counter() - started < 30  # it did not wait for the holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the OS released the lock with the killed holder: the next command gets past it (and fails later,
    # for its own reason: there is no model to roll back)
    assert cli.main(["rollback", "--reason", "x"]) == 2
    assert "another market-master command" not in capsys.readouterr().err


def test_a_read_only_data_root_is_one_line(tmp_path, monkeypatch, capsys):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    monkeypatch.setenv("MARKET_MASTER_HOME", str(root))
    try:
        if os.access(root, os.W_OK):  # root ignores permissions: nothing to prove here
            return
        assert cli.main(["rollback", "--reason", "x"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not writable" in err[0]
    finally:
        root.chmod(0o700)


CREATE = (
    "import sys; from market_master.lib.mlflow_adapter import MlflowAdapter\n"
    "MlflowAdapter(sys.argv[1]).ensure_experiment()\n"
)


def test_a_kill_while_mlflow_creates_its_store_leaves_none_or_a_complete_one(tmp_path):
    db = tmp_path / "mlflow" / "mlflow.db"
    uri = f"sqlite:///{db}"
    for delay in (0.5, 1.5, 3.0):  # somewhere inside the migrations (they take a few seconds here)
        proc = subprocess.Popen([sys.executable, "-c", CREATE, uri])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # whatever was interrupted, the store opens (or is created) and works
        adapter = MlflowAdapter(uri, experiment_name="after-kill")
        assert adapter.ensure_experiment()
        assert db.exists() and not list(db.parent.glob(".mlflow.db.creating-*"))
        db.unlink()
