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

Receive times (docs/performance.md, "Timing fidelity"): on Linux each connection is read by
`_SockTransport`, `recvmsg` on the socket with SO_TIMESTAMPNS, so every read carries the time the
kernel received its last packet; a response's first byte, first token and completion are then
the times their bytes arrived, not the times the event loop got round to them (the last answer of
a burst used to read late by the time the loop spent on the ones before it). The kernel stamps
with CLOCK_REALTIME; they are moved onto the transport's clock (perf_counter) with an offset
measured when the session opens and again every second. Elsewhere (or with
`H1Transport(kernel_timestamps=False)`) uvloop's own transport reads the socket and the driver
reads its clock when the coroutine resumes, as before; `H1Session.timestamp_source` (phase.json)
says which.

Stale keep-alive connections (docs/reliability.md): a pooled connection is checked with one
`poll(2)` before a request is written to it (readable while idle = the server's FIN, RST or an
unsolicited answer); a dead one is replaced and counted in `reconnects`, never failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import select
import socket
import struct
import sys
import time
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
#: How often a request a reused connection was dropped on (cleanly, no byte of answer) is sent
#: again on another connection: H1Exchange.__aenter__.
_RESENDS = 4
#: Warm-up GET: the most of the model list read before the connection is pooled.
_NO_BODY_STATUS = (204, 304)

#: aiohttp's own User-Agent (aiohttp.http.SERVER_SOFTWARE), so a server sees the same client
#: whichever transport runs; spelled out here because importing aiohttp costs every h1 run a
#: fraction of a CPU-second
USER_AGENT = f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{version('aiohttp')}"

#: Linux's SO_TIMESTAMPNS, which is also the control message's type SCM_TIMESTAMPNS (Python's
#: socket module names neither). 35 on the 64-bit architectures below (asm-generic and x86); a few
#: others (sparc, parisc) number it differently, and 32-bit ones carry a 32-bit time_t: those take
#: the loop's clock.
_SO_TIMESTAMPNS = 35
KERNEL_TIMESTAMPS = sys.platform == "linux" and platform.machine() in (
    "x86_64",
    "aarch64",
    "arm64",
    "riscv64",
    "ppc64le",
    "s390x",
)
_TIMESPEC = struct.Struct("@qq")  # struct timespec (64-bit time_t), what the message carries
_TIMESPEC_SIZE = _TIMESPEC.size
#: Bytes read per recvmsg (uvloop reads 256 KiB too), and room for one timespec message.
_READ_SIZE = 256 * 1024
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
#: How often the realtime-to-perf_counter offset is measured again (a stepped clock moves it).
_OFFSET_PERIOD_S = 1.0


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
        "body_rx",
        "buffered",
        "close_delimited",
        "closed",
        "decoder",
        "done",
        "done_ns",
        "got_bytes",
        "headers_done",
        "headers_ns",
        "informational",
        "keep_alive",
        "loop",
        "on_lost",
        "parser",
        "paused",
        "raw_headers",
        "rx_ns",
        "served",
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
        #: the kernel's receive time of the bytes being parsed (set by `_SockTransport` before
        #: each `data_received`, on the transport's clock); None: not known, read the clock
        self.rx_ns: int | None = None
        self.served = 0  # requests started on this connection
        self._reset()

    def _reset(self) -> None:
        self.got_bytes = False  # any byte of the current answer
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_rx: list[int | None] = []  # each body piece's receive time
        self.buffered = 0
        self.headers_done = False
        self.done = False
        self.keep_alive = False
        self.informational = False
        self.close_delimited = False
        self.decoder: Any = None
        self._length: int | None = None
        self.headers_ns: int | None = None  # receive times of the headers' end, the answer's
        self.done_ns: int | None = None

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
        self.got_bytes = True
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
                self.done_ns = self.rx_ns  # its last bytes arrived with the last read
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
        self.headers_ns = self.rx_ns
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
        self.body_rx.append(self.rx_ns)
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
        self.done_ns = self.rx_ns
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
        self.served += 1
        assert self.transport is not None
        if isinstance(request, bytes):
            self.transport.write(request)
        else:
            self.transport.writelines(request)

    def take(self) -> bytes:
        """The body bytes received so far (and resume reading if they had paused it)."""
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self._taken()
        return data

    def take_parts(self) -> tuple[list[bytes], list[int | None]]:
        """The body pieces received so far and each one's receive time."""
        parts, stamps = self.body, self.body_rx
        self._taken()
        return parts, stamps

    def _taken(self) -> None:
        self.body = []
        self.body_rx = []
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

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


def realtime_offset() -> tuple[int, int]:
    """(CLOCK_REALTIME minus perf_counter, in ns; the uncertainty, ns): the realtime read
    bracketed by two perf_counter reads, the tightest of five brackets, its midpoint taken."""
    best_offset, best_gap = 0, -1
    for _ in range(5):
        before = time.perf_counter_ns()
        real = time.time_ns()
        after = time.perf_counter_ns()
        if best_gap < 0 or after - before < best_gap:
            best_offset, best_gap = real - (before + after) // 2, after - before
    return best_offset, best_gap // 2 + 1


class _RxClock:
    """Kernel receive stamps (CLOCK_REALTIME) onto perf_counter: the offset between the two,
    measured when a session opens and every `_OFFSET_PERIOD_S` after (both clocks are slewed
    alike by NTP; only a step of the wall clock moves it, and then for at most a period)."""

    __slots__ = ("_timer", "loop", "offset", "stamped", "uncertainty_ns", "unstamped")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.offset, self.uncertainty_ns = realtime_offset()
        self.stamped = 0  # reads that carried a kernel stamp, and reads that did not
        self.unstamped = 0
        self._timer: asyncio.TimerHandle | None = loop.call_later(_OFFSET_PERIOD_S, self._again)

    def _again(self) -> None:
        self.offset, self.uncertainty_ns = realtime_offset()
        self._timer = self.loop.call_later(_OFFSET_PERIOD_S, self._again)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _SockTransport:
    """The part of an asyncio transport `_Connection` uses, over a connected non-blocking
    socket: each read is one `recvmsg` whose control message carries the kernel's receive time
    of the latest packet read (SO_TIMESTAMPNS), set on the protocol as `rx_ns` before its
    `data_received`. Writes go straight to `send` (buffered with a writer callback only when
    the socket's send buffer is full), so a request leaves in the call that writes it."""

    __slots__ = (
        "_bufs",
        "_closing",
        "_fd",
        "_pending",
        "_reading",
        "_rx",
        "_view",
        "loop",
        "protocol",
        "sock",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol: _Connection,
        rx: _RxClock,
        buf: bytearray,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.protocol = protocol
        self._rx = rx
        self._fd = sock.fileno()
        self._bufs = (buf,)  # the session's read buffer: every read is parsed before the next
        self._view = memoryview(buf)
        self._pending: list[bytes] = []  # unsent request bytes (a full send buffer)
        self._closing = False
        self._reading = True
        loop.add_reader(self._fd, self._read_ready)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default

    def is_closing(self) -> bool:
        return self._closing

    def _read_ready(self) -> None:
        try:
            n, anc, _, _ = self.sock.recvmsg_into(self._bufs, _ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lose(exc)
            return
        if not n:  # the server's FIN
            self.protocol.eof_received()
            self._lose(None)
            return
        protocol = self.protocol
        rx = self._rx
        if anc and len(raw := anc[0][2]) == _TIMESPEC_SIZE:  # SO_TIMESTAMPNS's timespec
            sec, nsec = _TIMESPEC.unpack(raw)
            protocol.rx_ns = sec * 1_000_000_000 + nsec - rx.offset
            rx.stamped += 1
        else:
            protocol.rx_ns = None
            rx.unstamped += 1
        protocol.data_received(self._view[:n])  # type: ignore[arg-type]  # parsed, not kept

    def write(self, data: bytes) -> None:
        if self._pending or self._closing:
            self.writelines((data,))
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lose(exc)
            return
        if sent < len(data):
            self._pending.append(data[sent:])
            self.loop.add_writer(self._fd, self._write_ready)

    def writelines(self, parts: tuple[bytes, ...] | list[bytes]) -> None:
        """Several pieces (a large body after its head) in one `sendmsg`, no copy."""
        if self._closing:
            return
        if self._pending:
            self._pending.extend(parts)
            return
        try:
            sent = self.sock.sendmsg(parts)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lose(exc)
            return
        if sent < sum(map(len, parts)):
            self._pending.append(b"".join(parts)[sent:])
            self.loop.add_writer(self._fd, self._write_ready)

    def _write_ready(self) -> None:
        data = b"".join(self._pending)
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lose(exc)
            return
        self._pending = [data[sent:]] if sent < len(data) else []
        if not self._pending:
            self.loop.remove_writer(self._fd)

    def pause_reading(self) -> None:
        if self._reading and not self._closing:
            self._reading = False
            self.loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            self.loop.add_reader(self._fd, self._read_ready)

    def close(self) -> None:
        self._lose(None)

    def abort(self) -> None:
        self._lose(None)

    def _lose(self, exc: Exception | None) -> None:
        """Close the socket; the protocol hears of it on the next loop turn, as from asyncio."""
        if self._closing:
            return
        self._closing = True
        self.loop.remove_reader(self._fd)
        if self._pending:
            self.loop.remove_writer(self._fd)
            self._pending = []
        self.sock.close()
        self.loop.call_soon(self.protocol.connection_lost, exc)


class H1Exchange:
    """One request: the async context manager `Session.post` returns and, once entered, the
    `Response`. Entering takes a connection, writes the request and waits for the headers;
    leaving pools the connection again (or closes it when the answer was not read to its
    end). One object, no extra task: the hot path allocates nothing else per request."""

    __slots__ = ("_conn", "_expired", "_request", "_rx", "_session", "_timer", "_waiter")

    def __init__(self, session: H1Session, request: bytes | tuple[bytes, bytes]) -> None:
        self._session = session
        self._request = request
        self._conn: _Connection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[_Connection | None] | None = None
        self._expired = False
        self._rx: int | None = None

    async def __aenter__(self) -> H1Exchange:
        session = self._session
        loop = session.loop
        deadline = loop.time() + session.timeout_s
        self._timer = loop.call_at(deadline, self._expire)
        try:
            for attempt in range(_RESENDS + 1):
                conn = await session.acquire(self, deadline)
                if self._expired:  # ran out while a connection was being opened
                    session.release(conn, False)
                    raise TimeoutError
                self._conn = conn
                conn.start(self._request)
                try:
                    while not conn.headers_done:
                        await conn.wait()
                except ServerDisconnected:
                    if not (attempt < _RESENDS and conn.served > 1 and not conn.got_bytes):
                        raise
                    # the server dropped a reused keep-alive connection without a byte of
                    # answer (llama.cpp's server does after streamed answers): sent again on
                    # another connection (the next may be pooled and dropped too, hence a few
                    # tries; a fresh connection's close is final), counted in `reconnects`
                    self._conn = None
                    conn.active = False
                    session.release(conn, False)
                    session.reconnects += 1
                    continue
                break
            self._rx = conn.headers_ns
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

    @property
    def received_ns(self) -> int | None:
        """When the bytes handed out last arrived (kernel stamp), or None (loop's clock)."""
        return self._rx

    async def read(self) -> bytes:
        conn = self._conn
        assert conn is not None
        if conn.done:  # the usual case: the whole answer came with its headers
            self._rx = conn.done_ns
            return conn.take()
        parts: list[bytes] = []
        while not conn.done:
            if conn.buffered > _LOW_WATER:  # keeps reading paused only while it is draining
                parts.append(conn.take())
            await conn.wait()
        parts.append(conn.take())
        self._rx = conn.done_ns
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        assert conn is not None
        while True:
            if conn.body:
                self._rx = conn.body_rx[-1]
                yield conn.take()
            elif conn.done:
                self._rx = conn.done_ns
                return
            else:
                await conn.wait()

    async def lines(self) -> AsyncIterator[bytes]:
        conn = self._conn
        assert conn is not None
        pending = b""
        while True:
            if conn.body:
                # piece by piece: a line is stamped with the arrival of the piece that ends it
                parts, stamps = conn.take_parts()
                for data, stamp in zip(parts, stamps, strict=True):
                    if pending:
                        data = pending + data
                    start = 0
                    while (end := data.find(b"\n", start)) >= 0:
                        self._rx = stamp
                        yield data[start : end + 1]
                        start = end + 1
                    pending = data[start:]
            elif conn.done:
                break
            else:
                await conn.wait()
        self._rx = conn.done_ns
        if pending:
            yield pending


class H1Session:
    """One phase's pool: up to `pool_size` keep-alive connections to the target's host."""

    def __init__(
        self, target: HttpTarget, pool_size: int, kernel_timestamps: bool = KERNEL_TIMESTAMPS
    ) -> None:
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
        # kernel receive stamps: the clock that converts them, one read buffer for every socket
        self.rx: _RxClock | None = _RxClock(self.loop) if kernel_timestamps else None
        self._read_buf = bytearray(_READ_SIZE) if kernel_timestamps else bytearray()

    @property
    def timestamp_source(self) -> str:
        """Where this session's receive times came from (phase.json `timestamp_source`):
        "kernel" (SO_TIMESTAMPNS on every read), "loop" (the clock read when the coroutine
        resumed), or "kernel+loop" when some reads carried no stamp and took the loop's."""
        rx = self.rx
        if rx is None or not rx.stamped:
            return "loop"
        return "kernel" if not rx.unstamped else "kernel+loop"

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
                    if self.rx is None:
                        await loop.create_connection(lambda: conn, self.host, self.port)
                    else:
                        await self._open_socket(conn, self.rx)
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

    async def _open_socket(self, conn: _Connection, rx: _RxClock) -> None:
        """Connect a socket of our own (as `create_connection` would: each address in turn,
        TCP_NODELAY) with SO_TIMESTAMPNS on, and give it to `conn` over `_SockTransport`."""
        loop = self.loop
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        errors: list[OSError] = []
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                if family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                errors.append(exc)
                continue
            except BaseException:
                sock.close()
                raise
            transport = _SockTransport(loop, sock, conn, rx, self._read_buf)
            conn.connection_made(cast(asyncio.BaseTransport, transport))
            return
        if not errors:
            raise OSError(f"no address for {self.host}")
        if all(isinstance(e, ConnectionRefusedError) for e in errors):
            raise errors[0]
        raise OSError(errors[0].errno, "; ".join(str(e) for e in errors))

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
        if self.rx is not None:
            self.rx.close()


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

    def __init__(self, kernel_timestamps: bool | None = None) -> None:
        """`kernel_timestamps`: None = where the platform has them (Linux); False = the loop's
        clock (uvloop reads the sockets), as before they existed, for comparison."""
        self.kernel_timestamps = (
            KERNEL_TIMESTAMPS
            if kernel_timestamps is None
            else (kernel_timestamps and KERNEL_TIMESTAMPS)
        )

    @contextlib.asynccontextmanager
    async def session(
        self, target: HttpTarget, *, pool_size: int, warm: int
    ) -> AsyncIterator[H1Session]:
        session = self.session_class(target, pool_size, self.kernel_timestamps)
        try:
            await session.warm(target.base_url + WARMUP_PATH, min(warm, session.pool_size))
            yield session
        finally:
            session.close()
