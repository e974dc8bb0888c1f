"""Population Stability Index (PSI) drift per feature; bins come from the reference window only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PSI_EPSILON = 1e-4
DEFAULT_PSI_THRESHOLD = 0.2
# Share of drifted features above which a window counts as drifted (the gate and Evidently's report).
DRIFTED_SHARE_LIMIT = 0.5
# Latest sessions compared with the training window (the drift gate and the monitoring reports).
CURRENT_WINDOW_SESSIONS = 5


def _finite(values: object, label: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise ValueError(f"{label} has no finite values: PSI is undefined")
    return arr


def population_stability_index(ref: object, cur: object, bins: int = 10) -> float:
    """PSI of `cur` against `ref`: sum((c - r) * ln(c / r)) over `bins` quantile bins of `ref`.

    Bin edges are the reference quantiles (right-closed bins, outer bins open-ended so current values
    outside the reference range still count); bin shares are floored at PSI_EPSILON so empty bins stay
    finite. NaN/inf values are ignored. Rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 shifted.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    r = _finite(ref, "reference")
    c = _finite(cur, "current")
    cuts = np.unique(np.quantile(r, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    r_share = np.bincount(np.searchsorted(cuts, r, side="left"), minlength=cuts.size + 1) / r.size
    c_share = np.bincount(np.searchsorted(cuts, c, side="left"), minlength=cuts.size + 1) / c.size
    r_share = np.maximum(r_share, PSI_EPSILON)
    c_share = np.maximum(c_share, PSI_EPSILON)
    return float(np.sum((c_share - r_share) * np.log(c_share / r_share)))


def feature_drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    bins: int = 10,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
) -> pd.DataFrame:
    """One row per column: `column, psi, drifted (psi > threshold), n_reference, n_current, means`."""
    missing = [
        (side, col)
        for side, df in (("reference", reference), ("current", current))
        for col in columns
        if col not in df.columns
    ]
    if missing:
        raise KeyError(f"columns missing from the drift inputs: {missing}")
    if not columns:
        raise ValueError("feature_drift_table needs at least one column")
    rows = []
    for col in columns:
        ref = reference[col].to_numpy(dtype=float)
        cur = current[col].to_numpy(dtype=float)
        psi = population_stability_index(ref, cur, bins=bins)
        rows.append(
            {
                "column": col,
                "psi": psi,
                "drifted": psi > psi_threshold,
                "n_reference": int(np.isfinite(ref).sum()),
                "n_current": int(np.isfinite(cur).sum()),
                "reference_mean": float(np.nanmean(ref)),
                "current_mean": float(np.nanmean(cur)),
            }
        )
    return pd.DataFrame(rows)
