"""`SimulatedSUT`: an OpenAI-compatible server for the fake transport, in virtual time.

It is the embedded mock itself, minus HTTP: requests are parsed by `auditkit.mock.protocol`,
answered by `auditkit.mock.engine` (the seeded LatencyModel, slots, output and prefix caches,
streams and in-stream faults) and rendered by `auditkit.mock.render`, so a simulated phase gets
the bytes `auditkit mock` sends with the same MockConfig, only exact and instant: its sleeps
run on the fake transport's virtual clock. What is left here maps the mock's answers and its
connection-level faults (reset, hang, slow trickle, death) onto `FakeResponse`s.

Two hooks keep new behaviours small: a `CachePolicy` decides what is served from cache (none,
output, prefix are in `auditkit.mock.caches`; a partial or probabilistic cache is one more
class), and `Behaviour`s adjust each request's timing (`ColdStart` is an example; drift or heavy
tails are the same shape).
"""

from __future__ import annotations

import asyncio
import dataclasses
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
    """Adjusts one request's service timing (cold starts, drift, heavy tails, ...)."""

    def adjust(self, timing: Timing, request: RequestInfo) -> Timing: ...


@dataclass(frozen=True)
class ColdStart:
    """The first `first` requests take `extra_s` longer (a server warming up)."""

    first: int
    extra_s: float

    def adjust(self, timing: Timing, request: RequestInfo) -> Timing:
        if request.number > self.first:
            return timing
        return dataclasses.replace(timing, base_s=timing.base_s + self.extra_s)


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
        self.state = MockState(self.cfg, cache)
        self.engine = MockEngine(self.state)
        self.behaviours = tuple(behaviours)

    def stats(self) -> dict[str, Any]:
        """Counters so far (the mock's: requests, completed, rejected, in_flight, cache_hits,
        prefix_hits and faults by kind)."""
        return self.state.stats()

    async def __call__(self, request: FakeRequest) -> FakeResponse:
        state = self.state
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
        try:
            job, fault = self.engine.admit(kind, request.body)
        except BadRequest as exc:
            return _error_response(exc.status, exc.message, "invalid_request_error", exc.code)
        if fault is not None:
            special = self._fault_response(fault, job)
            if special is not None:
                return special
        info = RequestInfo(job, state.requests, asyncio.get_running_loop().time())
        answer = await self.engine.answer(job, fault, lambda timing: self._adjust(timing, info))
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
