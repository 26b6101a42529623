"""The mock's serving engine: per-server state (latency model, caches, slots, counters,
sequence numbers) and the work of answering a job (sleeping in a slot, streaming, caching).

It produces bytes, never HTTP objects: `app.py` turns them into responses. Everything here runs
on the server's event-loop thread, except `MockState.stats()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from auditkit.config import MockConfig
from auditkit.mock.faults import in_stream_cutoff
from auditkit.mock.latency import (
    ALL_FAULTS,
    CACHE_HIT_S,
    FaultKind,
    LatencyModel,
    LruCache,
    Timing,
    generate_words,
    stream_plan,
)
from auditkit.mock.protocol import Job
from auditkit.mock.render import (
    SSE_DONE,
    ChunkMaker,
    render_json,
    render_stream_at_once,
    stream_error_events,
    stream_pieces,
)


class MockState:
    """Mutable state of one mock server: model, caches, slots, counters.

    Everything here is touched only from the server's event-loop thread, except `stats()`,
    which only reads ints and copies a dict whose key set never changes.
    """

    def __init__(self, cfg: MockConfig) -> None:
        self.cfg = cfg
        self.model = LatencyModel(cfg)
        self.output_cache: LruCache[tuple[object, ...], list[str]] = LruCache()
        self.prefix_cache: LruCache[tuple[object, ...], bool] = LruCache()
        # Created outside a loop on purpose: asyncio primitives bind to the first loop that
        # waits on them (Python ≥ 3.10), i.e. the server thread's loop.
        self.slots = asyncio.Semaphore(cfg.slots)
        self.shutdown_event = asyncio.Event()
        self.started = int(time.time())
        self.requests = 0
        self.completed = 0
        self.rejected = 0
        self.in_flight = 0
        self.cache_hits = 0
        self.prefix_hits = 0
        self.faults: dict[str, int] = dict.fromkeys(ALL_FAULTS, 0)
        self._seq = 0

    def next_seq(self) -> int:
        """A per-server counter: response ids and the temperature > 0 sampling nonce."""
        self._seq += 1
        return self._seq

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
        """Counters so far (safe to call from any thread)."""
        return {
            "requests": self.requests,
            "completed": self.completed,
            "rejected": self.rejected,
            "in_flight": self.in_flight,
            "cache_hits": self.cache_hits,
            "prefix_hits": self.prefix_hits,
            "faults": dict(self.faults),
        }


@dataclass(frozen=True, slots=True)
class Body:
    """A complete answer."""

    data: bytes
    stream: bool  # an SSE body (all events at once) rather than JSON


#: An answer sent event by event as the (simulated) tokens come out.
Events = AsyncIterator[bytes]


class MockEngine:
    """Answers jobs for one MockState: output cache, prefix cache, slots and timing."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.cfg = state.cfg

    async def answer(self, job: Job, fault: FaultKind | None) -> Body | Events:
        """Serve `job` (a stream's events are produced as the caller iterates them). `fault` is
        the drawn fault if it acts inside the answer (truncate, stream_error), else None."""
        state = self.state
        # A stream fault must show even on a cacheable request, so it bypasses the cache.
        if self.cfg.cache == "output" and fault is None:
            cached = await self._cache_hit(job)
            if cached is not None:
                seq = state.next_seq()
                if job.stream:
                    return Body(render_stream_at_once(job, cached, 0, seq), stream=True)
                return Body(render_json(job, " ".join(cached), 0, seq), stream=False)

        nonce = state.next_seq() if job.temperature > 0 else 0
        words = generate_words(job.seed_text, job.output_tokens, nonce)
        prefix_hit = self.cfg.cache == "prefix" and job.prompt_key in state.prefix_cache
        if prefix_hit:
            state.prefix_hits += 1
        timing = state.model.timing(job.prompt_tokens, job.output_tokens, prefix_hit=prefix_hit)
        cached_tokens = job.prompt_tokens if prefix_hit else 0
        if job.stream:
            return self._stream(job, words, timing, cached_tokens, fault)
        await self._compute(job, timing)
        self._remember_output(job, words)
        state.completed += 1
        text = " ".join(words)
        return Body(render_json(job, text, cached_tokens, state.next_seq()), stream=False)

    async def _cache_hit(self, job: Job) -> list[str] | None:
        """The stored output for `job` after the hit's (short) service time, or None."""
        state = self.state
        cached = state.output_cache.get(job.cache_key)
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

    async def _compute(self, job: Job, timing: Timing) -> None:
        state = self.state
        state.in_flight += 1
        try:
            await asyncio.sleep(timing.base_s)  # HTTP/tokenizer overhead: no slot needed
            async with state.slots:
                # one sleep, not two: loop timers round up to ~1 ms each, and nobody sees the
                # prefill/decode boundary of a non-streamed response
                await asyncio.sleep(timing.prefill_s + timing.decode_s)
                self._remember_prompt(job)
        finally:
            state.in_flight -= 1

    async def _stream(
        self,
        job: Job,
        words: list[str],
        timing: Timing,
        cached_tokens: int,
        fault: FaultKind | None,
    ) -> AsyncIterator[bytes]:
        state = self.state
        maker = ChunkMaker(job, state.next_seq())
        pieces = stream_pieces(words)
        plan = stream_plan(len(words))
        stop_after = in_stream_cutoff(fault, len(pieces))
        state.in_flight += 1
        try:
            await asyncio.sleep(timing.base_s)
            async with state.slots:
                await asyncio.sleep(timing.prefill_s)
                self._remember_prompt(job)
                for i, (piece, n) in enumerate(zip(pieces, plan, strict=True)):
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
        finally:
            state.in_flight -= 1
        self._remember_output(job, words)
        state.completed += 1
        yield maker.usage(cached_tokens) + SSE_DONE

    def _remember_prompt(self, job: Job) -> None:
        # The prompt is "in the KV cache" once its prefill is done.
        if self.cfg.cache == "prefix":
            self.state.prefix_cache.put(job.prompt_key, True)

    def _remember_output(self, job: Job, words: list[str]) -> None:
        if self.cfg.cache == "output":
            self.state.output_cache.put(job.cache_key, words)
