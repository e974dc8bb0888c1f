"""Alias moves, history, rollback stack, unreachable registry, local fallback copy (real sqlite store)."""

from __future__ import annotations

import json
import socket
import time
import uuid

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from market_master.lib.registry import (
    HISTORY_MAX_CHARS,
    HISTORY_TAG_PREFIX,
    RegistryError,
    alias_history,
    check_registry_reachable,
    export_local_copy,
    get_alias_version,
    move_alias,
    promote,
    read_local_copy_info,
    rollback,
)

N_FEATURES = 4


def tiny_training_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(100, N_FEATURES))
    y = np.digitize(x[:, 0] + 0.1 * rng.normal(size=100), [-1.0, -0.3, 0.3, 1.0])  # classes 0..4
    return x, y


_LOGGED_MODEL_URI: dict[str, str] = {}


def register_tiny_model(tracking_uri: str, name: str, n_versions: int = 1) -> list[str]:
    """Register `n_versions` versions of a real 5-class LogisticRegression (pyfunc predicts probabilities).

    The model is logged once per tracking store and registered again under each new name (fast).
    """
    mlflow.set_tracking_uri(tracking_uri)
    if tracking_uri not in _LOGGED_MODEL_URI:
        x, y = tiny_training_data()
        model = LogisticRegression(max_iter=200).fit(x, y)
        with mlflow.start_run(run_name="tiny-registry-model"):
            info = mlflow.sklearn.log_model(model, name="model", pyfunc_predict_fn="predict_proba")
        _LOGGED_MODEL_URI[tracking_uri] = info.model_uri
    return [
        str(mlflow.register_model(_LOGGED_MODEL_URI[tracking_uri], name).version) for _ in range(n_versions)
    ]


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_promote_three_then_rollback_twice_then_fail(mlflow_uri):
    name = unique_name("reg-stack")
    v1, v2, v3 = register_tiny_model(mlflow_uri, name, n_versions=3)
    assert get_alias_version(mlflow_uri, name, "Production") is None

    m1 = promote(mlflow_uri, name, v1, actor="alice", reason="first model")
    m2 = promote(mlflow_uri, name, v2, actor="bob", reason="beats v1")
    m3 = promote(mlflow_uri, name, v3, actor="carol", reason="beats v2")
    assert (m1.from_version, m1.to_version) == (None, v1)
    assert (m2.from_version, m2.to_version) == (v1, v2)
    assert (m3.from_version, m3.to_version) == (v2, v3)
    assert get_alias_version(mlflow_uri, name, "Production") == v3

    r1 = rollback(mlflow_uri, name, actor="dave", reason="v3 misbehaves")
    assert (r1.from_version, r1.to_version, r1.kind) == (v3, v2, "rollback")
    assert get_alias_version(mlflow_uri, name, "Production") == v2
    r2 = rollback(mlflow_uri, name, actor="dave", reason="v2 too")
    assert (r2.from_version, r2.to_version) == (v2, v1)
    assert get_alias_version(mlflow_uri, name, "Production") == v1
    with pytest.raises(RegistryError, match="no earlier version in its alias history"):
        rollback(mlflow_uri, name, actor="dave", reason="and v1?")
    assert get_alias_version(mlflow_uri, name, "Production") == v1

    history = alias_history(mlflow_uri, name, "Production")
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
    promote(mlflow_uri, name, v3, actor="erin", reason="fixed")
    assert rollback(mlflow_uri, name, actor="erin", reason="not fixed").to_version == v1


def test_move_records_version_tags_and_registered_model_history(mlflow_uri):
    name = unique_name("reg-tags")
    v1, v2 = register_tiny_model(mlflow_uri, name, n_versions=2)
    promote(mlflow_uri, name, v1, actor="alice", reason="first")
    move = promote(mlflow_uri, name, v2, actor="bob", reason="gates passed: f1 +0.02")

    client = MlflowClient(tracking_uri=mlflow_uri)
    tags = client.get_model_version(name, v2).tags
    assert tags["promoted_by"] == "bob"
    assert tags["promoted_from_version"] == v1
    assert tags["promotion_reason"] == "gates passed: f1 +0.02"
    assert tags["promoted_alias"] == "Production"
    assert tags["promoted_at"] == move.at.isoformat()
    raw = json.loads(client.get_registered_model(name).tags[HISTORY_TAG_PREFIX + "Production"])
    assert [(r["from"], r["to"], r["actor"]) for r in raw] == [(None, v1, "alice"), (v1, v2, "bob")]
    # Another alias keeps its own history.
    move_alias(mlflow_uri, name, "Staging", v2, actor="trainer", reason="new champion")
    assert [h.to_version for h in alias_history(mlflow_uri, name, "Staging")] == [v2]
    assert len(alias_history(mlflow_uri, name, "Production")) == 2


def test_history_is_bounded(mlflow_uri):
    name = unique_name("reg-bound")
    v1, v2 = register_tiny_model(mlflow_uri, name, n_versions=2)
    for i in range(20):  # ~320 chars per record: the 5000-char cap bites before the 50-move cap
        promote(mlflow_uri, name, v1 if i % 2 == 0 else v2, actor="bot", reason="x" * 500)
    raw = (
        MlflowClient(tracking_uri=mlflow_uri)
        .get_registered_model(name)
        .tags[HISTORY_TAG_PREFIX + "Production"]
    )
    history = alias_history(mlflow_uri, name)
    assert len(raw) <= HISTORY_MAX_CHARS
    assert 1 < len(history) < 20
    assert history[-1].seq == 20  # newest kept, oldest dropped
    assert len(history[-1].reason) == 200  # history keeps a prefix; the version tag keeps it whole
    assert rollback(mlflow_uri, name, actor="bot", reason="r").to_version == v1  # 20th move was v2


def test_errors_name_model_version_alias(mlflow_uri):
    name = unique_name("reg-err")
    (v1,) = register_tiny_model(mlflow_uri, name)
    with pytest.raises(RegistryError, match=r"unknown model 'no-such-model'.*" + "sqlite"):
        get_alias_version(mlflow_uri, "no-such-model", "Production")
    with pytest.raises(RegistryError, match="unknown version '99'"):
        promote(mlflow_uri, name, "99", actor="a", reason="r")
    with pytest.raises(RegistryError, match="alias 'Production' is not set"):
        rollback(mlflow_uri, name, actor="a", reason="r")
    with pytest.raises(ValueError, match="reason"):
        promote(mlflow_uri, name, v1, actor="a", reason=" ")
    # Alias moved outside this module: rollback refuses rather than guessing.
    MlflowClient(tracking_uri=mlflow_uri).set_registered_model_alias(name, "Production", v1)
    with pytest.raises(RegistryError, match="outside"):
        rollback(mlflow_uri, name, actor="a", reason="r")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_http_registry_fails_fast_naming_uri():
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    with pytest.raises(RegistryError, match=uri.replace(".", r"\.")):
        check_registry_reachable(uri, timeout_s=2)
    with pytest.raises(RegistryError, match=uri.replace(".", r"\.")):
        get_alias_version(uri, "m", "Production")
    with pytest.raises(RegistryError, match=uri.replace(".", r"\.")):
        promote(uri, "m", "1", actor="a", reason="r")
    assert time.perf_counter() - start < 10


def test_missing_sqlite_store_is_unreachable(tmp_path):
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    with pytest.raises(RegistryError, match="no database file"):
        check_registry_reachable(uri)
    assert not (tmp_path / "absent.db").exists()


def test_export_local_copy_round_trip(mlflow_uri, tmp_path):
    name = unique_name("reg-export")
    v1, v2 = register_tiny_model(mlflow_uri, name, n_versions=2)
    promote(mlflow_uri, name, v1, actor="a", reason="r")
    dest = tmp_path / "fallback"
    model_dir = export_local_copy(f"models:/{name}@Production", dest, tracking_uri=mlflow_uri)
    info = read_local_copy_info(dest)
    assert (info.name, info.version, info.alias, info.model_dir) == (name, v1, "Production", model_dir)
    assert info.run_id == MlflowClient(tracking_uri=mlflow_uri).get_model_version(name, v1).run_id

    x, _ = tiny_training_data()
    local = mlflow.pyfunc.load_model(str(model_dir)).predict(x[:3])
    remote = mlflow.pyfunc.load_model(f"models:/{name}/{v1}").predict(x[:3])
    np.testing.assert_allclose(local, remote)

    promote(mlflow_uri, name, v2, actor="a", reason="r")
    export_local_copy(f"models:/{name}@Production", dest, tracking_uri=mlflow_uri)
    assert read_local_copy_info(dest).version == v2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fallback"]  # no staging/old dirs left
    with pytest.raises(RegistryError, match="no local model copy"):
        read_local_copy_info(tmp_path / "nothing")
