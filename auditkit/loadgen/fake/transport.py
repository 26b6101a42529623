"""`FakeTransport`: the load generator's transport answered in memory, in virtual time.

In the spirit of httpx's MockTransport: a handler (sync or async) receives each `FakeRequest` and
returns a `FakeResponse` (or raises, to fail the exchange the way a client library would). The
response says when its headers arrive (`delay_s`) and how its body arrives: all at once, as
timed pieces, or from an async iterator (which may sleep in virtual time itself). The session
enforces the target's total timeout in virtual time, so a slow handler produces the same
`timeout` record a real endpoint would.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from auditkit.loadgen.clock import Clock
from auditkit.loadgen.fake.virtual_time import VirtualClock, VirtualTimeLoop
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.transport import WARMUP_PATH

#: A timed body piece: wait `delay` seconds, then deliver the bytes (or raise the exception).
Piece = tuple[float, bytes | BaseException]


@dataclass(frozen=True)
class FakeRequest:
    """One request as the handler sees it."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    #: virtual time the request was sent (ns on the loop's clock)
    sent_ns: int
    #: the connection it came on: numbered from 1 per transport, reused while kept alive as a
    #: client pool reuses them (None: sent outside a session)
    connection: int | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class FakeResponse:
    """What the handler answers.

    `delay_s` passes before the status line (service time); then the body: `body` whole, or
    `stream` as timed pieces `(delay_s, bytes | exception)` or as an async iterator of bytes.
    `error`, when set, is raised after `delay_s` instead of answering (a reset, a refused
    connection, ...). `content_length` defaults to len(body) for a whole body, None for streams.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Sequence[Piece] | AsyncIterable[bytes] | None = None
    delay_s: float = 0.0
    error: BaseException | None = None
    content_length: int | None = None

    @classmethod
    def json(cls, obj: Any, status: int = 200, delay_s: float = 0.0) -> FakeResponse:
        """A JSON answer."""
        headers = {"Content-Type": "application/json"}
        return cls(status, headers, json.dumps(obj).encode(), delay_s=delay_s)

    @classmethod
    def sse(cls, events: Sequence[tuple[float, str]]) -> FakeResponse:
        """An event stream: each `(delay_s, data)` becomes one `data:` event."""
        pieces: list[Piece] = [(d, f"data: {data}\n\n".encode()) for d, data in events]
        return cls(200, {"Content-Type": "text/event-stream"}, stream=pieces)


Handler = Callable[[FakeRequest], FakeResponse | Awaitable[FakeResponse]]


class FakeBody:
    """A `FakeResponse` seen through the loadgen `Response` protocol."""

    #: the virtual clock is exact when the driver reads it: nothing arrives "earlier"
    received_ns: int | None = None

    def __init__(self, response: FakeResponse) -> None:
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self._response = response
        self.content_length = response.content_length
        if self.content_length is None and response.stream is None:
            self.content_length = len(response.body)
        self._pieces = self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        stream = self._response.stream
        if stream is None:
            if self._response.body:
                yield self._response.body
        elif isinstance(stream, AsyncIterable):
            # aclosing: a client that stops reading must release what the iterator holds
            # (a simulated server's slot)
            async with contextlib.aclosing(aiter(stream)) as pieces:  # type: ignore[type-var]
                async for piece in pieces:
                    yield piece
        else:
            for delay, timed in stream:
                if delay > 0:
                    await asyncio.sleep(delay)
                if isinstance(timed, BaseException):
                    raise timed
                yield timed

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._pieces])

    def chunks(self) -> AsyncIterator[bytes]:
        return self._pieces

    async def lines(self) -> AsyncIterator[bytes]:
        buffer = b""
        async for piece in self._pieces:
            buffer += piece
            while (end := buffer.find(b"\n")) >= 0:
                yield buffer[: end + 1]
                buffer = buffer[end + 1 :]
        if buffer:
            yield buffer

    async def aclose(self) -> None:
        await self._pieces.aclose()  # type: ignore[attr-defined]


class _FakeExchange:
    """One POST: pool slot, total timeout, handler, body; all undone on exit."""

    def __init__(self, session: FakeSession, method: str, url: str, body: bytes) -> None:
        self._session = session
        self._method = method
        self._url = url
        self._body = body
        self._timeout: asyncio.Timeout | None = None
        self._response: FakeBody | None = None
        self._pooled = False
        self._connection = 0

    async def __aenter__(self) -> FakeBody:
        session = self._session
        self._timeout = asyncio.timeout(session.target.timeout_s)
        await self._timeout.__aenter__()
        try:
            await session.pool.acquire()
            self._pooled = True
            self._connection = session.checkout()
            session.transport._started(self._method)
            request = FakeRequest(
                self._method,
                self._url,
                session.target.headers,
                self._body,
                session.transport.clock.now_ns(),
                self._connection,
            )
            if session.transport.keep_requests:
                session.transport.requests.append(request)
            answer = session.transport.handler(request)
            response = await answer if inspect.isawaitable(answer) else answer
            if response.delay_s > 0:
                await asyncio.sleep(response.delay_s)
            if response.error is not None:
                raise response.error
            self._response = FakeBody(response)
            return self._response
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            await self._response.aclose()
            self._response = None
        if self._pooled:
            self._pooled = False
            # a failed exchange closes its connection, as client libraries do
            self._session.checkin(self._connection, reuse=exc_type is None)
            self._session.pool.release()
            self._session.transport._finished(self._method)
        if self._timeout is not None:
            timeout, self._timeout = self._timeout, None
            await timeout.__aexit__(exc_type, exc, tb)  # CancelledError → TimeoutError if due


class FakeSession:
    """A phase's session: a pool of `pool_size` connections to the handler, opened when none
    is idle and kept alive for reuse (the most recently used first)."""

    def __init__(self, transport: FakeTransport, target: HttpTarget, pool_size: int) -> None:
        self.transport = transport
        self.target = target
        self.pool = asyncio.Semaphore(pool_size)
        self._idle: list[int] = []

    def checkout(self) -> int:
        """An idle connection, or a new one."""
        if self._idle:
            return self._idle.pop()
        self.transport.connections += 1
        return self.transport.connections

    def checkin(self, connection: int, *, reuse: bool) -> None:
        """Return a connection to the pool (`reuse` False: it is closed)."""
        if reuse:
            self._idle.append(connection)

    def post(self, url: str, body: bytes) -> _FakeExchange:
        return _FakeExchange(self, "POST", url, body)

    def get(self, url: str) -> _FakeExchange:
        return _FakeExchange(self, "GET", url, b"")


class FakeTransport:
    """A `Transport` whose server is `handler`, on a virtual-time loop.

    `requests` lists every request sent (warm-up GETs included); `peak_in_flight` is the most
    POSTs that were in flight at once, `warmups` the GETs made when sessions opened,
    `connections` the connections opened (by all sessions).
    """

    clock: Clock = VirtualClock()
    loop_factory = VirtualTimeLoop

    def __init__(self, handler: Handler, *, keep_requests: bool = True) -> None:
        self.handler = handler
        #: False: `requests` stays empty (a memory benchmark must not count the fake's log)
        self.keep_requests = keep_requests
        self.requests: list[FakeRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.warmups = 0
        self.connections = 0

    def _started(self, method: str) -> None:
        if method == "POST":
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _finished(self, method: str) -> None:
        if method == "POST":
            self.in_flight -= 1

    @contextlib.asynccontextmanager
    async def session(
        self, target: HttpTarget, *, pool_size: int, warm: int
    ) -> AsyncIterator[FakeSession]:
        session = FakeSession(self, target, pool_size)

        async def touch() -> None:
            with contextlib.suppress(Exception):
                async with session.get(target.base_url + WARMUP_PATH) as resp:
                    await resp.read()

        self.warmups += warm
        await asyncio.gather(*(touch() for _ in range(warm)))
        yield session
