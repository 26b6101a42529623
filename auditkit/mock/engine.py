"""The mock's serving engine: per-server state (latency model, caches, behaviours, slots,
counters, sequence numbers) and the work of answering a job (sleeping in a slot, streaming,
caching, sharing identical computations in flight).

It produces bytes, never HTTP objects: `app.py` turns them into starlette responses, and
`auditkit.loadgen.fake.SimulatedSUT` into in-memory ones (the same engine on a virtual clock).
Everything here runs on the server's event-loop thread, except `MockState.stats()`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from auditkit.config import MockConfig
from auditkit.mock import answers
from auditkit.mock.behaviours import Connections, ServiceShape
from auditkit.mock.caches import CachePolicy, Key, cache_policy, prepopulated_jobs
from auditkit.mock.faults import in_stream_cutoff
from auditkit.mock.latency import (
    ALL_FAULTS,
    CACHE_HIT_S,
    FaultKind,
    LatencyModel,
    Timing,
    generate_words,
    stream_plan,
)
from auditkit.mock.misbehaviours import Misbehaviour
from auditkit.mock.protocol import BadRequest, Job, Kind, parse_request
from auditkit.mock.render import (
    SSE_DONE,
    ChunkMaker,
    render_json,
    render_whole,
    stream_error_events,
    stream_pieces,
)

#: A computation in flight that identical requests may share: its words, or None if it did
#: not complete (its followers then compute their own).
Shared = asyncio.Future[list[str] | None]


def empty_stats() -> dict[str, Any]:
    """The counters of a server that has not served anything."""
    return {
        "requests": 0,
        "completed": 0,
        "rejected": 0,
        "in_flight": 0,
        "cache_hits": 0,
        "prefix_hits": 0,
        "computations": 0,
        "coalesced": 0,
        "tail_requests": 0,
        "connections": 0,
        "faults": dict.fromkeys(ALL_FAULTS, 0),
    }


def prepopulate_requests(path: str) -> list[tuple[Kind, dict[str, Any]]]:
    """The requests whose answers a cache prepopulated from dataset `path` holds: each prompt
    as a plain completion and as a chat (its messages, or the prompt as one user message).
    InputError names the file when it cannot be read."""
    # imported here: the dataset reader brings pandas, which a mock without prepopulate skips
    from auditkit.config import DatasetConfig
    from auditkit.data import load_dataset

    out: list[tuple[Kind, dict[str, Any]]] = []
    for sample in load_dataset(DatasetConfig(path=path)).samples:
        messages = (
            list(sample.messages)
            if sample.messages is not None
            else [{"role": "user", "content": sample.prompt}]
        )
        out.append(("completions", {"prompt": sample.text}))
        out.append(("chat", {"messages": messages}))
    return out


class MockState:
    """Mutable state of one mock server: model, caches, behaviours, slots, counters.

    Everything here is touched only from the server's event-loop thread, except `stats()`,
    which only reads ints and copies a dict whose key set never changes. `cache` replaces the
    policy `cfg.cache` names; `clock` is the server's clock in seconds (TTLs), the monotonic
    clock unless a simulation brings its own. A `behaviour.prepopulate` dataset is read here
    (InputError if it cannot be).
    """

    def __init__(
        self,
        cfg: MockConfig,
        cache: CachePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.model = LatencyModel(cfg)
        self.shape = ServiceShape(cfg.behaviour)
        self.connections = Connections(cfg.behaviour.connection_setup_ms)
        self.misbehaviour = Misbehaviour(cfg.misbehaviour)
        if cache is None:
            path = cfg.behaviour.prepopulate
            held = prepopulated_jobs(prepopulate_requests(path), cfg.model) if path else []
            cache = cache_policy(cfg.cache, cfg.behaviour, prepopulated=held, started=clock())
        self.cache = cache
        # identical requests being computed (behaviour.coalesce): cache key → its computation
        self.shared: dict[Key, Shared] = {}
        # Created outside a loop on purpose: asyncio primitives bind to the first loop that
        # waits on them (Python ≥ 3.10), i.e. the server thread's loop.
        self.shutdown_event = asyncio.Event()
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.started = int(time.time())
        self.requests = 0
        self.completed = 0
        self.rejected = 0
        self.in_flight = 0
        self.cache_hits = 0
        self.prefix_hits = 0
        self.computations = 0
        self.coalesced = 0
        self.tail_requests = 0
        self.faults: dict[str, int] = dict.fromkeys(ALL_FAULTS, 0)
        self._seq = 0

    def next_seq(self) -> int:
        """A per-server counter: response ids and the temperature > 0 sampling nonce."""
        self._seq += 1
        return self._seq

    @property
    def slots(self) -> asyncio.Semaphore:
        """The `cfg.slots` compute slots, for the running loop: a served mock has one loop, but
        a simulated one outlives the virtual loops of its phases (a semaphore binds to one)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.cfg.slots))
        return self._slots[1]

    @property
    def dead(self) -> bool:
        """True once `faults.die_after` generation requests have been received."""
        limit = self.cfg.faults.die_after
        return limit is not None and self.requests >= limit

    def count_fault(self, kind: FaultKind) -> None:
        """Record one injected fault."""
        self.faults[kind] += 1

    def begin_shutdown(self) -> None:
        """Wake hanging handlers so they drop their connections (call on the loop thread)."""
        self.shutdown_event.set()

    def stats(self) -> dict[str, Any]:
        """Counters so far (safe to call from any thread); the keys of `empty_stats`."""
        return {
            "requests": self.requests,
            "completed": self.completed,
            "rejected": self.rejected,
            "in_flight": self.in_flight,
            "cache_hits": self.cache_hits,
            "prefix_hits": self.prefix_hits,
            "computations": self.computations,
            "coalesced": self.coalesced,
            "tail_requests": self.tail_requests,
            "connections": self.connections.opened,
            "faults": dict(self.faults),
        }


def _burn(seconds: float) -> None:
    """Spin on the CPU for `seconds` (`behaviour.burn_cpu`): the server's work competes for the
    cores the client runs on, as a local server's threads do. It holds the server's loop, so
    computations run one at a time (a CPU-bound server)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@dataclass(frozen=True, slots=True)
class Body:
    """A complete answer."""

    data: bytes
    stream: bool  # an SSE body (all events at once) rather than JSON


#: An answer sent event by event as the (simulated) tokens come out.
Events = AsyncIterator[bytes]


class MockEngine:
    """Answers jobs for one MockState: behaviours, output cache, coalescing, prefix cache,
    slots and timing."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.cfg = state.cfg

    def connect(self, connection: Hashable | None) -> float:
        """How long to stall a request (of any kind) that came on `connection` before serving
        it: `connection_setup_ms` on its first, else 0 (None: the connection is unknown)."""
        return self.state.connections.first_use_s(connection)

    def admit(
        self, kind: Kind, raw: bytes, client: str | None = None
    ) -> tuple[Job, FaultKind | None]:
        """Parse a counted generation request for this server's model (BadRequest: refused,
        and counted as such) and draw its fault (counted too). `client` is who sent it (the
        Authorization header's value), when known."""
        state = self.state
        try:
            job = parse_request(kind, raw, self.cfg.model)
        except BadRequest:
            state.rejected += 1
            raise
        if client is not None:
            job = dataclasses.replace(job, client=client)
        fault = state.model.draw_fault(self.cfg.faults, stream=job.stream)
        if fault is not None:
            state.count_fault(fault)
        return job, fault

    async def answer(
        self,
        job: Job,
        fault: FaultKind | None,
        *,
        number: int,
        adjust: Callable[[Timing], Timing] | None = None,
    ) -> Body | Events:
        """Serve `job`, the `number`-th generation request (1-based; a stream's events are
        produced as the caller iterates them). `fault` is the drawn fault if it acts inside the
        answer (truncate, stream_error), else None; `adjust` may change a computed answer's
        timing after the configured behaviours (a test's own timing rule)."""
        state = self.state
        cold = state.shape.cold_s(number)
        if cold > 0.0:
            await asyncio.sleep(cold)
        # A stream fault must show even on a cacheable request, so it bypasses the cache.
        if fault is None:
            cached = await self._cache_hit(job)
            if cached is None and self.cfg.behaviour.coalesce:
                cached = await self._follow(job)
            if cached is not None:
                return Body(render_whole(job, cached, 0, state.next_seq()), stream=job.stream)

        state.computations += 1
        nonce = state.next_seq() if job.temperature > 0 else 0
        if self.cfg.behaviour.same_output:  # a server that ignores its input
            words = generate_words("", job.output_tokens)
        else:
            words = generate_words(job.seed_text, job.output_tokens, nonce)
            # a multiple-choice question ends with the letter the mock believes
            words = answers.answer(job.seed_text, words)
        job, words = state.misbehaviour.answer(job, words, state.in_flight, state.computations)
        reused = state.cache.reused_tokens(job)
        prefix_hit = reused >= job.prompt_tokens > 0
        if reused:
            state.prefix_hits += 1
        timing = state.model.timing(
            job.prompt_tokens, job.output_tokens, prefix_hit=prefix_hit, reused_tokens=reused
        )
        tail = state.shape.is_tail(state.model.rng)
        if tail:
            state.tail_requests += 1
        timing = state.misbehaviour.timing(job, state.shape.shape(timing, number, tail))
        if adjust is not None:
            timing = adjust(timing)
        cached_tokens = reused if state.cache.reports_reuse() else 0
        lead = fault is None and self.cfg.behaviour.coalesce
        if job.stream:
            return self._stream(job, words, timing, cached_tokens, fault, lead)
        shared = self._lead(job) if lead else None
        try:
            await self._compute(job, timing)
        except BaseException:
            self._release(job, shared, None)
            raise
        self._release(job, shared, words)
        state.cache.completed(job, words, state.clock())
        state.completed += 1
        text = " ".join(words)
        return Body(render_json(job, text, cached_tokens, state.next_seq()), stream=False)

    async def _cache_hit(self, job: Job) -> list[str] | None:
        """The stored output for `job` after the hit's (short) service time, or None."""
        state = self.state
        cached = state.cache.output(job, state.clock())
        if cached is None:
            return None
        state.cache_hits += 1
        speedup = self.cfg.cache_speedup
        if speedup is None:
            await asyncio.sleep(CACHE_HIT_S)
        else:
            # a cache that is only `speedup`× faster (detection-power experiments): same slots
            # and jitter as a miss, durations divided by the speed-up
            hit = state.model.timing(job.prompt_tokens, job.output_tokens)
            await asyncio.sleep(hit.base_s / speedup)
            async with state.slots:
                await asyncio.sleep((hit.prefill_s + hit.decode_s) / speedup)
        state.completed += 1
        return cached

    async def _follow(self, job: Job) -> list[str] | None:
        """The answer of an identical request in flight, once it is done (None: there is
        none, or it did not complete)."""
        state = self.state
        shared = state.shared.get(job.cache_key)
        if shared is None:
            return None
        # shield: a follower whose client leaves must not cancel the leader's computation
        words = await asyncio.shield(shared)
        if words is None:
            return None
        state.coalesced += 1
        state.completed += 1
        return words

    def _lead(self, job: Job) -> Shared | None:
        """Announce `job`'s computation to identical requests arriving meanwhile (None when
        one is already announced: the first leader keeps its followers)."""
        shared = self.state.shared
        if job.cache_key in shared:
            return None
        future: Shared = asyncio.get_running_loop().create_future()
        shared[job.cache_key] = future
        return future

    def _release(self, job: Job, shared: Shared | None, words: list[str] | None) -> None:
        """Hand a led computation's words (None: it did not complete) to its followers."""
        if shared is None:
            return
        if self.state.shared.get(job.cache_key) is shared:
            del self.state.shared[job.cache_key]
        if not shared.done():
            shared.set_result(words)

    async def _compute(self, job: Job, timing: Timing) -> None:
        state = self.state
        state.in_flight += 1
        try:
            await asyncio.sleep(timing.base_s)  # HTTP/tokenizer overhead: no slot needed
            async with state.slots:
                # one sleep, not two: loop timers round up to ~1 ms each, and nobody sees the
                # prefill/decode boundary of a non-streamed response
                work = timing.prefill_s + timing.decode_s
                if self.cfg.behaviour.burn_cpu and state.clock is time.monotonic:
                    _burn(work)
                else:
                    await asyncio.sleep(work)
                state.cache.prefilled(job)  # its prompt is now in the KV cache
        finally:
            state.in_flight -= 1

    async def _stream(
        self,
        job: Job,
        words: list[str],
        timing: Timing,
        cached_tokens: int,
        fault: FaultKind | None,
        lead: bool,
    ) -> AsyncIterator[bytes]:
        state = self.state
        maker = ChunkMaker(job, state.next_seq())
        pieces = stream_pieces(words)
        plan = stream_plan(len(words))
        stop_after = in_stream_cutoff(fault, len(pieces))
        # Announced once the stream starts, not when it is made: a stream nobody iterates
        # never runs its `finally`, and would keep its followers waiting for ever.
        shared = self._lead(job) if lead else None
        done: list[str] | None = None
        # a served mock that burns the CPU does so streamed too (streaming is the default)
        burn = self.cfg.behaviour.burn_cpu and state.clock is time.monotonic
        state.in_flight += 1
        try:
            await asyncio.sleep(timing.base_s)
            async with state.slots:
                if burn:
                    _burn(timing.prefill_s)
                else:
                    await asyncio.sleep(timing.prefill_s)
                state.cache.prefilled(job)  # its prompt is now in the KV cache
                for i, (piece, n) in enumerate(zip(pieces, plan, strict=True)):
                    if burn:
                        _burn(n * timing.decode_per_token_s)
                    else:
                        await asyncio.sleep(n * timing.decode_per_token_s)
                    last = i == len(pieces) - 1 and stop_after is None
                    chunk = maker.content(piece, last)
                    # The role chunk goes out with the first token, so TTFT stays honest for
                    # clients that time the first event rather than the first content.
                    yield maker.role() + chunk if i == 0 and job.kind == "chat" else chunk
                    if stop_after is not None and i + 1 == stop_after:
                        if fault == "stream_error":
                            yield stream_error_events()
                        return  # truncate: the HTTP body ends cleanly, but without [DONE]
            done = words
        finally:
            state.in_flight -= 1
            self._release(job, shared, done)
        state.cache.completed(job, words, state.clock())
        state.completed += 1
        yield maker.usage(cached_tokens) + SSE_DONE
