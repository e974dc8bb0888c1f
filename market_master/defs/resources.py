"""Typed, swappable resources: market data source (and the index proxy symbol), runtime storage, MLflow."""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from market_master import settings
from market_master.lib.mlflow_adapter import MlflowAdapter, default_artifact_location
from market_master.lib.proxy import DEFAULT_PROXY, proxy_symbols, split_constituents
from market_master.lib.sources import MarketDataSource, get_source
from market_master.lib.sources.synthetic import DEFAULT_PREDICTABILITY
from market_master.lib.storage import ObjectStore, PartitionStore, join
from market_master.lib.weights import DEFAULT_UNIVERSE


class MarketDataResource(dg.ConfigurableResource):
    """Where bars come from: `synthetic` (embedded, offline default), `yfinance` (live) or `csv` (a directory);
    `symbols` are the constituents, `proxy_symbol` the index proxy (the one home of the proxy settings)."""

    source: str = Field(default="synthetic", description="synthetic | yfinance | csv")
    symbols: list[str] = Field(default_factory=lambda: list(DEFAULT_UNIVERSE))
    seed: int = 42
    predictability: float = Field(
        default=DEFAULT_PREDICTABILITY,
        description="synthetic only: planted reversal strength, 0 = random walk",
    )
    csv_dir: str | None = Field(default=None, description="csv only: directory of <SYMBOL>_1h.csv files")
    csv_timezone: str = "America/New_York"
    proxy_symbol: str = Field(
        default=DEFAULT_PROXY,
        description="the index proxy whose bars are index_proxy_bars (QQQ, NQ=F, ...); never a constituent",
    )
    extra_proxy_symbols: list[str] = Field(
        default_factory=list,
        description="more symbols to treat as index proxies, never as constituents (besides lib.proxy's set)",
    )

    def proxy_symbols(self) -> frozenset[str]:
        """Symbols that are index proxies, never constituents: lib.proxy's set + proxy_symbol + extra."""
        return proxy_symbols(self.proxy_symbol, self.extra_proxy_symbols)

    def constituents(self) -> tuple[list[str], str | None]:
        """(`symbols` without any proxy symbol, the message naming the excluded ones or None)."""
        kept, _, message = split_constituents(self.symbols, self.proxy_symbols(), "market_data.symbols")
        return kept, message

    def get_source(self, proxies: frozenset[str] | None = None) -> MarketDataSource:
        """The configured source; `proxies` (synthetic only): symbols simulated as the index proxy."""
        if self.source == "synthetic":
            extra = {} if proxies is None else {"proxies": proxies}
            return get_source("synthetic", seed=self.seed, predictability=self.predictability, **extra)
        if self.source == "csv":
            if not self.csv_dir:
                raise dg.Failure(
                    "market_data.source is 'csv' but market_data.csv_dir is not set", allow_retries=False
                )
            return get_source("csv", directory=self.csv_dir, timezone=self.csv_timezone)
        if self.source == "yfinance":
            return get_source("yfinance")
        raise dg.Failure(
            f"unknown market_data.source {self.source!r}: use synthetic, yfinance or csv", allow_retries=False
        )


class StorageResource(dg.ConfigurableResource):
    """Runtime files under the data root (MARKET_MASTER_HOME, default ./data of the repo); the shared
    store (partition slices + asset values) under `store` (MARKET_MASTER_STORE, e.g. s3://bucket/prefix
    in production), which defaults to the data root itself."""

    root: str | None = Field(default=None, description="local data root; default settings.data_root()")
    store: str | None = Field(
        default=None,
        description="shared store root (local path or s3://bucket/prefix); default MARKET_MASTER_STORE, "
        "else `root`",
    )

    def root_path(self) -> Path:
        return Path(self.root).resolve() if self.root else settings.data_root()

    def store_root(self) -> str:
        if self.store:
            return self.store
        if self.root:  # an explicit local root (tests, benchmarks) keeps its store beside it
            return str(self.root_path())
        return settings.store_root()

    def partitions(self) -> PartitionStore:
        return PartitionStore(join(self.store_root(), "partitions"))

    def objects(self) -> ObjectStore:
        """Whole (non-partitioned) asset values, shared like the slices."""
        return ObjectStore(join(self.store_root(), "objects"))

    def path(self, *parts: str) -> Path:
        p = self.root_path().joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write_json(self, name: str, obj: Any) -> Path:
        target = self.path("state", f"{name}.json")
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(obj, indent=2, default=str))
        os.replace(tmp, target)
        return target

    def read_json(self, name: str) -> Any:
        target = self.root_path() / "state" / f"{name}.json"
        if not target.exists():
            raise dg.Failure(f"{target} does not exist: materialize the asset that writes {name!r} first")
        return json.loads(target.read_text())


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking + registry. Default: local sqlite + artifacts under the data root;
    MLFLOW_TRACKING_URI (or `tracking_uri`) points it at a server instead."""

    tracking_uri: str | None = None
    experiment_name: str = settings.EXPERIMENT_NAME
    model_name: str = settings.MODEL_NAME

    def uri(self) -> str:
        return self.tracking_uri or settings.default_tracking_uri()

    def artifact_location(self) -> str | None:
        return default_artifact_location(self.uri())

    def adapter(self) -> MlflowAdapter:
        """The MLflow adapter on this resource's tracking URI, experiment and registered model."""
        return MlflowAdapter(self.uri(), self.experiment_name, self.model_name, self.artifact_location())
