"""promote_job: materializes production_model (the alias move)."""

import dagster as dg

promote_job = dg.define_asset_job("promote_job", selection=dg.AssetSelection.assets("production_model"))
