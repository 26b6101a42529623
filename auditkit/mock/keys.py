"""`auditkit mock --require-key-env NAME`: the mock answers 401 unless a request carries the key,
so the key path (a missing or wrong key) can be rehearsed without a real endpoint.

A pure ASGI middleware (no per-request objects beyond a header scan): the inference paths and
GET /v1/models need `Authorization: Bearer <key>`; /health and the mock's own /mock/stats do not.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: paths that stay open (a health check carries no key; the stats are the parent's)
OPEN_PATHS = ("/health", "/mock/stats")


def _body(message: str) -> bytes:
    error = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
    return json.dumps({"error": error}).encode()


class RequireKey:
    """Refuse (HTTP 401, OpenAI-style JSON error) requests without `Authorization: Bearer key`."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k.lower() == b"authorization"), None)
        if given is not None and hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        why = "no API key was sent" if given is None else "the API key is not the expected one"
        body = _body(f"{why} (the mock was started with --require-key-env)")
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
