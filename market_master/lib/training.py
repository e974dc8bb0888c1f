"""Time split with embargo, training of all candidates and baselines, champion selection, held-out test.

Split of the distinct post-warm-up hours (all symbols), in time order, with the shares and embargo of
`TrainingConfig.segments` (lib/segments.py):

    train | embargo | validation | embargo | test

The validation segment is used for ONE thing: picking the champion (macro-F1, then accuracy). The test
segment is never looked at while choosing anything; its metrics (`TrainingResult.test_metrics`,
`test_margin`, `test_margin_se`) are what the gates and reports use, so the selection over seven
candidates does not inflate them. `Segments(test=0)` drops the test segment; a caller with its own
segments (lib/batch.py) passes `train_candidates(..., split=SplitBoundaries(...))` instead.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from market_master.lib.candidates import (
    CANDIDATE_NAMES,
    SVC_MAX_ROWS,
    Baseline,
    MajorityBaseline,
    MomentumBaseline,
    StratifiedBaseline,
    baseline_predict,
    build_pipeline,
    candidate_specs,
    expected_score,
    pipeline_params,
)
from market_master.lib.evaluation import (
    BootstrapResult,
    classification_metrics,
    information_coefficient,
    macro_f1,
    model_size_bytes,
    paired_bootstrap_macro_f1,
    session_split_metrics,
    single_row_latency_ms,
)
from market_master.lib.features import FeatureConfig
from market_master.lib.labels import CLASSES, NO_LABEL, LabelThresholds, next_bar_log_return
from market_master.lib.model import ComponentModel
from market_master.lib.segments import (
    DEFAULT_SEGMENTS,
    Segments,
    SplitBoundaries,
    post_warmup_hours,
    split_hours,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """What to train and how to split: `segments` holds the validation / test shares of the post-warm-up
    hours and the embargo (`Segments(test=0)`: no test segment); training gets the rest."""

    label_method: str = "session_volatility"
    segments: Segments = DEFAULT_SEGMENTS
    seed: int = 42
    candidates: tuple[str, ...] = CANDIDATE_NAMES
    svc_max_rows: int = SVC_MAX_ROWS
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    latency_rows: int = 50
    latency_rounds: int = 3
    bootstrap_n: int = 300

    def __post_init__(self) -> None:
        unknown = [c for c in self.candidates if c not in CANDIDATE_NAMES]
        if unknown or not self.candidates:
            raise ValueError(f"TrainingConfig.candidates: unknown {unknown}; choose from {CANDIDATE_NAMES}")

    def to_dict(self) -> dict:
        return {
            "label_method": self.label_method,
            **self.segments.to_dict(),
            "seed": self.seed,
            "candidates": ",".join(self.candidates),
            "svc_max_rows": self.svc_max_rows,
            "warmup": self.feature_config.warmup,
        }


def time_split(features: pd.DataFrame, config: TrainingConfig) -> SplitBoundaries:
    """``segments.split_hours`` of the distinct post-warm-up hours (all symbols) with ``config.segments``."""
    return split_hours(post_warmup_hours(features), config.segments)


@dataclass
class CandidateResult:
    model: ComponentModel
    params: dict
    metrics: dict
    notes: str = ""


@dataclass
class BaselineResult:
    baseline: Baseline
    params: dict
    metrics: dict


@dataclass
class TrainingResult:
    """Everything train_candidates produced.

    `candidates[...].metrics`, `baselines[...].metrics`, `margin`, `margin_se` and `validation` are on the
    VALIDATION segment, where the champion was selected (optimistic for the champion). `test`,
    `test_metrics` (champion + the three baselines), `test_best_baseline_name`, `test_margin` and
    `test_margin_se` are on the held-out TEST segment: use those to judge the champion. Without a test
    segment (`Segments(test=0)` or a split without one) `test` is None, `test_metrics` empty and the test
    numbers NaN.
    """

    config: TrainingConfig
    split: SplitBoundaries
    thresholds: LabelThresholds
    candidates: dict[str, CandidateResult]
    baselines: dict[str, BaselineResult]
    champion_name: str
    best_baseline_name: str
    champion_beats_best_baseline: bool
    margin: float
    margin_se: float
    validation: pd.DataFrame
    label_counts: dict = field(default_factory=dict)
    input_example: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    test_metrics: dict[str, dict] = field(default_factory=dict)
    test_best_baseline_name: str | None = None
    test_margin: float = float("nan")
    test_margin_se: float = float("nan")

    @property
    def champion(self) -> ComponentModel:
        return self.candidates[self.champion_name].model

    @property
    def has_test(self) -> bool:
        return self.test is not None and len(self.test) > 0

    def table(self) -> pd.DataFrame:
        """One row per candidate and baseline: validation-segment metrics (where the champion was picked)."""
        rows = [{"name": k, "kind": "candidate", **v.metrics} for k, v in self.candidates.items()]
        rows += [{"name": k, "kind": "baseline", **v.metrics} for k, v in self.baselines.items()]
        return pd.DataFrame(rows).set_index("name")

    def test_table(self) -> pd.DataFrame:
        """Champion and baselines on the held-out test segment (empty without one)."""
        rows = [
            {"name": k, "kind": "candidate" if k in self.candidates else "baseline", **v}
            for k, v in self.test_metrics.items()
        ]
        return pd.DataFrame(rows).set_index("name") if rows else pd.DataFrame()


def _check_warmup(features: pd.DataFrame, config: FeatureConfig) -> None:
    # A window read from the stored feature table may start after a symbol's warm-up (sum 0), but never
    # has more warm-up rows than the config says.
    sizes = features.groupby("symbol", sort=False)["warmup"].agg(["size", "sum"])
    bad = sizes[sizes["sum"] > np.minimum(sizes["size"], config.warmup)]
    if len(bad):
        raise ValueError(
            f"train_candidates: warm-up rows do not match FeatureConfig(warmup={config.warmup}) for symbols "
            f"{bad.index[:5].tolist()}: compute features with the same config"
        )


def _subsample(n: int, max_rows: int | None, seed: int) -> np.ndarray:
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))


def _evaluate(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, rows: pd.DataFrame) -> dict:
    m = classification_metrics(y, pred, proba)
    m |= session_split_metrics(y, pred, rows["is_last_bar_of_day"].to_numpy() == 1.0)
    m |= information_coefficient(
        expected_score(proba), rows["next_return"].to_numpy(), rows["timestamp"].to_numpy()
    )
    return m


def _outcome_frame(rows: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    out = rows[["symbol", "timestamp", "close", "next_return", "is_last_bar_of_day"]].copy()
    out["label"] = y
    out["hour"] = out["timestamp"]
    return out


def _best(metrics: dict[str, dict]) -> str:
    """Name with the highest macro-F1, ties broken by accuracy (first in order on full ties)."""
    return max(metrics, key=lambda k: (metrics[k]["macro_f1"], metrics[k]["accuracy"]))


@dataclass
class _LabelledSegments:
    """The split, the label thresholds (fitted on training rows) and each segment's labelled rows."""

    split: SplitBoundaries
    thresholds: LabelThresholds
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    y_train: np.ndarray
    y_valid: np.ndarray
    y_test: np.ndarray


def _label_segments(
    features: pd.DataFrame, config: TrainingConfig, split: SplitBoundaries | None
) -> _LabelledSegments:
    """Split (``time_split`` unless given), fit the label thresholds on the training rows only, label."""
    columns = config.feature_config.columns  # index-context columns only when the config turns them on
    missing = [c for c in ["symbol", "timestamp", "close", "warmup", *columns] if c not in features.columns]
    if missing:
        raise ValueError(f"train_candidates: features lack columns {missing}")
    _check_warmup(features, config.feature_config)
    frame = features.reset_index(drop=True)
    frame["next_return"] = next_bar_log_return(frame).to_numpy()
    if split is None:
        split = time_split(frame, config)
    train_mask, valid_mask = split.masks(frame["timestamp"])
    test_mask = split.test_mask(frame["timestamp"])
    usable = ~frame["warmup"].to_numpy(bool)
    thresholds = LabelThresholds(method=config.label_method).fit(frame[train_mask & usable])
    labels = thresholds.transform(frame)
    keep = usable & (labels != NO_LABEL)
    train, valid, test = (frame[m & keep].reset_index(drop=True) for m in (train_mask, valid_mask, test_mask))
    y_train, y_valid, y_test = (labels[m & keep] for m in (train_mask, valid_mask, test_mask))
    data = _LabelledSegments(split, thresholds, train, valid, test, y_train, y_valid, y_test)
    if (
        len(np.unique(data.y_train)) < 2
        or len(data.valid) == 0
        or (split.n_test_hours and len(data.test) == 0)
    ):
        raise ValueError(
            f"train_candidates: {len(data.train)} training / {len(data.valid)} validation / "
            f"{len(data.test)} test rows are unusable"
        )
    log.info(
        "training on %d rows, selecting on %d validation rows, testing on %d rows (%s)",
        len(data.train),
        len(data.valid),
        len(data.test),
        split.to_dict(),
    )
    return data


def _component_model(
    name: str, pipe: object, config: TrainingConfig, data: _LabelledSegments
) -> ComponentModel:
    split = data.split
    return ComponentModel(
        name=name,
        estimator=pipe,
        classes=CLASSES,
        feature_columns=list(config.feature_config.columns),
        feature_config=config.feature_config,
        thresholds=data.thresholds,
        training_window=(split.train_start.isoformat(), split.train_end.isoformat()),
        trained_symbols=sorted(data.train["symbol"].unique().tolist()),
        validation_window=(split.valid_start.isoformat(), split.valid_end.isoformat()),
    )


def _choose_decision_rule(model: ComponentModel, proba: np.ndarray, data: _LabelledSegments) -> np.ndarray:
    """The decision rule is a hyper-parameter chosen on the validation window (never the test window):
    ordinal bands of the expected score (``ComponentModel.class_indices_from_proba``) or the plain argmax,
    whichever gives the higher validation macro-F1 (bands win with weak, ordered signals; a model whose
    expected score is not monotone in the class keeps the argmax). Returns the validation predictions."""
    model.fit_decision_cuts(proba, np.bincount(data.y_train, minlength=len(CLASSES)))
    banded, argmax = model.class_indices_from_proba(proba), proba.argmax(axis=1)
    if macro_f1(data.y_valid, argmax) >= macro_f1(data.y_valid, banded):
        model.decision_cuts = None
    return model.class_indices_from_proba(proba)


def _fit_candidate(
    name: str, config: TrainingConfig, data: _LabelledSegments
) -> tuple[CandidateResult, np.ndarray]:
    """Fit one candidate on (a bounded subsample of) the training rows: its result and its validation
    predictions."""
    spec = candidate_specs(config.svc_max_rows)[name]
    train, valid = data.train, data.valid
    rows = _subsample(len(train), spec.max_train_rows, config.seed)
    columns = config.feature_config.columns
    pipe = build_pipeline(spec, columns, config.seed)
    t0 = time.perf_counter()
    pipe.fit(train.loc[rows, ["symbol", *columns]], data.y_train[rows])
    fit_s = time.perf_counter() - t0
    model = _component_model(name, pipe, config, data)
    t0 = time.perf_counter()
    proba = model.predict_proba(valid)
    predict_s = time.perf_counter() - t0
    pred = _choose_decision_rule(model, proba, data)
    metrics = _evaluate(data.y_valid, pred, proba, valid)
    metrics |= {"fit_time_s": fit_s, "predict_time_s": predict_s, "train_rows": float(len(rows))}
    metrics["model_size_mb"] = model_size_bytes(pipe) / 1e6
    if config.latency_rows > 0:  # 0: not measured (walk-forward folds; only the deployed model is gated)
        metrics |= single_row_latency_ms(
            model.predict_proba, valid, config.latency_rows, config.latency_rounds
        )
    model.metrics = dict(metrics)
    params = pipeline_params(pipe) | {
        "max_train_rows": spec.max_train_rows or len(train),
        "bounds": spec.notes,
    }
    log.info("candidate %s: validation macro_f1=%.4f fit=%.1fs", name, metrics["macro_f1"], fit_s)
    return CandidateResult(model=model, params=params, metrics=metrics, notes=spec.notes), pred


def _fit_baselines(
    config: TrainingConfig, data: _LabelledSegments, validation: pd.DataFrame
) -> dict[str, BaselineResult]:
    """Fit the three baselines on the training rows; adds their ``pred_<name>`` columns to ``validation``."""
    baselines: dict[str, BaselineResult] = {}
    for baseline in (MajorityBaseline(), StratifiedBaseline(config.seed), MomentumBaseline(data.thresholds)):
        baseline.fit(data.train, data.y_train)
        t0 = time.perf_counter()
        proba = baseline.predict_proba(data.valid)
        pred = baseline_predict(baseline, data.valid)
        metrics = _evaluate(data.y_valid, pred, proba, data.valid) | {
            "predict_time_s": time.perf_counter() - t0
        }
        baselines[baseline.name] = BaselineResult(
            baseline=baseline, params=baseline.params(), metrics=metrics
        )
        validation[f"pred_{baseline.name}"] = pred
    return baselines


def _bootstrap_margin(
    y: np.ndarray, outcomes: pd.DataFrame, champion: str, baseline: str, config: TrainingConfig
) -> BootstrapResult:
    """macro-F1 of the champion minus the baseline's on ``outcomes`` (``pred_<name>`` columns) with its
    hour-block bootstrap SE."""
    return paired_bootstrap_macro_f1(
        y,
        outcomes[f"pred_{champion}"].to_numpy(),
        outcomes[f"pred_{baseline}"].to_numpy(),
        outcomes["hour"].to_numpy(),
        n_boot=config.bootstrap_n,
        seed=config.seed,
    )


@dataclass
class _HeldOutTest:
    """The test frame and metrics, the best baseline there and the champion's margin over it (or empty)."""

    frame: pd.DataFrame | None = None
    metrics: dict[str, dict] = field(default_factory=dict)
    best_baseline: str | None = None
    boot: BootstrapResult | None = None


def _held_out_test(
    champion: ComponentModel,
    baselines: dict[str, BaselineResult],
    config: TrainingConfig,
    data: _LabelledSegments,
) -> _HeldOutTest:
    """Champion vs baselines on the test segment (never used to choose anything); empty without one."""
    if not data.split.n_test_hours:
        return _HeldOutTest()
    frame, metrics = _test_outcomes(data.test, data.y_test, champion, baselines)
    best = _best({k: v for k, v in metrics.items() if k in baselines})
    boot = _bootstrap_margin(data.y_test, frame, champion.name, best, config)
    metrics[champion.name] |= {"margin_vs_best_baseline": boot.diff, "margin_se": boot.se}
    log.info(
        "champion %s: test macro_f1=%.4f vs %s %.4f (margin %+.4f, SE %.4f)",
        champion.name,
        metrics[champion.name]["macro_f1"],
        best,
        metrics[best]["macro_f1"],
        boot.diff,
        boot.se,
    )
    return _HeldOutTest(frame, metrics, best, boot)


def train_candidates(
    features: pd.DataFrame, config: TrainingConfig | None = None, split: SplitBoundaries | None = None
) -> TrainingResult:
    """Fit labels on the training window, train every candidate and baseline, pick the champion on the
    validation segment, then evaluate the champion and the baselines on the held-out test segment.

    ``split``: given boundaries (e.g. batch mode's own session segments) instead of ``time_split``."""
    config = config or TrainingConfig()
    data = _label_segments(features, config, split)
    validation = _outcome_frame(data.valid, data.y_valid)
    candidates: dict[str, CandidateResult] = {}
    for name in config.candidates:
        candidates[name], validation[f"pred_{name}"] = _fit_candidate(name, config, data)
    baselines = _fit_baselines(config, data, validation)

    # Selection: the validation segment only.
    champion_name = _best({k: v.metrics for k, v in candidates.items()})
    best_baseline = _best({k: v.metrics for k, v in baselines.items()})
    boot = _bootstrap_margin(data.y_valid, validation, champion_name, best_baseline, config)
    champ = candidates[champion_name]
    champ.metrics |= {"margin_vs_best_baseline": boot.diff, "margin_se": boot.se}
    validation[[f"p_{c}" for c in CLASSES]] = champ.model.predict_proba(data.valid)

    test = _held_out_test(champ.model, baselines, config, data)
    champ.model.metrics = dict(champ.metrics) | {
        f"test_{k}": v for k, v in test.metrics.get(champion_name, {}).items()
    }
    return TrainingResult(
        config=config,
        split=data.split,
        thresholds=data.thresholds,
        candidates=candidates,
        baselines=baselines,
        champion_name=champion_name,
        best_baseline_name=best_baseline,
        champion_beats_best_baseline=bool(boot.diff > 0),
        margin=boot.diff,
        margin_se=boot.se,
        validation=validation,
        input_example=data.valid.head(3)[["symbol", *config.feature_config.columns]].reset_index(drop=True),
        label_counts={
            CLASSES[k]: int(v) for k, v in enumerate(np.bincount(data.y_train, minlength=len(CLASSES)))
        },
        test=test.frame,
        test_metrics=test.metrics,
        test_best_baseline_name=test.best_baseline,
        test_margin=test.boot.diff if test.boot else float("nan"),
        test_margin_se=test.boot.se if test.boot else float("nan"),
    )


def _test_outcomes(
    test: pd.DataFrame, y_test: np.ndarray, champion: ComponentModel, baselines: dict[str, BaselineResult]
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Test frame (labels, predictions of the champion and baselines, champion probabilities) and metrics."""
    frame = _outcome_frame(test, y_test)
    metrics: dict[str, dict] = {}
    proba = champion.predict_proba(test)
    pred = champion.class_indices_from_proba(proba)
    metrics[champion.name] = _evaluate(y_test, pred, proba, test)
    frame[f"pred_{champion.name}"] = pred
    for name, base in baselines.items():
        b_proba = base.baseline.predict_proba(test)
        b_pred = baseline_predict(base.baseline, test)
        metrics[name] = _evaluate(y_test, b_pred, b_proba, test)
        frame[f"pred_{name}"] = b_pred
    frame[[f"p_{c}" for c in CLASSES]] = proba
    return frame, metrics
