"""Loading a logged model: artifacts downloaded against an explicit tracking URI, then
`mlflow.pyfunc.load_model` on the local directory; `ComponentModel` unwrapped from its pyfunc."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.artifacts
import mlflow.pyfunc

from market_master.lib.model import ComponentModel, ComponentPyfunc


def load_pyfunc_dir(model_dir: str | Path) -> mlflow.pyfunc.PyFuncModel:
    """The pyfunc saved in a local directory (the one holding `MLmodel`)."""
    return mlflow.pyfunc.load_model(str(model_dir))


def load_pyfunc_artifacts(artifact_uri: str, tracking_uri: str) -> mlflow.pyfunc.PyFuncModel:
    """Download `artifact_uri` (a version's storage location, `runs:/...`, `file://...`) with the given
    tracking URI into a temporary directory and load it there. The pyfunc is loaded into memory (our
    models are joblib/pickle files), so the copy is deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="mm-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=tracking_uri
        )
        return load_pyfunc_dir(local)


def component_model_of(pyfunc: mlflow.pyfunc.PyFuncModel, source: str) -> ComponentModel:
    """The ComponentModel inside a ComponentPyfunc; TypeError naming `source` for any other model."""
    wrapper = pyfunc.unwrap_python_model()
    if not isinstance(wrapper, ComponentPyfunc) or wrapper.component_model is None:
        raise TypeError(f"{source} is not a ComponentPyfunc model (got {type(wrapper).__name__})")
    return wrapper.component_model


def load_model_dir(model_dir: str | Path) -> ComponentModel:
    """The ComponentModel saved in a local model directory (e.g. the local fallback copy's `model/`)."""
    return component_model_of(load_pyfunc_dir(model_dir), str(model_dir))
