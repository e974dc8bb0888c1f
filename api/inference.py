"""The per-request prediction path: bar windows in, next-bar class probabilities out.

Concurrent requests are micro-batched on one worker thread (`PredictBatcher`): it takes every pending
window, runs ONE `compute_features` call and ONE predict_proba call for all of them, and resolves each
request's future. This
is the same feature and model code as `lib.prediction.predict_hours` (the tests check equality to 1e-9);
it only amortises the fixed pandas/sklearn overhead (~3 ms per call) over the requests in flight.

In the shared feature pass each window gets its own pseudo-symbol (`w0000`, `w0001` ...), so windows
never read each other's bars (features are per symbol); the real symbol is restored for the model.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from market_master.lib.calendar import TZ, next_bar_start
from market_master.lib.features import compute_features
from market_master.lib.labels import CLASSES

_VALUE_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class BarWindow:
    """Bars of one symbol, oldest first: `ts_ns` UTC nanoseconds (strictly increasing), `values` (n, 5)
    open, high, low, close, volume."""

    symbol: str
    ts_ns: np.ndarray
    values: np.ndarray
    history_bars_used: int = 0

    def __len__(self) -> int:
        return len(self.ts_ns)

    def tail(self, n: int) -> BarWindow:
        """The last `n` bars (features of the last bar read at most MAX_LOOKBACK bars, so this is exact)."""
        if len(self) <= n:
            return self
        extra = max(0, self.history_bars_used - (len(self) - n))
        return BarWindow(self.symbol, self.ts_ns[-n:], self.values[-n:], extra)

    def frame(self, label: str | None = None) -> pd.DataFrame:
        """Canonical bars frame of the window (symbol replaced by `label` if given)."""
        return _frame(np.full(len(self), label or self.symbol, dtype=object), self.ts_ns, self.values)


def _frame(symbols: np.ndarray, ts_ns: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    stamps = pd.DatetimeIndex(ts_ns.view("M8[ns]")).tz_localize("UTC").tz_convert(TZ)
    data: dict[str, Any] = {"symbol": symbols, "timestamp": stamps}
    for j, col in enumerate(_VALUE_COLUMNS):
        data[col] = values[:, j]
    return pd.DataFrame(data)


class FastEstimator:
    """`ComponentModel.predict_proba` for the standard pipeline (`lib.candidates.preprocessor`: StandardScaler
    on the features + one-hot symbol, then a classifier) without the pandas ColumnTransformer round trip.

    Built only when the pipeline has exactly that structure AND reproduces the pipeline's probabilities on
    probe rows to 1e-12; otherwise `build` returns None and the pipeline itself is used.
    """

    def __init__(self, model: Any) -> None:
        pre = model.estimator.named_steps["pre"]
        num = pre.named_transformers_["num"]
        sym = pre.named_transformers_["sym"]
        self.clf = model.estimator.named_steps["clf"]
        self.mean = np.asarray(num.mean_, dtype=np.float64)
        self.scale = np.asarray(num.scale_, dtype=np.float64)
        self.categories = {str(c): i for i, c in enumerate(sym.categories_[0])}
        self.fitted = [int(c) for c in self.clf.classes_]
        self.n_classes = len(model.classes)

    @classmethod
    def build(cls, model: Any) -> FastEstimator | None:
        try:
            from sklearn.compose import ColumnTransformer
            from sklearn.preprocessing import OneHotEncoder, StandardScaler

            steps = model.estimator.named_steps
            pre = steps["pre"]
            spec = [(name, type(t), list(cols)) for name, t, cols in pre.transformers_ if name != "remainder"]
            expected = [
                ("num", StandardScaler, list(model.feature_columns)),
                ("sym", OneHotEncoder, ["symbol"]),
            ]
            if not isinstance(pre, ColumnTransformer) or spec != expected or list(steps) != ["pre", "clf"]:
                return None
            if pre.named_transformers_["sym"].handle_unknown != "ignore" or pre.remainder != "drop":
                return None
            fast = cls(model)
            rng = np.random.default_rng(0)
            symbols = [*fast.categories, "__unknown__"] * 2
            x = fast.mean + fast.scale * rng.standard_normal((len(symbols), len(fast.mean)))
            probe = pd.DataFrame(x, columns=model.feature_columns)
            probe.insert(0, "symbol", symbols)
            ref = model.predict_proba(probe)
            if np.max(np.abs(fast.predict_proba(np.array(symbols, dtype=object), x) - ref)) > 1e-12:
                return None
            return fast
        except Exception:  # any surprise -> the pipeline path
            return None

    def predict_proba(self, symbols: np.ndarray, x: np.ndarray) -> np.ndarray:
        onehot = np.zeros((len(x), len(self.categories)))
        for i, s in enumerate(symbols):
            j = self.categories.get(s)
            if j is not None:
                onehot[i, j] = 1.0
        z = np.hstack([(x - self.mean) / self.scale, onehot])
        out = np.zeros((len(x), self.n_classes))
        out[:, self.fitted] = self.clf.predict_proba(z)
        return out


_FAST: dict[int, tuple[Any, FastEstimator | None]] = {}
_FAST_LOCK = threading.Lock()


def fast_estimator(model: Any) -> FastEstimator | None:
    """The model's FastEstimator (built once per model object), or None."""
    entry = _FAST.get(id(model))
    if entry is None or entry[0] is not model:
        with _FAST_LOCK:
            if len(_FAST) > 8:
                _FAST.clear()
            entry = (model, FastEstimator.build(model))
            _FAST[id(model)] = entry
    return entry[1]


@lru_cache(maxsize=4096)
def _next_bar(ns: int) -> pd.Timestamp:
    return next_bar_start(pd.Timestamp(ns, tz="UTC"))


def _bar_time(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, tz="UTC").tz_convert(TZ)


class FeatureError(ValueError):
    """The window's last bar has non-finite features (e.g. prices so extreme that the maths overflows)."""


@dataclass(frozen=True)
class WindowPrediction:
    symbol: str
    probabilities: np.ndarray  # (5,) CLASSES order
    bar_time: pd.Timestamp
    timestamp_next: pd.Timestamp

    @property
    def action(self) -> str:
        return CLASSES[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))


def predict_windows(model: Any, windows: list[BarWindow]) -> list[WindowPrediction | Exception]:
    """Predict the LAST bar of every window with one feature pass and one predict_proba call.

    Every window must hold at least warm-up + 1 bars. Per-window failures come back as exceptions in
    that window's slot, so one bad window never fails the others.
    """
    if not windows:
        return []
    labels = [f"w{i:05d}" for i in range(len(windows))]
    lengths = np.array([len(w) for w in windows])
    bars = _frame(
        np.repeat(np.array(labels, dtype=object), lengths),
        np.concatenate([w.ts_ns for w in windows]),
        np.vstack([w.values for w in windows]),
    )
    feats = compute_features(bars, model.feature_config)
    last = np.cumsum(lengths) - 1
    cols = list(model.feature_columns)
    x = feats[cols].to_numpy(np.float64)[last]
    symbols = np.array([w.symbol for w in windows], dtype=object)
    ends = [int(w.ts_ns[-1]) for w in windows]
    finite = np.isfinite(x).all(axis=1) & ~feats["warmup"].to_numpy(bool)[last]
    out: list[WindowPrediction | Exception] = [
        FeatureError(
            f"the features of the last bar ({_bar_time(ends[i]).isoformat()}) are not finite "
            f"{[c for c, v in zip(cols, x[i], strict=True) if not np.isfinite(v)][:5]}: the prices are too "
            "extreme (or the window is shorter than warm-up + 1)"
        )
        for i in range(len(windows))
    ]
    ok = np.flatnonzero(finite)
    if len(ok):
        fast = fast_estimator(model)
        if fast is not None:
            probs = fast.predict_proba(symbols[ok], x[ok])
        else:
            rows = pd.DataFrame(x[ok], columns=cols)
            rows.insert(0, "symbol", symbols[ok])
            probs = np.asarray(model.predict_proba(rows), dtype=float)
        for j, i in enumerate(ok):
            out[i] = WindowPrediction(windows[i].symbol, probs[j], _bar_time(ends[i]), _next_bar(ends[i]))
    return out


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

    def submit(self, model: Any, window: BarWindow) -> Future:
        if self._worker is None:
            with self._start_lock:
                if self._worker is None:
                    self._worker = threading.Thread(target=self._loop, name="predict-batcher", daemon=True)
                    self._worker.start()
        future: Future = Future()
        self._queue.put((model, window, future))
        return future

    def predict(self, model: Any, window: BarWindow) -> WindowPrediction:
        """Blocking form for sync callers."""
        return self.submit(model, window).result()

    async def predict_async(self, model: Any, window: BarWindow) -> WindowPrediction:
        return await asyncio.wrap_future(self.submit(model, window))

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
            try:
                results = predict_windows(items[0][0], [w for _, w, _ in items])
            except Exception:  # one window broke the shared pass: isolate it
                results = []
                for model, window, _ in items:
                    try:
                        results.extend(predict_windows(model, [window]))
                    except Exception as exc:
                        results.append(exc)
            for (_, _, future), res in zip(items, results, strict=True):
                if isinstance(res, Exception):
                    future.set_exception(res)
                else:
                    future.set_result(res)
