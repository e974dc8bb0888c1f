"""Time split with embargo, training of all candidates and baselines, champion selection."""

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
    """What to train and how to split. `embargo_bars` hours separate the last training hour from validation."""

    label_method: str = "session_volatility"
    valid_fraction: float = 0.3
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
            "embargo_bars": self.embargo_bars,
            "seed": self.seed,
            "candidates": ",".join(self.candidates),
            "svc_max_rows": self.svc_max_rows,
            "warmup": self.feature_config.warmup,
        }


@dataclass(frozen=True)
class SplitBoundaries:
    """Hours (bar starts, all symbols) train_start..train_end | embargo | valid_start..valid_end."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    valid_start: pd.Timestamp
    valid_end: pd.Timestamp
    n_train_hours: int
    n_embargo_hours: int
    n_valid_hours: int

    def masks(self, timestamps: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        ts = pd.DatetimeIndex(timestamps)
        train = np.asarray((ts >= self.train_start) & (ts <= self.train_end))
        valid = np.asarray((ts >= self.valid_start) & (ts <= self.valid_end))
        return train, valid

    def to_dict(self) -> dict:
        return {
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "valid_start": self.valid_start.isoformat(),
            "valid_end": self.valid_end.isoformat(),
            "n_train_hours": self.n_train_hours,
            "n_embargo_hours": self.n_embargo_hours,
            "n_valid_hours": self.n_valid_hours,
        }


def time_split(features: pd.DataFrame, config: TrainingConfig) -> SplitBoundaries:
    """Split the distinct hours (over all symbols): earliest for training, latest `valid_fraction` for
    validation, `embargo_bars` hours dropped between them."""
    hours = pd.DatetimeIndex(
        pd.unique(features.loc[~features["warmup"].to_numpy(bool), "timestamp"])
    ).sort_values()
    n = len(hours)
    n_valid = int(np.ceil(config.valid_fraction * n))
    n_train = n - n_valid - config.embargo_bars
    if n_valid < 1 or n_train < 20:
        raise ValueError(
            f"time_split: {n} post-warm-up hours leave {n_train} training / {n_valid} validation hours "
            f"(embargo {config.embargo_bars}); need >= 20 training hours"
        )
    return SplitBoundaries(
        train_start=hours[0],
        train_end=hours[n_train - 1],
        valid_start=hours[n_train + config.embargo_bars],
        valid_end=hours[-1],
        n_train_hours=n_train,
        n_embargo_hours=config.embargo_bars,
        n_valid_hours=n_valid,
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

    @property
    def champion(self) -> ComponentModel:
        return self.candidates[self.champion_name].model

    def table(self) -> pd.DataFrame:
        """One row per candidate and baseline: out-of-sample metrics."""
        rows = [{"name": k, "kind": "candidate", **v.metrics} for k, v in self.candidates.items()]
        rows += [{"name": k, "kind": "baseline", **v.metrics} for k, v in self.baselines.items()]
        return pd.DataFrame(rows).set_index("name")


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


def _evaluate(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, valid: pd.DataFrame) -> dict:
    m = classification_metrics(y, pred, proba)
    m |= session_split_metrics(y, pred, valid["is_last_bar_of_day"].to_numpy() == 1.0)
    m |= information_coefficient(expected_score(proba), valid["next_return"].to_numpy())
    return m


def train_candidates(features: pd.DataFrame, config: TrainingConfig | None = None) -> TrainingResult:
    """Fit labels on the training window, train every candidate and baseline, evaluate out of sample."""
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
    usable = ~frame["warmup"].to_numpy(bool)
    thresholds = LabelThresholds(method=config.label_method).fit(frame[train_mask & usable])
    labels = thresholds.transform(frame)
    keep = usable & (labels != NO_LABEL)
    train = frame[train_mask & keep].reset_index(drop=True)
    valid = frame[valid_mask & keep].reset_index(drop=True)
    y_train = labels[train_mask & keep]
    y_valid = labels[valid_mask & keep]
    if len(np.unique(y_train)) < 2 or len(valid) == 0:
        raise ValueError(
            f"train_candidates: {len(train)} training rows / {len(valid)} validation rows are unusable"
        )
    log.info("training on %d rows, validating on %d rows (%s)", len(train), len(valid), split.to_dict())

    window = (split.train_start.isoformat(), split.train_end.isoformat())
    symbols = sorted(train["symbol"].unique().tolist())
    validation = valid[["symbol", "timestamp", "close", "next_return", "is_last_bar_of_day"]].copy()
    validation["label"] = y_valid
    validation["hour"] = validation["timestamp"]

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
        )
        t0 = time.perf_counter()
        proba = model.predict_proba(valid)
        predict_s = time.perf_counter() - t0
        pred = proba.argmax(axis=1)
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
        log.info("candidate %s: macro_f1=%.4f fit=%.1fs", name, metrics["macro_f1"], fit_s)

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

    champion_name = max(
        candidates, key=lambda k: (candidates[k].metrics["macro_f1"], candidates[k].metrics["accuracy"])
    )
    best_baseline = max(
        baselines, key=lambda k: (baselines[k].metrics["macro_f1"], baselines[k].metrics["accuracy"])
    )
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
    champ.model.metrics = dict(champ.metrics)
    validation[[f"p_{c}" for c in CLASSES]] = champ.model.predict_proba(valid)
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
    )
