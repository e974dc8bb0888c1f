"""PNG charts of a backtest: equity curves and the WSS series with its thresholds (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from market_master.lib.backtest import BacktestResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def _figure(path: Path, figsize: tuple[float, float]) -> Iterator[Any]:
    """One-axes figure: the body draws on the yielded axes; then grid, tight layout, saved to ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield ax
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def plot_equity(result: BacktestResult, path: str | Path, title: str = "Equity after costs") -> Path:
    """Signal vs buy-and-hold vs always-flat equity over the backtest's bars; returns the PNG path."""
    path = Path(path)
    frame = result.frame
    x = range(len(frame))
    with _figure(path, (10, 4.5)) as ax:
        ax.plot(x, frame["strategy_equity"], label="WSS signal", lw=1.4)
        ax.plot(x, frame["buy_and_hold_equity"], label="buy & hold", lw=1.0, alpha=0.8)
        ax.plot(x, frame["flat_equity"], label="flat", lw=1.0, ls="--", color="grey")
        _date_ticks(ax, frame["hour"])
        ax.set_ylabel("equity (start = 1)")
        ax.set_title(f"{title} ({result.cost_bps:g} bp per unit change)")
        ax.legend(loc="best")
    return path


def plot_wss(
    signal: pd.DataFrame,
    path: str | Path,
    buy_threshold: float,
    sell_threshold: float,
    segments: dict[str, pd.Timestamp] | None = None,
) -> Path:
    """WSS over time with the BUY/SELL thresholds; optional vertical lines at segment starts."""
    path = Path(path)
    frame = signal.sort_values("hour").reset_index(drop=True)
    x = range(len(frame))
    with _figure(path, (10, 4)) as ax:
        ax.plot(x, frame["wss"], lw=0.8, label="WSS")
        ax.axhline(buy_threshold, color="green", ls="--", lw=1, label=f"BUY >= {buy_threshold:g}")
        ax.axhline(sell_threshold, color="red", ls="--", lw=1, label=f"SELL <= {sell_threshold:g}")
        for name, start in (segments or {}).items():
            pos = int(frame["hour"].searchsorted(start))
            ax.axvline(pos, color="black", lw=0.8, alpha=0.6)
            ax.text(pos, ax.get_ylim()[1], f" {name}", va="top", fontsize=8)
        _date_ticks(ax, frame["hour"])
        ax.set_ylabel("weighted sentiment score")
        ax.set_title("WSS per hour")
        ax.legend(loc="lower left", fontsize=8)
    return path


def _date_ticks(ax, hours: pd.Series) -> None:
    """Bar-index x axis (no gaps for nights) labelled with dates."""
    n = len(hours)
    if n == 0:
        return
    step = max(1, n // 8)
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels(
        [pd.Timestamp(hours.iloc[i]).strftime("%Y-%m-%d") for i in ticks], rotation=20, fontsize=8
    )
