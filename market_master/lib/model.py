"""ComponentModel (fitted pipeline + everything needed to reproduce its inputs) and its MLflow pyfunc."""

from __future__ import annotations

from dataclasses import dataclass, field

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd

from market_master.lib.compiled_trees import StackedTrees, compile_hgbt
from market_master.lib.features import FeatureConfig
from market_master.lib.labels import CLASSES, SCORES, LabelThresholds

PROBA_COLUMNS = [f"p_{c}" for c in CLASSES]
FAST_PATH_MAX_ROWS = 64
# compiled trees (lib/compiled_trees.py) stay on the numpy path for a whole hour of an index-sized universe:
# sklearn's HGBT predict would start its OpenMP pool (2 spinning threads: 9 ms CPU for ONE row at 124
# columns, benchmarks/bench_latency_paths.py) where the compiled walk takes ~0.2 ms
COMPILED_FAST_PATH_MAX_ROWS = 2048
SCORE_VECTOR = np.array([SCORES[c] for c in CLASSES], dtype=float)


@dataclass
class ComponentModel:
    """One fitted candidate with its feature config, label thresholds and training window.

    `validation_window` (set by train_candidates): the hours this model was selected on; its metrics there
    are optimistic, so judge it on hours after that window.
    """

    name: str
    estimator: object
    classes: tuple[str, ...]
    feature_columns: list[str]
    feature_config: FeatureConfig
    thresholds: LabelThresholds
    training_window: tuple[str, str]
    trained_symbols: list[str]
    metrics: dict = field(default_factory=dict)
    decision_cuts: tuple[float, float, float, float] | None = None
    validation_window: tuple[str, str] | None = None  # hours the champion was selected on (not test)

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
        """(n, 5) probabilities in CLASSES order; classes unseen in training get 0.

        Small inputs (serving: one row per symbol) take a numpy path that applies the fitted scaler and
        one-hot encoder by hand and calls the classifier on a plain array: the ColumnTransformer on a
        one-row DataFrame costs ~2 ms, more than most models themselves. Both paths give the same numbers
        (tested in test_model_fast_path.py).
        """
        x = self._inputs(features)
        out = np.zeros((len(x), len(self.classes)))
        if len(x) == 0:
            return out
        if self._fast_path_applies(len(x)):
            p = self._fast_predict(x)
        else:
            p = self.estimator.predict_proba(x)
        fitted = [int(c) for c in self.estimator.classes_]
        out[:, fitted] = p
        return out

    def _fast_path_applies(self, n_rows: int) -> bool:
        parts = self._fast_parts()
        if parts is None:
            return False
        limit = COMPILED_FAST_PATH_MAX_ROWS if isinstance(parts[3], StackedTrees) else FAST_PATH_MAX_ROWS
        return n_rows <= limit

    def _fast_parts(self):
        """(mean, scale, categories, classifier) from the fitted Pipeline(pre=ColumnTransformer, clf), or None."""
        cached = getattr(self, "_fast_cache", None)
        if cached is not None:
            return cached or None
        parts = ()
        try:
            pre, clf = self.estimator.named_steps["pre"], self.estimator.named_steps["clf"]
            num, sym = pre.named_transformers_["num"], pre.named_transformers_["sym"]
            if list(pre.transformers_[0][2]) == list(self.feature_columns):
                # gradient-boosted trees: all trees at once (compiled_trees explains the 10x)
                small_batch = compile_hgbt(clf) or clf
                parts = (num.mean_, num.scale_, np.asarray(sym.categories_[0], dtype=object), small_batch)
        except (AttributeError, KeyError, IndexError, TypeError):
            parts = ()
        object.__setattr__(self, "_fast_cache", parts)
        return parts or None

    def _fast_predict(self, x: pd.DataFrame) -> np.ndarray:
        return self._fast_predict_arrays(
            x["symbol"].to_numpy(dtype=object), x[self.feature_columns].to_numpy(np.float64)
        )

    def _fast_predict_arrays(self, symbols: np.ndarray, x: np.ndarray) -> np.ndarray:
        mean, scale, categories, clf = self._fast_parts()
        num = (x - mean) / scale
        onehot = (symbols[:, None] == categories[None, :]).astype(np.float64)
        return clf.predict_proba(np.hstack([num, onehot]))

    def predict_proba_arrays(self, symbols: np.ndarray, x: np.ndarray) -> np.ndarray | None:
        """`predict_proba` of rows given as arrays (`symbols` (n,), `x` (n, len(feature_columns)) in
        `feature_columns` order, all finite): the numpy fast path without a DataFrame, or None when the
        fast path does not apply (more than FAST_PATH_MAX_ROWS rows, COMPILED_FAST_PATH_MAX_ROWS for
        compiled trees, or an estimator it does not understand)."""
        if len(x) == 0 or not self._fast_path_applies(len(x)):
            return None
        out = np.zeros((len(x), len(self.classes)))
        out[:, [int(c) for c in self.estimator.classes_]] = self._fast_predict_arrays(
            np.asarray(symbols, dtype=object), np.asarray(x, dtype=np.float64)
        )
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_fast_cache", None)
        return state

    def class_indices_from_proba(self, proba: np.ndarray) -> np.ndarray:
        """Class index per row. The five classes are ORDERED: with `decision_cuts` (fitted on the validation
        window by `fit_decision_cuts`) the action is the band of the expected score sum_k p_k x score_k;
        without them, the argmax. With a weak signal the argmax almost never lands on the middle classes
        (their probabilities are all ~0.2), which wastes the ordering; banding the expected score at the
        label's class shares keeps the predicted class mix equal to the labels' mix."""
        proba = np.asarray(proba, dtype=float)
        if self.decision_cuts is None or len(proba) == 0:
            return proba.argmax(axis=1) if len(proba) else np.array([], dtype=int)
        return np.searchsorted(np.asarray(self.decision_cuts), proba @ SCORE_VECTOR, side="right")

    def fit_decision_cuts(self, proba: np.ndarray, class_shares: np.ndarray) -> None:
        """Cuts of the expected score at the cumulative `class_shares` (the training labels' class mix),
        from the probabilities of a window the model was NOT fitted on (the validation window)."""
        score = np.asarray(proba, dtype=float) @ SCORE_VECTOR
        cum = np.cumsum(np.asarray(class_shares, dtype=float))[:-1] / float(np.sum(class_shares))
        self.decision_cuts = tuple(float(c) for c in np.quantile(score, cum))

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """action, p_strong_sell .. p_strong_buy, confidence (max probability); index of `features`."""
        p = self.predict_proba(features)
        frame = pd.DataFrame(p, columns=PROBA_COLUMNS, index=features.index)
        best = self.class_indices_from_proba(p)
        frame.insert(0, "action", np.asarray(self.classes, dtype=object)[best])
        frame["confidence"] = p.max(axis=1) if len(p) else np.array([])
        return frame


class ComponentPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow wrapper: artifacts["component_model"] is a joblib'd ComponentModel."""

    def __init__(self) -> None:
        self.component_model: ComponentModel | None = None

    def load_context(self, context) -> None:  # noqa: ANN001 - mlflow PythonModelContext
        self.component_model = joblib.load(context.artifacts["component_model"])

    # The DataFrame hint tells MLflow there is no schema to infer from the hint (its type-hint validation
    # skips DataFrames; ComponentModel validates its own inputs), so it does not warn on every import.
    def predict(self, context, model_input: pd.DataFrame, params=None):  # noqa: ANN001, ANN201
        if self.component_model is None:
            raise RuntimeError("ComponentPyfunc used before load_context")
        return self.component_model.predict_frame(pd.DataFrame(model_input))
