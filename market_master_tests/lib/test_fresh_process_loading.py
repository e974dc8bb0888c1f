"""Registry URIs resolve against the GIVEN tracking URI, not MLflow's process-global one: a fresh process
(a Dagster run worker, the API) never called mlflow.set_tracking_uri, and the adapter never does."""

import subprocess
import sys
import textwrap
import uuid

from market_master.lib.features import compute_features
from market_master.lib.mlflow_adapter import MlflowAdapter
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.training import TrainingConfig, train_candidates


def test_models_uri_loads_in_a_fresh_process_with_an_explicit_tracking_uri(mlflow_uri, tmp_path):
    features = compute_features(SyntheticSource().fetch(["AAPL", "MSFT"], "2024-01-02", "2024-03-29"))
    result = train_candidates(features, TrainingConfig(candidates=("LogReg",), latency_rows=0))
    name = f"mm-fresh-{uuid.uuid4().hex[:8]}"
    adapter = MlflowAdapter(mlflow_uri, model_name=name)
    registered = adapter.log_training(result)
    adapter.promote(registered.version, actor="test", reason="test")
    code = textwrap.dedent(
        f"""
        import os
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.chdir({str(tmp_path)!r})  # MLflow's default store would be ./mlruns or ./mlflow.db here: empty
        import mlflow
        from market_master.lib.aliases import PRODUCTION_ALIAS
        from market_master.lib.gates import model_loads_and_predicts
        from market_master.lib.mlflow_adapter import MlflowAdapter, load_model_dir, read_local_copy_info
        before = mlflow.get_tracking_uri()
        adapter = MlflowAdapter({mlflow_uri!r}, model_name={name!r})
        m = adapter.load_model(alias=PRODUCTION_ALIAS)
        print("loaded", m.name)
        p = adapter.export_local_copy({str(tmp_path / "copy")!r})
        info = read_local_copy_info({str(tmp_path / "copy")!r})
        print("exported", p, "reloaded", load_model_dir(info.model_dir).name)
        assert mlflow.get_tracking_uri() == before, mlflow.get_tracking_uri()
        assert not os.path.exists("mlruns") and not os.path.exists("mlflow.db"), os.listdir(".")
        """
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "loaded LogReg" in out.stdout and "reloaded LogReg" in out.stdout
