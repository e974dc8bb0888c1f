"""ComponentModel (fitted pipeline + everything needed to reproduce its inputs) and its MLflow pyfunc."""

from __future__ import annotations

from dataclasses import dataclass, field

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd

from market_master.lib.features import FeatureConfig
from market_master.lib.labels import CLASSES, LabelThresholds

PROBA_COLUMNS = [f"p_{c}" for c in CLASSES]


@dataclass
class ComponentModel:
    """One fitted candidate with its feature config, label thresholds and training window."""

    name: str
    estimator: object
    classes: tuple[str, ...]
    feature_columns: list[str]
    feature_config: FeatureConfig
    thresholds: LabelThresholds
    training_window: tuple[str, str]
    trained_symbols: list[str]
    metrics: dict = field(default_factory=dict)

    def _inputs(self, features: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in ["symbol", *self.feature_columns] if c not in features.columns]
        if missing:
            raise ValueError(f"ComponentModel {self.name}: features lack columns {missing}")
        x = features[["symbol", *self.feature_columns]]
        bad = ~np.isfinite(x[self.feature_columns].to_numpy(np.float64)).all(axis=1)
        if bad.any():
            rows = features.index[bad][:5].tolist()
            raise ValueError(
                f"ComponentModel {self.name}: non-finite features (warm-up?) in {int(bad.sum())} rows, e.g. {rows}"
            )
        return x

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """(n, 5) probabilities in CLASSES order; classes unseen in training get 0."""
        x = self._inputs(features)
        out = np.zeros((len(x), len(self.classes)))
        if len(x) == 0:
            return out
        p = self.estimator.predict_proba(x)
        fitted = [int(c) for c in self.estimator.classes_]
        out[:, fitted] = p
        return out

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """action, p_strong_sell .. p_strong_buy, confidence (max probability); index of `features`."""
        p = self.predict_proba(features)
        frame = pd.DataFrame(p, columns=PROBA_COLUMNS, index=features.index)
        best = p.argmax(axis=1) if len(p) else np.array([], dtype=int)
        frame.insert(0, "action", np.asarray(self.classes, dtype=object)[best])
        frame["confidence"] = p.max(axis=1) if len(p) else np.array([])
        return frame


class ComponentPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow wrapper: artifacts["component_model"] is a joblib'd ComponentModel."""

    def __init__(self) -> None:
        self.component_model: ComponentModel | None = None

    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow PythonModelContext
        self.component_model = joblib.load(context.artifacts["component_model"])

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 - mlflow infers no hints
        if self.component_model is None:
            raise RuntimeError("ComponentPyfunc used before load_context")
        return self.component_model.predict_frame(pd.DataFrame(model_input))


def load_component_model(model_uri: str) -> ComponentModel:
    """The ComponentModel behind an MLflow pyfunc URI (models:/name@alias, runs:/..., a path)."""
    wrapper = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    if not isinstance(wrapper, ComponentPyfunc) or wrapper.component_model is None:
        raise TypeError(f"{model_uri} is not a ComponentPyfunc model (got {type(wrapper).__name__})")
    return wrapper.component_model
