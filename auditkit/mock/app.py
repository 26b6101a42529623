"""The mock SUT's HTTP wiring: an OpenAI-compatible starlette app (DESIGN §8).

Endpoints: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions (both
streaming or not), POST /generate (a generic JSON API) and GET /mock/stats (the mock's counters,
for a parent process; never faulted, never counted).

Each handler only routes: parsing is `protocol.py`, answering `engine.py`, faults `faults.py`,
bytes `render.py`. The request path avoids pydantic and other per-request overhead on purpose:
an in-thread mock shares its process (and the GIL) with the load generator that measures it.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auditkit.config import MockConfig
from auditkit.mock.engine import Body, MockEngine, MockState
from auditkit.mock.faults import AbortResponse, fault_response
from auditkit.mock.keys import RequireKey
from auditkit.mock.protocol import BadRequest, Kind
from auditkit.mock.render import HEALTH_BODY, dumps, models_body
from auditkit.mock.responses import (
    EVENT_STREAM,
    EventStreamResponse,
    bad_request_response,
    error_response,
    json_response,
)

#: The path of the mock's own counters (not part of any inference API).
STATS_PATH = "/mock/stats"


class _Handlers:
    """Endpoint handlers bound to one MockState."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.cfg = state.cfg
        self.engine = MockEngine(state)

    async def _connected(self, request: Request) -> None:
        """Stall a connection's first request by `behaviour.connection_setup_ms` (the peer's
        address and port tell connections apart)."""
        peer = request.client
        delay = self.engine.connect((peer.host, peer.port) if peer is not None else None)
        if delay > 0.0:
            await asyncio.sleep(delay)

    async def health(self, request: Request) -> Response:
        await self._connected(request)
        if self.state.dead:
            return AbortResponse()
        return json_response(HEALTH_BODY)

    async def models(self, request: Request) -> Response:
        await self._connected(request)
        if self.state.dead:
            return AbortResponse()
        return json_response(models_body(self.cfg.model, self.state.started))

    async def stats(self, _request: Request) -> Response:
        return json_response(dumps(self.state.stats()))

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, "completions")

    async def chat(self, request: Request) -> Response:
        return await self._generate(request, "chat")

    async def generate(self, request: Request) -> Response:
        return await self._generate(request, "generate")

    async def _generate(self, request: Request, kind: Kind) -> Response:
        state = self.state
        await self._connected(request)
        if state.dead:
            # die_after: this and every later request gets its connection dropped.
            state.count_fault("die")
            return AbortResponse()
        state.requests += 1
        number = state.requests
        try:
            client = request.headers.get("authorization")
            job, fault = self.engine.admit(kind, await request.body(), client)
        except BadRequest as exc:
            return bad_request_response(exc)

        if fault is not None:
            special = fault_response(fault, job, state.next_seq, state.shutdown_event)
            if special is not None:
                return special

        answer = await self.engine.answer(job, fault, number=number)
        if not isinstance(answer, Body):
            return EventStreamResponse(answer)
        if answer.stream:
            return Response(answer.data, media_type=EVENT_STREAM)
        return json_response(answer.data)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods get OpenAI-style JSON errors, not starlette's text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return error_response(
        status, f"{detail}: {request.method} {request.url.path}", "invalid_request_error", status
    )


def create_app(cfg: MockConfig | None = None, *, api_key: str | None = None) -> Starlette:
    """The mock SUT as a starlette app; its MockState is `app.state.mock`.

    Serve it with `MockServer`, `MockProcess` or `serve_forever` (uvicorn over TCP): the faults
    that drop connections need a real socket. With `api_key`, requests without
    `Authorization: Bearer <api_key>` get HTTP 401 (`auditkit mock --require-key-env NAME`).
    """
    state = MockState(cfg if cfg is not None else MockConfig())
    handlers = _Handlers(state)
    routes = [
        Route("/health", handlers.health, methods=["GET"]),
        Route("/v1/models", handlers.models, methods=["GET"]),
        Route("/v1/completions", handlers.completions, methods=["POST"]),
        Route("/v1/chat/completions", handlers.chat, methods=["POST"]),
        Route("/generate", handlers.generate, methods=["POST"]),
        Route(STATS_PATH, handlers.stats, methods=["GET"]),
    ]
    middleware = [Middleware(RequireKey, key=api_key)] if api_key else []
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: _http_error}, middleware=middleware
    )
    app.state.mock = state
    return app
