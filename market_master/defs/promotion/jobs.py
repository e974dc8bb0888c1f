"""promote_job: materializes production_model (every Production move: sensor, CLI promote, CLI rollback)."""

import dagster as dg

from market_master.defs.promotion.assets import production_model

promote_job = dg.define_asset_job(
    "promote_job",
    selection=dg.AssetSelection.assets(production_model),
    description="Move the Production alias (config: version | rollback, actor, reason, force).",
)
