"""Alias moves, history, rollback stack, unreachable registry, local fallback copy (real sqlite store),
all through MlflowAdapter."""

from __future__ import annotations

import json
import socket
import time
import uuid

import mlflow.sklearn
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from market_master.lib.aliases import PRODUCTION_ALIAS, STAGING_ALIAS
from market_master.lib.mlflow_adapter import (
    HISTORY_MAX_CHARS,
    HISTORY_TAG_PREFIX,
    MlflowAdapter,
    RegistryError,
    read_local_copy_info,
)
from market_master.lib.mlflow_adapter.logged_models import log_model, register_version, run_scope

N_FEATURES = 4


def tiny_training_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(100, N_FEATURES))
    y = np.digitize(x[:, 0] + 0.1 * rng.normal(size=100), [-1.0, -0.3, 0.3, 1.0])  # classes 0..4
    return x, y


_LOGGED_MODEL = {}


def register_tiny_model(tracking_uri: str, name: str, n_versions: int = 1) -> list[str]:
    """Register `n_versions` versions of a real 5-class LogisticRegression (pyfunc predicts probabilities).

    The model is logged once per tracking store and registered again under each new name (fast).
    """
    adapter = MlflowAdapter(tracking_uri, experiment_name="mm-tiny-models", model_name=name)
    if tracking_uri not in _LOGGED_MODEL:
        x, y = tiny_training_data()
        model = LogisticRegression(max_iter=200).fit(x, y)
        experiment_id = adapter.ensure_experiment()
        with run_scope(adapter.client, experiment_id, "tiny-registry-model") as run_id:
            _LOGGED_MODEL[tracking_uri] = log_model(
                adapter.client,
                experiment_id,
                run_id,
                "model",
                mlflow.sklearn,
                sk_model=model,
                pyfunc_predict_fn="predict_proba",
            )
    return [
        str(register_version(adapter.client, name, _LOGGED_MODEL[tracking_uri]).version)
        for _ in range(n_versions)
    ]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_promote_three_then_rollback_twice_then_fail(mlflow_uri):
    name = unique_name("reg-stack")
    v1, v2, v3 = register_tiny_model(mlflow_uri, name, n_versions=3)
    reg = MlflowAdapter(mlflow_uri, model_name=name)
    assert reg.alias_version(PRODUCTION_ALIAS) is None

    m1 = reg.promote(v1, actor="alice", reason="first model")
    m2 = reg.promote(v2, actor="bob", reason="beats v1")
    m3 = reg.promote(v3, actor="carol", reason="beats v2")
    assert (m1.from_version, m1.to_version) == (None, v1)
    assert (m2.from_version, m2.to_version) == (v1, v2)
    assert (m3.from_version, m3.to_version) == (v2, v3)
    assert reg.alias_version(PRODUCTION_ALIAS) == v3

    r1 = reg.rollback(actor="dave", reason="v3 misbehaves")
    assert (r1.from_version, r1.to_version, r1.kind) == (v3, v2, "rollback")
    assert reg.alias_version(PRODUCTION_ALIAS) == v2
    r2 = reg.rollback(actor="dave", reason="v2 too")
    assert (r2.from_version, r2.to_version) == (v2, v1)
    assert reg.alias_version(PRODUCTION_ALIAS) == v1
    with pytest.raises(RegistryError, match="no earlier version in its alias history"):
        reg.rollback(actor="dave", reason="and v1?")
    assert reg.alias_version(PRODUCTION_ALIAS) == v1

    history = reg.alias_history(PRODUCTION_ALIAS)
    assert [(h.kind, h.from_version, h.to_version) for h in history] == [
        ("promote", None, v1),
        ("promote", v1, v2),
        ("promote", v2, v3),
        ("rollback", v3, v2),
        ("rollback", v2, v1),
    ]
    assert [h.actor for h in history] == ["alice", "bob", "carol", "dave", "dave"]
    assert history[3].reason == "v3 misbehaves"

    # A promotion after rollbacks pushes onto the stack: rolling back returns to v1.
    reg.promote(v3, actor="erin", reason="fixed")
    assert reg.rollback(actor="erin", reason="not fixed").to_version == v1


def test_move_records_version_tags_and_registered_model_history(mlflow_uri):
    name = unique_name("reg-tags")
    v1, v2 = register_tiny_model(mlflow_uri, name, n_versions=2)
    reg = MlflowAdapter(mlflow_uri, model_name=name)
    reg.promote(v1, actor="alice", reason="first")
    move = reg.promote(v2, actor="bob", reason="gates passed: f1 +0.02")

    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    tags = client.get_model_version(name, v2).tags
    assert tags["promoted_by"] == "bob"
    assert tags["promoted_from_version"] == v1
    assert tags["promotion_reason"] == "gates passed: f1 +0.02"
    assert tags["promoted_alias"] == PRODUCTION_ALIAS
    assert tags["promoted_at"] == move.at.isoformat()
    raw = json.loads(client.get_registered_model(name).tags[HISTORY_TAG_PREFIX + PRODUCTION_ALIAS])
    assert [(r["from"], r["to"], r["actor"]) for r in raw] == [(None, v1, "alice"), (v1, v2, "bob")]
    # Another alias keeps its own history.
    reg.move_alias(STAGING_ALIAS, v2, actor="trainer", reason="new champion")
    assert [h.to_version for h in reg.alias_history(STAGING_ALIAS)] == [v2]
    assert len(reg.alias_history(PRODUCTION_ALIAS)) == 2
    assert reg.require_alias_version(STAGING_ALIAS) == v2


def test_history_is_bounded(mlflow_uri):
    name = unique_name("reg-bound")
    v1, v2 = register_tiny_model(mlflow_uri, name, n_versions=2)
    reg = MlflowAdapter(mlflow_uri, model_name=name)
    for i in range(20):  # ~320 chars per record: the 5000-char cap bites before the 50-move cap
        reg.promote(v1 if i % 2 == 0 else v2, actor="bot", reason="x" * 500)
    raw = (
        MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
        .get_registered_model(name)
        .tags[HISTORY_TAG_PREFIX + PRODUCTION_ALIAS]
    )
    history = reg.alias_history()
    assert len(raw) <= HISTORY_MAX_CHARS
    assert 1 < len(history) < 20
    assert history[-1].seq == 20  # newest kept, oldest dropped
    assert len(history[-1].reason) == 200  # history keeps a prefix; the version tag keeps it whole
    assert reg.rollback(actor="bot", reason="r").to_version == v1  # 20th move was v2


def test_errors_name_model_version_alias(mlflow_uri):
    name = unique_name("reg-err")
    (v1,) = register_tiny_model(mlflow_uri, name)
    reg = MlflowAdapter(mlflow_uri, model_name=name)
    with pytest.raises(RegistryError, match=r"unknown model 'no-such-model'.*" + "sqlite"):
        MlflowAdapter(mlflow_uri, model_name="no-such-model").alias_version(PRODUCTION_ALIAS)
    with pytest.raises(RegistryError, match="unknown version '99'"):
        reg.promote("99", actor="a", reason="r")
    with pytest.raises(RegistryError, match="alias 'Production' is not set"):
        reg.rollback(actor="a", reason="r")
    with pytest.raises(RegistryError, match="alias 'Production' is not set"):
        reg.require_alias_version(PRODUCTION_ALIAS)
    with pytest.raises(ValueError, match="reason"):
        reg.promote(v1, actor="a", reason=" ")
    # Alias moved outside this module: rollback refuses rather than guessing.
    MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).set_registered_model_alias(
        name, PRODUCTION_ALIAS, v1
    )
    with pytest.raises(RegistryError, match="outside"):
        reg.rollback(actor="a", reason="r")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_http_registry_fails_fast_naming_uri():
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    reg = MlflowAdapter(uri, model_name="m", timeout_s=2)
    with pytest.raises(RegistryError, match=uri.replace(".", r"\.")):
        reg.check_reachable()
    with pytest.raises(RegistryError, match=uri.replace(".", r"\.")):
        reg.alias_version(PRODUCTION_ALIAS)
    with pytest.raises(RegistryError, match=uri.replace(".", r"\.")):
        reg.promote("1", actor="a", reason="r")
    with pytest.raises(RegistryError, match=uri.replace(".", r"\.")):
        reg.load_model(alias=PRODUCTION_ALIAS)
    assert time.perf_counter() - start < 10


def test_missing_sqlite_store_is_unreachable(tmp_path):
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    with pytest.raises(RegistryError, match="no database file"):
        MlflowAdapter(uri).check_reachable()
    assert not (tmp_path / "absent.db").exists()


def test_export_local_copy_round_trip(mlflow_uri, tmp_path):
    name = unique_name("reg-export")
    v1, v2 = register_tiny_model(mlflow_uri, name, n_versions=2)
    reg = MlflowAdapter(mlflow_uri, model_name=name)
    reg.promote(v1, actor="a", reason="r")
    dest = tmp_path / "fallback"
    model_dir = reg.export_local_copy(dest)
    info = read_local_copy_info(dest)
    assert (info.name, info.version, info.alias, info.model_dir) == (name, v1, PRODUCTION_ALIAS, model_dir)
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    assert info.run_id == client.get_model_version(name, v1).run_id

    x, _ = tiny_training_data()
    local = reg.load_pyfunc_uri(str(model_dir)).predict(x[:3])
    remote = reg.load_pyfunc(v1).predict(x[:3])
    np.testing.assert_allclose(local, remote)

    reg.promote(v2, actor="a", reason="r")
    reg.export_local_copy(dest)
    assert read_local_copy_info(dest).version == v2
    reg.export_local_copy(dest, version=v1)
    assert (read_local_copy_info(dest).version, read_local_copy_info(dest).alias) == (v1, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fallback"]  # no staging/old dirs left
    with pytest.raises(RegistryError, match="no local model copy"):
        read_local_copy_info(tmp_path / "nothing")
