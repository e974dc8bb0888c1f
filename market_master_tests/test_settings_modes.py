"""Embedded (default) vs production mode: chosen by environment only, production refuses local stand-ins."""

from __future__ import annotations

import pytest

from market_master import settings
from market_master.defs.resources import StorageResource


def test_embedded_is_the_default_and_keeps_everything_under_the_data_root(data_home, monkeypatch):
    monkeypatch.delenv("MARKET_MASTER_MODE", raising=False)
    monkeypatch.delenv("MARKET_MASTER_STORE", raising=False)
    assert settings.mode() == "embedded"
    settings.check_production()  # no-op
    assert settings.store_root() == str(data_home)
    assert StorageResource().partitions().root == data_home / "partitions"
    assert settings.default_tracking_uri().startswith("sqlite:///")


def test_production_names_every_local_setting_it_refuses(data_home, monkeypatch):
    monkeypatch.setenv("MARKET_MASTER_MODE", "production")
    monkeypatch.setenv("MARKET_MASTER_STORE", str(data_home))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(settings.SettingsError) as exc:
        settings.check_production()
    message = str(exc.value)
    assert "MARKET_MASTER_STORE must be an s3://" in message
    assert "MLFLOW_TRACKING_URI must be an http(s)://" in message
    assert "DAGSTER_HOME must hold a dagster.yaml" in message


def test_production_store_is_the_s3_url(data_home, monkeypatch, tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("MARKET_MASTER_MODE", "production")
    monkeypatch.setenv("MARKET_MASTER_STORE", "s3://bucket/prefix")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    settings.check_production()
    assert StorageResource().store_root() == "s3://bucket/prefix"
    # an explicit local root (tests, benchmarks) keeps its store beside it
    assert StorageResource(root=str(tmp_path)).store_root() == str(tmp_path)


def test_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setenv("MARKET_MASTER_MODE", "prod")
    with pytest.raises(settings.SettingsError, match="embedded, production"):
        settings.mode()
