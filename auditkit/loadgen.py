"""The load generator: runs one phase (a RunSpec) over HTTP and returns its records.

The hot path uses aiohttp on a uvloop loop that auditkit owns (see aio.py): measured against a
null endpoint, httpx's pool tops out far below what a caching SUT answers, and a client slower
than the SUT makes both phases measure the client (a false PASS). docs/performance.md has the
figures. httpx stays the client for pre-flight and model discovery (preflight.py).

Timing is `time.perf_counter_ns()` in the coroutine that does the I/O, relative to the phase
start; latency counts from the *scheduled* time, so client-side queueing is included.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import random
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from httpx_sse._decoders import SSEDecoder  # line-level decoder, transport-agnostic

from auditkit import aio
from auditkit.config import EndpointConfig, redact_headers, redact_text, secret_values
from auditkit.data import Dataset, Sample
from auditkit.endpoints.base import EndpointAdapter, ParsedResponse, ResponseError
from auditkit.errors import InputError
from auditkit.metrics import summarize
from auditkit.plan import RunSpec
from auditkit.results import PhaseResult, records_frame

ProgressCallback = Callable[[int, int], None]
#: receives a snapshot of the record rows so far (RECORD_COLUMNS order), on the loop thread
RowsCallback = Callable[[list[tuple[Any, ...]]], None]
ERROR_SNIPPET = 200
PROGRESS_INTERVAL_NS = 100_000_000
USER_AGENT = "auditkit"
WARMUP_PATH = "/v1/models"


def resolve_api_key(cfg: EndpointConfig) -> str | None:
    """The API key from the environment variable *named* by cfg.api_key_env."""
    if cfg.api_key_env is None:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise InputError(
            f"environment variable {cfg.api_key_env} (named by endpoint.api_key_env) is not set; "
            "export it with the API key"
        )
    return key


@dataclass(frozen=True)
class Transport:
    """Connection settings for the hot path (the key lives only in memory, in `headers`)."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    verify_tls: bool = True
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    max_response_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_config(cls, cfg: EndpointConfig, base_url: str, api_key: str | None) -> Transport:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **cfg.headers}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return cls(
            base_url=base_url.rstrip("/"),
            headers=headers,
            verify_tls=cfg.verify_tls,
            timeout_s=cfg.timeout_s,
            connect_timeout_s=cfg.connect_timeout_s,
            max_response_bytes=cfg.max_response_bytes,
        )

    def redacted_headers(self) -> dict[str, str]:
        return redact_headers(dict(self.headers))

    def secrets(self) -> list[str]:
        """Credential values sent with every request: scrubbed from any stored error text."""
        return secret_values(self.headers)

    def settings(self) -> dict[str, object]:
        """The request limits in force (recorded in phase.json beside the headers)."""
        return {
            "timeout_s": self.timeout_s,
            "connect_timeout_s": self.connect_timeout_s,
            "max_response_bytes": self.max_response_bytes,
            "verify_tls": self.verify_tls,
        }


class PhaseInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the phase; `partial` holds what completed."""

    def __init__(self, partial: PhaseResult) -> None:
        super().__init__(f"phase {partial.name} interrupted")
        self.partial = partial


def _ssl_context(verify: bool) -> ssl.SSLContext | bool:
    if verify:
        return ssl.create_default_context()
    return False


def _classify(exc: BaseException, timeout_s: float | None = None) -> tuple[str, str]:
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
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "connect_error", f"TLS error: {text}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect_error", text
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # a subclass of TimeoutError: test it first, it is a connect failure, not a slow answer
        return "connect_error", f"connect timed out ({text})"
    if isinstance(exc, TimeoutError):
        limit = f" within {timeout_s:g} s (endpoint.timeout_s)" if timeout_s else ""
        return "timeout", f"no complete response{limit} ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "protocol_error", "server closed the connection without a complete response"
    if isinstance(exc, ConnectionResetError) or (
        isinstance(exc, aiohttp.ClientOSError) and exc.errno == errno.ECONNRESET
    ):
        return "protocol_error", f"connection reset by the server ({text})"
    return "protocol_error", f"{type(exc).__name__}: {text}"


class _Phase:
    """State of one running phase; the request coroutine appends one row per request."""

    def __init__(
        self,
        spec: RunSpec,
        dataset: Dataset,
        adapter: EndpointAdapter,
        transport: Transport,
        progress: ProgressCallback | None,
    ) -> None:
        self.spec = spec
        self.adapter = adapter
        self.transport = transport
        self.progress = progress
        self.url = transport.base_url + adapter.path
        self.dataset = dataset
        # the order's rows without end: a min_duration phase keeps drawing past spec.samples
        self.source = spec.order.stream(len(dataset))
        self.planned = [next(self.source) for _ in range(spec.samples)]
        self.min_duration_ns = int(spec.min_duration_s * 1e9)
        # bodies are built once per distinct sample: the hot path sends prebuilt bytes
        self.bodies = {i: adapter.build_body(dataset[i]) for i in set(self.planned)}
        self.rows: list[tuple[Any, ...]] = []
        self.t0 = 0
        self.done = 0
        self.last_progress = 0
        self.lags: list[int] = []
        self.session: aiohttp.ClientSession | None = None
        self.secrets = transport.secrets()

    def _report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.perf_counter_ns()
        if force or now - self.last_progress >= PROGRESS_INTERVAL_NS:
            self.last_progress = now
            self.progress(self.done, self.spec.samples)

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.transport.max_response_bytes
        length = resp.content_length
        if length is not None:
            if length > limit:
                raise ResponseError(f"response of {length} bytes exceeds the {limit}-byte limit")
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        while chunk := await resp.content.readany():
            size += len(chunk)
            if size > limit:
                raise ResponseError(f"response exceeds the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _read_stream(self, resp: aiohttp.ClientResponse) -> tuple[ParsedResponse, int | None]:
        parser = self.adapter.stream_parser()
        decoder = SSEDecoder()
        limit = self.transport.max_response_bytes
        size = 0
        first_token: int | None = None
        async for raw in resp.content:
            size += len(raw)
            if size > limit:
                raise ResponseError(f"stream exceeds the {limit}-byte limit")
            event = decoder.decode(raw.decode("utf-8").rstrip("\r\n"))
            if event is not None and event.data and parser.feed(event.data) and first_token is None:
                first_token = time.perf_counter_ns() - self.t0
        event = decoder.decode("")  # a final event without its blank line
        if event is not None and event.data:
            parser.feed(event.data)
        return parser.finish(), first_token

    async def request(self, query_id: int, index: int, scheduled_ns: int) -> None:
        """Issue one request and append its record (also when it fails or is cancelled)."""
        assert self.session is not None
        if self.spec.load.client_delay_ms:
            # diagnostic slow client: blocks the whole loop on purpose (see calibration.py)
            time.sleep(self.spec.load.client_delay_ms / 1e3)
        t0 = self.t0
        sent = time.perf_counter_ns() - t0
        first_byte: int | None = None
        first_token: int | None = None
        http_status: int | None = None
        status, error = "ok", None
        parsed: ParsedResponse | None = None
        try:
            async with self.session.post(
                self.url, data=self._body(query_id, index), allow_redirects=False
            ) as resp:
                first_byte = time.perf_counter_ns() - t0
                http_status = resp.status
                if not 200 <= resp.status < 300:
                    status = "http_error"
                    error = await self._http_error(resp)
                elif self.adapter.stream:
                    parsed, first_token = await self._read_stream(resp)
                else:
                    parsed = self.adapter.parse_body(await self._read_body(resp))
        except asyncio.CancelledError:
            status, error = "cancelled", "cancelled before completion"
            self._append(query_id, index, scheduled_ns, sent, first_byte, None, status, None, error)
            raise
        except Exception as exc:
            status, error = _classify(exc, self.transport.timeout_s)
        self._append(
            query_id,
            index,
            scheduled_ns,
            sent,
            first_byte,
            first_token,
            status,
            http_status,
            error,
            parsed,
        )

    async def _http_error(self, resp: aiohttp.ClientResponse) -> str:
        if 300 <= resp.status < 400:
            where = resp.headers.get("Location", "?")
            return f"HTTP {resp.status} redirect to {where}; use the final URL"
        try:
            # bounded read: a hostile error body cannot exhaust memory
            body = await resp.content.read(ERROR_SNIPPET)
        except Exception:
            body = b""
        snippet = " ".join(body.decode("utf-8", "replace").split())
        return f"HTTP {resp.status}: {snippet}"[: ERROR_SNIPPET + 20]

    def _append(
        self,
        query_id: int,
        index: int,
        scheduled: int,
        sent: int,
        first_byte: int | None,
        first_token: int | None,
        status: str,
        http_status: int | None,
        error: str | None,
        parsed: ParsedResponse | None = None,
    ) -> None:
        completed = time.perf_counter_ns() - self.t0
        ok = status == "ok" and parsed is not None
        if error and self.secrets:
            # endpoints echo requests back in error bodies: never store the key
            error = redact_text(error, self.secrets)
        self.rows.append(
            (
                self.spec.name,
                query_id,
                index,
                scheduled,
                sent,
                first_byte,
                first_token,
                completed if ok else None,
                completed - scheduled if ok else None,
                first_token - scheduled if ok and first_token is not None else None,
                status,
                http_status,
                error,
                parsed.prompt_tokens if parsed else None,
                parsed.output_tokens if parsed else None,
                parsed.cached_tokens if parsed else None,
                parsed.sha256 if parsed else None,
            )
        )
        self.done += 1
        self._report(force=self.done == self.spec.samples)

    # --- sample supply -------------------------------------------------------------------

    def _more(self, issued: int, last_ns: int) -> bool:
        """Keep issuing until both the planned samples and min_duration are reached.

        `last_ns` is the scenario's LoadGen clock for min_duration: the last issue (single/
        multi-stream), the last scheduled arrival (server) or now (offline, whose last completion
        then lands past min_duration, as LoadGen's max_latency check wants)."""
        return issued < self.spec.samples or last_ns < self.min_duration_ns

    def _body(self, query_id: int, index: int) -> bytes:
        if self.spec.order.kind != "salted":
            return self.bodies[index]
        # a fresh random prefix per query: warms the SUT without priming any cache with the
        # prompts the measured phases send
        sample = self.dataset[index]
        salt = f"[warm-up {uuid.uuid4().hex}] "
        salted = Sample(sample.index, salt + sample.text, None)
        return self.adapter.build_body(salted)

    def _sample(self, position: int) -> int:
        """The dataset row at `position` of the phase's order (planned first, then extended)."""
        if position < len(self.planned):
            return self.planned[position]
        index = next(self.source)
        if index not in self.bodies:
            self.bodies[index] = self.adapter.build_body(self.dataset[index])
        return index

    # --- load patterns -------------------------------------------------------------------

    async def offline(self) -> None:
        """All samples queued at t=0; at most max_concurrency in flight."""
        taken = 0

        def take() -> int | None:
            nonlocal taken
            if not self._more(taken, time.perf_counter_ns() - self.t0):
                return None
            taken += 1
            return taken - 1

        async def worker() -> None:
            while (qid := take()) is not None:
                await self.request(qid, self._sample(qid), 0)

        n = min(self.spec.load.max_concurrency, self.spec.samples)
        await asyncio.gather(*(worker() for _ in range(n)))

    async def single_stream(self) -> None:
        """One query at a time; the next is scheduled when the previous completes."""
        qid, last = 0, -1
        while self._more(qid, last):
            last = time.perf_counter_ns() - self.t0
            await self.request(qid, self._sample(qid), last)
            qid += 1

    async def multi_stream(self) -> None:
        """Queries of samples_per_query samples; the next query when all of them complete."""
        per_query = self.spec.load.samples_per_query
        qid, issued, last = 0, 0, -1
        while self._more(issued, last):
            block = [self._sample(issued + i) for i in range(per_query)]
            last = time.perf_counter_ns() - self.t0
            await asyncio.gather(*(self.request(qid, i, last) for i in block))
            qid, issued = qid + 1, issued + per_query

    async def server(self) -> None:
        """Seeded Poisson arrivals at target_qps; client queueing counts in latency."""
        qps = self.spec.load.target_qps
        assert qps is not None
        rng = random.Random(self.spec.load.seed)
        limit = asyncio.Semaphore(self.spec.load.max_concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def bounded(qid: int, index: int, scheduled: int) -> None:
            async with limit:
                await self.request(qid, index, scheduled)

        arrival = 0.0
        qid, scheduled = 0, -1
        try:
            while self._more(qid, scheduled):
                index = self._sample(qid)
                arrival += rng.expovariate(qps)
                scheduled = int(arrival * 1e9)
                # loop timers can fire up to ~1 ms early: never send before the arrival time
                while (delay := (self.t0 + scheduled - time.perf_counter_ns()) / 1e9) > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(bounded(qid, index, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                qid += 1
            if tasks:
                await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _warm_connections(self) -> None:
        """Open the phase's connections before its clock starts, so TCP/TLS setup is not
        timed (it would differ between phases). A GET of the model list touches no cache."""
        assert self.session is not None
        n = min(self.spec.load.max_concurrency, self.spec.samples)
        if self.spec.load.scenario == "multi-stream":
            n = min(max(n, self.spec.load.samples_per_query), self.spec.samples)
        url = self.transport.base_url + WARMUP_PATH

        async def touch() -> None:
            with contextlib.suppress(Exception):
                async with self.session.get(url, allow_redirects=False) as resp:  # type: ignore[union-attr]
                    # drained (so the connection is pooled) but bounded: a hostile model list
                    # must not exhaust memory
                    size = 0
                    while chunk := await resp.content.readany():
                        size += len(chunk)
                        if size > self.transport.max_response_bytes:
                            break

        await asyncio.gather(*(touch() for _ in range(n)))

    async def _monitor_lag(self) -> None:
        """Event-loop lag: how late a 10 ms timer fires (a saturated client runs late)."""
        while True:
            start = time.perf_counter_ns()
            await asyncio.sleep(0.01)
            self.lags.append(time.perf_counter_ns() - start - 10_000_000)

    async def run(self, stop: asyncio.Event) -> bool:
        """Run the pattern; True when it was stopped early."""
        pattern = {
            "offline": self.offline,
            "single-stream": self.single_stream,
            "multi-stream": self.multi_stream,
            "server": self.server,
        }[self.spec.load.scenario]
        timeout = aiohttp.ClientTimeout(
            total=self.transport.timeout_s, sock_connect=self.transport.connect_timeout_s
        )
        connector = aiohttp.TCPConnector(
            limit=max(self.spec.load.max_concurrency, self.spec.load.samples_per_query),
            ssl=_ssl_context(self.transport.verify_tls),
            ttl_dns_cache=300,
        )
        async with aiohttp.ClientSession(
            connector=connector,
            headers=dict(self.transport.headers),
            timeout=timeout,
            trust_env=False,
            auto_decompress=True,
        ) as session:
            self.session = session
            await self._warm_connections()
            self.t0 = time.perf_counter_ns()
            self._report(force=True)
            main = asyncio.ensure_future(pattern())
            lag = asyncio.ensure_future(self._monitor_lag())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped = not main.done()
                for task in (main, lag, stopper):
                    task.cancel()
                await asyncio.gather(main, lag, stopper, return_exceptions=True)
            if not stopped and main.exception() is not None:
                raise main.exception()  # type: ignore[misc]
        return stopped

    def result(self, interrupted: bool, started_at: str) -> PhaseResult:
        records = records_frame(self.rows)
        records = records.sort_values(["query_id", "sent_ns"], kind="stable").reset_index(drop=True)
        lags = sorted(self.lags)
        lag_p99 = lags[min(int(len(lags) * 0.99), len(lags) - 1)] if lags else None
        summary = summarize(
            records,
            self.spec,
            interrupted=interrupted,
            loop_lag_p99_ns=lag_p99,
            request_headers=self.transport.redacted_headers(),
            started_at=started_at,
        )
        summary = summary.model_copy(update={"request_settings": self.transport.settings()})
        return PhaseResult(self.spec, records, summary)


async def run_phase_async(
    spec: RunSpec,
    dataset: Dataset,
    adapter: EndpointAdapter,
    transport: Transport,
    *,
    progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
    on_rows: RowsCallback | None = None,
) -> PhaseResult:
    """Run one phase on the current loop. A set `stop` event ends it early (interrupted).

    `on_rows` watches records arrive (throttled like progress): live plots in the probes.
    """
    phase = _Phase(spec, dataset, adapter, transport, progress)
    if on_rows is not None:
        user_progress = progress

        def watch(done: int, total: int) -> None:
            on_rows(list(phase.rows))
            if user_progress is not None:
                user_progress(done, total)

        phase.progress = watch
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    interrupted = await phase.run(stop or asyncio.Event())
    return phase.result(interrupted, started_at)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Keep full garbage collections out of a measured phase.

    With pandas and a previous phase's records alive, one full collection stalls every thread
    of the process (client and an in-process SUT) for tens of ms, a latency spike that belongs
    to neither. Collect before the clock starts and freeze what exists, so in-phase collections
    only scan objects the phase itself creates.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_phase(
    spec: RunSpec,
    dataset: Dataset,
    adapter: EndpointAdapter,
    transport: Transport,
    *,
    progress: ProgressCallback | None = None,
) -> PhaseResult:
    """Run one phase to completion on auditkit's own loop (works inside Jupyter too).

    Ctrl-C stops the phase: in-flight requests are recorded as cancelled and
    PhaseInterrupted carries the partial result.
    """
    stop = asyncio.Event()  # binds to the owned loop on first use (Python >= 3.10)
    with quiet_gc():
        future = aio.submit(
            run_phase_async(spec, dataset, adapter, transport, progress=progress, stop=stop)
        )
        try:
            result = aio.wait(future)
        except KeyboardInterrupt:
            aio.call_soon(stop.set)
            result = future.result(timeout=60)
            raise PhaseInterrupted(result) from None
    if result.summary.interrupted:
        raise PhaseInterrupted(result)
    return result
