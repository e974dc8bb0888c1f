"""The code location against the live source (yfinance), for switching the schedules on
(`make dagster-live`, workspace.live.yaml): the same definitions as `market_master.definitions`, only
`market_data` points at yfinance. README "Going live" says what the first hours look like."""

from market_master.definitions import build_definitions
from market_master.defs.resources import MarketDataResource

defs = build_definitions({"market_data": MarketDataResource(source="yfinance")})
