"""Bar-quality checks on hourly_bars: predicates from lib.bars, offending rows in the metadata.

They are declared as check specs of the asset (evaluated in the same step, over exactly the rows that
step wrote) so one single-run backfill evaluates them once over its whole range. ERROR checks block
downstream assets; completeness is a warning (e.g. Yahoo omits the 12:30 half-day bar).
"""

import dagster as dg

from market_master.lib.bars import CheckOutcome

ERROR_CHECKS = (
    "high_is_at_least_open_and_close",
    "low_is_at_most_open_and_close",
    "prices_are_positive",
    "volume_is_non_negative",
    "timestamps_are_unique",
    "timestamps_are_trading_bars",
    "values_are_finite",
    "returns_are_sane",
)
WARN_CHECKS = ("bars_are_complete",)
MAX_ROWS_SHOWN = 50


def bar_check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    """The bar checks of an asset of canonical bars (hourly_bars, index_proxy_bars)."""
    return [dg.AssetCheckSpec(name, asset=asset, blocking=True) for name in ERROR_CHECKS] + [
        dg.AssetCheckSpec(name, asset=asset, blocking=False) for name in WARN_CHECKS
    ]


BAR_CHECK_SPECS = bar_check_specs("hourly_bars")


def check_results_for(outcomes: list[CheckOutcome]) -> list[dg.AssetCheckResult]:
    """One AssetCheckResult per declared check; the offending rows (first 50) in the metadata."""
    by_name = {o.name: o for o in outcomes}
    missing = [n for n in ERROR_CHECKS + WARN_CHECKS if n not in by_name]
    if missing:
        raise dg.Failure(f"bar checks not evaluated: {missing}")
    results = []
    for name in ERROR_CHECKS + WARN_CHECKS:
        o = by_name[name]
        offending = o.offending
        metadata = {"description": o.description, "n_offending_rows": len(offending)}
        if len(offending):
            metadata["offending_rows"] = dg.MetadataValue.md(
                offending.head(MAX_ROWS_SHOWN).astype(str).to_markdown(index=False)
            )
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=bool(o.passed),
                severity=dg.AssetCheckSeverity.WARN if name in WARN_CHECKS else dg.AssetCheckSeverity.ERROR,
                metadata=metadata,
            )
        )
    return results
