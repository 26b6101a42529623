"""The production transport: aiohttp on auditkit's uvloop loop (aio.py).

Measured against a null endpoint, httpx's pool tops out far below what a caching SUT answers, and
a client slower than the SUT makes both phases measure the client (a false PASS);
docs/performance.md has the figures. Nothing here wraps aiohttp per request: the hot path is
aiohttp's own, plus one middleware frame (Python 3.11) or one poll(2) when a pooled connection
is reused (3.12+).

Stale connections are the client's problem, not the SUT's (docs/reliability.md): a request
that meets a keep-alive connection the server closed while it sat idle in the pool goes out on
another connection, only when provably none of it left the client, and counts as a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import select
import ssl
import sys
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, cast

import aiohttp
from aiohttp.connector import Connection

from auditkit.loadgen.clock import PERF_COUNTER, Clock
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.transport import WARMUP_PATH

if TYPE_CHECKING:
    from aiohttp.tracing import Trace

#: What aiohttp's request writer raises when the transport is already closing before it writes
#: (the other `ClientConnectionResetError`, "Connection lost", comes after bytes were written).
_CLOSING_TRANSPORT = "Cannot write to closing transport"
#: Before Python 3.12 aiohttp writes a request body from a task that starts only after the loop
#: has polled once more; 3.12+ starts that task eagerly, so the request is written at once.
WRITE_DEFERRED = sys.version_info < (3, 12)


@functools.cache
def _ssl_context(verify: bool) -> ssl.SSLContext | bool:
    # one per process: loading the CA store took ~23 ms, paid by every phase's session
    if verify:
        return ssl.create_default_context()
    return False


def _socket_fd(conn: Connection) -> int:
    """The connection's socket descriptor, or -1 when its transport exposes none."""
    transport = conn.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return -1 if sock is None else int(sock.fileno())


def _readable(fd: int) -> bool:
    """Whether an idle pooled connection is dead: the server's FIN or RST (or an unsolicited
    answer such as a 408) has arrived and the event loop has not processed it yet. An idle
    HTTP/1.1 connection has nothing to read, so anything readable means it cannot carry a
    request (urllib3's `is_connection_dropped` uses the same rule)."""
    if hasattr(select, "poll"):  # no FD_SETSIZE limit; select() fails on descriptors >= 1024
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select((fd,), (), (), 0)[0])  # pragma: no cover - Windows


class CountingConnector(aiohttp.TCPConnector):
    """aiohttp's TCP connector plus a count of `reconnects`: times a request went out on another
    connection because the server had closed its own before any of the request was written.

    aiohttp drops a pooled connection once the event loop has seen the server close it, but a
    close that arrived since the loop last polled goes unnoticed: the request is then written to
    a dead socket and fails, and for a POST (not idempotent) aiohttp rightly does not resend it.
    Where the body write is deferred (`WRITE_DEFERRED`), the loop polls before it, sees the close
    and the write is refused whole: `resend_unwritten` sends such a request again. Elsewhere the
    subclass `LiveConnector` checks a reused connection before handing it out.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reconnects = 0

    async def resend_unwritten(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Client middleware: send a request once more when its write found the connection
        already closing. aiohttp (>= 3.12) writes headers and body in one call, refused as a
        whole on a closing transport: none of the request left the client."""
        try:
            return await handler(req)
        except aiohttp.ClientOSError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ConnectionResetError) and str(cause) == _CLOSING_TRANSPORT):
                raise
        self.reconnects += 1
        return await handler(req)


class LiveConnector(CountingConnector):
    """Never hands out a pooled connection the server has already closed: one `poll(2)` on a
    reused connection before anything is written (~5 µs a request, measured; the default only
    where the request is written at once, i.e. not `WRITE_DEFERRED`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # each connection handed out so far (by its protocol) and its socket descriptor
        self._fds: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        while True:  # ends: each pass closes a dead pooled connection, and new ones are live
            conn = await super().connect(req, traces, timeout)
            fd = self._fds.get(conn.protocol)
            if fd is None:
                # a new connection: nothing to check (a TLS server's session tickets may still
                # be arriving on it, which is not a close)
                self._fds[conn.protocol] = _socket_fd(conn)
                return conn
            if fd < 0 or not _readable(fd):
                return conn
            conn.close()
            self.reconnects += 1


class AiohttpResponse(aiohttp.ClientResponse):
    """aiohttp's own response (made by the session: `response_class`), plus the `Response`
    protocol's body iterators. A subclass rather than a wrapper: no extra object or coroutine
    per request on the hot path."""

    #: aiohttp reads through uvloop's transport: no receive stamps (the driver reads its clock)
    received_ns: int | None = None

    def chunks(self) -> AsyncIterator[bytes]:
        return self.content.iter_any()

    def lines(self) -> AsyncIterator[bytes]:
        return self.content.__aiter__()


class AiohttpSession:
    """One phase's aiohttp `ClientSession` (and its connector)."""

    __slots__ = ("_client", "_connector")

    def __init__(self, client: aiohttp.ClientSession, connector: CountingConnector) -> None:
        self._client = client
        self._connector = connector

    @property
    def reconnects(self) -> int:
        """Times a request went out on another connection because the server had closed its
        own before any of the request was written (never a failure; the server saw it once)."""
        return self._connector.reconnects

    def post(self, url: str, body: bytes) -> AbstractAsyncContextManager[AiohttpResponse]:
        request = self._client.post(url, data=body, allow_redirects=False)
        return cast(AbstractAsyncContextManager[AiohttpResponse], request)

    async def warm(self, url: str, n: int, max_bytes: int) -> None:
        """Open `n` connections before the phase clock starts, so TCP/TLS setup is not timed
        (it would differ between phases). A GET of the model list touches no cache."""

        async def touch() -> None:
            with contextlib.suppress(Exception):
                async with self._client.get(url, allow_redirects=False) as resp:
                    # drained (so the connection is pooled) but bounded: a hostile model list
                    # must not exhaust memory
                    size = 0
                    while chunk := await resp.content.readany():
                        size += len(chunk)
                        if size > max_bytes:
                            break

        await asyncio.gather(*(touch() for _ in range(n)))


class AiohttpTransport:
    """HTTP/1.1 over aiohttp: no proxies from the environment, no redirects, and no retries
    except of a request none of which left the client (`CountingConnector`)."""

    clock: Clock = PERF_COUNTER
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    # One guard against stale connections, the one this Python needs (CountingConnector); tests
    # set these to exercise each, and substitute connectors that decide when the server closes.
    connector_class: type[CountingConnector] = (
        CountingConnector if WRITE_DEFERRED else LiveConnector
    )
    resend_refused_writes: bool = WRITE_DEFERRED

    @contextlib.asynccontextmanager
    async def session(
        self, target: HttpTarget, *, pool_size: int, warm: int
    ) -> AsyncIterator[AiohttpSession]:
        timeout = aiohttp.ClientTimeout(
            total=target.timeout_s, sock_connect=target.connect_timeout_s
        )
        connector = self.connector_class(
            limit=pool_size, ssl=_ssl_context(target.verify_tls), ttl_dns_cache=300
        )
        async with aiohttp.ClientSession(
            connector=connector,
            headers=dict(target.headers),
            timeout=timeout,
            trust_env=False,  # a measurement must not go through whatever proxy is configured
            auto_decompress=True,
            response_class=AiohttpResponse,
            middlewares=(connector.resend_unwritten,) if self.resend_refused_writes else (),
        ) as client:
            session = AiohttpSession(client, connector)
            await session.warm(target.base_url + WARMUP_PATH, warm, target.max_response_bytes)
            yield session
