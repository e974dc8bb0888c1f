"""Time split with embargo, training of all candidates and baselines, champion selection, held-out test.

Split of the distinct post-warm-up hours (all symbols), in time order:

    train | embargo | validation | embargo | test

The validation segment is used for ONE thing: picking the champion (macro-F1, then accuracy). The test
segment is never looked at while choosing anything; its metrics (`TrainingResult.test_metrics`,
`test_margin`, `test_margin_se`) are what the gates and reports use, so the selection over seven
candidates does not inflate them. `test_fraction=0` drops the test segment (callers with their own test
segment, e.g. lib/batch.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

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
    classification_metrics,
    information_coefficient,
    model_size_bytes,
    paired_bootstrap_macro_f1,
    session_split_metrics,
    single_row_latency_ms,
)
from market_master.lib.features import FEATURE_COLUMNS, FeatureConfig
from market_master.lib.labels import CLASSES, NO_LABEL, LabelThresholds, next_bar_log_return
from market_master.lib.model import ComponentModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """What to train and how to split.

    `valid_fraction` / `test_fraction` are shares of the post-warm-up hours; `embargo_bars` hours separate
    train from validation and validation from test. `test_fraction=0` means no test segment.
    """

    label_method: str = "session_volatility"
    valid_fraction: float = 0.3
    test_fraction: float = 0.2
    embargo_bars: int = 7
    seed: int = 42
    candidates: tuple[str, ...] = CANDIDATE_NAMES
    svc_max_rows: int = SVC_MAX_ROWS
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    latency_rows: int = 50
    latency_rounds: int = 3
    bootstrap_n: int = 300

    def __post_init__(self) -> None:
        if not 0.05 <= self.valid_fraction <= 0.8:
            raise ValueError(f"TrainingConfig.valid_fraction={self.valid_fraction} outside [0.05, 0.8]")
        if self.test_fraction != 0 and not 0.05 <= self.test_fraction <= 0.5:
            raise ValueError(f"TrainingConfig.test_fraction={self.test_fraction}: 0 or within [0.05, 0.5]")
        if self.valid_fraction + self.test_fraction > 0.8:
            raise ValueError(
                f"TrainingConfig: valid_fraction {self.valid_fraction} + test_fraction {self.test_fraction} "
                "> 0.8 leaves too little training data"
            )
        if self.embargo_bars < 1:
            raise ValueError(
                f"TrainingConfig.embargo_bars={self.embargo_bars}: must be >= 1 (labels look 1 bar ahead)"
            )
        unknown = [c for c in self.candidates if c not in CANDIDATE_NAMES]
        if unknown or not self.candidates:
            raise ValueError(f"TrainingConfig.candidates: unknown {unknown}; choose from {CANDIDATE_NAMES}")

    def to_dict(self) -> dict:
        return {
            "label_method": self.label_method,
            "valid_fraction": self.valid_fraction,
            "test_fraction": self.test_fraction,
            "embargo_bars": self.embargo_bars,
            "seed": self.seed,
            "candidates": ",".join(self.candidates),
            "svc_max_rows": self.svc_max_rows,
            "warmup": self.feature_config.warmup,
        }


@dataclass(frozen=True)
class SplitBoundaries:
    """Hours (bar starts, all symbols): train_start..train_end | embargo | valid_start..valid_end
    | embargo | test_start..test_end. Without a test segment test_start/test_end are None, n_test_hours 0."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    valid_start: pd.Timestamp
    valid_end: pd.Timestamp
    n_train_hours: int
    n_embargo_hours: int
    n_valid_hours: int
    test_start: pd.Timestamp | None = None
    test_end: pd.Timestamp | None = None
    n_test_hours: int = 0

    def masks(self, timestamps: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(train, validation) row masks."""
        ts = pd.DatetimeIndex(timestamps)
        train = np.asarray((ts >= self.train_start) & (ts <= self.train_end))
        valid = np.asarray((ts >= self.valid_start) & (ts <= self.valid_end))
        return train, valid

    def test_mask(self, timestamps: pd.Series) -> np.ndarray:
        """Row mask of the test segment (all False without one)."""
        ts = pd.DatetimeIndex(timestamps)
        if self.test_start is None or self.test_end is None:
            return np.zeros(len(ts), dtype=bool)
        return np.asarray((ts >= self.test_start) & (ts <= self.test_end))

    def to_dict(self) -> dict:
        return {
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "valid_start": self.valid_start.isoformat(),
            "valid_end": self.valid_end.isoformat(),
            "test_start": self.test_start.isoformat() if self.test_start is not None else None,
            "test_end": self.test_end.isoformat() if self.test_end is not None else None,
            "n_train_hours": self.n_train_hours,
            "n_embargo_hours": self.n_embargo_hours,
            "n_valid_hours": self.n_valid_hours,
            "n_test_hours": self.n_test_hours,
        }


def time_split(features: pd.DataFrame, config: TrainingConfig) -> SplitBoundaries:
    """Split the distinct post-warm-up hours (over all symbols) in time order: training, `embargo_bars`
    dropped, the next `valid_fraction` for validation, `embargo_bars` dropped, the last `test_fraction`
    for test (no second embargo and no test when test_fraction == 0)."""
    hours = pd.DatetimeIndex(
        pd.unique(features.loc[~features["warmup"].to_numpy(bool), "timestamp"])
    ).sort_values()
    n = len(hours)
    emb = config.embargo_bars
    n_valid = int(np.ceil(config.valid_fraction * n))
    n_test = int(np.ceil(config.test_fraction * n)) if config.test_fraction > 0 else 0
    n_train = n - n_valid - emb - (n_test + emb if n_test else 0)
    if n_valid < 1 or n_train < 20 or (config.test_fraction > 0 and n_test < 1):
        raise ValueError(
            f"time_split: {n} post-warm-up hours leave {n_train} training / {n_valid} validation / "
            f"{n_test} test hours (embargo {emb}); need >= 20 training hours"
        )
    v0 = n_train + emb
    v1 = v0 + n_valid
    return SplitBoundaries(
        train_start=hours[0],
        train_end=hours[n_train - 1],
        valid_start=hours[v0],
        valid_end=hours[v1 - 1],
        n_train_hours=n_train,
        n_embargo_hours=emb,
        n_valid_hours=n_valid,
        test_start=hours[v1 + emb] if n_test else None,
        test_end=hours[-1] if n_test else None,
        n_test_hours=n_test,
    )


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
    segment (test_fraction 0) `test` is None, `test_metrics` empty and the test numbers NaN.
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


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(y, pred, average="macro", labels=list(range(len(CLASSES))), zero_division=0))


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


def train_candidates(features: pd.DataFrame, config: TrainingConfig | None = None) -> TrainingResult:
    """Fit labels on the training window, train every candidate and baseline, pick the champion on the
    validation segment, then evaluate the champion and the baselines on the held-out test segment."""
    config = config or TrainingConfig()
    missing = [
        c for c in ["symbol", "timestamp", "close", "warmup", *FEATURE_COLUMNS] if c not in features.columns
    ]
    if missing:
        raise ValueError(f"train_candidates: features lack columns {missing}")
    _check_warmup(features, config.feature_config)
    frame = features.reset_index(drop=True)
    frame["next_return"] = next_bar_log_return(frame).to_numpy()
    split = time_split(frame, config)
    train_mask, valid_mask = split.masks(frame["timestamp"])
    test_mask = split.test_mask(frame["timestamp"])
    usable = ~frame["warmup"].to_numpy(bool)
    thresholds = LabelThresholds(method=config.label_method).fit(frame[train_mask & usable])
    labels = thresholds.transform(frame)
    keep = usable & (labels != NO_LABEL)
    train = frame[train_mask & keep].reset_index(drop=True)
    valid = frame[valid_mask & keep].reset_index(drop=True)
    test = frame[test_mask & keep].reset_index(drop=True)
    y_train = labels[train_mask & keep]
    y_valid = labels[valid_mask & keep]
    y_test = labels[test_mask & keep]
    if len(np.unique(y_train)) < 2 or len(valid) == 0 or (split.n_test_hours and len(test) == 0):
        raise ValueError(
            f"train_candidates: {len(train)} training / {len(valid)} validation / {len(test)} test rows "
            "are unusable"
        )
    log.info(
        "training on %d rows, selecting on %d validation rows, testing on %d rows (%s)",
        len(train), len(valid), len(test), split.to_dict(),
    )  # fmt: skip

    window = (split.train_start.isoformat(), split.train_end.isoformat())
    valid_window = (split.valid_start.isoformat(), split.valid_end.isoformat())
    symbols = sorted(train["symbol"].unique().tolist())
    validation = _outcome_frame(valid, y_valid)

    specs = candidate_specs(config.svc_max_rows)
    candidates: dict[str, CandidateResult] = {}
    for name in config.candidates:
        spec = specs[name]
        rows = _subsample(len(train), spec.max_train_rows, config.seed)
        pipe = build_pipeline(spec, FEATURE_COLUMNS, config.seed)
        x_fit = train.loc[rows, ["symbol", *FEATURE_COLUMNS]]
        t0 = time.perf_counter()
        pipe.fit(x_fit, y_train[rows])
        fit_s = time.perf_counter() - t0
        model = ComponentModel(
            name=name,
            estimator=pipe,
            classes=CLASSES,
            feature_columns=list(FEATURE_COLUMNS),
            feature_config=config.feature_config,
            thresholds=thresholds,
            training_window=window,
            trained_symbols=symbols,
            validation_window=valid_window,
        )
        t0 = time.perf_counter()
        proba = model.predict_proba(valid)
        predict_s = time.perf_counter() - t0
        # The decision rule is a hyper-parameter chosen on the validation window (never the test window):
        # ordinal bands of the expected score (ComponentModel.decide) or the plain argmax, whichever gives
        # the higher validation macro-F1 (bands win with weak, ordered signals; a model whose expected score
        # is not monotone in the class keeps the argmax).
        model.fit_decision_cuts(proba, np.bincount(y_train, minlength=len(CLASSES)))
        banded, argmax = model.decide(proba), proba.argmax(axis=1)
        if macro_f1(y_valid, argmax) >= macro_f1(y_valid, banded):
            model.decision_cuts = None
        pred = model.decide(proba)
        metrics = _evaluate(y_valid, pred, proba, valid)
        metrics |= {"fit_time_s": fit_s, "predict_time_s": predict_s, "train_rows": float(len(rows))}
        metrics["model_size_mb"] = model_size_bytes(pipe) / 1e6
        metrics |= single_row_latency_ms(
            model.predict_proba, valid, config.latency_rows, config.latency_rounds
        )
        model.metrics = dict(metrics)
        params = pipeline_params(pipe) | {
            "max_train_rows": spec.max_train_rows or len(train),
            "bounds": spec.notes,
        }
        candidates[name] = CandidateResult(model=model, params=params, metrics=metrics, notes=spec.notes)
        validation[f"pred_{name}"] = pred
        log.info("candidate %s: validation macro_f1=%.4f fit=%.1fs", name, metrics["macro_f1"], fit_s)

    baselines: dict[str, BaselineResult] = {}
    for baseline in (MajorityBaseline(), StratifiedBaseline(config.seed), MomentumBaseline(thresholds)):
        baseline.fit(train, y_train)
        t0 = time.perf_counter()
        proba = baseline.predict_proba(valid)
        pred = baseline_predict(baseline, valid)
        metrics = _evaluate(y_valid, pred, proba, valid) | {"predict_time_s": time.perf_counter() - t0}
        baselines[baseline.name] = BaselineResult(
            baseline=baseline, params=baseline.params(), metrics=metrics
        )
        validation[f"pred_{baseline.name}"] = pred

    # Selection: the validation segment only.
    champion_name = _best({k: v.metrics for k, v in candidates.items()})
    best_baseline = _best({k: v.metrics for k, v in baselines.items()})
    boot = paired_bootstrap_macro_f1(
        y_valid,
        validation[f"pred_{champion_name}"].to_numpy(),
        validation[f"pred_{best_baseline}"].to_numpy(),
        validation["hour"].to_numpy(),
        n_boot=config.bootstrap_n,
        seed=config.seed,
    )
    champ = candidates[champion_name]
    champ.metrics |= {"margin_vs_best_baseline": boot.diff, "margin_se": boot.se}
    validation[[f"p_{c}" for c in CLASSES]] = champ.model.predict_proba(valid)

    # Reporting: the held-out test segment, never used to choose anything.
    test_frame, test_metrics, test_best, test_boot = None, {}, None, None
    if split.n_test_hours:
        test_frame, test_metrics = _test_outcomes(test, y_test, champ.model, baselines)
        test_best = _best({k: v for k, v in test_metrics.items() if k in baselines})
        test_boot = paired_bootstrap_macro_f1(
            y_test,
            test_frame[f"pred_{champion_name}"].to_numpy(),
            test_frame[f"pred_{test_best}"].to_numpy(),
            test_frame["hour"].to_numpy(),
            n_boot=config.bootstrap_n,
            seed=config.seed,
        )
        test_metrics[champion_name] |= {"margin_vs_best_baseline": test_boot.diff, "margin_se": test_boot.se}
        log.info(
            "champion %s: test macro_f1=%.4f vs %s %.4f (margin %+.4f, SE %.4f)",
            champion_name, test_metrics[champion_name]["macro_f1"], test_best,
            test_metrics[test_best]["macro_f1"], test_boot.diff, test_boot.se,
        )  # fmt: skip
    champ.model.metrics = dict(champ.metrics) | {
        f"test_{k}": v for k, v in test_metrics.get(champion_name, {}).items()
    }
    return TrainingResult(
        config=config,
        split=split,
        thresholds=thresholds,
        candidates=candidates,
        baselines=baselines,
        champion_name=champion_name,
        best_baseline_name=best_baseline,
        champion_beats_best_baseline=bool(boot.diff > 0),
        margin=boot.diff,
        margin_se=boot.se,
        validation=validation,
        input_example=valid.head(3)[["symbol", *FEATURE_COLUMNS]].reset_index(drop=True),
        label_counts={CLASSES[k]: int(v) for k, v in enumerate(np.bincount(y_train, minlength=len(CLASSES)))},
        test=test_frame,
        test_metrics=test_metrics,
        test_best_baseline_name=test_best,
        test_margin=test_boot.diff if test_boot else float("nan"),
        test_margin_se=test_boot.se if test_boot else float("nan"),
    )


def _test_outcomes(
    test: pd.DataFrame, y_test: np.ndarray, champion: ComponentModel, baselines: dict[str, BaselineResult]
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Test frame (labels, predictions of the champion and baselines, champion probabilities) and metrics."""
    frame = _outcome_frame(test, y_test)
    metrics: dict[str, dict] = {}
    proba = champion.predict_proba(test)
    pred = champion.decide(proba)
    metrics[champion.name] = _evaluate(y_test, pred, proba, test)
    frame[f"pred_{champion.name}"] = pred
    for name, base in baselines.items():
        b_proba = base.baseline.predict_proba(test)
        b_pred = baseline_predict(base.baseline, test)
        metrics[name] = _evaluate(y_test, b_pred, b_proba, test)
        frame[f"pred_{name}"] = b_pred
    frame[[f"p_{c}" for c in CLASSES]] = proba
    return frame, metrics
