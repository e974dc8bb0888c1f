"""The per-request prediction path: validated bar windows in, `lib.prediction.predict_windows` rows out.

Concurrent requests are micro-batched on one worker thread (`PredictBatcher`): it takes every pending
window and makes ONE `predict_windows` call per model (one `compute_features` pass and one predict_proba
for all of them), then resolves each request's future. The prediction code is the library's, so the API
answers exactly what `predict_hours` gives for the same hour (tested); batching only amortises the fixed
pandas/sklearn overhead (~2-3 ms per call) over the requests in flight.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from market_master.lib.calendar import TZ
from market_master.lib.prediction import ModelInfo, NonFiniteFeaturesError, predict_window_arrays

_VALUE_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class BarWindow:
    """Bars of one symbol, oldest first: `ts_ns` UTC nanoseconds (strictly increasing), `values` (n, 5)
    open, high, low, close, volume. `history_bars_used`: leading bars taken from stored history.
    `proxy_values`: the index proxy's (n, 5) values at the same timestamps (index-context models only)."""

    symbol: str
    ts_ns: np.ndarray
    values: np.ndarray
    history_bars_used: int = 0
    proxy_values: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts_ns)

    def tail(self, n: int) -> BarWindow:
        """The last `n` bars (features of the last bar read at most warm-up bars back, so this is exact)."""
        if len(self) <= n:
            return self
        extra = max(0, self.history_bars_used - (len(self) - n))
        proxy = None if self.proxy_values is None else self.proxy_values[-n:]
        return BarWindow(self.symbol, self.ts_ns[-n:], self.values[-n:], extra, proxy)

    def frame(self) -> pd.DataFrame:
        """Canonical bars frame of the window."""
        stamps = pd.DatetimeIndex(self.ts_ns.view("M8[ns]")).tz_localize("UTC").tz_convert(TZ)
        data: dict[str, Any] = {"symbol": np.full(len(self), self.symbol, dtype=object), "timestamp": stamps}
        for j, col in enumerate(_VALUE_COLUMNS):
            data[col] = self.values[:, j]
        return pd.DataFrame(data, copy=False)  # no block consolidation: ~25% cheaper, read-only use


def predict_isolated(model: Any, info: ModelInfo, windows: list[BarWindow]) -> list[dict | Exception]:
    """`predict_window_arrays` (= `predict_windows` without a DataFrame per window) over `windows`; a
    failing window gets its exception in its slot, the others their rows.

    Windows named by a NonFiniteFeaturesError are split off and the rest re-run in one call; any other
    failure of the shared call falls back to one call per window.
    """
    proxies = [w.proxy_values for w in windows] if any(w.proxy_values is not None for w in windows) else None
    try:
        return list(
            predict_window_arrays(
                [w.symbol for w in windows],
                [w.ts_ns for w in windows],
                [w.values for w in windows],
                model,
                info,
                proxies=proxies,
            )
        )
    except Exception as exc:
        if len(windows) == 1:
            return [exc]
        bad = set(exc.positions) if isinstance(exc, NonFiniteFeaturesError) else set()
        if not bad:
            return [predict_isolated(model, info, [w])[0] for w in windows]
        out: list[dict | Exception | None] = [None] * len(windows)
        rest = [i for i in range(len(windows)) if i not in bad]
        for i in bad:
            out[i] = predict_isolated(model, info, [windows[i]])[0]
        for i, res in zip(rest, predict_isolated(model, info, [windows[i] for i in rest]), strict=True):
            out[i] = res
        return out  # type: ignore[return-value]


class PredictBatcher:
    """Micro-batching of `predict_windows` on ONE worker thread.

    Callers submit a window and get a `concurrent.futures.Future`; the worker drains everything queued
    (up to `max_batch`) into one `predict_windows` call per model. Async routes await the future without
    blocking the event loop; only this thread runs the CPU-bound pass, so request threads never convoy on
    the GIL. Per-window failures are set on that window's future only.
    """

    def __init__(self, max_batch: int = 64) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0
        self.items = 0

    def submit(self, model: Any, info: ModelInfo, window: BarWindow) -> Future:
        """Queue `window` for `model`; the future resolves to its `predict_windows` row (a dict)."""
        if self._worker is None:
            with self._start_lock:
                if self._worker is None:
                    self._worker = threading.Thread(target=self._loop, name="predict-batcher", daemon=True)
                    self._worker.start()
        future: Future = Future()
        self._queue.put((model, info, window, future))
        return future

    def predict(self, model: Any, info: ModelInfo, window: BarWindow) -> dict:
        """Blocking form for sync callers."""
        return self.submit(model, info, window).result()

    async def predict_async(self, model: Any, info: ModelInfo, window: BarWindow) -> dict:
        return await asyncio.wrap_future(self.submit(model, info, window))

    def close(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=10)
            self._worker = None

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._run(batch)
            self.batches += 1
            self.items += len(batch)

    @staticmethod
    def _run(batch: list) -> None:
        groups: dict[int, list] = {}
        for item in batch:
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            model, info = items[0][0], items[0][1]
            try:
                results = predict_isolated(model, info, [window for _, _, window, _ in items])
            except Exception as exc:  # never leave a future unresolved
                results = [exc] * len(items)
            for (_, _, _, future), res in zip(items, results, strict=True):
                if isinstance(res, Exception):
                    future.set_exception(res)
                else:
                    future.set_result(res)
