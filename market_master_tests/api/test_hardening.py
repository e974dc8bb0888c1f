"""Hardening of the API surface: credentials and server paths never shown, request bodies capped before
parsing (TestClient and a real uvicorn on a socket), Swagger/ReDoc assets served locally, one symbol rule
for GET and POST, strict numbers for prices and volume."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.main import create_app
from api.redact import public_text, redact_text, redact_uri
from api.settings import get_settings
from market_master_tests.api.conftest import ADMIN_TOKEN, window

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET = "s3cr3t-pw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ item 2: credentials and server paths


def test_redaction_helpers():
    assert redact_uri(f"http://mm:{SECRET}@mlflow:5000") == "http://mm:***@mlflow:5000"
    assert redact_uri("https://tok@host/x?token=abc&a=1") == "https://***@host/x?token=***&a=1"
    assert redact_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    assert SECRET not in redact_text(f"failed against https://u:{SECRET}@h/api: refused")
    text = public_text(
        "no local copy at /srv/home/models/production, nor /opt/other/x.db; sqlite:////srv/home/m.db",
        roots=("/srv/home",),
    )
    assert text == (
        "no local copy at $MARKET_MASTER_HOME/models/production, nor .../x.db; "
        "sqlite:///$MARKET_MASTER_HOME/m.db"
    )


def test_tracking_uri_credentials_are_masked_in_health_bodies_and_logs(api_env, caplog):
    uri = f"http://mm-user:{SECRET}@127.0.0.1:{_free_port()}"  # nothing listens: local fallback
    with caplog.at_level("DEBUG"), TestClient(create_app(api_env.settings(tracking_uri=uri))) as c:
        r = c.get("/health")
        body = r.json()
        assert body["status"] == "degraded" and body["source"] == "local_fallback"
        assert body["tracking_uri"] == uri.replace(SECRET, "***")
        assert SECRET not in r.text and "mm-user:***@" in body["warning"]
        reload = c.post("/admin/reload", headers=AUTH)
        assert SECRET not in reload.text
    logged = "\n".join(rec.getMessage() for rec in caplog.records if rec.name.startswith("api"))
    assert "mm-user:***@" in logged and SECRET not in logged


_ABS = re.compile(r"(?<![\w.:/-])/(tmp|work|home|root|var|srv|opt|usr)/")


def _no_server_path(text: str, *paths) -> None:
    for p in paths:
        assert str(p) not in text, text
    assert not _ABS.search(text), text


def test_error_bodies_show_no_server_paths(api_env, tmp_path):
    settings = api_env.settings(tracking_uri=f"sqlite:///{tmp_path / 'none.db'}", data_root=tmp_path)
    with TestClient(create_app(settings)) as c:  # no model: 503 naming where it looked
        r = c.get("/predict/component", params={"symbol": "NVDA"})
        assert r.status_code == 503
        _no_server_path(r.text, tmp_path)
        assert "$MARKET_MASTER_HOME/models/production" in r.json()["message"]
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 503 and r.json()["error"] == "reload_failed"
        _no_server_path(r.text, tmp_path)
    empty = tmp_path / "empty-home"
    empty.mkdir()
    app = create_app(api_env.settings(data_root=empty))
    with TestClient(app) as c:  # a model, nothing stored: 404 naming the store
        r = c.get("/predict/component", params={"symbol": "NVDA"})
        assert r.status_code == 404 and r.json()["error"] == "nothing_stored"
        _no_server_path(r.text, empty, api_env.root)
        r = c.get("/signal/index")
        assert r.status_code == 404
        _no_server_path(r.text, empty, api_env.root)
        # a failed reload quotes the registry's error: no path either
        app.state.model_service.settings = api_env.settings(tracking_uri=f"sqlite:///{tmp_path / 'gone.db'}")
        r = c.post("/admin/reload", headers=AUTH)
        assert r.status_code == 503
        _no_server_path(r.text, tmp_path)


# ------------------------------------------------------------------ item 3: body limit before parsing


def test_body_over_the_limit_is_413_before_parsing(api_env):
    settings = api_env.settings(max_bars=20)
    limit = settings.body_limit_bytes
    assert limit == 20 * 1024 + 64 * 1024
    with TestClient(create_app(settings)) as c:
        # not even JSON: parsing first would answer 422; the limit answers 413 without reading it
        r = c.post("/predict", content=b"[" * (limit + 1), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        body = r.json()
        assert body["error"] == "payload_too_large" and body["field"] == "body"
        assert str(limit) in body["message"] and "MM_API_MAX_BODY_BYTES" in body["message"]
        # streamed without a length (chunked): counted as it arrives
        chunks = (b"[" * 4096 for _ in range(limit // 4096 + 2))
        r = c.post("/predict", content=chunks, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        # under the byte limit, over the bar cap: the bar cap answers, before any frame is built
        bars = window(api_env.bars, "NVDA", 21)
        r = c.post("/predict", json={"symbol": "NVDA", "bars": bars})
        assert r.status_code == 422 and r.json()["error"] == "too_many_bars"
        r = c.post("/predict", json={"symbol": "NVDA", "bars": bars[1:]})
        assert r.status_code == 200, r.text


def test_body_limit_setting_from_env(monkeypatch):
    monkeypatch.setenv("MM_API_MAX_BODY_BYTES", "200000")
    assert get_settings().body_limit_bytes == 200_000
    monkeypatch.delenv("MM_API_MAX_BODY_BYTES")
    monkeypatch.setenv("MM_API_MAX_BARS", "100")
    assert get_settings().body_limit_bytes == 100 * 1024 + 64 * 1024


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest


@pytest.fixture
def live_server(api_env, tmp_path):
    """A real uvicorn on a socket (no model needed: the limit answers before any route)."""
    settings = api_env.settings(tracking_uri=f"sqlite:///{tmp_path / 'none.db'}", data_root=tmp_path)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield port, settings.body_limit_bytes
    server.should_exit = True
    thread.join(timeout=10)


def test_real_server_refuses_a_120mb_declared_body_without_reading_it(live_server):
    port, limit = live_server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = (
            "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 120000000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"symbol": "NVDA", "bars": [' + b" " * 65536)
        start = time.perf_counter()
        status, body = _read_response(sock, timeout=5)
        assert status == 413 and b"payload_too_large" in body and str(limit).encode() in body
        assert time.perf_counter() - start < 2


def test_real_server_stops_reading_a_chunked_body_at_the_limit(live_server):
    port, limit = live_server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head.encode())
        chunk = b"[" * 32768
        sent = 0
        # no length declared and no terminating chunk: only counting the streamed bytes can answer. Stop
        # sending once past the limit (more unread data would make the closing server reset the socket).
        while sent <= limit:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        status, body = _read_response(sock, timeout=5)
        assert status == 413 and b"payload_too_large" in body


# ------------------------------------------------------------------ item 4: offline docs


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    r = client.get(page)
    assert r.status_code == 200
    html = r.text
    assert "cdn" not in html.lower() and "http://" not in html and "https://" not in html
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    urls += re.findall(r"""(?:url:|spec-url=)\s*["']([^"']+)["']""", html)
    assert len(urls) >= 2, html
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url


# ------------------------------------------------------------------ item 5: symbols and strict numbers


@pytest.mark.parametrize("symbol", [" AAPL", "AAPL ", "AA PL", "", "1AAPL", "AAPL\t"])
def test_malformed_symbol_is_422_naming_the_field_on_get_and_post(client, api_env, symbol):
    r = client.get("/predict/component", params={"symbol": symbol})
    assert r.status_code == 422 and r.json()["field"] == "symbol", r.text
    bars = window(api_env.bars, "AAPL", 20)
    r = client.post("/predict", json={"symbol": symbol, "bars": bars})
    assert r.status_code == 422 and r.json()["field"] == "symbol", r.text


def test_symbol_case_is_normalised_the_same_on_get_and_post(client, api_env):
    r = client.get("/predict/component", params={"symbol": "aapl"})
    assert r.status_code == 200 and r.json()["symbol"] == "AAPL"
    r = client.post("/predict", json={"symbol": "aapl", "bars": window(api_env.bars, "AAPL", 20)})
    assert r.status_code == 200 and r.json()["symbol"] == "AAPL"


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
@pytest.mark.parametrize("value", [True, False, "101.5", None])
def test_prices_and_volume_must_be_json_numbers(client, api_env, column, value):
    bars = window(api_env.bars, "AAPL", 20)
    bars[5][column] = value
    r = client.post("/predict", json={"symbol": "AAPL", "bars": bars})
    assert r.status_code == 422 and r.json()["field"] == f"bars[5].{column}", r.text
    bare = {k: bars[-1][k] for k in ("open", "high", "low", "close", "volume")} | {column: value}
    r = client.post("/predict", json={"symbol": "AAPL", **bare})
    assert r.status_code == 422, r.text
    if value is not None:  # None in the bare form is "missing", reported on the body
        assert r.json()["field"] == column, r.text


def test_integer_prices_are_numbers(client, api_env):
    bars = window(api_env.bars, "AAPL", 20)
    bars[-1]["volume"] = int(bars[-1]["volume"])
    r = client.post("/predict", json={"symbol": "AAPL", "bars": bars})
    assert r.status_code == 200, r.text
