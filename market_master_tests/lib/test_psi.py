"""PSI: ~0 on the same distribution, large on a shifted window, bins fitted on the reference only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market_master.lib.psi import feature_drift_table, population_stability_index


def test_psi_same_distribution_is_near_zero():
    rng = np.random.default_rng(1)
    assert population_stability_index(rng.normal(size=5000), rng.normal(size=5000)) < 0.01


def test_psi_shifted_window_is_large():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=5000)
    assert population_stability_index(ref, rng.normal(0.5, 1.0, 5000)) > 0.2
    assert population_stability_index(ref, rng.normal(0.0, 3.0, 5000)) > 0.5


def test_psi_matches_hand_computation_and_is_not_symmetric():
    ref = np.arange(10.0)  # decile cuts at 0.9, 1.8, ... -> one value per bin
    cur = np.array([0.0] * 5 + [9.0] * 5)  # half in the first bin, half in the last
    r = np.full(10, 0.1)
    c = np.full(10, 1e-4)
    c[0] = c[-1] = 0.5
    expected = float(np.sum((c - r) * np.log(c / r)))
    assert population_stability_index(ref, cur) == pytest.approx(expected)
    assert population_stability_index(cur, ref) != pytest.approx(expected)


def test_psi_constant_reference_still_sees_a_shift_and_ignores_nan():
    ref = np.ones(100)
    assert population_stability_index(ref, np.ones(50)) == pytest.approx(0.0)
    assert population_stability_index(ref, np.full(50, 2.0)) > 1.0
    assert population_stability_index(np.r_[np.arange(100.0), np.nan], np.arange(100.0)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="current has no finite values"):
        population_stability_index(ref, [np.nan])


def test_feature_drift_table_flags_only_the_shifted_column():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    cur = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(1.0, 1.0, 3000)})
    table = feature_drift_table(ref, cur, ["a", "b"])
    assert table["column"].tolist() == ["a", "b"]
    assert table["drifted"].tolist() == [False, True]
    assert table.loc[1, "psi"] > 0.5 and table.loc[0, "psi"] < 0.02
    with pytest.raises(KeyError, match="'current', 'b'"):
        feature_drift_table(ref, cur.drop(columns="b"), ["a", "b"])
