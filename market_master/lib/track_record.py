"""The live track record: what a replay (or the live loop) stored, checked against the walk-forward.

A replay stores, hour by hour, the signal a user would have seen in real time (`component_predictions`
and `index_signal` slices, each prediction naming the model version that made it). Each version was
trained by a retrain run at some simulated time T on every stored bar before T (`train_final`: the
champion search on `final_window`), then served from the hour after its promotion until the next one.

That is exactly a walk-forward fold: training window = the version's training rows, OOS hours = the hours
it served. `deployment_folds` turns the deployments into such folds (no embargo: the retrain ran after the
close, so the label of its last training bar was unknown to it, as a fold's frame ends at its training
end) and `run_walk_forward(..., folds=...)` recomputes the OOS history with the SAME library code
(`train_candidates`, `predict_hours`, `compute_wss`). Equal models, equal predictions, equal WSS: the
replayed signal IS the walk-forward out-of-sample history for those hours and versions, and it had no
look-ahead (`lookahead_violations`: no hour is served by a version trained on data at or after it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from market_master.lib.signal import WeightsLike
from market_master.lib.training import TrainingConfig
from market_master.lib.walk_forward import (
    Fold,
    WalkForwardConfig,
    WalkForwardResult,
    run_walk_forward,
    session_days,
)

COMPARED = ("wss", "decision", "covered_weight", "n_predicted")


@dataclass(frozen=True)
class Deployment:
    """A model version and the contiguous hours it served; `trained_through`: the last hour of its
    training rows (the end of its registry `validation_window`)."""

    version: str
    trained_through: pd.Timestamp
    first_hour: pd.Timestamp
    last_hour: pd.Timestamp


def deployments(predictions: pd.DataFrame, trained_through: Mapping[str, pd.Timestamp]) -> list[Deployment]:
    """The runs of consecutive hours served by one version, from stored `component_predictions` rows
    (`hour`, `model_version`; rows without a version, e.g. warm-up, are ignored)."""
    rows = predictions.dropna(subset=["model_version"])
    rows = rows[rows["model_version"].astype(str) != ""]
    by_hour = rows.groupby("hour")["model_version"].agg(lambda v: sorted(set(map(str, v))))
    mixed = by_hour[by_hour.map(len) > 1]
    if len(mixed):
        raise ValueError(f"hours predicted by more than one version: {mixed.head().to_dict()}")
    versions = by_hour.map(lambda v: v[0]).sort_index()
    out: list[Deployment] = []
    for hour, version in versions.items():
        if out and out[-1].version == version:
            out[-1] = Deployment(version, out[-1].trained_through, out[-1].first_hour, hour)
        else:
            out.append(Deployment(version, pd.Timestamp(trained_through[version]), hour, hour))
    return out


def lookahead_violations(served: Sequence[Deployment]) -> list[str]:
    """Deployments whose version was trained on data at or after the first hour it served."""
    return [
        f"v{d.version} trained through {d.trained_through} served {d.first_hour}"
        for d in served
        if d.trained_through >= d.first_hour
    ]


def deployment_folds(
    features: pd.DataFrame, served: Sequence[Deployment], config: WalkForwardConfig
) -> list[Fold]:
    """Walk-forward folds with the deployments' boundaries, as session indices of the post-warm-up hours
    of `features` (the stored feature_table from its first hour, as every retrain read it).

    Training window: `final_window`'s rule at the retrain (expanding: from the first session; rolling: the
    last `train_sessions`) up to the session of `trained_through`; OOS: the sessions served. Every fold
    runs the full candidate search (`select=True`), as each retrain's `train_final` did."""
    hours, session_of_hour = session_days(features)
    position = pd.Series(session_of_hour, index=hours)
    folds = []
    for k, d in enumerate(served):
        if d.trained_through not in position.index or d.first_hour not in position.index:
            raise ValueError(f"deployment v{d.version}: its hours are not post-warm-up feature hours")
        train_hi = int(position[d.trained_through]) + 1
        train_lo = 0 if config.scheme == "expanding" else max(0, train_hi - config.train_sessions)
        oos_lo, oos_hi = int(position[d.first_hour]), int(position[d.last_hour]) + 1
        if hours[session_of_hour == train_hi - 1][-1] != d.trained_through:
            raise ValueError(
                f"v{d.version} was trained through {d.trained_through}, not to the end of its session: "
                "a retrain between bars, which a session-granular fold cannot express"
            )
        folds.append(Fold(k, train_lo, train_hi, oos_lo, oos_hi, select=True))
    return folds


def compare_signals(replayed: pd.DataFrame, walk_forward: pd.DataFrame) -> pd.DataFrame:
    """Hour by hour, the replayed index_signal next to the walk-forward's, one row per hour of either,
    with `equal`: same decision, covered weight, count and WSS (to 1e-12: both are the same float sums)."""
    cols = ["hour", *COMPARED]
    m = replayed[cols].merge(walk_forward[cols], on="hour", how="outer", suffixes=("_replay", "_wf"))
    same = m["decision_replay"].eq(m["decision_wf"]) & m["n_predicted_replay"].eq(m["n_predicted_wf"])
    for col in ("wss", "covered_weight"):
        a, b = m[f"{col}_replay"].to_numpy(float), m[f"{col}_wf"].to_numpy(float)
        same &= np.isclose(a, b, rtol=0, atol=1e-12) | (np.isnan(a) & np.isnan(b))
    m["equal"] = same
    return m.sort_values("hour", ignore_index=True)


def deployment_walk_forward(
    features: pd.DataFrame,
    weights: WeightsLike,
    served: Sequence[Deployment],
    config: WalkForwardConfig,
    training: TrainingConfig,
) -> WalkForwardResult:
    """The walk-forward out-of-sample history with one fold per deployment (`deployment_folds`): the
    same library code every fold of walk_forward_history runs, on the stored `features`."""
    return run_walk_forward(
        features, weights, None, config, training, folds=deployment_folds(features, served, config)
    )
