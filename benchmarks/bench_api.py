"""API latency under concurrency: uvicorn (1 worker, 127.0.0.1) in a subprocess, a bounded load generator.

Builds a small real environment in a temp data root (synthetic top-10 bars, LogReg champion logged with
log_training, promoted to Production, last 30 hours stored as partitions), starts
`uvicorn api.main:app --workers 1`, then for each endpoint sends a fixed number of requests from
`--concurrency` keep-alive connections (raw asyncio HTTP/1.1: the client costs far less CPU than httpx,
which matters on a 2-core box where client and server share the CPU) with a per-request timeout.
Prints req/s, p50, p99 and max per endpoint; targets: /signal/index p99 < 10 ms, /predict p99 < 30 ms.

    .venv/bin/python benchmarks/bench_api.py [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_environment(root: Path) -> tuple[str, list[dict]]:
    """Train + register + promote a LogReg champion and store the last 30 hours; returns (tracking URI,
    one 20-bar request window)."""
    from market_master.lib.aliases import PRODUCTION_ALIAS
    from market_master.lib.features import compute_features
    from market_master.lib.mlflow_adapter import MlflowAdapter
    from market_master.lib.prediction import ModelInfo, predict_hours
    from market_master.lib.signal import compute_wss
    from market_master.lib.sources.synthetic import SyntheticSource
    from market_master.lib.storage import PartitionStore
    from market_master.lib.training import TrainingConfig, train_candidates
    from market_master.lib.weights import DEFAULT_UNIVERSE, EMBEDDED_AS_OF, embedded_top10
    from market_master.settings import MODEL_NAME

    (root / "mlflow").mkdir(parents=True)
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    universe = list(DEFAULT_UNIVERSE)
    bars = SyntheticSource(seed=3).fetch(universe, "2024-01-02", "2024-03-28")
    feats = compute_features(bars)
    hours = pd.DatetimeIndex(feats["timestamp"].unique()).sort_values()
    train = feats[feats["timestamp"] < hours[-30]].reset_index(drop=True)
    result = train_candidates(train, TrainingConfig(candidates=("LogReg",), bootstrap_n=20, latency_rounds=1))
    adapter = MlflowAdapter(
        uri, model_name=MODEL_NAME, artifact_location=(root / "mlflow" / "artifacts").as_uri()
    )
    reg = adapter.log_training(result)
    adapter.promote(reg.version, actor="bench", reason="benchmark")
    store = PartitionStore(root / "partitions")
    store.write_many("hourly_bars", bars[bars["timestamp"].isin(hours[-30:])], "timestamp")
    preds = predict_hours(feats, result.champion, hours=hours[-3:], universe=universe,
                          model_info=ModelInfo(MODEL_NAME, str(reg.version), PRODUCTION_ALIAS))  # fmt: skip
    store.write_many("component_predictions", preds, "hour")
    signal = compute_wss(preds, embedded_top10().weights)
    signal["universe"], signal["weights_as_of"] = "qqq", str(EMBEDDED_AS_OF)
    store.write_many("index_signal", signal, "hour")
    nvda = bars[bars["symbol"] == "NVDA"].tail(20)
    rows = [
        {"timestamp": t.isoformat(), "open": o, "high": h, "low": lo, "close": c, "volume": v}
        for t, o, h, lo, c, v in nvda[["timestamp", "open", "high", "low", "close", "volume"]].itertuples(
            index=False
        )
    ]
    return uri, rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _one_connection(port: int, request: bytes, n: int, timeout: float, lat: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                writer.write(request)
                status, length = await asyncio.wait_for(_read_head(reader), timeout)
                await asyncio.wait_for(reader.readexactly(length), timeout)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                errors.append(repr(exc))
                return
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(f"HTTP {status}")
    finally:
        writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(v) for k, _, v in (ln.partition(":") for ln in lines[1:]) if k.lower() == "content-length"
    )
    return status, length


def http_request(method: str, path: str, body: bytes | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


def load(port: int, request: bytes, total: int, concurrency: int, timeout: float) -> dict:
    """`total` requests over `concurrency` keep-alive connections; latency per request in ms."""
    lat: list[float] = []
    errors: list[str] = []
    per = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]

    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(_one_connection(port, request, n, timeout, lat, errors) for n in per))
        return time.perf_counter() - t0

    elapsed = asyncio.run(main())
    ms = np.array(lat) * 1e3
    return {
        "requests": len(lat),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "req_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def server_environment(root: Path) -> tuple[str, list[dict], int, dict]:
    """(tracking URI, request rows, a free port, the server's environment) for a uvicorn on `root`."""
    uri, rows = build_environment(root)
    env = os.environ | {
        "MARKET_MASTER_HOME": str(root),
        "MLFLOW_TRACKING_URI": uri,
        "MM_API_RELOAD_POLL_SECONDS": "0",
    }
    return uri, rows, free_port(), env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mm-bench-api-") as tmp:
        root = Path(tmp)
        uri, rows, port, env = server_environment(root)
        cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--log-level", "warning", "--no-access-log"]  # fmt: skip
        server = subprocess.Popen(cmd, cwd=REPO, env=env)
        try:
            health = _wait_ready(port, server, deadline_s=120)
            print(
                f"serving {health['model_name']} v{health['model_version']} ({health['source']}) on :{port}"
            )
            cases = {
                "POST /predict (20 bars)": http_request(
                    "POST",
                    "/predict",
                    json.dumps({"symbol": "NVDA", "interval": "1h", "bars": rows}).encode(),
                ),
                "GET /signal/index": http_request("GET", "/signal/index?universe=qqq"),
            }
            results = {}
            for name, request in cases.items():
                load(port, request, args.warmup, args.concurrency, args.timeout)
                results[name] = load(port, request, args.requests, args.concurrency, args.timeout)
                print(f"{name:26s} c={args.concurrency} {json.dumps(results[name])}")
            targets = {"POST /predict (20 bars)": 30.0, "GET /signal/index": 10.0}
            for name, limit in targets.items():
                verdict = (
                    "MET" if results[name]["p99_ms"] < limit and not results[name]["errors"] else "MISSED"
                )
                print(f"target {name}: p99 < {limit} ms -> {verdict} ({results[name]['p99_ms']} ms)")
        finally:
            server.terminate()
            server.wait(timeout=30)


def _wait_ready(port: int, server: subprocess.Popen, deadline_s: float) -> dict:
    import httpx

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.returncode}")
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            if body["status"] == "ok":
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API did not become healthy in time")


if __name__ == "__main__":
    main()
