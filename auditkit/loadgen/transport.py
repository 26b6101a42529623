"""The transport seam: how the phase driver talks HTTP, and how a failed exchange is classified.

The driver sees only these protocols: open a `Session` for a phase (its connection pool sized to
the phase's concurrency, connections opened before the phase clock starts), POST a prebuilt body,
read the status, headers and body as it arrives, and take every timestamp from the transport's
`clock`. Two real implementations: `H1Transport` (h1_transport.py, auditkit's own HTTP/1.1
client, the default for http://) and `AiohttpTransport` (aiohttp_transport.py, https:// and the
`endpoint.http_client: aiohttp` choice); loadgen/choice.py picks one. The fake (fake/) answers
in memory on a virtual clock.
"""

from __future__ import annotations

import asyncio
import errno
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from auditkit.endpoints.base import ResponseError
from auditkit.loadgen.clock import Clock
from auditkit.loadgen.target import HttpTarget

#: Characters of an error text kept in the records.
ERROR_SNIPPET = 200
#: GET before the phase clock starts, to open the pool's connections; it touches no cache.
WARMUP_PATH = "/v1/models"


class ConnectFailed(ConnectionError):
    """No connection could be established (DNS, unreachable host; not a refusal)."""


class ConnectTimedOut(TimeoutError):
    """The connection was not established within endpoint.connect_timeout_s."""


class ServerDisconnected(ConnectionError):
    """The server closed the connection before the answer was complete."""


class Response(Protocol):
    """One HTTP response whose body has not been read yet."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content_length(self) -> int | None:
        """The declared body length, or None (chunked, streamed, or closed-delimited)."""
        ...

    @property
    def received_ns(self) -> int | None:
        """When the bytes handed out last (the headers once entered, then each chunk or line,
        the whole answer after `read`) arrived, on the transport's clock, as the kernel stamped
        them; None when the transport cannot tell (the caller reads its clock instead)."""
        ...

    async def read(self) -> bytes:
        """The whole body (callers check `content_length` against their limit first)."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece, as it arrives."""
        ...

    def lines(self) -> AsyncIterator[bytes]:
        """The body split after each b"\\n" (the last line may lack it), as lines arrive."""
        ...


class Session(Protocol):
    """A phase's connection pool."""

    def post(self, url: str, body: bytes) -> AbstractAsyncContextManager[Response]:
        """POST `body` to `url` with the target's headers; no redirects are followed.

        Entering gives the response once its status line and headers arrived; leaving releases
        the connection. The target's total timeout covers the whole exchange (TimeoutError).
        """
        ...


class Transport(Protocol):
    """Opens sessions and says which clock (and which event loop) its timestamps need."""

    @property
    def clock(self) -> Clock: ...

    @property
    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        """None: run on auditkit's owned loop (aio.py); else `run_phase` runs the phase on a
        fresh loop from this factory in the calling thread (the fake's virtual-time loop)."""
        ...

    def session(
        self, target: HttpTarget, *, pool_size: int, warm: int
    ) -> AbstractAsyncContextManager[Session]:
        """A session with up to `pool_size` connections, `warm` of them opened on entry."""
        ...


def classify_error(exc: BaseException, timeout_s: float | None = None) -> tuple[str, str]:
    """Map a client exception to (status, one-line error).

    The rule (docs/reliability.md): `connect_error` when no connection was established (refused,
    DNS, TLS handshake, connect timeout); `timeout` when the total per-request timeout
    (endpoint.timeout_s) ran out, however slowly bytes were arriving; `protocol_error` when a
    connection was made but the exchange broke: reset by the peer, closed before or during the
    answer, malformed, truncated or oversized response. A reset is therefore always a
    protocol_error (the request was sent), and a refused connection always a connect_error.
    """
    text = " ".join(str(exc).split())[:ERROR_SNIPPET] or type(exc).__name__
    if isinstance(exc, ResponseError):
        return "protocol_error", text
    # aiohttp is imported only by a process that runs its transport (its import costs a
    # fraction of a CPU-second that h1 runs need not pay); without it, no exception is its
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return _classify_builtin(exc, text, timeout_s)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "connect_error", f"TLS error: {text}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect_error", text
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # a subclass of TimeoutError: test it first, it is a connect failure, not a slow answer
        return "connect_error", f"connect timed out ({text})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "protocol_error", "server closed the connection without a complete response"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno == errno.ECONNRESET:
        return "protocol_error", f"connection reset by the server ({text})"
    return _classify_builtin(exc, text, timeout_s)


def _classify_builtin(exc: BaseException, text: str, timeout_s: float | None) -> tuple[str, str]:
    """classify_error for the builtin and auditkit's own exceptions (h1, the fake)."""
    if isinstance(exc, ConnectionRefusedError | ConnectFailed):
        return "connect_error", text
    if isinstance(exc, ConnectTimedOut):
        # a subclass of TimeoutError: test it first, it is a connect failure, not a slow answer
        return "connect_error", f"connect timed out ({text})"
    if isinstance(exc, TimeoutError):
        limit = f" within {timeout_s:g} s (endpoint.timeout_s)" if timeout_s else ""
        return "timeout", f"no complete response{limit} ({type(exc).__name__})"
    if isinstance(exc, ServerDisconnected):
        return "protocol_error", "server closed the connection without a complete response"
    if isinstance(exc, ConnectionResetError):
        return "protocol_error", f"connection reset by the server ({text})"
    return "protocol_error", f"{type(exc).__name__}: {text}"
