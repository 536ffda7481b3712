"""Who may call the API and how much they may send: a bearer token and a request-body cap.

Both run before FastAPI parses a body, so an unknown caller or an oversized body costs the server
no parsing and no row work. The replica keeps only the token's SHA-256 (`token_digest`): the
deployment's arguments are visible in Serve's config and dashboard, a digest grants nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = ("/healthz",)  # a load balancer's probe needs no token


def token_digest(token: str | None) -> str | None:
    """What a replica is given instead of the token itself (None: no token configured)."""
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def token_matches(presented: str | None, digest: str) -> bool:
    """Constant-time comparison of a presented token with the configured one's digest."""
    if not presented:
        return False
    return hmac.compare_digest(hashlib.sha256(presented.encode()).hexdigest(), digest)


class BodyTooLarge(HTTPException):
    """Raised from the body stream: a starlette HTTPException, so FastAPI's body reader passes it to
    the app's error handler (any other exception there becomes a 400 'error parsing the body')."""

    def __init__(self, limit: int):
        super().__init__(413, f"body: more than {limit} bytes -- fix: send at most {limit} bytes per request "
                              "(split the rows over several requests)")


class BodyLimit:
    """Pure ASGI middleware: 413 for a body over `max_bytes`, never reading it all and never echoing it.

    A declared Content-Length is refused before the body is read; a chunked body is counted as it
    streams. (Serve's proxy buffers what the client sends regardless, so a hard cap on its memory
    belongs to a load balancer in front; this cap keeps the replica from parsing it.)"""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _reject(send, BodyTooLarge(self.max_bytes))
                return
        received, started = 0, False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as err:
            if not started:
                await _reject(send, err)


async def _reject(send: Send, err: HTTPException) -> None:
    """The API's error shape (serving.contract.ErrorBody), written before the app ever runs."""
    body = json.dumps({"detail": err.detail, "field": "body", "fix": "send a smaller body"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": err.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
