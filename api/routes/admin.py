"""POST /admin/reload: re-resolve the model alias now (bearer token; 403 when no token is configured)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AdminDep, ModelServiceDep
from api.errors import ApiError
from api.routes.health import health_of
from api.schemas import ErrorPublic, ReloadPublic

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/reload",
    response_model=ReloadPublic,
    responses={401: {"model": ErrorPublic}, 403: {"model": ErrorPublic}, 503: {"model": ErrorPublic}},
)
def reload_model(_: AdminDep, service: ModelServiceDep) -> ReloadPublic:
    """Load the version the alias points to now; the previous model keeps serving until it is swapped in.

    A failed reload answers 503 and keeps the previous model serving (see /health `last_reload_error`).
    """
    outcome = service.reload()
    if outcome.error is not None:
        still = outcome.current.version if outcome.current else "nothing"
        raise ApiError(503, "reload_failed", f"reload failed, still serving version {still}: {outcome.error}")
    prev = outcome.previous
    return ReloadPublic(
        changed=outcome.changed,
        previous_version=prev.version if prev else None,
        previous_source=prev.source if prev else None,
        served=health_of(service, check_registry=False),  # the reload just checked it
    )
