"""`SimulatedSUT`: an OpenAI-compatible server for the fake transport, in virtual time.

Built on the embedded mock's pure engine (auditkit/mock/latency.py: the seeded LatencyModel,
token counting, output words, stream plan, fault draws, LRU caches), so a simulated phase
behaves like a phase against `auditkit mock` with the same MockConfig, only exact and instant:
`slots` requests are served at once and the rest queue (in virtual time), an output cache
answers repeats in CACHE_HIT_S (or `cache_speedup` times faster), a prefix cache skips the
prefill of a prompt seen before, streams send their first token after prefill and the rest in
at most MAX_STREAM_CHUNKS chunks, and `faults` are drawn per request as the mock draws them.

Two hooks keep new behaviours small: a `CachePolicy` decides what is served from cache (none,
output, prefix are here; a partial or probabilistic cache is one more class), and `Behaviour`s
adjust each request's timing (`ColdStart` is an example; drift or heavy tails are the same shape).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from auditkit.config import MockConfig
from auditkit.loadgen.fake.transport import FakeRequest, FakeResponse, Piece
from auditkit.mock.latency import (
    CACHE_HIT_S,
    DEFAULT_MAX_TOKENS,
    FaultKind,
    LatencyModel,
    LruCache,
    Timing,
    clamp_output_tokens,
    count_tokens,
    generate_words,
    stream_plan,
)

Kind = Literal["completions", "chat"]
KINDS: dict[str, Kind] = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}
JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
#: A hanging request waits this long, then the connection is dropped (as the mock does).
HANG_S = 3600.0
#: A slow-loris answer trickles one byte at a time over about this long.
SLOW_LORIS_S = 3.0
SLOW_LORIS_MIN_GAP_S = 0.005
_DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Job:
    """One parsed generation request."""

    kind: Kind
    model: str
    seed_text: str  # what the output is derived from (chat: roles and contents)
    cache_key: tuple[object, ...]  # (endpoint, model, prompt/messages, max_tokens)
    prompt_key: tuple[object, ...]  # prefix-cache key: (model, prompt/messages)
    prompt_tokens: int
    output_tokens: int
    temperature: float
    stream: bool


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


class CachePolicy(Protocol):
    """What the server may serve from cache, and what it remembers."""

    def output(self, job: Job) -> list[str] | None:
        """A stored answer served without compute, or None."""
        ...

    def prefix(self, job: Job) -> bool:
        """True when the prompt's KV is cached (its prefill is skipped)."""
        ...

    def prefilled(self, job: Job) -> None:
        """The job's prefill is done (its prompt is now in the KV cache)."""
        ...

    def completed(self, job: Job, words: list[str]) -> None:
        """The job's answer is complete."""
        ...


class NoCache:
    """Every request is computed."""

    def output(self, job: Job) -> list[str] | None:
        return None

    def prefix(self, job: Job) -> bool:
        return False

    def prefilled(self, job: Job) -> None:
        pass

    def completed(self, job: Job, words: list[str]) -> None:
        pass


class OutputCache(NoCache):
    """A whole-response cache keyed by (endpoint, model, prompt, max_tokens)."""

    def __init__(self) -> None:
        self._answers: LruCache[tuple[object, ...], list[str]] = LruCache()

    def output(self, job: Job) -> list[str] | None:
        return self._answers.get(job.cache_key)

    def completed(self, job: Job, words: list[str]) -> None:
        self._answers.put(job.cache_key, words)


class PrefixCache(NoCache):
    """A KV cache of whole prompts: a repeat skips prefill; the output is recomputed."""

    def __init__(self) -> None:
        self._prompts: LruCache[tuple[object, ...], bool] = LruCache()

    def prefix(self, job: Job) -> bool:
        return job.prompt_key in self._prompts

    def prefilled(self, job: Job) -> None:
        self._prompts.put(job.prompt_key, True)


def cache_policy(mode: str) -> CachePolicy:
    """The policy for MockConfig.cache ("none", "output" or "prefix")."""
    policies: dict[str, type[NoCache]] = {
        "none": NoCache,
        "output": OutputCache,
        "prefix": PrefixCache,
    }
    return policies[mode]()


class BadRequest(Exception):
    """A request the server refuses (HTTP status and OpenAI error code)."""

    def __init__(self, message: str, code: str = "invalid_request", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def parse_job(kind: Kind, body: Any, default_model: str) -> Job:
    """The job in an OpenAI request body (lenient: the load generator sends valid bodies)."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", "invalid_json")
    model = body.get("model", default_model)
    max_tokens = body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if kind == "chat":
        max_tokens = body.get("max_completion_tokens") or max_tokens
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise BadRequest(f"max_tokens must be a positive integer (got {max_tokens!r})")
    temperature = float(body.get("temperature", 1.0))
    stream = bool(body.get("stream", False))
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list", "invalid_messages")
        pairs = tuple((str(m.get("role", "user")), str(m.get("content") or "")) for m in messages)
        prompt_text = "\n".join(content for _, content in pairs)
        seed_text = "\x1e".join(f"{role}\x1f{content}" for role, content in pairs)
        prompt_id: object = pairs
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("prompt must be a string", "invalid_prompt")
        prompt_text = seed_text = prompt
        prompt_id = prompt
    return Job(
        kind=kind,
        model=str(model),
        seed_text=seed_text,
        cache_key=(kind, model, prompt_id, max_tokens),
        prompt_key=(model, prompt_id),
        prompt_tokens=count_tokens(prompt_text),
        output_tokens=clamp_output_tokens(max_tokens),
        temperature=temperature,
        stream=stream,
    )


# --- rendering (OpenAI shapes) ---------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sse(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def _error_response(status: int, message: str, code: str | int) -> FakeResponse:
    err = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return FakeResponse(status, JSON_HEADERS, _dumps(err))


def _usage(job: Job, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.output_tokens,
        "total_tokens": job.prompt_tokens + job.output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def _head(job: Job, seq: int, chunk: bool) -> dict[str, Any]:
    if job.kind == "chat":
        return {
            "id": f"chatcmpl-sim{seq:010d}",
            "object": "chat.completion.chunk" if chunk else "chat.completion",
            "created": 0,
            "model": job.model,
        }
    return {
        "id": f"cmpl-sim{seq:010d}",
        "object": "text_completion",
        "created": 0,
        "model": job.model,
    }


def render_json(job: Job, words: list[str], cached_tokens: int, seq: int) -> bytes:
    """A non-streamed answer."""
    text = " ".join(words)
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "length"}
    if job.kind == "chat":
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return _dumps(
        {**_head(job, seq, False), "choices": [choice], "usage": _usage(job, cached_tokens)}
    )


def _pieces(words: list[str]) -> list[str]:
    """The output split as the stream sends it (concatenated: the full text)."""
    out: list[str] = []
    pos = 0
    for n in stream_plan(len(words)):
        piece = " ".join(words[pos : pos + n])
        out.append(piece if pos == 0 else " " + piece)
        pos += n
    return out


def _content_event(job: Job, head: dict[str, Any], text: str, last: bool) -> bytes:
    choice: dict[str, Any] = {
        "index": 0,
        "logprobs": None,
        "finish_reason": "length" if last else None,
    }
    if job.kind == "chat":
        choice["delta"] = {"content": text}
    else:
        choice["text"] = text
    return _sse({**head, "choices": [choice]})


def _role_event(head: dict[str, Any]) -> bytes:
    """Chat's first chunk: role only, empty content (what vLLM and OpenAI send)."""
    delta = {"role": "assistant", "content": ""}
    return _sse({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


def _usage_event(job: Job, head: dict[str, Any], cached_tokens: int) -> bytes:
    return _sse({**head, "choices": [], "usage": _usage(job, cached_tokens)})


def render_stream(job: Job, words: list[str], cached_tokens: int, seq: int) -> bytes:
    """A whole event stream as one body (cache hits and slow-loris answers)."""
    head = _head(job, seq, True)
    pieces = _pieces(words)
    parts = [_role_event(head)] if job.kind == "chat" else []
    parts += [_content_event(job, head, p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
    parts += [_usage_event(job, head, cached_tokens), _DONE]
    return b"".join(parts)


# --- the server ------------------------------------------------------------------------------


class SimulatedSUT:
    """A `FakeTransport` handler serving /v1/completions, /v1/chat/completions, /v1/models and
    /health the way `auditkit mock` does with the same MockConfig (see the module doc)."""

    def __init__(
        self,
        cfg: MockConfig | None = None,
        *,
        cache: CachePolicy | None = None,
        behaviours: Sequence[Behaviour] = (),
    ) -> None:
        self.cfg = cfg if cfg is not None else MockConfig()
        self.model = LatencyModel(self.cfg)
        self.cache = cache if cache is not None else cache_policy(self.cfg.cache)
        self.behaviours = tuple(behaviours)
        self.requests = 0
        self.completed = 0
        self.cache_hits = 0
        self.prefix_hits = 0
        self.in_flight = 0
        self.faults: dict[str, int] = {}
        self._seq = 0
        # asyncio primitives bind to one loop; each phase may bring a fresh virtual loop
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def stats(self) -> dict[str, Any]:
        """Counters so far."""
        return {
            "requests": self.requests,
            "completed": self.completed,
            "cache_hits": self.cache_hits,
            "prefix_hits": self.prefix_hits,
            "in_flight": self.in_flight,
            "faults": dict(self.faults),
        }

    @property
    def dead(self) -> bool:
        """True once `faults.die_after` generation requests have been received."""
        limit = self.cfg.faults.die_after
        return limit is not None and self.requests >= limit

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.cfg.slots))
        return self._slots[1]

    def _count(self, fault: FaultKind) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + 1

    async def __call__(self, request: FakeRequest) -> FakeResponse:
        if self.dead:
            self._count("die")
            return FakeResponse(error=ConnectionResetError("auditkit mock: server died"))
        if request.method == "GET":
            return self._get(request.path)
        kind = KINDS.get(request.path)
        if request.method != "POST" or kind is None:
            return _error_response(404, f"Not Found: {request.method} {request.path}", 404)
        self.requests += 1
        try:
            try:
                body = request.json()
            except ValueError:
                raise BadRequest("request body is not valid JSON", "invalid_json") from None
            job = parse_job(kind, body, self.cfg.model)
            if job.model != self.cfg.model:
                raise BadRequest(
                    f"The model `{job.model}` does not exist (this server has `{self.cfg.model}`)",
                    "model_not_found",
                    404,
                )
        except BadRequest as exc:
            return _error_response(exc.status, str(exc), exc.code)
        return await self._generate(job, self.requests)

    def _get(self, path: str) -> FakeResponse:
        if path == "/v1/models":
            entry = {"id": self.cfg.model, "object": "model", "created": 0, "owned_by": "auditkit"}
            return FakeResponse(200, JSON_HEADERS, _dumps({"object": "list", "data": [entry]}))
        if path == "/health":
            return FakeResponse(200, JSON_HEADERS, b'{"status":"ok"}')
        return _error_response(404, f"Not Found: GET {path}", 404)

    async def _generate(self, job: Job, number: int) -> FakeResponse:
        fault = self.model.draw_fault(self.cfg.faults, stream=job.stream)
        if fault is not None:
            self._count(fault)
            special = self._fault_response(fault, job)
            if special is not None:
                return special
        # a stream fault must show even on a cacheable request, so it bypasses the cache
        cached = self.cache.output(job) if fault is None else None
        if cached is not None:
            return await self._serve_hit(job, cached)

        nonce = self._next_seq() if job.temperature > 0 else 0
        words = generate_words(job.seed_text, job.output_tokens, nonce)
        prefix_hit = self.cache.prefix(job)
        if prefix_hit:
            self.prefix_hits += 1
        timing = self.model.timing(job.prompt_tokens, job.output_tokens, prefix_hit=prefix_hit)
        info = RequestInfo(job, number, asyncio.get_running_loop().time())
        for behaviour in self.behaviours:
            timing = behaviour.adjust(timing, info)
        cached_tokens = job.prompt_tokens if prefix_hit else 0
        if job.stream:
            events = self._stream(job, words, timing, cached_tokens, fault)
            return FakeResponse(200, SSE_HEADERS, stream=events)

        self.in_flight += 1
        try:
            await asyncio.sleep(timing.base_s)  # HTTP/tokenizer overhead: no slot needed
            async with self._slot():
                await asyncio.sleep(timing.prefill_s + timing.decode_s)
                self.cache.prefilled(job)
        finally:
            self.in_flight -= 1
        self.cache.completed(job, words)
        self.completed += 1
        body = render_json(job, words, cached_tokens, self._next_seq())
        return FakeResponse(200, JSON_HEADERS, body)

    async def _serve_hit(self, job: Job, words: list[str]) -> FakeResponse:
        self.cache_hits += 1
        speedup = self.cfg.cache_speedup
        if speedup is None:
            await asyncio.sleep(CACHE_HIT_S)
        else:
            # a cache only `speedup`× faster: same slots and jitter as a miss, durations divided
            hit = self.model.timing(job.prompt_tokens, job.output_tokens)
            await asyncio.sleep(hit.base_s / speedup)
            async with self._slot():
                await asyncio.sleep((hit.prefill_s + hit.decode_s) / speedup)
        self.completed += 1
        seq = self._next_seq()
        if job.stream:
            return FakeResponse(200, SSE_HEADERS, render_stream(job, words, 0, seq))
        return FakeResponse(200, JSON_HEADERS, render_json(job, words, 0, seq))

    def _fault_response(self, fault: FaultKind, job: Job) -> FakeResponse | None:
        """The answer for a fault that replaces service (None: serve, the fault acts in-stream)."""
        if fault == "error":
            err = {"error": {"message": "auditkit mock: injected server error", "code": 500}}
            return FakeResponse(500, JSON_HEADERS, _dumps(err))
        if fault == "hang":
            reset = ConnectionResetError("auditkit mock: hung request dropped")
            return FakeResponse(delay_s=HANG_S, error=reset)
        if fault == "reset":
            return FakeResponse(error=ConnectionResetError("auditkit mock: injected reset"))
        if fault == "malformed":
            return FakeResponse(200, JSON_HEADERS, b'{"choices": [')
        if fault == "slow_loris":
            words = generate_words(job.seed_text, job.output_tokens)
            seq = self._next_seq()
            if job.stream:
                body, headers = render_stream(job, words, 0, seq), SSE_HEADERS
            else:
                body, headers = render_json(job, words, 0, seq), JSON_HEADERS
            return FakeResponse(200, headers, stream=_trickle(body))
        return None  # truncate / stream_error act inside the stream

    async def _stream(
        self,
        job: Job,
        words: list[str],
        timing: Timing,
        cached_tokens: int,
        fault: FaultKind | None,
    ) -> AsyncIterator[bytes]:
        head = _head(job, self._next_seq(), True)
        pieces = _pieces(words)
        plan = stream_plan(len(words))
        # truncate / stream_error strike after about half of the content chunks
        stop_after = max(1, len(pieces) // 2) if fault in ("truncate", "stream_error") else None
        self.in_flight += 1
        try:
            await asyncio.sleep(timing.base_s)
            async with self._slot():
                await asyncio.sleep(timing.prefill_s)
                self.cache.prefilled(job)
                for i, (piece, n) in enumerate(zip(pieces, plan, strict=True)):
                    await asyncio.sleep(n * timing.decode_per_token_s)
                    last = i == len(pieces) - 1 and stop_after is None
                    chunk = _content_event(job, head, piece, last)
                    # the role chunk goes out with the first token, as the mock sends it
                    yield _role_event(head) + chunk if i == 0 and job.kind == "chat" else chunk
                    if stop_after is not None and i + 1 == stop_after:
                        if fault == "stream_error":
                            err = {"error": {"message": "auditkit mock: injected error mid-stream"}}
                            yield _sse(err) + _DONE
                        return  # truncate: the body ends cleanly, but without [DONE]
        finally:
            self.in_flight -= 1
        self.cache.completed(job, words)
        self.completed += 1
        yield _usage_event(job, head, cached_tokens) + _DONE


def _trickle(body: bytes) -> list[Piece]:
    """A body one byte at a time over about SLOW_LORIS_S (then the rest at once)."""
    gap = max(SLOW_LORIS_S / max(len(body), 1), SLOW_LORIS_MIN_GAP_S)
    count = min(len(body) - 1, int(SLOW_LORIS_S / gap))
    pieces: list[Piece] = [(gap, body[i : i + 1]) for i in range(count)]
    pieces.append((gap, body[count:]))
    return pieces
