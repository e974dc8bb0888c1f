"""Request-body cap under load: peak server RSS growth and /health latency while big POST /predict bodies
arrive. uvicorn (1 worker, 127.0.0.1) in a subprocess on the environment of `bench_api.build_environment`.

Cases: valid windows of 20, 100 and MM_API_MAX_BARS (500) bars (200), 501 bars (422 too_many_bars, under
the byte cap), a body one byte over the byte cap (413), and the 1M-bar (~120 MB) body that used to be
parsed before the bar cap (413 now, without reading it). For each case the server's peak RSS is reset
(/proc/<pid>/clear_refs) and `--repeat` requests are sent, one at a time, while a second connection
polls GET /health every 5 ms; printed: status, request time, peak RSS growth over the RSS before the case,
and /health p50 / max latency during the case.

    .venv/bin/python benchmarks/bench_api_body_limit.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_api import _wait_ready, server_environment  # noqa: E402


def _proc_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest


def post(port: int, body: bytes, timeout: float = 120.0) -> tuple[int, float, str]:
    """One POST /predict on a fresh connection: (status, seconds, error code or ''). The body is sent from
    a thread so an early 413 is read while the client is still sending."""
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)

    def send() -> None:
        try:  # two sends: `head + body` would copy 170 MB in the client, holding the GIL
            sock.sendall(head)
            sock.sendall(body)
        except OSError:
            pass  # the server answered and closed before the whole body was sent

    t0 = time.perf_counter()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        status, payload = _read_response(sock)
    finally:
        elapsed = time.perf_counter() - t0
        sock.close()
        sender.join(timeout=5)
    try:
        code = json.loads(payload).get("error", "") if status != 200 else ""
    except ValueError:
        code = "?"
    return status, elapsed, code


class HealthProbe:
    """GET /health every `interval_s` on one keep-alive connection; latencies with their start times."""

    def __init__(self, port: int, interval_s: float = 0.005) -> None:
        self.port, self.interval_s = port, interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(60)
        while not self._stop.is_set():
            t0 = time.perf_counter()
            sock.sendall(request)
            _read_response(sock)
            self.samples.append((t0, time.perf_counter() - t0))
            time.sleep(self.interval_s)
        sock.close()

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def between(self, t0: float, t1: float) -> np.ndarray:
        return np.array(
            [lat for start, lat in self.samples if t0 <= start <= t1 or start <= t0 <= start + lat]
        )


def bar_rows(n: int) -> list[dict]:
    """`n` consecutive valid NVDA bars (synthetic source, long enough for any case here)."""
    from market_master.lib.sources.synthetic import SyntheticSource

    bars = SyntheticSource(seed=3).fetch(["NVDA"], "2023-01-03", "2024-03-28").tail(n)
    cols = ["timestamp", "open", "high", "low", "close", "volume"]
    return [
        {"timestamp": t.isoformat(), "open": o, "high": h, "low": lo, "close": c, "volume": v}
        for t, o, h, lo, c, v in bars[cols].itertuples(index=False)
    ]


def cases(max_bars: int, limit: int) -> dict[str, bytes]:
    out = {}
    for n in (20, 100, max_bars, max_bars + 1):
        out[f"{n} bars"] = json.dumps({"symbol": "NVDA", "interval": "1h", "bars": bar_rows(n)}).encode()
    over = json.dumps({"symbol": "NVDA", "bars": bar_rows(20)}).encode()
    out["cap + 1 byte"] = over[:-1] + b" " * (limit + 1 - len(over)) + over[-1:]
    one = json.dumps(bar_rows(1)[0]).encode()
    out["1M bars"] = b'{"symbol": "NVDA", "interval": "1h", "bars": [' + b", ".join([one] * 1_000_000) + b"]}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from api.settings import get_settings

    with tempfile.TemporaryDirectory(prefix="mm-bench-body-") as tmp:
        root = Path(tmp)
        uri, _, port, env = server_environment(root)
        os.environ.update(env)
        settings = get_settings()
        limit = settings.body_limit_bytes
        cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--log-level", "warning", "--no-access-log"]  # fmt: skip
        server = subprocess.Popen(cmd, cwd=REPO, env=env)
        try:
            health = _wait_ready(port, server, deadline_s=120)
            print(
                f"serving {health['model_name']} v{health['model_version']} on :{port}; "
                f"MM_API_MAX_BARS={settings.max_bars}, body limit {limit} bytes"
            )
            bodies = cases(settings.max_bars, limit)
            post(port, bodies["20 bars"])  # warm-up
            pid = server.pid
            print(f"{'case':>14} {'bytes':>11} {'status':>16} {'req s':>7} {'+peak RSS MB':>12} "
                  f"{'health p50 ms':>13} {'health max ms':>13}")  # fmt: skip
            with HealthProbe(port) as probe:
                time.sleep(0.2)
                for name, body in bodies.items():
                    rss0 = _proc_kb(pid, "VmRSS")
                    exact = _reset_peak(pid)
                    t0 = time.perf_counter()
                    results = [post(port, body) for _ in range(args.repeat)]
                    t1 = time.perf_counter()
                    time.sleep(0.05)
                    peak = _proc_kb(pid, "VmHWM")
                    lat = probe.between(t0, t1) * 1e3
                    statuses = {f"{s} {c}".strip() for s, _, c in results}
                    growth = (peak - rss0) / 1024
                    print(
                        f"{name:>14} {len(body):>11} {', '.join(sorted(statuses)):>16} "
                        f"{max(r[1] for r in results):>7.3f} {growth:>11.1f}{'' if exact else '*'} "
                        f"{np.percentile(lat, 50) if len(lat) else float('nan'):>13.2f} "
                        f"{lat.max() if len(lat) else float('nan'):>13.2f}"
                    )
            print(
                f"final server RSS {_proc_kb(pid, 'VmRSS') / 1024:.1f} MB; req s = slowest of {args.repeat}"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
