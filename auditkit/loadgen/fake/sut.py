"""`SimulatedSUT`: an OpenAI-compatible server for the fake transport, in virtual time.

It is the embedded mock itself, minus HTTP: requests are parsed by `auditkit.mock.protocol`,
answered by `auditkit.mock.engine` (the seeded LatencyModel, slots, output and prefix caches,
streams and in-stream faults) and rendered by `auditkit.mock.render`, so a simulated phase gets
the bytes `auditkit mock` sends with the same MockConfig, only exact and instant: its sleeps
run on the fake transport's virtual clock. What is left here maps the mock's answers and its
connection-level faults (reset, hang, slow trickle, death) onto `FakeResponse`s.

The behaviours of `MockConfig.behaviour` (cold start, drift, heavy tail, cache admission, TTL,
normalised keys, partial cache, prepopulated entries, coalescing, connection set-up) are the
mock's own code. Two stand-ins come from here: the fake transport's connection numbers stand
for TCP connections, and `ServerClock`, which runs on across the virtual loops of the phases
the server serves (each loop starts at 0), times the TTLs. A `CachePolicy` (see
`auditkit.mock.caches`) may replace the cache `cfg.cache` names, and `Behaviour`s may adjust
each computed request's timing further (a test's own rule, e.g. latency that never settles).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from auditkit.config import MockConfig
from auditkit.loadgen.fake.transport import FakeRequest, FakeResponse, Piece
from auditkit.mock.caches import CachePolicy
from auditkit.mock.engine import Body, MockEngine, MockState
from auditkit.mock.faults import HANG_S, SLOW_LORIS_S, slow_loris_body, trickle_gap
from auditkit.mock.latency import FaultKind, Timing
from auditkit.mock.protocol import BadRequest, Job, Kind
from auditkit.mock.render import (
    HEALTH_BODY,
    MALFORMED_BODY,
    dumps,
    error_body,
    injected_error_body,
    models_body,
)

KINDS: dict[str, Kind] = {
    "/v1/completions": "completions",
    "/v1/chat/completions": "chat",
    "/generate": "generate",
}
JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a `Behaviour` may look at: the job, its 1-based arrival number, the virtual time."""

    job: Job
    number: int
    now_s: float


class Behaviour(Protocol):
    """Adjusts one computed request's service timing (after `MockConfig.behaviour`'s)."""

    def adjust(self, timing: Timing, request: RequestInfo) -> Timing: ...


@dataclass(frozen=True)
class ColdStart:
    """The first `first` requests take `extra_s` longer when computed (a server warming up;
    `BehaviourConfig.cold_start_*` is the mock's own, which cache hits pay too)."""

    first: int
    extra_s: float

    def adjust(self, timing: Timing, request: RequestInfo) -> Timing:
        if request.number > self.first:
            return timing
        return dataclasses.replace(timing, base_s=timing.base_s + self.extra_s)


class ServerClock:
    """Seconds since a simulated server started, on the virtual clocks of the loops it serves:
    each phase's loop starts at 0, and the server's time runs on from where the previous
    loop's ended (time between phases does not pass). Outside a loop it stays where it was."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._offset = 0.0
        self._last = 0.0

    def __call__(self) -> float:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._last
        if loop is not self._loop:
            if self._loop is not None:
                self._offset += self._loop.time()  # where the previous loop's clock stopped
            self._loop = loop
        self._last = max(self._last, loop.time() + self._offset)
        return self._last


def _error_response(status: int, message: str, err_type: str, code: str | int) -> FakeResponse:
    """An OpenAI-style JSON error, as the mock's `responses.error_response`."""
    return FakeResponse(status, JSON_HEADERS, dumps(error_body(message, err_type, code)))


class SimulatedSUT:
    """A `FakeTransport` handler serving /v1/completions, /v1/chat/completions, /generate,
    /v1/models and /health the way `auditkit mock` does with the same MockConfig (see the
    module doc). Its state (caches, counters, RNG) persists across the phases that share it."""

    def __init__(
        self,
        cfg: MockConfig | None = None,
        *,
        cache: CachePolicy | None = None,
        behaviours: Sequence[Behaviour] = (),
    ) -> None:
        self.cfg = cfg if cfg is not None else MockConfig()
        self.clock = ServerClock()
        self.state = MockState(self.cfg, cache, clock=self.clock)
        self.engine = MockEngine(self.state)
        self.behaviours = tuple(behaviours)

    def stats(self) -> dict[str, Any]:
        """Counters so far (the mock's: requests, completed, rejected, in_flight, cache_hits,
        prefix_hits, computations, coalesced, tail_requests, connections and faults by kind)."""
        return self.state.stats()

    async def __call__(self, request: FakeRequest) -> FakeResponse:
        state = self.state
        setup = self.engine.connect(request.connection)
        if setup > 0.0:
            await asyncio.sleep(setup)
        if state.dead:
            state.count_fault("die")
            return FakeResponse(error=ConnectionResetError("auditkit mock: server died"))
        if request.method == "GET":
            return self._get(request.path)
        kind = KINDS.get(request.path)
        if request.method != "POST" or kind is None:
            message = f"Not Found: {request.method} {request.path}"
            return _error_response(404, message, "invalid_request_error", 404)
        state.requests += 1
        number = state.requests
        try:
            client = next(
                (v for k, v in request.headers.items() if k.lower() == "authorization"), None
            )
            job, fault = self.engine.admit(kind, request.body, client)
        except BadRequest as exc:
            return _error_response(exc.status, exc.message, "invalid_request_error", exc.code)
        if fault is not None:
            special = self._fault_response(fault, job)
            if special is not None:
                return special
        adjust = None
        if self.behaviours:
            info = RequestInfo(job, number, asyncio.get_running_loop().time())
            adjust = functools.partial(self._adjust, info=info)
        answer = await self.engine.answer(job, fault, number=number, adjust=adjust)
        if not isinstance(answer, Body):
            return FakeResponse(200, SSE_HEADERS, stream=answer)
        return FakeResponse(200, SSE_HEADERS if answer.stream else JSON_HEADERS, answer.data)

    def _adjust(self, timing: Timing, info: RequestInfo) -> Timing:
        for behaviour in self.behaviours:
            timing = behaviour.adjust(timing, info)
        return timing

    def _get(self, path: str) -> FakeResponse:
        if path == "/v1/models":
            return FakeResponse(200, JSON_HEADERS, models_body(self.cfg.model, self.state.started))
        if path == "/health":
            return FakeResponse(200, JSON_HEADERS, HEALTH_BODY)
        return _error_response(404, f"Not Found: GET {path}", "invalid_request_error", 404)

    def _fault_response(self, fault: FaultKind, job: Job) -> FakeResponse | None:
        """The answer for a fault that replaces service (None: serve, the fault acts in-stream);
        the in-memory counterpart of `auditkit.mock.faults.fault_response`."""
        if fault == "error":
            return FakeResponse(500, JSON_HEADERS, injected_error_body())
        if fault == "hang":
            reset = ConnectionResetError("auditkit mock: hung request dropped")
            return FakeResponse(delay_s=HANG_S, error=reset)
        if fault == "reset":
            return FakeResponse(error=ConnectionResetError("auditkit mock: injected reset"))
        if fault == "malformed":
            return FakeResponse(200, JSON_HEADERS, MALFORMED_BODY)
        if fault == "slow_loris":
            body = slow_loris_body(job, self.state.next_seq())
            headers = SSE_HEADERS if job.stream else JSON_HEADERS
            return FakeResponse(200, headers, stream=_trickle(body))
        return None  # truncate / stream_error act inside the stream


def _trickle(body: bytes) -> list[Piece]:
    """A body one byte at a time over about SLOW_LORIS_S (then the rest at once)."""
    gap = trickle_gap(len(body))
    count = min(len(body) - 1, int(SLOW_LORIS_S / gap))
    pieces: list[Piece] = [(gap, body[i : i + 1]) for i in range(count)]
    pieces.append((gap, body[count:]))
    return pieces
