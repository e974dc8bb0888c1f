"""Registry URIs resolve against the GIVEN tracking URI, not MLflow's process-global one: a fresh process
(a Dagster run worker, the API) never called mlflow.set_tracking_uri."""

import subprocess
import sys
import textwrap
import uuid

from market_master.lib import registry
from market_master.lib.features import compute_features
from market_master.lib.sources.synthetic import SyntheticSource
from market_master.lib.tracking import log_training
from market_master.lib.training import TrainingConfig, train_candidates


def test_models_uri_loads_in_a_fresh_process_with_an_explicit_tracking_uri(mlflow_uri, tmp_path):
    features = compute_features(SyntheticSource().fetch(["AAPL", "MSFT"], "2024-01-02", "2024-03-29"))
    result = train_candidates(features, TrainingConfig(candidates=("LogReg",), latency_rows=0))
    name = f"mm-fresh-{uuid.uuid4().hex[:8]}"
    registered = log_training(result, tracking_uri=mlflow_uri, model_name=name)
    registry.promote(mlflow_uri, name, registered.version, actor="test", reason="test")
    code = textwrap.dedent(
        f"""
        import os
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.chdir({str(tmp_path)!r})  # MLflow's default store would be ./mlruns or ./mlflow.db here: empty
        from market_master.lib import registry
        from market_master.lib.model import load_component_model
        from market_master.lib.gates import model_loads_and_predicts
        m = load_component_model("models:/{name}@Production", {mlflow_uri!r})
        print("loaded", m.name)
        p = registry.export_local_copy("models:/{name}@Production", {str(tmp_path / "copy")!r}, tracking_uri={mlflow_uri!r})
        info = registry.read_local_copy_info({str(tmp_path / "copy")!r})
        print("exported", p, "reloaded", load_component_model(str(info.model_dir)).name)
        """
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "loaded LogReg" in out.stdout and "reloaded LogReg" in out.stdout
