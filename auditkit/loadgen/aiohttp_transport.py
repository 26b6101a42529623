"""The production transport: aiohttp on auditkit's uvloop loop (aio.py).

Measured against a null endpoint, httpx's pool tops out far below what a caching SUT answers, and
a client slower than the SUT makes both phases measure the client (a false PASS);
docs/performance.md has the figures. The wrappers here are thin on purpose: the hot path is
aiohttp's own, with one small object per response.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType

import aiohttp

from auditkit.loadgen.clock import PERF_COUNTER, Clock
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.transport import WARMUP_PATH


def _ssl_context(verify: bool) -> ssl.SSLContext | bool:
    if verify:
        return ssl.create_default_context()
    return False


class AiohttpResponse:
    """An aiohttp response seen through the `Response` protocol."""

    __slots__ = ("_resp", "content_length", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status: int = resp.status
        self.headers: Mapping[str, str] = resp.headers
        self.content_length: int | None = resp.content_length

    async def read(self) -> bytes:
        return await self._resp.read()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._resp.content.iter_any()

    def lines(self) -> AsyncIterator[bytes]:
        return self._resp.content.__aiter__()


class _Exchange:
    """`async with session.post(...)`: aiohttp's own context manager, response wrapped."""

    __slots__ = ("_request",)

    def __init__(self, request: AbstractAsyncContextManager[aiohttp.ClientResponse]) -> None:
        self._request = request

    async def __aenter__(self) -> AiohttpResponse:
        return AiohttpResponse(await self._request.__aenter__())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._request.__aexit__(exc_type, exc, tb)


class AiohttpSession:
    """One phase's aiohttp `ClientSession` (and its connector)."""

    __slots__ = ("_client",)

    def __init__(self, client: aiohttp.ClientSession) -> None:
        self._client = client

    def post(self, url: str, body: bytes) -> _Exchange:
        return _Exchange(self._client.post(url, data=body, allow_redirects=False))

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
    """HTTP/1.1 over aiohttp: no proxies from the environment, no redirects, no retries."""

    clock: Clock = PERF_COUNTER
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None

    @contextlib.asynccontextmanager
    async def session(
        self, target: HttpTarget, *, pool_size: int, warm: int
    ) -> AsyncIterator[AiohttpSession]:
        timeout = aiohttp.ClientTimeout(
            total=target.timeout_s, sock_connect=target.connect_timeout_s
        )
        connector = aiohttp.TCPConnector(
            limit=pool_size, ssl=_ssl_context(target.verify_tls), ttl_dns_cache=300
        )
        async with aiohttp.ClientSession(
            connector=connector,
            headers=dict(target.headers),
            timeout=timeout,
            trust_env=False,  # a measurement must not go through whatever proxy is configured
            auto_decompress=True,
        ) as client:
            session = AiohttpSession(client)
            await session.warm(target.base_url + WARMUP_PATH, warm, target.max_response_bytes)
            yield session
