"""Shared fixtures. The suite never touches the network: every non-loopback socket connect fails."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REAL_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-dev"

_real_connect = socket.socket.connect


def _guarded_connect(self, address):  # pragma: no cover - exercised only on a violation
    host = address[0] if isinstance(address, tuple) else address
    if (
        isinstance(host, str)
        and (host.startswith("127.") or host in ("localhost", "::1"))
        or self.family == socket.AF_UNIX
    ):
        return _real_connect(self, address)
    raise RuntimeError(f"network access blocked in tests: {address!r}")


def _blocked_request(*args, **kwargs):
    raise RuntimeError("network access blocked in tests (curl_cffi)")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    # curl_cffi (yfinance's default HTTP client) opens sockets in C, past the patch above
    try:
        from curl_cffi import requests as curl_requests
    except ImportError:  # pragma: no cover
        return
    monkeypatch.setattr(curl_requests.Session, "request", _blocked_request)


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    """A fresh MARKET_MASTER_HOME for one test."""
    home = tmp_path / "mm-home"
    home.mkdir()
    monkeypatch.setenv("MARKET_MASTER_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture(scope="session")
def mlflow_session_dir(tmp_path_factory) -> Path:
    """One sqlite tracking store for the session (creating one costs seconds of migrations)."""
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def mlflow_uri(mlflow_session_dir, monkeypatch) -> str:
    uri = f"sqlite:///{mlflow_session_dir / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="session")
def real_dev_dir() -> Path:
    if not (REAL_DEV / "AAPL_1h.csv").exists():
        pytest.skip("../shared/data/real-dev is absent")
    return REAL_DEV


@pytest.fixture
def isolated_home(tmp_path, monkeypatch) -> Path:
    """A fresh data root AND Dagster home, for tests that run the CLI."""
    monkeypatch.setenv("MARKET_MASTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "home"


def pytest_collection_modifyitems(config, items):
    """The files with `slow` tests (the end-to-end runs, minutes each) go first, so that `make test`'s two
    xdist workers (`--dist loadfile`) start them at once and the short files fill in beside them, instead
    of the longest files starting last on one worker. The order inside a file is kept (stable sort)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
