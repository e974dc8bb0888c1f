"""Request-body cap, enforced BEFORE anything parses the body (pure ASGI middleware).

FastAPI reads and JSON-decodes the whole body, then pydantic builds every bar, before a route can count
bars: a 120 MB body of 1M bars took 8.7 s and +1.7 GB and stalled /health. This middleware answers 413
`payload_too_large` (an `ErrorPublic` body naming the limit) when

- the `Content-Length` header exceeds the limit: nothing of the body is read, or
- a body without a usable length (chunked) grows past the limit while it streams in: reading stops there.

A body within the limit is buffered (at most `limit` bytes) and handed to the app unchanged. The limit is
`Settings.body_limit_bytes` of the running app (`MM_API_MAX_BODY_BYTES`, default sized from
`MM_API_MAX_BARS` with headroom), read per request from `app.state.settings`.
"""

from __future__ import annotations

import json

from api.schemas import ErrorPublic
from api.settings import BODY_BYTES_PER_BAR, BODY_HEADROOM_BYTES

_DEFAULT_MAX_BARS = 500


def _limit_of(scope) -> int:
    settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
    if settings is not None:
        return int(settings.body_limit_bytes)
    return _DEFAULT_MAX_BARS * BODY_BYTES_PER_BAR + BODY_HEADROOM_BYTES


def _too_large_body(limit: int, size: int | None) -> bytes:
    got = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    body = ErrorPublic(
        error="payload_too_large",
        message=(
            f"body: the request body ({got}) exceeds the limit of {limit} bytes "
            "(MM_API_MAX_BODY_BYTES; default sized from MM_API_MAX_BARS)"
        ),
        field="body",
        reason=f"at most {limit} bytes",
    )
    return json.dumps(body.model_dump(exclude_none=True)).encode()


class BodyLimitMiddleware:
    """413 for a body over the app's limit, checked on `Content-Length` and on the bytes streamed."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _limit_of(scope)
        length_header: bytes | None = None
        has_body_header = False
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                length_header, has_body_header = value, True
            elif name == b"transfer-encoding":
                has_body_header = True
        if not has_body_header:  # HTTP/1.1: no Content-Length and no Transfer-Encoding = no body
            await self.app(scope, receive, send)
            return
        if length_header is not None:
            try:
                declared = int(length_header)
            except ValueError:
                declared = None
            if declared is not None and declared > limit:
                await self._reject(send, limit, declared)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect: the client is gone
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await self._reject(send, limit, None)
                return
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the disconnect, as the server's receive does

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(send, limit: int, size: int | None) -> None:
        content = _too_large_body(limit, size)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    (b"connection", b"close"),  # the rest of the body is not read
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})
