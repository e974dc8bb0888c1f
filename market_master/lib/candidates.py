"""The seven bounded candidate classifiers and the three baselines.

Every candidate is a sklearn Pipeline: a ColumnTransformer (StandardScaler on the numeric features, fit on
the training rows only; OneHotEncoder(handle_unknown="ignore") on `symbol`) then the classifier. Bounds keep
each pickled model < 50 MB, a single-row predict < 5 ms p99 with n_jobs=1, and all seven on ~170k rows
within 10 minutes on 2 cores (benchmarks/bench_training.py):

- RF / ET: 40 trees, max_depth 10, min_samples_leaf 50 (RF also bootstraps 25% of rows per tree).
- GB: 40 stages of depth-3 trees, subsample 0.5, on at most `max_train_rows` = 40,000 training rows.
- HGBT: 100 iterations, 15 leaves, min_samples_leaf 100, no early stopping.
- MLP: (32, 16) ReLU, adam, early stopping, at most 40 epochs, on at most 60,000 rows.
- SVC: RBF, C=1, Platt probabilities, on a seeded subsample of at most 3,000 rows (kernel SVM is O(n^2)).
- LogReg: multinomial, L2, C=1.

Missing rows are not imputed: training and prediction only see non-warm-up rows (features all finite).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from market_master.lib.labels import CLASSES, SCORE_VECTOR, LabelThresholds

CANDIDATE_NAMES = ("RF", "ET", "GB", "HGBT", "MLP", "SVC", "LogReg")
BASELINE_NAMES = ("majority", "stratified", "momentum")
SVC_MAX_ROWS = 3_000


@dataclass(frozen=True)
class CandidateSpec:
    """How to build one candidate; `max_train_rows` caps the (seeded, uniform) training subsample."""

    name: str
    build: Callable[[int], object]
    max_train_rows: int | None = None
    notes: str = ""
    params: dict = field(default_factory=dict)


def preprocessor(feature_columns: list[str]) -> ColumnTransformer:
    """Scaler on numeric features + one-hot symbol (unknown symbols -> all zeros)."""
    return ColumnTransformer(
        [
            ("num", StandardScaler(), list(feature_columns)),
            ("sym", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["symbol"]),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def _rf(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=40,
        max_depth=10,
        min_samples_leaf=50,
        max_features="sqrt",
        max_samples=0.25,
        n_jobs=1,
        random_state=seed,
    )


def _et(seed: int) -> ExtraTreesClassifier:
    return ExtraTreesClassifier(
        n_estimators=40, max_depth=10, min_samples_leaf=50, max_features="sqrt", n_jobs=1, random_state=seed
    )


def _gb(seed: int) -> GradientBoostingClassifier:
    return GradientBoostingClassifier(
        n_estimators=40, max_depth=3, learning_rate=0.1, subsample=0.5, random_state=seed
    )


def _hgbt(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=100,
        max_leaf_nodes=15,
        min_samples_leaf=100,
        learning_rate=0.1,
        early_stopping=False,
        random_state=seed,
    )


def _mlp(seed: int) -> MLPClassifier:
    return MLPClassifier(
        hidden_layer_sizes=(32, 16),
        alpha=1e-3,
        batch_size=256,
        learning_rate_init=1e-3,
        max_iter=40,
        early_stopping=True,
        n_iter_no_change=5,
        random_state=seed,
    )


def _svc(seed: int) -> SVC:
    return SVC(kernel="rbf", C=1.0, gamma="scale", probability=True, random_state=seed)


def _logreg(seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=300, random_state=seed)


def candidate_specs(svc_max_rows: int = SVC_MAX_ROWS) -> dict[str, CandidateSpec]:
    """The seven candidates by name, with their bounds stated as params."""
    specs = [
        CandidateSpec("RF", _rf, None, "40 trees, depth<=10, leaf>=50, 25% bootstrap rows"),
        CandidateSpec("ET", _et, None, "40 trees, depth<=10, leaf>=50"),
        CandidateSpec("GB", _gb, 40_000, "40 stages depth 3, subsample 0.5, <=40k rows"),
        CandidateSpec("HGBT", _hgbt, None, "100 iterations, 15 leaves, leaf>=100"),
        CandidateSpec("MLP", _mlp, 60_000, "(32,16) relu, <=40 epochs, early stopping, <=60k rows"),
        CandidateSpec("SVC", _svc, svc_max_rows, f"RBF + Platt probabilities on <={svc_max_rows} rows"),
        CandidateSpec("LogReg", _logreg, None, "multinomial L2, C=1"),
    ]
    return {s.name: s for s in specs}


def build_pipeline(spec: CandidateSpec, feature_columns: list[str], seed: int) -> Pipeline:
    return Pipeline([("pre", preprocessor(feature_columns)), ("clf", spec.build(seed))])


def pipeline_params(pipeline: Pipeline) -> dict[str, object]:
    """The classifier's hyper-parameters (scalars only) for logging."""
    params = pipeline.named_steps["clf"].get_params()
    return {k: v for k, v in params.items() if isinstance(v, int | float | str | bool | tuple | type(None))}


# ---------------------------------------------------------------- baselines


class Baseline:
    """A fitted rule with `predict_proba(frame) -> (n, 5)` in CLASSES order."""

    name: str = "baseline"

    def fit(self, frame, y: np.ndarray) -> Baseline:  # noqa: ANN001 - DataFrame
        return self

    def predict_proba(self, frame) -> np.ndarray:  # noqa: ANN001
        raise NotImplementedError

    def params(self) -> dict:
        return {}


class MajorityBaseline(Baseline):
    """Always the most frequent training class."""

    name = "majority"

    def fit(self, frame, y: np.ndarray) -> MajorityBaseline:
        self.class_ = int(np.bincount(y, minlength=len(CLASSES)).argmax())
        return self

    def predict_proba(self, frame) -> np.ndarray:
        p = np.zeros((len(frame), len(CLASSES)))
        p[:, self.class_] = 1.0
        return p

    def params(self) -> dict:
        return {"class": CLASSES[self.class_]}


class StratifiedBaseline(Baseline):
    """Random class drawn with the training class frequencies (seeded); probabilities = the frequencies."""

    name = "stratified"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, frame, y: np.ndarray) -> StratifiedBaseline:
        counts = np.bincount(y, minlength=len(CLASSES)).astype(float)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, frame) -> np.ndarray:
        return np.tile(self.prior_, (len(frame), 1))

    def predict(self, frame) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.choice(len(CLASSES), size=len(frame), p=self.prior_)

    def params(self) -> dict:
        return {"seed": self.seed, "prior": [round(float(p), 4) for p in self.prior_]}


class MomentumBaseline(Baseline):
    """The last bar's return, scaled like the labels (by the label volatility at t), cut with the training
    thresholds (tomorrow = today)."""

    name = "momentum"

    def __init__(self, thresholds: LabelThresholds) -> None:
        self.thresholds = thresholds

    def predict_proba(self, frame) -> np.ndarray:
        r = self.thresholds.scale(frame["ret_1"].to_numpy(np.float64), frame)
        cls = self.thresholds.classify(np.nan_to_num(r), frame)
        p = np.zeros((len(frame), len(CLASSES)))
        p[np.arange(len(frame)), cls] = 1.0
        return p

    def params(self) -> dict:
        return {"rule": "class of scaled ret_1 under the training thresholds"}


def baseline_predict(baseline: Baseline, frame) -> np.ndarray:
    """Class predictions of a baseline (stratified draws at random; others take the argmax)."""
    if isinstance(baseline, StratifiedBaseline):
        return baseline.predict(frame)
    return baseline.predict_proba(frame).argmax(axis=1)


def expected_score(proba: np.ndarray) -> np.ndarray:
    """E[score] = sum_k p_k * SCORES[k]."""
    return proba @ SCORE_VECTOR
