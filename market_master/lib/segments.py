"""The time segments of every train / evaluate run: ONE definition of the shares and the embargo.

    train | embargo | validation | embargo | test        (time order)

``train``, ``validation`` and ``test`` are shares of the window (summing to 1); ``embargo_bars`` hours
separate train from validation and validation from test (labels look one bar ahead, features up to a
session back). The defaults are the pipeline's: train 0.5 | validation 0.25 | held-out test 0.25, embargo
7 bars (one full session). ``test=0`` means no test segment (the caller keeps its own).

``training.TrainingConfig`` splits the post-warm-up hours with them (``split_hours``); ``batch`` splits
whole sessions with the same shares and hands training its own ``SplitBoundaries``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_TRAIN_SHARE = 0.2
MIN_TRAIN_HOURS = 20


@dataclass(frozen=True)
class Segments:
    """Shares of the window for train / validation / test (sum 1) and the embargo in bars."""

    train: float = 0.5
    validation: float = 0.25
    test: float = 0.25
    embargo_bars: int = 7

    def __post_init__(self) -> None:
        shares = {"train": self.train, "validation": self.validation, "test": self.test}
        bad = {k: v for k, v in shares.items() if not (isinstance(v, (int, float)) and math.isfinite(v))}
        if bad:
            raise ValueError(f"Segments: shares must be finite numbers, got {bad}")
        if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-9):
            raise ValueError(f"Segments: train + validation + test must be 1, got {shares}")
        if self.train < MIN_TRAIN_SHARE:
            raise ValueError(f"Segments.train={self.train}: at least {MIN_TRAIN_SHARE} (too little to fit)")
        if not 0.05 <= self.validation <= 0.8:
            raise ValueError(f"Segments.validation={self.validation} outside [0.05, 0.8]")
        if self.test != 0 and not 0.05 <= self.test <= 0.5:
            raise ValueError(f"Segments.test={self.test}: 0 or within [0.05, 0.5]")
        if self.embargo_bars < 1:
            raise ValueError(
                f"Segments.embargo_bars={self.embargo_bars}: must be >= 1 (labels look 1 bar ahead)"
            )

    @property
    def has_test(self) -> bool:
        return self.test > 0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "train_share": self.train,
            "validation_share": self.validation,
            "test_share": self.test,
            "embargo_bars": self.embargo_bars,
        }


DEFAULT_SEGMENTS = Segments()


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

    @classmethod
    def from_hours(
        cls,
        train: pd.DatetimeIndex,
        valid: pd.DatetimeIndex,
        n_embargo_hours: int,
        test: pd.DatetimeIndex | None = None,
    ) -> SplitBoundaries:
        """Boundaries of sorted, non-empty train / validation (/ test) hours."""
        has_test = test is not None and len(test) > 0
        return cls(
            train_start=train[0],
            train_end=train[-1],
            valid_start=valid[0],
            valid_end=valid[-1],
            n_train_hours=len(train),
            n_embargo_hours=n_embargo_hours,
            n_valid_hours=len(valid),
            test_start=test[0] if has_test else None,
            test_end=test[-1] if has_test else None,
            n_test_hours=len(test) if has_test else 0,
        )

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


def post_warmup_hours(features: pd.DataFrame) -> pd.DatetimeIndex:
    """The distinct timestamps of the feature rows past the warm-up, sorted (the hours a split divides)."""
    return pd.DatetimeIndex(
        pd.unique(features.loc[~features["warmup"].to_numpy(bool), "timestamp"])
    ).sort_values()


def split_hours(hours: pd.DatetimeIndex, segments: Segments = DEFAULT_SEGMENTS) -> SplitBoundaries:
    """Split sorted hours in time order: training, `embargo_bars` dropped, the next `validation` share
    (rounded up) for validation, `embargo_bars` dropped, the last `test` share (rounded up) for test (no
    second embargo and no test when that share is 0). Training gets the rest: at least 20 hours."""
    n = len(hours)
    emb = segments.embargo_bars
    n_valid = int(np.ceil(segments.validation * n))
    n_test = int(np.ceil(segments.test * n)) if segments.has_test else 0
    n_train = n - n_valid - emb - (n_test + emb if n_test else 0)
    if n_valid < 1 or n_train < MIN_TRAIN_HOURS or (segments.has_test and n_test < 1):
        raise ValueError(
            f"time_split: {n} post-warm-up hours leave {n_train} training / {n_valid} validation / "
            f"{n_test} test hours (embargo {emb}); need >= {MIN_TRAIN_HOURS} training hours"
        )
    v0 = n_train + emb
    v1 = v0 + n_valid
    return SplitBoundaries.from_hours(
        hours[:n_train], hours[v0:v1], emb, hours[v1 + emb :] if n_test else None
    )
