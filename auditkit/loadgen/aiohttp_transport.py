"""The production transport: aiohttp on auditkit's uvloop loop (aio.py).

Measured against a null endpoint, httpx's pool tops out far below what a caching SUT answers, and
a client slower than the SUT makes both phases measure the client (a false PASS);
docs/performance.md has the figures. Nothing here wraps aiohttp per request: the hot path is
aiohttp's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import cast

import aiohttp

from auditkit.loadgen.clock import PERF_COUNTER, Clock
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.transport import WARMUP_PATH


def _ssl_context(verify: bool) -> ssl.SSLContext | bool:
    if verify:
        return ssl.create_default_context()
    return False


class AiohttpResponse(aiohttp.ClientResponse):
    """aiohttp's own response (made by the session: `response_class`), plus the `Response`
    protocol's body iterators. A subclass rather than a wrapper: no extra object or coroutine
    per request on the hot path."""

    def chunks(self) -> AsyncIterator[bytes]:
        return self.content.iter_any()

    def lines(self) -> AsyncIterator[bytes]:
        return self.content.__aiter__()


class AiohttpSession:
    """One phase's aiohttp `ClientSession` (and its connector)."""

    __slots__ = ("_client",)

    def __init__(self, client: aiohttp.ClientSession) -> None:
        self._client = client

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
            response_class=AiohttpResponse,
        ) as client:
            session = AiohttpSession(client)
            await session.warm(target.base_url + WARMUP_PATH, warm, target.max_response_bytes)
            yield session
