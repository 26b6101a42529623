"""The phase driver: runs one RunSpec through a transport and builds its PhaseResult.

One request = send the prebuilt body, read the body (or decode its SSE stream), parse it with the
endpoint adapter and record it, also when it fails or is cancelled. Timestamps come from the
transport's clock, relative to the phase start (taken after the pool's connections are open).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditkit.data import Dataset
from auditkit.endpoints.base import EndpointAdapter, ParsedResponse, ResponseError
from auditkit.loadgen.choice import default_transport
from auditkit.loadgen.recorder import Attempt, Recorder
from auditkit.loadgen.schedulers import SCHEDULERS
from auditkit.loadgen.sse import SSEDecoder, split_block
from auditkit.loadgen.supply import Query, SampleSupply, WarmupGate
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.transport import ERROR_SNIPPET, Response, Session, Transport, classify_error
from auditkit.metrics import summarize
from auditkit.plan import RunSpec
from auditkit.records_io import PartWriter
from auditkit.results import LoggedOutput, PhaseResult

ProgressCallback = Callable[[int, int], None]
#: receives a snapshot of the record rows so far (RECORD_COLUMNS order), on the loop thread
RowsCallback = Callable[[list[tuple[Any, ...]]], None]
PROGRESS_INTERVAL_NS = 100_000_000
LAG_PERIOD_S = 0.01


class PhaseInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped the phase; `partial` holds what completed."""

    def __init__(self, partial: PhaseResult) -> None:
        super().__init__(f"phase {partial.name} interrupted")
        self.partial = partial


class PhaseDriver:
    """State of one running phase (the `Issuer` the schedulers drive)."""

    def __init__(
        self,
        spec: RunSpec,
        dataset: Dataset,
        adapter: EndpointAdapter,
        target: HttpTarget,
        transport: Transport,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.spec = spec
        self.load = spec.load
        if spec.stream is not None and spec.stream != adapter.stream:
            adapter = copy.copy(adapter)  # this phase streams (or not) unlike the endpoint's
            adapter.stream = spec.stream
        self.log = spec.log_outputs
        self.outputs: list[LoggedOutput] = []
        #: queries the phase plans (samples + twins; a warm-up rule's min_queries): progress
        self.samples = spec.planned_queries
        self.adapter = adapter
        self.target = target
        self.transport = transport
        self.clock = transport.clock
        self.now_ns = transport.clock.now_ns  # looked up once: read several times per request
        self.progress = progress
        self.url = target.base_url + adapter.path
        self.supply = SampleSupply(spec, dataset, adapter)
        # a warm-up rule decides from completed service times how many queries to send
        self.gate = WarmupGate(spec.warmup, self.elapsed_ns) if spec.warmup else None
        # the supply's own methods, not wrappers: called once or twice per request
        self.more: Callable[[int, int], bool] = (self.gate or self.supply).more
        self.sample: Callable[[int], Query] = self.supply.query
        # offline's workers (and connections opened): the queries it may ever have in flight
        most = spec.warmup.max_queries if spec.warmup else self.samples
        self.workers = min(spec.load.max_concurrency, most)
        self.recorder = Recorder(spec.name, target.secrets())
        self.client_delay_s = spec.load.client_delay_ms / 1e3
        self.t0 = 0
        self.last_progress = 0
        self.lags: list[int] = []
        self.session: Session | None = None
        #: requests that went out on a fresh connection because the server had closed theirs
        #: before any of the request was written (set when the phase ends; not failures)
        self.reconnects = 0
        #: where receive times came from (phase.json; None: a transport that does not say)
        self.timestamp_source: str | None = None

    # --- Issuer ----------------------------------------------------------------------------

    def elapsed_ns(self) -> int:
        return self.now_ns() - self.t0

    async def request(self, query_id: int, query: Query, scheduled_ns: int) -> None:
        """Issue one request and record it (also when it fails or is cancelled)."""
        assert self.session is not None
        if self.client_delay_s:
            # diagnostic slow client: blocks the whole loop on purpose (see calibration.py)
            time.sleep(self.client_delay_s)
        now, t0 = self.now_ns, self.t0
        index, variant, body = query
        attempt = Attempt(query_id, index, scheduled_ns, now() - t0, variant)
        # a transport that knows when bytes arrived (h1's kernel stamps: `received_ns`) gives
        # first byte, first token and completion as those times; else the clock is read here,
        # when the coroutine gets to them (the last answer of a burst then reads late)
        arrived: int | None = None
        try:
            async with self.session.post(self.url, body) as resp:
                stamp = resp.received_ns
                attempt.first_byte_ns = (now() if stamp is None else stamp) - t0
                attempt.http_status = status = resp.status
                if not 200 <= status < 300:
                    attempt.status = "http_error"
                    attempt.error = await _http_error(resp)
                elif self.adapter.stream and _event_stream(resp):
                    parsed, first_token = await self._read_stream(resp)
                    attempt.parsed, attempt.first_token_ns = parsed, first_token
                    arrived = resp.received_ns
                else:
                    attempt.parsed = self.adapter.parse_body(await self._read_body(resp))
                    arrived = resp.received_ns
        except asyncio.CancelledError:
            attempt.status, attempt.error = "cancelled", "cancelled before completion"
            attempt.first_token_ns = attempt.http_status = attempt.parsed = None
            self._record(attempt)
            raise
        except Exception as exc:
            attempt.status, attempt.error = classify_error(exc, self.target.timeout_s)
        self._record(attempt, arrived)

    # --- one response ----------------------------------------------------------------------

    async def _read_body(self, resp: Response) -> bytes:
        limit = self.target.max_response_bytes
        length = resp.content_length
        if length is not None:
            if length > limit:
                raise ResponseError(f"response of {length} bytes exceeds the {limit}-byte limit")
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.chunks():
            size += len(chunk)
            if size > limit:
                raise ResponseError(f"response exceeds the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    def _arrival_ns(self, resp: Response) -> int:
        """When the piece just read arrived, relative to the phase start (the transport's
        stamp where it has one, else now)."""
        stamp = resp.received_ns
        return (self.now_ns() if stamp is None else stamp) - self.t0

    async def _read_stream(self, resp: Response) -> tuple[ParsedResponse, int | None]:
        parser = self.adapter.stream_parser()
        decoder = SSEDecoder()
        limit = self.target.max_response_bytes
        size = 0
        first_token: int | None = None
        pending = b""
        # whole network reads, cut after their last line end: one decode and split per read
        # (a line at a time cost ~4x the client's ceiling of a non-streamed phase)
        async for chunk in resp.chunks():
            size += len(chunk)
            if size > limit:
                raise ResponseError(f"stream exceeds the {limit}-byte limit")
            data = pending + chunk if pending else chunk
            end = data.rfind(b"\n") + 1
            if not end:
                pending = data
                continue
            pending = data[end:]
            for text in decoder.decode_data(split_block(data[:end])):
                if text and parser.feed(text) and first_token is None:
                    first_token = self._arrival_ns(resp)
        # a last line without its end
        for text in decoder.decode_data(split_block(pending)) if pending else ():
            if text and parser.feed(text) and first_token is None:
                first_token = self._arrival_ns(resp)
        event = decoder.flush()  # a final event without its blank line
        if event is not None and event.data:
            parser.feed(event.data)
        return parser.finish(), first_token

    # --- records and progress ----------------------------------------------------------------

    def _record(self, attempt: Attempt, arrived: int | None = None) -> None:
        """Record `attempt`, completed when its last byte `arrived` (None: now)."""
        completed = (self.now_ns() if arrived is None else arrived) - self.t0
        self.recorder.record(attempt, completed)
        log = self.log
        if log is not None and attempt.parsed is not None and attempt.sample_index in log:
            self.outputs.append(_logged(attempt))
        if self.gate is not None and attempt.status == "ok" and attempt.parsed is not None:
            self.gate.observe(completed - attempt.sent_ns)
        self._report(force=len(self.recorder) == self.samples)

    def _report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = self.now_ns()
        if force or now - self.last_progress >= PROGRESS_INTERVAL_NS:
            self.last_progress = now
            self.progress(len(self.recorder), self.samples)

    async def _monitor_lag(self) -> None:
        """Event-loop lag: how late a 10 ms timer fires (a saturated client runs late)."""
        period_ns = int(LAG_PERIOD_S * 1e9)
        while True:
            start = self.now_ns()
            await asyncio.sleep(LAG_PERIOD_S)
            self.lags.append(self.now_ns() - start - period_ns)

    # --- the phase ---------------------------------------------------------------------------

    def _connections(self) -> tuple[int, int]:
        """(pool size, connections to open before the clock starts)."""
        load = self.load
        pool = max(load.max_concurrency, load.samples_per_query)
        warm = self.workers if self.target.warm_connections else 0
        if load.scenario == "multi-stream" and warm:
            warm = min(max(warm, load.samples_per_query), self.samples)
        return pool, warm

    async def run(self, stop: asyncio.Event) -> bool:
        """Run the scenario; True when it was stopped early."""
        pattern = SCHEDULERS[self.load.scenario]
        pool, warm = self._connections()
        async with self.transport.session(self.target, pool_size=pool, warm=warm) as session:
            self.session = session
            self.t0 = self.now_ns()
            self._report(force=True)
            main = asyncio.ensure_future(pattern(self))
            stopper = asyncio.ensure_future(stop.wait())
            tasks = [main, stopper]
            if self.clock.realtime:  # virtual time has no lag to measure
                tasks.append(asyncio.ensure_future(self._monitor_lag()))
            try:
                await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped = not main.done()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                # a transport that replaces stale connections counts them (the fake has none)
                self.reconnects = getattr(session, "reconnects", 0)
                self.timestamp_source = getattr(session, "timestamp_source", None)
            if not stopped and (error := main.exception()) is not None:
                raise error
        return stopped

    def result(self, interrupted: bool, started_at: str) -> PhaseResult:
        """The records and the phase summary."""
        records = self.recorder.source()
        lags = sorted(self.lags)
        lag_p99 = lags[min(int(len(lags) * 0.99), len(lags) - 1)] if lags else None
        summary = summarize(
            records,
            self.spec,
            interrupted=interrupted,
            loop_lag_p99_ns=lag_p99,
            request_headers=self.target.redacted_headers(),
            started_at=started_at,
        )
        summary = summary.model_copy(
            update={
                "request_settings": self.target.settings(),
                "reconnects": self.reconnects,
                "timestamp_source": self.timestamp_source,
            }
        )
        return PhaseResult(self.spec, records, summary, tuple(self.outputs))


def _logged(attempt: Attempt) -> LoggedOutput:
    p = attempt.parsed
    assert p is not None
    return LoggedOutput(
        attempt.query_id,
        attempt.sample_index,
        attempt.variant,
        p.text,
        p.output_tokens,
        p.first_chunk,
        p.finish_reason,
        p.chunks,
        p.logprob_tokens,
        p.logprob_texts,
    )


def _event_stream(resp: Response) -> bool:
    """Whether a streamed request's answer is an event stream (or says nothing of its type).
    A server that ignores `stream` (the default asks for it) and answers one JSON body is read
    as not streamed (no first-token time), and an HTML error page as what it is, not as a
    broken stream."""
    ctype = (resp.headers.get("Content-Type") or "").strip().lower()
    return not ctype or ctype.startswith("text/event-stream")


async def _http_error(resp: Response) -> str:
    if 300 <= resp.status < 400:
        where = resp.headers.get("Location", "?")
        return f"HTTP {resp.status} redirect to {where}; use the final URL"
    body = b""
    try:
        # bounded read: a hostile error body cannot exhaust memory (leaving the exchange
        # releases whatever is left unread)
        async for chunk in resp.chunks():
            body += chunk
            if len(body) >= ERROR_SNIPPET:
                break
    except Exception:
        pass
    snippet = " ".join(body[:ERROR_SNIPPET].decode("utf-8", "replace").split())
    return f"HTTP {resp.status}: {snippet}"[: ERROR_SNIPPET + 20]


async def run_phase_async(
    spec: RunSpec,
    dataset: Dataset,
    adapter: EndpointAdapter,
    target: HttpTarget,
    *,
    progress: ProgressCallback | None = None,
    stop: asyncio.Event | None = None,
    on_rows: RowsCallback | None = None,
    transport: Transport | None = None,
    records_dir: Path | None = None,
) -> PhaseResult:
    """Run one phase on the current loop. A set `stop` event ends it early (interrupted).

    `on_rows` watches records arrive (throttled like progress): live plots in the probes.
    `transport` None is `target.http_client`'s (loadgen/choice.py); a fake transport needs its
    own loop (`run_phase` makes one).
    `records_dir` (the phase's folder) receives the records as part files while it runs.
    """
    transport = transport or default_transport(target)
    driver = PhaseDriver(spec, dataset, adapter, target, transport, progress)
    if records_dir is not None:  # stream the records to part files there as the phase runs
        driver.recorder.sink = PartWriter(records_dir, driver.recorder.worker)
    if on_rows is not None:
        user_progress = progress

        def watch(done: int, total: int) -> None:
            on_rows(driver.recorder.rows())
            if user_progress is not None:
                user_progress(done, total)

        driver.progress = watch
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    interrupted = await driver.run(stop or asyncio.Event())
    return driver.result(interrupted, started_at)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Keep full garbage collections out of a measured phase.

    With pandas and a previous phase's records alive, one full collection stalls every thread
    of the process (client and an in-process SUT) for tens of ms, a latency spike that belongs
    to neither. Freeze what exists before the clock starts, so in-phase collections only scan
    objects the phase itself creates. Only the young generations are collected first: a full
    collection costs ~70 ms with pandas loaded, paid again by every block of a blocked design,
    and old cyclic garbage frozen here is collected after `unfreeze` like any other.
    """
    gc.collect(1)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
