"""The client-saturation guard: is a phase bound by the load generator rather than the SUT?

A client slower than the SUT measures itself; if that happens in the audit phase, a cache goes
unseen (false PASS), and in the reference phase it inflates the ratio (false FAIL). So before
the phases, the load generator's own ceiling is measured against a null HTTP server on
127.0.0.1 (fixed completion JSON, no work), with the phase's concurrency and the same client
code. A throughput-scored phase that reaches `fraction` of that ceiling, or whose event loop ran
late by more than `MAX_LOOP_LAG_NS`, is marked client-bound.

A streamed phase is calibrated streamed: the null server answers with an event stream of as
many content chunks as the phase asks tokens (chunked transfer encoding, as servers send SSE),
since decoding and parsing every chunk is most of a streaming client's work per query. It
writes the whole stream at once, as a response cache replays a stored answer: the guard
matters when the SUT is that fast.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from dataclasses import dataclass

from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.workers import usable_cores
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import PhaseSummary

CALIBRATION_REQUESTS = 1500
MAX_LOOP_LAG_NS = 50_000_000
_BODY = json.dumps(
    {
        "choices": [{"text": " ok", "index": 0}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }
).encode()
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\n\r\n"
    + _BODY
)
_SSE_HEADER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
_cache: dict[tuple[int, float, str, bool, int], float] = {}


def _chunk(event: bytes) -> bytes:
    """One HTTP/1.1 chunk holding one SSE event."""
    return b"%x\r\n%s\r\n" % (len(event), event)


def streamed_response(tokens: int) -> bytes:
    """A completions event stream of `tokens` one-word chunks, a usage chunk and [DONE], in
    chunked transfer encoding (one HTTP chunk per event)."""
    delta = b'data: {"id":"n","object":"text_completion","choices":[{"text":" ok","index":0}]}\n\n'
    usage = json.dumps(
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": tokens}}
    ).encode()
    events = [delta] * tokens + [b"data: " + usage + b"\n\n", b"data: [DONE]\n\n"]
    return _SSE_HEADER + b"".join(_chunk(e) for e in events) + b"0\r\n\r\n"


class _NullProtocol(asyncio.Protocol):
    """Answers every request on a keep-alive connection with the fixed completion."""

    def __init__(self, response: bytes = _RESPONSE) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.response = response

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self.response)


@dataclass
class NullServer:
    """A null HTTP endpoint on 127.0.0.1 in its own thread and loop."""

    url: str = ""
    #: the bytes every request is answered with (default: a non-streamed completion)
    response: bytes = _RESPONSE

    def __enter__(self) -> NullServer:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start() -> None:
            self._server = await self._loop.create_server(
                lambda: _NullProtocol(self.response), "127.0.0.1", 0
            )
            port = self._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()

        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=10)
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def client_ceiling(
    concurrency: int,
    client_delay_ms: float = 0.0,
    http_client: str = "h1",
    stream: bool = False,
    tokens: int = 1,
) -> float:
    """The load generator's offline rate (req/s) against a null endpoint, with the HTTP client
    the phases use (`loadgen.choice.resolve_client`), streamed as they are (`tokens` chunks a
    response); cached per process."""
    tokens = max(1, tokens) if stream else 1
    key = (concurrency, client_delay_ms, http_client, stream, tokens)
    if key not in _cache:
        dataset = Dataset("calibration", tuple(Sample(i, f"calibration {i}") for i in range(16)))
        load = LoadPattern("offline", max_concurrency=concurrency, client_delay_ms=client_delay_ms)
        # a deliberately slowed client needs fewer requests to show its (low) ceiling
        n = CALIBRATION_REQUESTS if not client_delay_ms else max(50, int(300 / client_delay_ms))
        spec = RunSpec("calibration", SampleOrder.with_replacement(0), n, load)
        response = streamed_response(tokens) if stream else _RESPONSE
        with NullServer(response=response) as null:
            result = run_phase(
                spec,
                dataset,
                CompletionsAdapter("null", tokens, 0.0, stream),
                HttpTarget(null.url, http_client=http_client),
            )
        _cache[key] = result.summary.samples_per_second
    return _cache[key]


def workers_to_free(rate: float, ceiling: float, fraction: float) -> int:
    """The fewest load-generator processes whose guard limits (`fraction` × the one-process
    `ceiling` each) sum above `rate`: what a phase held at `rate` by the client needs at the
    least (once freed, the SUT may run faster still)."""
    return math.floor(rate / (fraction * ceiling)) + 1


def client_bound_fix(needed: int, cores: int | None = None) -> str:
    """What to do about a client-bound phase that `needed` processes would free."""
    cores = cores or usable_cores()
    if needed <= cores:
        return (
            f"at least {needed} load-generator processes would free it: rerun with "
            f"--workers {needed}, or a lower --max-concurrency"
        )
    return (
        f"freeing it takes at least {needed} load-generator processes, more than this machine's "
        f"{_cores(cores)}: run the client on a machine with more cores, or a lower "
        "--max-concurrency"
    )


def _cores(n: int) -> str:
    return f"{n} core{'' if n == 1 else 's'}"


def client_bound_reason(
    summary: PhaseSummary,
    ceiling: float | None,
    fraction: float,
    *,
    workers: int = 1,
    client: str | None = None,
    cores: int | None = None,
    load_average: float | None = None,
) -> str | None:
    """Why this phase measured the client, or None when the SUT bounded it. `ceiling` is one
    process's; the phase ran in `workers` processes of HTTP client `client` (h1, aiohttp),
    which are N ceilings (an estimate: docs/scale.md). The reason ends with how many processes
    would free the phase; a late event loop on a machine whose `load_average` (1 min) was above
    its cores says other processes took the CPU (more processes would not help)."""
    lag = summary.loop_lag_p99_ns
    rate = summary.samples_per_second
    ran = f"{workers} {client or 'client'} process{'' if workers == 1 else 'es'}"
    if lag is not None and lag > MAX_LOOP_LAG_NS:
        cores = cores or usable_cores()
        late = f"client event loop ran {lag / 1e6:.0f} ms late (p99) in {ran}"
        if load_average is not None and load_average > cores:
            return (
                f"{late}, on a machine whose load average was {load_average:.1f} on "
                f"{_cores(cores)}: the client waited for a CPU (more client processes would not "
                "help); rerun when the machine is quieter, or with the client on a machine of its "
                "own"
            )
        needed = workers + 1
        if ceiling and summary.scenario in ("offline", "server"):
            needed = max(needed, workers_to_free(rate, ceiling, fraction))
        return f"{late}: the client was saturated; {client_bound_fix(needed, cores)}"
    if ceiling and summary.scenario in ("offline", "server"):
        total = ceiling * workers
        if rate >= fraction * total:
            # the ceiling is an estimate from a short null-endpoint run: a phase can beat it
            where = (
                "above the client's measured ceiling"
                if rate >= total
                else f"{rate / total:.0%} of the client's measured ceiling"
            )
            needed = workers_to_free(rate, ceiling, fraction)
            return (
                f"phase rate {rate:.0f}/s is {where} ({ceiling:.0f}/s per process against a "
                f"null endpoint, an estimate; {ran}): the client, not the SUT, may have set the "
                f"pace; {client_bound_fix(needed, cores)}"
            )
    return None
