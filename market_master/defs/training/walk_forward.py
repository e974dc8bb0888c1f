"""walk_forward_history: the training procedure replayed through time (lib/walk_forward.py), the hours
every gate and backtest is judged on. Its config is the ONE home of the procedure's settings: the
champion search (candidate_models) reads them from this asset's output."""

from dataclasses import dataclass

import dagster as dg
import pandas as pd
from pydantic import Field

from market_master.defs.features.assets import stored_feature_config
from market_master.lib import calendar
from market_master.lib.backtest import forward_returns, weighted_constituent_returns
from market_master.lib.candidates import CANDIDATE_NAMES
from market_master.lib.segments import DEFAULT_SEGMENTS
from market_master.lib.storage import AssetSlices
from market_master.lib.training import TrainingConfig
from market_master.lib.walk_forward import (
    DEFAULT_WALK_FORWARD,
    WalkForwardConfig,
    WalkForwardResult,
    run_walk_forward,
)
from market_master.lib.weights import WeightsHistory

WF = DEFAULT_WALK_FORWARD


class WalkForwardAssetConfig(dg.Config):
    """The training procedure (what candidate_models also uses) and the walk-forward geometry."""

    window_days: int | None = Field(
        default=None,
        description="trading days of feature_table to replay, ending at `end` (None: all stored)",
    )
    end: str | None = Field(default=None, description="last hour (partition key); default: latest stored")
    label_method: str = Field(
        default="session_volatility", description="quantile | volatility | session_volatility"
    )
    candidates: list[str] = Field(default_factory=lambda: list(CANDIDATE_NAMES))
    seed: int = 42
    embargo_bars: int = Field(
        default=DEFAULT_SEGMENTS.embargo_bars,
        description="hours between a fold's inner fit and validation parts",
    )
    scheme: str = Field(default=WF.scheme, description="expanding | rolling training windows")
    train_sessions: int = Field(
        default=WF.train_sessions, description="first training window (rolling: every window), sessions"
    )
    refit_every_sessions: int = Field(default=WF.refit_every_sessions, description="refit cadence, sessions")
    select_every_folds: int = Field(
        default=WF.select_every_folds,
        description="full candidate search every N folds (others refit the pick)",
    )
    embargo_sessions: int = Field(
        default=WF.embargo_sessions, description="purge before each fold's OOS hours"
    )
    validation_share: float = Field(
        default=WF.validation_share, description="inner validation share of a fold"
    )
    cost_bps: float = Field(default=WF.cost_bps, description="cost per unit of position change, basis points")
    proxy: str = Field(
        default="index_proxy",
        description="traded proxy: index_proxy (index_proxy_bars) | constituent_basket (weighted constituents)",
    )

    def walk_forward(self) -> WalkForwardConfig:
        return WalkForwardConfig(
            scheme=self.scheme,
            train_sessions=self.train_sessions,
            refit_every_sessions=self.refit_every_sessions,
            select_every_folds=self.select_every_folds,
            embargo_sessions=self.embargo_sessions,
            validation_share=self.validation_share,
            cost_bps=self.cost_bps,
        )


@dataclass
class ProxyReturns:
    """The index proxy's next-bar return by decision hour, what it is, and the caveat to print with it."""

    forward: pd.Series
    name: str
    note: str


PROXY_CHOICES = ("index_proxy", "constituent_basket")
MAX_PROXY_GAP_SHARE = 0.01  # hours of the replay without a proxy bar tolerated (then stated), else a failure


def proxy_returns(
    proxy: str,
    index_proxy_bars: AssetSlices,
    hourly_bars: AssetSlices,
    index_weights: WeightsHistory,
    feature_hours: pd.DatetimeIndex,
) -> ProxyReturns:
    """The traded proxy's next-bar return by decision hour over ``feature_hours``.

    ``index_proxy`` (default): the stored index_proxy_bars (QQQ unless market_data says otherwise); hours
    without a proxy bar are named, tolerated up to MAX_PROXY_GAP_SHARE and stated, else a failure.
    ``constituent_basket``: the weighted constituents' next-bar return, only when asked for, and said to be
    survivorship-biased when the weights are not point in time."""
    start, end = feature_hours.min(), feature_hours.max()
    if proxy == "constituent_basket":
        bars = hourly_bars.read_between(start, end + pd.Timedelta(days=5))
        note = "proxy: the weighted constituents' next-bar return (basket, chosen in config); " + (
            "point-in-time weights"
            if len(index_weights.snapshots) > 1
            else "today's weights applied to the past: survivorship-biased"
        )
        return ProxyReturns(weighted_constituent_returns(bars, index_weights), "constituent basket", note)
    bars = index_proxy_bars.read_between(start, end + pd.Timedelta(days=5))
    if bars.empty:
        raise dg.Failure(
            f"index_proxy_bars has no bars between {start} and {end}: materialize index_proxy_bars over "
            f"the feature range (ingest_job does), or set walk_forward_history's proxy: constituent_basket"
        )
    symbol = str(bars["symbol"].iloc[0])
    missing = feature_hours.difference(pd.DatetimeIndex(bars["timestamp"]))
    if len(missing) > MAX_PROXY_GAP_SHARE * len(feature_hours):
        raise dg.Failure(
            f"index proxy {symbol}: {len(missing)} of {len(feature_hours)} feature hours have no proxy bar "
            f"(first: {[str(h) for h in missing[:5]]}); backfill index_proxy_bars over them"
        )
    note = f"proxy: {symbol} next-bar close-to-close return (index_proxy_bars)" + (
        f"; {len(missing)} hours without a {symbol} bar are not traded or scored" if len(missing) else ""
    )
    return ProxyReturns(forward_returns(bars, symbol), symbol, note)


def _window(feature_table: AssetSlices, config: WalkForwardAssetConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    end_key = config.end or feature_table.latest_key()
    if end_key is None:
        raise dg.Failure(
            "feature_table has no stored partitions: materialize hourly_bars and feature_table first"
        )
    end = calendar.key_to_timestamp(end_key)
    if config.window_days is None:
        return calendar.key_to_timestamp(feature_table.keys()[0]), end
    return calendar.last_sessions_window(end, config.window_days)


@dataclass
class WalkForwardHistory:
    """What walk_forward_history stores: the OOS history, the proxy it is judged against, the feature
    range it replayed and the procedure (training config) the champion search repeats."""

    result: WalkForwardResult
    proxy: ProxyReturns
    start: pd.Timestamp
    end: pd.Timestamp
    training: TrainingConfig


@dg.asset(group_name="training", kinds={"sklearn"})
def walk_forward_history(
    context: dg.AssetExecutionContext,
    config: WalkForwardAssetConfig,
    feature_table: AssetSlices,
    hourly_bars: AssetSlices,
    index_proxy_bars: AssetSlices,
    index_weights: WeightsHistory,
) -> WalkForwardHistory:
    """One out-of-sample prediction per symbol and hour after the first training window, with the fold and
    the model that made it; the WSS and decision of every OOS hour. Each fold chose its model, label
    thresholds and decision rule on its own past only (lib/walk_forward.py)."""
    start, end = _window(feature_table, config)
    features = feature_table.read_between(start, end).sort_values(["symbol", "timestamp"], ignore_index=True)
    if features.empty:
        raise dg.Failure(f"no feature_table rows between {start} and {end}")
    training = TrainingConfig(
        label_method=config.label_method,
        segments=config.walk_forward().inner_segments(config.embargo_bars),
        seed=config.seed,
        candidates=tuple(config.candidates),
        feature_config=stored_feature_config(features),
    )
    if config.proxy not in PROXY_CHOICES:
        raise dg.Failure(f"walk_forward_history proxy must be one of {PROXY_CHOICES}, got {config.proxy!r}")
    feature_hours = pd.DatetimeIndex(features["timestamp"].unique()).sort_values()
    proxy = proxy_returns(config.proxy, index_proxy_bars, hourly_bars, index_weights, feature_hours)

    def progress(done: int, total: int, message: str) -> None:
        context.log.info(f"walk-forward {done}/{total}: {message}")

    try:
        result = run_walk_forward(
            features, index_weights, proxy.forward, config.walk_forward(), training, progress=progress
        )
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    folds = result.folds
    context.add_output_metadata(
        {
            "oos_hours": len(result.signal),
            "oos_rows": len(result.predictions),
            "oos_window": f"{result.oos_start} .. {result.oos_end}",
            "replayed_window": f"{start} .. {end}",
            "folds": len(folds),
            "n_trials": result.n_trials,
            "seconds": round(result.seconds, 1),
            "walk_forward": dg.MetadataValue.json(result.config.to_dict()),
            "folds_table": dg.MetadataValue.md(
                folds[
                    [
                        "fold",
                        "select",
                        "champion",
                        "decision_rule",
                        "train_start",
                        "train_end",
                        "oos_start",
                        "oos_end",
                        "seconds",
                    ]
                ]
                .round(1)
                .astype(str)
                .to_markdown(index=False)
            ),
            "hours_statement": result.hours_statement(),
            "proxy": proxy.note,
            "decisions": dg.MetadataValue.json(result.signal["decision"].value_counts().to_dict()),
        }
    )
    return WalkForwardHistory(result, proxy, start, end, training)
