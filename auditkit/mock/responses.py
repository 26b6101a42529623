"""ASGI responses the mock sends: JSON and OpenAI errors, SSE streams that stop when the client
leaves, and the helpers that watch for that.

A client leaving is seen the ASGI way: `receive()` returns `http.disconnect`. uvicorn's `send()`
just drops data for a gone client, so a response that runs for a while (a stream, a trickle)
races its work against that message and stops early, freeing its slot as vLLM does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from auditkit.mock.protocol import BadRequest
from auditkit.mock.render import dumps, error_body

#: How long a handler that dropped a connection waits for uvicorn to notice it is gone.
SETTLE_S = 1.0

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


def json_response(body: bytes, status: int = 200) -> Response:
    """Ready-made JSON bytes as a response."""
    return Response(body, status, media_type=JSON)


def error_response(status: int, message: str, err_type: str, code: str | int | None) -> Response:
    """An OpenAI-style JSON error."""
    return json_response(dumps(error_body(message, err_type, code)), status)


def bad_request_response(exc: BadRequest) -> Response:
    """The answer to a refused request."""
    return error_response(exc.status, exc.message, "invalid_request_error", exc.code)


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the server reports the client gone (or the response complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def settle(receive: Receive) -> None:
    """Wait (bounded) until uvicorn has seen the connection go away.

    A handler that returns on a dropped connection before uvicorn noticed makes uvicorn log an
    "ASGI callable returned without ..." error and try to answer into the dead socket.
    """
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wait_for_disconnect(receive), SETTLE_S)


async def unless_client_leaves(work: Awaitable[None], receive: Receive) -> bool:
    """Run `work` in this task until it finishes (True) or the client disconnects first (False:
    `work` is cancelled where it waits, so its `finally` blocks run at once)."""
    this = asyncio.current_task()
    assert this is not None
    done = False
    left = False

    async def watch() -> None:
        nonlocal left
        await wait_for_disconnect(receive)
        # A finished response also ends receive(): only a client leaving mid-work counts.
        if not done:
            left = True
            this.cancel()

    # One watcher task; the work itself runs inline (no extra task, no extra loop turn: an
    # in-thread mock shares its CPU with the client it serves).
    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except asyncio.CancelledError:
        if left and this.uncancel() == 0:
            return False
        raise  # cancelled from outside (server shutdown): not ours to swallow
    finally:
        done = True
        watcher.cancel()
    return True


class EventStreamResponse(Response):
    """An SSE response fed by an async iterator of ready-made event bytes."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        # Not Response.__init__: it would declare "content-length: 0" for the empty body.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await unless_client_leaves(self._send_events(send), receive)

    async def _send_events(self, send: Send) -> None:
        # aclosing: if we stop early, the generator's `async with slot` must still release.
        async with contextlib.aclosing(self.events) as events:  # type: ignore[type-var]
            async for chunk in events:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
