"""`H1Transport`: auditkit's own HTTP/1.1 client for load generation (plain http:// only).

Built for the hot path, where aiohttp bounds a phase (docs/performance.md): an `asyncio.Protocol`
per connection (uvloop's, on auditkit's owned loop) with httptools (llhttp, C) parsing the
response, a keep-alive pool sized to the phase's concurrency and opened before the phase clock
starts, and each sample's request bytes (request line, headers and body) built once and reused.
A request is one `transport.write`; a small response is parsed inside `data_received` and wakes
its coroutine once. Same contract as the aiohttp transport (transport.py): same timing points,
same records, the same error classes (`classify_error`), no redirects, no retries except of a
request none of which left the client, no proxies.

What it does not do, so `auto` leaves it to aiohttp (loadgen/choice.py): https:// (TLS,
certificates, ALPN), HTTP/2, proxies (neither transport reads proxy settings: a measurement must
not go through one), and request bodies streamed from files. It sends the request headers
aiohttp sends (its User-Agent unless one is configured, `Accept: */*`, `Accept-Encoding: gzip,
deflate`), so switching the client does not change what the server sees, and it decodes gzip or
deflate bodies as aiohttp does.

Stale keep-alive connections (docs/reliability.md): a pooled connection is checked with one
`poll(2)` before a request is written to it (readable while idle = the server's FIN, RST or an
unsolicited answer); a dead one is replaced and counted in `reconnects`, never failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import sys
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from importlib.metadata import version
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from auditkit.endpoints.base import ResponseError
from auditkit.loadgen.clock import PERF_COUNTER, Clock
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.transport import (
    WARMUP_PATH,
    ConnectFailed,
    ConnectTimedOut,
    ServerDisconnected,
)

#: Unread body bytes a connection buffers before it stops reading from the socket (a hostile
#: or huge body cannot exhaust memory; the reader resumes it below `_LOW_WATER`).
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
#: Request bytes cached per distinct body (the supply builds each body once); larger bodies
#: are written as head + body without a copy.
_CACHED_BODY_BYTES = 64 * 1024
_CACHED_REQUESTS = 1 << 16
#: Warm-up GET: the most of the model list read before the connection is pooled.
_NO_BODY_STATUS = (204, 304)

#: aiohttp's own User-Agent (aiohttp.http.SERVER_SOFTWARE), so a server sees the same client
#: whichever transport runs; spelled out here because importing aiohttp costs every h1 run a
#: fraction of a CPU-second
USER_AGENT = f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{version('aiohttp')}"


class _Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively; built only when someone asks."""

    __slots__ = ("_map", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._map: dict[str, str] | None = None

    def _built(self) -> dict[str, str]:
        if self._map is None:
            self._map = {}
            for name, value in self._raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                self._map[key] = f"{self._map[key]}, {text}" if key in self._map else text
        return self._map

    def __getitem__(self, key: str) -> str:
        return self._built()[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the response being read on it."""

    __slots__ = (
        "_exc",
        "_length",
        "_poller",
        "_waiter",
        "active",
        "body",
        "buffered",
        "close_delimited",
        "closed",
        "decoder",
        "done",
        "headers_done",
        "informational",
        "keep_alive",
        "loop",
        "on_lost",
        "parser",
        "paused",
        "raw_headers",
        "status",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self._poller: Any = None
        self._waiter: asyncio.Future[None] | None = None
        self._exc: BaseException | None = None
        self.closed = False
        self.active = False
        self.paused = False
        self.on_lost: Callable[[_Connection], None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.buffered = 0
        self.headers_done = False
        self.done = False
        self.keep_alive = False
        self.informational = False
        self.close_delimited = False
        self.decoder: Any = None
        self._length: int | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and hasattr(select, "poll"):
            # one poller per connection, registered once: the reuse check is one syscall
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)

    def data_received(self, data: bytes) -> None:
        if not self.active:
            # nothing is owed on an idle HTTP/1.1 connection: a 408 or garbage makes it unusable
            self.closed = True
            assert self.transport is not None
            self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ResponseError("the server switched protocols (HTTP upgrade)"))
        except httptools.HttpParserError as exc:
            # a callback's own error (an unsupported encoding, say) comes back as the context
            cause = exc.__context__
            if isinstance(cause, ResponseError):
                self._fail(cause)
            else:
                self._fail(ResponseError(f"malformed HTTP response ({exc})"))

    def eof_received(self) -> bool | None:
        return None  # close our side too: HTTP/1.1 has no use for a half-open connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.active and not self.done:
            if self.close_delimited and exc is None:
                self.done = True  # the body ends where the connection does (no length given)
            elif self._exc is None:
                self._exc = exc if exc is not None else ServerDisconnected()
        self._wake()
        if self.on_lost is not None:
            self.on_lost(self)

    # --- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue and friends: the real answer follows
            self.informational = True
            self.raw_headers = []
            return
        self.status = status
        length = None
        chunked = False
        for name, value in self.raw_headers:
            low = name.lower()
            if low == b"content-length":
                with contextlib.suppress(ValueError):
                    length = int(value)
            elif low == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif low == b"content-encoding":
                self.decoder = _decoder(value)
        self._length = length
        self.close_delimited = length is None and not chunked and status not in _NO_BODY_STATUS
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.decoder is not None:
            try:
                body = self.decoder.decompress(body)
            except zlib.error as exc:
                self._fail(ResponseError(f"undecodable compressed body ({exc})"))
                return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True
        self._wake()

    # --- the exchange's side ---------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        """End the exchange with `exc` (the first failure wins) and drop the connection."""
        if self._exc is None:
            self._exc = exc
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def wait(self) -> asyncio.Future[None]:
        """A future resolved at the next event on this connection; raises a stored failure."""
        if self._exc is not None:
            raise self._exc
        waiter = self._waiter = self.loop.create_future()
        return waiter

    def start(self, request: bytes | tuple[bytes, bytes]) -> None:
        """Send one request; the connection is then busy until `finish`."""
        self._reset()
        self._exc = None
        self.active = True
        assert self.transport is not None
        if isinstance(request, bytes):
            self.transport.write(request)
        else:
            self.transport.writelines(request)

    def take(self) -> bytes:
        """The body bytes received so far (and resume reading if they had paused it)."""
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self.body = []
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def dead(self) -> bool:
        """Whether an idle pooled connection cannot carry a request: closed, or the server's
        FIN / RST / unsolicited bytes wait unread (the loop has not polled since)."""
        if self.closed:
            return True
        poller = self._poller
        return poller is not None and bool(poller.poll(0))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _decoder(value: bytes) -> Any:
    encoding = value.strip().lower()
    if encoding in (b"gzip", b"x-gzip", b"deflate"):
        return zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or zlib header, detected
    if encoding in (b"", b"identity"):
        return None
    raise ResponseError(f"unsupported Content-Encoding {encoding.decode('latin-1')!r}")


class H1Exchange:
    """One request: the async context manager `Session.post` returns and, once entered, the
    `Response`. Entering takes a connection, writes the request and waits for the headers;
    leaving pools the connection again (or closes it when the answer was not read to its
    end). One object, no extra task: the hot path allocates nothing else per request."""

    __slots__ = ("_conn", "_expired", "_request", "_session", "_timer", "_waiter")

    def __init__(self, session: H1Session, request: bytes | tuple[bytes, bytes]) -> None:
        self._session = session
        self._request = request
        self._conn: _Connection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[_Connection | None] | None = None
        self._expired = False

    async def __aenter__(self) -> H1Exchange:
        session = self._session
        loop = session.loop
        deadline = loop.time() + session.timeout_s
        self._timer = loop.call_at(deadline, self._expire)
        try:
            conn = await session.acquire(self, deadline)
            if self._expired:  # ran out while a connection was being opened
                session.release(conn, False)
                raise TimeoutError
            self._conn = conn
            conn.start(self._request)
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            self._finish(False)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._conn
        # a complete answer keeps the connection even if the caller read only part of it (an
        # error body's snippet): the rest is already here and is dropped with the buffer
        self._finish(exc_type is None and conn is not None and conn.done and not conn.closed)

    def _finish(self, reusable: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.active = False
            self._session.release(conn, reusable and conn.keep_alive)

    def _expire(self) -> None:
        """The total timeout (endpoint.timeout_s) ran out: fail whatever the exchange waits on."""
        self._expired = True
        self._timer = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())
        if self._conn is not None:
            self._conn._fail(TimeoutError())

    # --- Response --------------------------------------------------------------------------

    @property
    def status(self) -> int:
        assert self._conn is not None
        return self._conn.status

    @property
    def headers(self) -> Mapping[str, str]:
        assert self._conn is not None
        return _Headers(self._conn.raw_headers)

    @property
    def content_length(self) -> int | None:
        assert self._conn is not None
        return self._conn._length

    async def read(self) -> bytes:
        conn = self._conn
        assert conn is not None
        if conn.done:  # the usual case: the whole answer came with its headers
            return conn.take()
        parts: list[bytes] = []
        while not conn.done:
            if conn.buffered > _LOW_WATER:  # keeps reading paused only while it is draining
                parts.append(conn.take())
            await conn.wait()
        parts.append(conn.take())
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        assert conn is not None
        while True:
            if conn.body:
                yield conn.take()
            elif conn.done:
                return
            else:
                await conn.wait()

    async def lines(self) -> AsyncIterator[bytes]:
        conn = self._conn
        assert conn is not None
        pending = b""
        while True:
            if conn.body:
                data = pending + conn.take() if pending else conn.take()
                start = 0
                while (end := data.find(b"\n", start)) >= 0:
                    yield data[start : end + 1]
                    start = end + 1
                pending = data[start:]
            elif conn.done:
                break
            else:
                await conn.wait()
        if pending:
            yield pending


class H1Session:
    """One phase's pool: up to `pool_size` keep-alive connections to the target's host."""

    def __init__(self, target: HttpTarget, pool_size: int) -> None:
        parts = urlsplit(target.base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"H1Transport speaks plain http:// only (got {target.base_url})")
        self.loop = asyncio.get_running_loop()
        self.host = parts.hostname
        self.port = parts.port or 80
        self.authority = parts.netloc.rpartition("@")[2]
        self.pool_size = max(1, pool_size)
        self.timeout_s = target.timeout_s
        self.connect_timeout_s = target.connect_timeout_s
        self.max_bytes = target.max_response_bytes
        headers = {"Host": self.authority, "User-Agent": USER_AGENT, "Accept": "*/*"}
        headers["Accept-Encoding"] = "gzip, deflate"
        for name, value in target.headers.items():
            if any(c in name or c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} contains a line break or NUL")
            headers[_canonical(name, headers)] = value
        self._header_block = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._requests: dict[str, dict[bytes, bytes | tuple[bytes, bytes]]] = {}
        self._heads: dict[str, bytes] = {}
        self.idle: list[_Connection] = []
        self.opened = 0  # connections open or being opened
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self.reconnects = 0
        self.all: set[_Connection] = set()

    # --- requests --------------------------------------------------------------------------

    def post(self, url: str, body: bytes) -> H1Exchange:
        cache = self._requests.get(url)
        if cache is None:
            cache = self._requests[url] = {}
        request = cache.get(body)
        if request is None:
            request = self._build("POST", url, body)
            if len(cache) < _CACHED_REQUESTS:
                cache[body] = request
        return H1Exchange(self, request)

    def _build(self, method: str, url: str, body: bytes) -> bytes | tuple[bytes, bytes]:
        head = self._heads.get(method + url)
        if head is None:
            parts = urlsplit(url)
            if parts.netloc and parts.netloc.rpartition("@")[2] != self.authority:
                raise ValueError(f"{url} is not on this session's host {self.authority}")
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            line = f"{method} {target} HTTP/1.1\r\n{self._header_block}"
            head = self._heads[method + url] = line.encode("latin-1")
        if method == "GET":
            return head + b"\r\n"
        head = head + b"Content-Length: %d\r\n\r\n" % len(body)
        if len(body) > _CACHED_BODY_BYTES:
            return head, body
        return head + body

    # --- the pool --------------------------------------------------------------------------

    async def acquire(self, exchange: H1Exchange, deadline: float) -> _Connection:
        """A live connection: the most recently pooled one, a new one, or the next released."""
        idle = self.idle
        while True:
            while idle:
                conn = idle.pop()
                if not conn.dead():
                    return conn
                if not conn.closed:
                    self.reconnects += 1  # the server closed it while idle; the loop had not seen
                conn.close()
                self._forget(conn)
            if self.opened < self.pool_size:
                return await self._connect(deadline)
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self.waiters.append(waiter)
            exchange._waiter = waiter
            try:
                conn_or_none = await waiter
            except BaseException:
                # handed a connection, then cancelled before running: give it back
                handed = waiter.done() and not waiter.cancelled() and waiter.exception() is None
                if handed and (given := waiter.result()) is not None:
                    self.release(given, True)
                raise
            finally:
                exchange._waiter = None
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)
            if conn_or_none is not None:
                idle.append(conn_or_none)  # checked like any pooled connection, just above
            # None: a connection closed, so one may be opened

    async def _connect(self, deadline: float) -> _Connection:
        self.opened += 1
        loop = self.loop
        conn = _Connection(loop)
        try:
            connect_by = loop.time() + self.connect_timeout_s
            async with asyncio.timeout_at(min(deadline, connect_by)):
                try:
                    await loop.create_connection(lambda: conn, self.host, self.port)
                except ConnectionRefusedError:
                    raise
                except OSError as exc:
                    raise ConnectFailed(
                        f"cannot connect to {self.authority} ({exc.strerror or exc})"
                    ) from exc
        except TimeoutError:
            self._forget(conn, counted=True)
            if loop.time() >= deadline:
                raise
            raise ConnectTimedOut(
                f"no connection to {self.authority} within {self.connect_timeout_s:g} s"
            ) from None
        except BaseException:
            self._forget(conn, counted=True)
            raise
        conn.on_lost = self._lost
        self.all.add(conn)
        return conn

    def release(self, conn: _Connection, reusable: bool) -> None:
        if not reusable or conn.closed:
            conn.close()
            self._forget(conn)
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def _lost(self, conn: _Connection) -> None:
        if not conn.active:  # closed while idle (or after its exchange): drop it from the pool
            self._forget(conn)

    def _forget(self, conn: _Connection, counted: bool = False) -> None:
        """Take a closed connection out of the pool's count, once; a waiter may open another."""
        if conn in self.all:
            self.all.discard(conn)
        elif not counted:
            return
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        self.opened -= 1
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # --- warm-up and shutdown --------------------------------------------------------------

    async def warm(self, url: str, n: int) -> None:
        """Open `n` connections before the phase clock starts (GET of the model list, which
        touches no cache), each answer drained but bounded, then pooled."""

        async def touch() -> None:
            with contextlib.suppress(Exception):
                async with H1Exchange(self, self._build("GET", url, b"")) as resp:
                    size = 0
                    async for chunk in resp.chunks():
                        size += len(chunk)
                        if size > self.max_bytes:
                            break

        await asyncio.gather(*(touch() for _ in range(n)))

    def close(self) -> None:
        for conn in list(self.all):
            conn.close()
        self.all.clear()
        self.idle.clear()


def _canonical(name: str, existing: Mapping[str, str]) -> str:
    """The key `name` replaces in `existing` (header names are case-insensitive)."""
    low = name.lower()
    return next((k for k in existing if k.lower() == low), name)


class H1Transport:
    """HTTP/1.1 over asyncio protocols and httptools, plain http:// only (see the module doc)."""

    clock: Clock = PERF_COUNTER
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    #: tests substitute a subclass that decides when the server closes pooled connections
    session_class: type[H1Session] = H1Session

    @contextlib.asynccontextmanager
    async def session(
        self, target: HttpTarget, *, pool_size: int, warm: int
    ) -> AsyncIterator[H1Session]:
        session = self.session_class(target, pool_size)
        try:
            await session.warm(target.base_url + WARMUP_PATH, min(warm, session.pool_size))
            yield session
        finally:
            session.close()
