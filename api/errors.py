"""One error body for every failure (`schemas.ErrorPublic`) and the handlers that guarantee it.

Routes raise `ApiError`; library validation errors become 422; request-validation errors keep FastAPI's
422 but in the same body; anything unexpected is logged and answered 500 with no internals. Every body
goes through `api.redact.public_text` here: no credentials and no absolute server paths in an error body
(paths under the data root read `$MARKET_MASTER_HOME/...`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.redact import home_roots, public_text, redacting_logger
from api.schemas import ErrorPublic

logger = redacting_logger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and the `ErrorPublic` fields."""

    def __init__(
        self,
        status_code: int,
        error: str,
        message: str,
        *,
        field: str | None = None,
        reason: str | None = None,
        rows: list[int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = ErrorPublic(error=error, message=message, field=field, reason=reason, rows=rows)
        self.headers = headers


def _roots(request: Request | None) -> tuple[str, ...]:
    settings = getattr(getattr(getattr(request, "app", None), "state", None), "settings", None)
    return home_roots(getattr(settings, "data_root", None))


def public_body(body: ErrorPublic, roots: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON of an error body with credentials masked and absolute server paths removed."""
    content = body.model_dump(exclude_none=True)
    for key in ("message", "reason", "field"):
        if isinstance(content.get(key), str):
            content[key] = public_text(content[key], roots)
    for detail in content.get("details") or []:
        for key, value in detail.items():
            if isinstance(value, str):
                detail[key] = public_text(value, roots)
    return content


def _json(
    request: Request | None, status_code: int, body: ErrorPublic, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status_code, content=public_body(body, _roots(request)), headers=headers)


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def _clean(value: Any) -> Any:
    """Make an error's `input`/`ctx` JSON-safe (NaN, bytes, exceptions)."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return str(value)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)[:200]


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _json(request, exc.status_code, exc.body, exc.headers)


async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = [
        {
            "field": _loc_to_field(err.get("loc", ())),
            "reason": str(err.get("msg", "")),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    first = details[0] if details else {"field": "body", "reason": "invalid request"}
    body = ErrorPublic(
        error="invalid_request",
        message=f"{first['field']}: {first['reason']}",
        field=first["field"],
        reason=first["reason"],
        details=[{k: _clean(v) for k, v in d.items()} for d in details],
    )
    return _json(request, 422, body)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    return _json(
        request,
        exc.status_code,
        ErrorPublic(error=code, message=str(exc.detail)),
        getattr(exc, "headers", None),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return _json(
        request, 500, ErrorPublic(error="internal_error", message="internal error (logged on the server)")
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into an `ErrorPublic` body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
