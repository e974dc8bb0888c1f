"""GET /health: what is served, from where, whether the registry can be read NOW, and a loud warning when
the API serves the local fallback or cannot read the registry (the loaded model keeps serving)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import ModelServiceDep, StatusDep
from api.model_service import ModelService
from api.redact import redact_text, redact_uri
from api.schemas import HealthPublic, ProductionStatusPublic

router = APIRouter(tags=["health"])


def health_of(
    service: ModelService,
    *,
    check_registry: bool = True,
    production_status: ProductionStatusPublic | None = None,
) -> HealthPublic:
    """The health body for the service's current state; `check_registry` re-checks the registry when the
    last check is stale (`ModelService.registry_status`), else the last check is reported.
    `production_status`: why no model is served (reported with status no_model)."""
    registry_error = service.registry_status() if check_registry else service.registry_error
    served = service.peek()
    settings = service.settings
    common = {
        "tracking_uri": redact_uri(settings.tracking_uri),
        "registry_error": redact_text(registry_error),
        "last_reload_error": redact_text(service.last_error),
        "reload_poll_seconds": settings.reload_poll_seconds,
    }
    if served is None:
        return HealthPublic(
            status="no_model",
            model_name=None,
            model_version=None,
            model_alias=None,
            model_uri=None,
            source=None,
            loaded_at=None,
            warning=redact_text(
                f"NO MODEL LOADED: model endpoints answer 503: {production_status.explanation}"
                if production_status is not None
                else f"NO MODEL LOADED: model endpoints answer 503. {service.last_error or ''}".strip()
            ),
            production_status=production_status,
            **common,
        )
    warnings = [served.warning] if served.warning else []
    if registry_error is not None:
        warnings.append(
            f"REGISTRY UNREADABLE, STILL SERVING the loaded model {served.name} version {served.version} "
            f"(source {served.source}, loaded {served.loaded_at.isoformat()}): {registry_error}"
        )
    degraded = served.source == "local_fallback" or registry_error is not None
    return HealthPublic(
        status="degraded" if degraded else "ok",
        model_name=served.name,
        model_version=served.version,
        model_alias=served.alias,
        model_uri=redact_uri(served.model_uri),
        source=served.source,
        loaded_at=served.loaded_at.isoformat(),
        warning=redact_text(" | ".join(warnings)) if warnings else None,
        **common,
    )


@router.get("/health", response_model=HealthPublic)
def health(request: Request, service: ModelServiceDep, status: StatusDep) -> HealthPublic:
    """Always 200: `status` is ok, degraded (local fallback served, or the registry cannot be read now:
    `registry_error` says why, the loaded model keeps serving) or no_model. With no_model,
    `production_status.explanation` says in one line why: the latest champion, the gates it failed with
    their numbers (as its gate checks recorded them) and when the next retrain is due."""
    explained = status.get(request.app.state.clock()) if service.peek() is None else None
    return health_of(service, production_status=explained)
