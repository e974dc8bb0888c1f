"""FastAPI app: `create_app(settings)` builds it; `app` is what `uvicorn api.main:app` serves.

The lifespan loads the model (registry alias first, local copy as a loud fallback, nothing -> 503s),
starts the alias poll and stops it on shutdown. Settings are read when the app starts, not at import.
Swagger UI (/docs) and ReDoc (/redoc) load their JS/CSS from the app itself (`fastapi_offline` serves the
bundled assets under /static-offline-docs): the docs work without network. Request bodies over the limit
are refused (413) before they are parsed (`api.body_limit`).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.bar_windows import calendar_bar_start_list
from api.body_limit import BodyLimitMiddleware
from api.errors import install_error_handlers
from api.inference import PredictBatcher
from api.model_service import ModelService
from api.production_status import ProductionStatusService, utc_now
from api.redact import redacting_logger
from api.routes import admin, health, predict, signal
from api.settings import Settings, get_settings
from api.store_service import StoreService

logger = redacting_logger(__name__)
DOCS_STATIC_URL = "/static-offline-docs"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; `settings=None` reads the environment at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or get_settings()
        app.state.settings = resolved
        app.state.store_service = StoreService(resolved.partitions_root)
        app.state.batcher = PredictBatcher()
        service = ModelService(resolved)
        app.state.model_service = service
        app.state.status_service = ProductionStatusService(service)
        app.state.clock = utc_now  # tests replace it to judge staleness at a chosen time
        service.load_initial()
        calendar_bar_start_list()  # built once here, not by the first POST /predict
        gc.collect()
        gc.freeze()  # start-up objects (MLflow, sklearn, the model) leave the GC's scans: shorter pauses
        service.start_polling()
        try:
            yield
        finally:
            service.stop_polling()
            app.state.batcher.close()

    app = FastAPIOffline(
        title="Market Master API",
        version="0.1.0",
        summary="Next-hour 5-class actions per NASDAQ-100 constituent and the weighted index signal.",
        lifespan=lifespan,
        static_url=DOCS_STATIC_URL,
        # no validator badge: Swagger UI would fetch it from validator.swagger.io
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.add_middleware(BodyLimitMiddleware)
    install_error_handlers(app)
    for module in (health, predict, signal, admin):
        app.include_router(module.router)
    return app


app = create_app()
