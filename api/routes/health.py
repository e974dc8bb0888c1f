"""GET /health: what is served, from where, and a loud warning when it is the local fallback."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ModelServiceDep
from api.model_service import ModelService
from api.schemas import HealthPublic

router = APIRouter(tags=["health"])


def health_of(service: ModelService) -> HealthPublic:
    """The health body for the service's current state."""
    served = service.peek()
    settings = service.settings
    if served is None:
        return HealthPublic(
            status="no_model",
            model_name=None,
            model_version=None,
            model_alias=None,
            model_uri=None,
            source=None,
            loaded_at=None,
            tracking_uri=settings.tracking_uri,
            warning=f"NO MODEL LOADED: model endpoints answer 503. {service.last_error or ''}".strip(),
            last_reload_error=service.last_error,
            reload_poll_seconds=settings.reload_poll_seconds,
        )
    return HealthPublic(
        status="ok" if served.source != "local_fallback" else "degraded",
        model_name=served.name,
        model_version=served.version,
        model_alias=served.alias,
        model_uri=served.model_uri,
        source=served.source,
        loaded_at=served.loaded_at.isoformat(),
        tracking_uri=settings.tracking_uri,
        warning=served.warning,
        last_reload_error=service.last_error,
        reload_poll_seconds=settings.reload_poll_seconds,
    )


@router.get("/health", response_model=HealthPublic)
def health(service: ModelServiceDep) -> HealthPublic:
    """Always 200: `status` is ok, degraded (local fallback) or no_model."""
    return health_of(service)
