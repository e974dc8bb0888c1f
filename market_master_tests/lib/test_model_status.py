"""The status line from registry tags: every state, in one line, with the gates' own reasons."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd

from market_master.lib.mlflow_adapter import RegistryError
from market_master.lib.model_status import (
    EXPECTED_GATES_TAG,
    GATE_TAG_PREFIX,
    MAX_TAG_CHARS,
    GateVerdict,
    model_status,
    read_gate_verdicts,
    registry_missing,
    verdict_from_check,
)

GATES = ["g_skill", "g_baseline", "g_latency"]
NOW = pd.Timestamp("2024-03-08 23:00", tz="UTC")  # Friday 18:00 New York -> next retrain Monday 17:30


class FakeAdapter:
    model_name = "mm"

    def __init__(self, production=None, latest=None, unknown=False):
        self.production, self.latest, self.unknown = production, latest, unknown

    def alias_version(self, alias):
        if self.unknown:
            raise RegistryError("unknown model 'mm' in MLflow registry at sqlite:///x")
        return self.production

    def latest_version(self):
        return self.latest


def _version(version="4", **verdicts):
    tags = {EXPECTED_GATES_TAG: ",".join(GATES), "champion": "HGBT"}
    for name, (passed, reason) in verdicts.items():
        tags[GATE_TAG_PREFIX + name] = GateVerdict(name, passed, reason, {"z": 0.4}).to_tag()
    return SimpleNamespace(version=version, tags=tags, creation_timestamp=1_700_000_000_000)


def test_failed_gates_in_one_line_in_gate_order_with_reasons_and_next_retrain():
    latest = _version(
        g_baseline=(False, "macro-F1 gain +0.0031 < margin 0.01"),
        g_skill=(False, "IC +0.0012 (z=0.41) is not significant (< 2.0)"),
        g_latency=(True, "p99 1.2 ms"),
    )
    status = model_status(FakeAdapter(latest=latest), NOW)
    assert status.state == "gates_failed" and status.failed == ["g_skill", "g_baseline"]
    assert status.line == (
        "no Production model: latest champion mm v4 (HGBT) failed 2 of 3 gates: "
        "g_skill (IC +0.0012 (z=0.41) is not significant (< 2.0)); "
        "g_baseline (macro-F1 gain +0.0031 < margin 0.01); "
        "next retrain due 2024-03-11 17:30 EDT (daily_retrain_schedule, cron '30 17 * * 1-5' New York on "
        "XNYS sessions)"
    )
    assert status.next_retrain == pd.Timestamp("2024-03-11 17:30", tz="America/New_York")
    assert [g.metrics for g in status.failed_verdicts] == [{"z": 0.4}, {"z": 0.4}]


def test_other_states():
    all_passed = _version(**{g: (True, "ok") for g in GATES})
    status = model_status(FakeAdapter(latest=all_passed), NOW)
    assert status.state == "awaiting_promotion" and "market-master promote --version 4" in status.line
    partial = _version(g_skill=(True, "ok"))
    status = model_status(FakeAdapter(latest=partial), NOW)
    assert status.state == "gates_pending" and status.not_recorded == ["g_baseline", "g_latency"]
    untagged = SimpleNamespace(version="2", tags={}, creation_timestamp=None)
    assert model_status(FakeAdapter(latest=untagged), NOW).state == "gates_pending"
    for adapter in (FakeAdapter(latest=None), FakeAdapter(unknown=True)):
        status = model_status(adapter, NOW)
        assert status.state == "no_champion" and "run the pipeline first" in status.line
    refused = _version(version="5", g_skill=(False, "IC undefined"))
    status = model_status(FakeAdapter(production="3", latest=refused), NOW)
    assert status.state == "production"
    assert status.line.startswith("Production: mm v3; latest champion mm v5 (HGBT) failed g_skill;")
    assert all("\n" not in model_status(FakeAdapter(latest=v), NOW).line for v in (refused, partial))


def test_verdict_from_check_keeps_scalars_as_numbers_and_drops_structures():
    meta = {
        "reason": "x",
        "z": np.float64(1.5),
        "n": np.int64(3),
        "nan": float("nan"),
        "ok": True,
        "details": {"psi": [1, 2]},
    }
    verdict = verdict_from_check("g", False, meta, "run-1")
    assert verdict.reason == "x" and verdict.dagster_run_id == "run-1"
    assert verdict.metrics == {"z": 1.5, "n": 3, "nan": None, "ok": True}
    assert json.loads(verdict.to_tag())["metrics"] == verdict.metrics


def test_tag_is_bounded_and_unreadable_tags_say_so():
    big = GateVerdict("g", False, "r", {f"m{i}": "x" * 100 for i in range(100)})
    text = big.to_tag()
    assert len(text) <= MAX_TAG_CHARS and json.loads(text)["reason"] == "r"
    verdicts, expected = read_gate_verdicts({GATE_TAG_PREFIX + "g": "{not json", "other": "1"})
    assert expected == ["g"] and verdicts["g"].passed is False and "unreadable" in verdicts["g"].reason


def test_registry_missing_only_for_an_absent_sqlite_file(tmp_path):
    assert registry_missing(f"sqlite:///{tmp_path / 'none.db'}")
    (tmp_path / "m.db").write_bytes(b"")
    assert not registry_missing(f"sqlite:///{tmp_path / 'm.db'}")
    assert not registry_missing("http://mlflow:5000")
