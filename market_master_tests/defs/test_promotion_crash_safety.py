"""kill -9 in the middle of a Production move (a real process, killed at a named step): the registry, its
alias history and the API's local copy hold the old state or the new one, never a mix; the next command
marks the dead run failed, cleans what it left aside and completes the local copy."""

import os
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest

from market_master import settings
from market_master.lib.features import compute_features
from market_master.lib.mlflow_adapter import MlflowAdapter, load_model_dir, read_local_copy_info
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.storage import PartitionStore
from market_master.lib.training import TrainingConfig, train_candidates

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A data root with feature slices and two registered versions, Production -> v1 (moved by the CLI)."""
    root = tmp_path / "home"
    monkeypatch.setenv("MARKET_MASTER_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MARKET_MASTER_FAULT_AT", raising=False)
    features = compute_features(SyntheticSource(seed=5).fetch(["AAPL", "MSFT"], "2024-01-02", "2024-03-28"))
    PartitionStore(root / "partitions").write_many("feature_table", features, "timestamp")
    adapter = MlflowAdapter(settings.default_tracking_uri())
    result = train_candidates(features, TrainingConfig(candidates=("LogReg",), latency_rows=0))
    for _ in range(2):
        adapter.log_training(result)
    assert _cli("promote", "--version", "1", "--reason", "first", "--force").returncode == 0
    return root, adapter


def _cli(*args, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"MARKET_MASTER_FAULT_AT": fault} if fault else {})}
    return subprocess.run(
        [sys.executable, "-m", "market_master.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _local_copy_version(root) -> str:
    info = read_local_copy_info(root / "models" / "production")
    load_model_dir(info.model_dir)  # complete and loadable, not half a directory
    return info.version


def _promote_runs(status):
    with dg.DagsterInstance.get() as instance:
        return instance.get_runs(filters=dg.RunsFilter(job_name="promote_job", statuses=[status]))


def test_kill_before_the_alias_moves_leaves_the_old_state(home):
    root, adapter = home
    killed = _cli("promote", "--version", "2", "--reason", "x", "--force", fault="before_alias_move")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert adapter.alias_version("Production") == "1"
    assert [m.to_version for m in adapter.alias_history()] == ["1"]
    assert _local_copy_version(root) == "1"
    assert (root / "models" / "production.next").exists()  # written aside, never swapped in
    assert len(_promote_runs(dg.DagsterRunStatus.STARTED)) == 1
    # the next command: the dead run is marked failed, the leftover removed, the move completes
    assert _cli("promote", "--version", "2", "--reason", "again", "--force").returncode == 0
    assert not _promote_runs(dg.DagsterRunStatus.STARTED)
    assert len(_promote_runs(dg.DagsterRunStatus.FAILURE)) == 1
    assert adapter.alias_version("Production") == "2" and _local_copy_version(root) == "2"
    assert not (root / "models" / "production.next").exists()


def test_kill_after_the_alias_moved_leaves_the_new_state_and_the_copy_follows(home):
    root, adapter = home
    killed = _cli("promote", "--version", "2", "--reason", "x", "--force", fault="after_alias_move")
    assert killed.returncode == -9, killed.stderr[-2000:]
    # the commit point passed: the registry is in the new state, its history records the move
    assert adapter.alias_version("Production") == "2"
    assert [m.to_version for m in adapter.alias_history()] == ["1", "2"]
    # the local copy is still the complete old one (the API's fallback says which version it serves)
    assert _local_copy_version(root) == "1"
    # a rollback (any next move) reconciles first: copy of v2, then the move back to v1 is clean
    assert _cli("rollback", "--reason", "back").returncode == 0
    assert adapter.alias_version("Production") == "1" and _local_copy_version(root) == "1"
    assert [m.to_version for m in adapter.alias_history()] == ["1", "2", "1"]
    assert len(_promote_runs(dg.DagsterRunStatus.FAILURE)) == 1


def test_an_uncommitted_history_record_is_ignored(home):
    """A kill inside the registry write (history record written, alias not yet moved) never happened."""
    import json

    root, adapter = home
    tag = "alias_history.Production"
    records = json.loads(adapter.client.get_registered_model(adapter.model_name).tags[tag])
    pending = {
        **records[-1],
        "seq": records[-1]["seq"] + 1,
        "prev_seq": records[-1]["seq"],
        "from": "1",
        "to": "2",
    }
    adapter.client.set_registered_model_tag(adapter.model_name, tag, json.dumps([*records, pending]))
    assert adapter.alias_version("Production") == "1"
    assert [m.to_version for m in adapter.alias_history()] == ["1"]
    assert _cli("promote", "--version", "2", "--reason", "y", "--force").returncode == 0
    assert [m.to_version for m in adapter.alias_history()] == ["1", "2"]
    assert pd.Series([m.seq for m in adapter.alias_history()]).is_monotonic_increasing
