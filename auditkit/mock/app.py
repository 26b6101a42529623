"""The mock SUT's HTTP layer: an OpenAI-compatible starlette app (DESIGN §8).

Endpoints: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions (both
streaming or not) and POST /generate (a generic JSON API). Behaviour (latency, caches, faults)
comes from the pure model in `latency.py`; this module only parses, sleeps and answers.

The request path avoids pydantic and other per-request overhead on purpose: in tests the mock
shares a process (and the GIL) with the load generator that measures it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from auditkit.config import MockConfig
from auditkit.mock.latency import (
    ALL_FAULTS,
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

#: Key under which our uvicorn protocol (server.py) puts the connection's transport into
#: scope["state"]: ASGI gives an app no way to drop a connection, and fault injection needs one.
TRANSPORT_STATE_KEY = "auditkit.mock.transport"
#: A hanging request waits this long (or until the client leaves or the server stops).
HANG_S = 3600.0
#: A slow-loris response trickles its body one byte at a time over about this long.
SLOW_LORIS_S = 3.0
#: Lower bound on the slow-loris inter-byte gap, to bound its CPU cost.
SLOW_LORIS_MIN_GAP_S = 0.005
#: How long an aborting handler waits for uvicorn to notice the connection is gone.
_ABORT_SETTLE_S = 1.0

Kind = Literal["completions", "chat", "generate"]
_JSON_SEPARATORS = (",", ":")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=_JSON_SEPARATORS, ensure_ascii=False).encode("utf-8")


def _sse(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


_SSE_DONE = b"data: [DONE]\n\n"


def error_body(
    message: str, err_type: str, code: str | int | None, param: str | None = None
) -> Any:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def _error(status: int, message: str, err_type: str, code: str | int | None) -> Response:
    return Response(
        _dumps(error_body(message, err_type, code)), status, media_type="application/json"
    )


class _BadRequest(Exception):
    """A request the mock refuses; carries the HTTP status and OpenAI error fields."""

    def __init__(self, message: str, code: str = "invalid_request", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def response(self) -> Response:
        return _error(self.status, self.message, "invalid_request_error", self.code)


class MockState:
    """Mutable state of one app instance (one per server): model, caches, slots, counters.

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


@dataclass(slots=True)
class _Job:
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


# ---------------------------------------------------------------------------------------------
# request parsing (plain dict checks: cheaper than pydantic on the hot path)


def _int_field(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _BadRequest(f"{name} must be a positive integer (got {value!r})", "invalid_value")
    return value


def _float_field(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _BadRequest(f"{name} must be a number >= 0 (got {value!r})", "invalid_value")
    return float(value)


def _bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _BadRequest(f"{name} must be true or false (got {value!r})", "invalid_value")
    return value


def _completion_prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        # Pre-tokenized prompt: one word per token id keeps the token count exact.
        return " ".join(str(t) for t in prompt)
    raise _BadRequest("prompt must be a string (or a list of token ids)", "invalid_prompt")


def _message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # OpenAI content parts: keep the text parts, ignore the rest (images, audio).
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(t for t in parts if isinstance(t, str))
    raise _BadRequest("message content must be a string or a list of parts", "invalid_messages")


def _chat_messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages must be a non-empty list", "invalid_messages")
    out: list[tuple[str, str]] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise _BadRequest("each message must be an object", "invalid_messages")
        role = msg.get("role", "user")
        out.append(
            (role if isinstance(role, str) else str(role), _message_text(msg.get("content")))
        )
    return out


def parse_job(kind: Kind, body: Any, default_model: str) -> _Job:
    """Validate a request body into a job, raising _BadRequest (400) on bad input."""
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object", "invalid_json")
    model = body.get("model")
    if model is None or kind == "generate":
        model = default_model
    if not isinstance(model, str):
        raise _BadRequest("model must be a string", "invalid_value")
    # Chat's newer name for the same limit wins when both are present.
    max_tokens = _int_field(body, "max_tokens", DEFAULT_MAX_TOKENS)
    if kind == "chat":
        max_tokens = _int_field(body, "max_completion_tokens", max_tokens)
    temperature = _float_field(body, "temperature", 1.0)  # OpenAI's default
    stream = _bool_field(body, "stream") if kind != "generate" else False
    if kind == "chat":
        messages = _chat_messages(body)
        prompt_text = "\n".join(content for _, content in messages)
        seed_text = "\x1e".join(f"{role}\x1f{content}" for role, content in messages)
        prompt_id: object = tuple(messages)
    else:
        prompt_text = seed_text = _completion_prompt(body)
        prompt_id = prompt_text
    return _Job(
        kind=kind,
        model=model,
        seed_text=seed_text,
        cache_key=(kind, model, prompt_id, max_tokens),
        prompt_key=(model, prompt_id),
        prompt_tokens=count_tokens(prompt_text),
        output_tokens=clamp_output_tokens(max_tokens),
        temperature=temperature,
        stream=stream,
    )


# ---------------------------------------------------------------------------------------------
# response rendering


def _usage(job: _Job, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.output_tokens,
        "total_tokens": job.prompt_tokens + job.output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def _response_id(job: _Job, seq: int) -> str:
    return f"{'chatcmpl' if job.kind == 'chat' else 'cmpl'}-mock{seq:010d}"


def render_json(job: _Job, text: str, cached_tokens: int, seq: int) -> bytes:
    """The non-streaming response body for a finished job."""
    usage = _usage(job, cached_tokens)
    if job.kind == "generate":
        return _dumps({"text": text, "usage": usage})
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": "length"}
    if job.kind == "chat":
        choice["message"] = {"role": "assistant", "content": text}
        obj = "chat.completion"
    else:
        choice["text"] = text
        obj = "text_completion"
    return _dumps(
        {
            "id": _response_id(job, seq),
            "object": obj,
            "created": int(time.time()),
            "model": job.model,
            "choices": [choice],
            "usage": usage,
        }
    )


class _ChunkMaker:
    """Builds the SSE events of one stream (OpenAI chunk format)."""

    def __init__(self, job: _Job, seq: int) -> None:
        self.job = job
        self.head = {
            "id": _response_id(job, seq),
            "object": "chat.completion.chunk" if job.kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": job.model,
        }

    def role(self) -> bytes:
        """Chat's first chunk: role only, empty content (what vLLM and OpenAI send)."""
        delta = {"role": "assistant", "content": ""}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        return _sse({**self.head, "choices": [choice]})

    def content(self, text: str, last: bool) -> bytes:
        """A content chunk; the last one carries finish_reason "length"."""
        choice: dict[str, Any] = {
            "index": 0,
            "logprobs": None,
            "finish_reason": "length" if last else None,
        }
        if self.job.kind == "chat":
            choice["delta"] = {"content": text}
        else:
            choice["text"] = text
        return _sse({**self.head, "choices": [choice]})

    def usage(self, cached_tokens: int) -> bytes:
        """The final chunk of stream_options.include_usage: no choices, just usage."""
        return _sse({**self.head, "choices": [], "usage": _usage(self.job, cached_tokens)})


def _pieces(words: list[str]) -> list[str]:
    """Split the output into stream pieces whose concatenation is the full text."""
    out: list[str] = []
    pos = 0
    for n in stream_plan(len(words)):
        piece = " ".join(words[pos : pos + n])
        out.append(piece if pos == 0 else " " + piece)
        pos += n
    return out


def render_stream_at_once(job: _Job, words: list[str], cached_tokens: int, seq: int) -> bytes:
    """A whole SSE stream as one body (output-cache hits and slow-loris trickles)."""
    maker = _ChunkMaker(job, seq)
    pieces = _pieces(words)
    parts = [maker.role()] if job.kind == "chat" else []
    parts += [maker.content(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
    parts += [maker.usage(cached_tokens), _SSE_DONE]
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------
# special responses: raw ASGI control for streams and faults


def _transport(scope: Scope) -> asyncio.Transport | None:
    state = scope.get("state")
    if isinstance(state, dict):
        transport = state.get(TRANSPORT_STATE_KEY)
        # Duck-typed: uvloop's transports are not asyncio.BaseTransport subclasses.
        if transport is not None and hasattr(transport, "abort"):
            return cast(asyncio.Transport, transport)
    return None


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _settle(receive: Receive) -> None:
    """Wait (bounded) until uvicorn has seen the connection go away.

    A handler that gives up on a dead connection and returns earlier makes uvicorn log an
    "ASGI callable returned without ..." error and write into the dead socket.
    """
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_until_disconnect(receive), _ABORT_SETTLE_S)


async def abort_connection(scope: Scope, receive: Receive) -> None:
    """Drop the client's connection with a TCP RST and no HTTP response at all."""
    transport = _transport(scope)
    if transport is None:
        # Not served by our uvicorn protocol (e.g. a test client): failing loudly is the
        # closest thing to a reset available here.
        raise ConnectionResetError("auditkit mock: injected connection reset")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER 0 turns close() into a RST, so the client sees "connection reset by peer"
        # rather than an orderly EOF.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await _settle(receive)


class AbortResponse(Response):
    """Reset the connection instead of answering (faults `reset` and `die_after`)."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await abort_connection(scope, receive)


class HangResponse(Response):
    """Never answer: wait for the client to give up or the server to stop, then drop it."""

    def __init__(self, state: MockState) -> None:
        super().__init__()
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_until_disconnect(receive))
        stopping = asyncio.ensure_future(self.state.shutdown_event.wait())
        try:
            await asyncio.wait(
                {gone, stopping}, timeout=HANG_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            client_left = gone.done() and not gone.cancelled()
            gone.cancel()
            stopping.cancel()
        if not client_left:
            await abort_connection(scope, receive)


class TrickleResponse(Response):
    """Send a valid body one byte at a time over ~SLOW_LORIS_S seconds (fault `slow_loris`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        body = bytes(self.body)
        transport = _transport(scope)
        gap = max(SLOW_LORIS_S / max(len(body), 1), SLOW_LORIS_MIN_GAP_S)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SLOW_LORIS_S
        pos = 0
        while pos < len(body) - 1 and loop.time() < deadline:
            await send(
                {"type": "http.response.body", "body": body[pos : pos + 1], "more_body": True}
            )
            pos += 1
            if transport is not None and transport.is_closing():
                await _settle(receive)  # the client gave up: stop trickling
                return
            await asyncio.sleep(gap)
        await send({"type": "http.response.body", "body": body[pos:], "more_body": False})


class EventStreamResponse(Response):
    """An SSE response fed by an async iterator of ready-made event bytes."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        # Not Response.__init__: it would declare "content-length: 0" for the empty body.
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = _transport(scope)
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        client_left = False
        # aclosing: if we stop early, the generator's `async with slot` must still release.
        async with contextlib.aclosing(self.events) as events:  # type: ignore[type-var]
            async for chunk in events:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if transport is not None and transport.is_closing():
                    client_left = True  # stop generating: frees the slot, as vLLM does
                    break
        if client_left:
            await _settle(receive)
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


# ---------------------------------------------------------------------------------------------
# the app


class _MockApp:
    """Endpoint handlers bound to one MockState."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.cfg = state.cfg

    async def health(self, request: Request) -> Response:
        if self.state.dead:
            return AbortResponse()
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def models(self, request: Request) -> Response:
        if self.state.dead:
            return AbortResponse()
        entry = {
            "id": self.cfg.model,
            "object": "model",
            "created": self.state.started,
            "owned_by": "auditkit-mock",
            "max_model_len": 1 << 20,
        }
        return Response(_dumps({"object": "list", "data": [entry]}), media_type="application/json")

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, "completions")

    async def chat(self, request: Request) -> Response:
        return await self._generate(request, "chat")

    async def generate(self, request: Request) -> Response:
        return await self._generate(request, "generate")

    def _count_fault(self, kind: FaultKind) -> None:
        self.state.faults[kind] += 1

    async def _generate(self, request: Request, kind: Kind) -> Response:
        state = self.state
        if state.dead:
            # die_after: this and every later request gets its connection dropped.
            self._count_fault("die")
            return AbortResponse()
        state.requests += 1
        try:
            raw = await request.body()
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise _BadRequest("request body is not valid JSON", "invalid_json") from None
            job = parse_job(kind, body, self.cfg.model)
            if job.model != self.cfg.model:
                raise _BadRequest(
                    f"The model `{job.model}` does not exist (this server has `{self.cfg.model}`)",
                    "model_not_found",
                    404,
                )
        except _BadRequest as exc:
            state.rejected += 1
            return exc.response()

        fault = state.model.draw_fault(self.cfg.faults, stream=job.stream)
        if fault is not None:
            self._count_fault(fault)
            special = self._fault_response(fault, job)
            if special is not None:
                return special

        # A stream fault must show even on a cacheable request, so it bypasses the cache.
        if self.cfg.cache == "output" and fault is None:
            cached = state.output_cache.get(job.cache_key)
            if cached is not None:
                state.cache_hits += 1
                speedup = self.cfg.cache_speedup
                if speedup is None:
                    await asyncio.sleep(CACHE_HIT_S)
                else:
                    # a cache that is only `speedup`× faster (detection-power experiments):
                    # same slots and jitter as a miss, durations divided by the speed-up
                    hit = state.model.timing(job.prompt_tokens, job.output_tokens)
                    await asyncio.sleep(hit.base_s / speedup)
                    async with state.slots:
                        await asyncio.sleep((hit.prefill_s + hit.decode_s) / speedup)
                state.completed += 1
                return self._render_now(job, cached, 0)

        nonce = state.next_seq() if job.temperature > 0 else 0
        words = generate_words(job.seed_text, job.output_tokens, nonce)
        prefix_hit = self.cfg.cache == "prefix" and job.prompt_key in state.prefix_cache
        if prefix_hit:
            state.prefix_hits += 1
        timing = state.model.timing(job.prompt_tokens, job.output_tokens, prefix_hit=prefix_hit)
        cached_tokens = job.prompt_tokens if prefix_hit else 0
        if job.stream:
            return EventStreamResponse(self._stream(job, words, timing, cached_tokens, fault))

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
        self._remember_output(job, words)
        state.completed += 1
        return Response(
            render_json(job, " ".join(words), cached_tokens, state.next_seq()),
            media_type="application/json",
        )

    def _fault_response(self, fault: FaultKind, job: _Job) -> Response | None:
        """The response for a fault that replaces normal service (None: serve, fault in-stream)."""
        if fault == "error":
            return _error(500, "auditkit mock: injected server error", "server_error", 500)
        if fault == "hang":
            return HangResponse(self.state)
        if fault == "reset":
            return AbortResponse()
        if fault == "malformed":
            return Response(b'{"choices": [', media_type="application/json")
        if fault == "slow_loris":
            # A complete, valid answer (no slot, no compute): only its delivery is slow.
            words = generate_words(job.seed_text, job.output_tokens)
            if job.stream:
                body = render_stream_at_once(job, words, 0, self.state.next_seq())
                return TrickleResponse(body, media_type="text/event-stream")
            body = render_json(job, " ".join(words), 0, self.state.next_seq())
            return TrickleResponse(body, media_type="application/json")
        return None  # truncate / stream_error act inside the stream

    def _render_now(self, job: _Job, text_words: list[str], cached_tokens: int) -> Response:
        seq = self.state.next_seq()
        if job.stream:
            body = render_stream_at_once(job, text_words, cached_tokens, seq)
            return Response(body, media_type="text/event-stream")
        return Response(
            render_json(job, " ".join(text_words), cached_tokens, seq),
            media_type="application/json",
        )

    def _remember_prompt(self, job: _Job) -> None:
        # The prompt is "in the KV cache" once its prefill is done.
        if self.cfg.cache == "prefix":
            self.state.prefix_cache.put(job.prompt_key, True)

    def _remember_output(self, job: _Job, words: list[str]) -> None:
        if self.cfg.cache == "output":
            self.state.output_cache.put(job.cache_key, words)

    async def _stream(
        self,
        job: _Job,
        words: list[str],
        timing: Timing,
        cached_tokens: int,
        fault: FaultKind | None,
    ) -> AsyncIterator[bytes]:
        state = self.state
        maker = _ChunkMaker(job, state.next_seq())
        pieces = _pieces(words)
        plan = stream_plan(len(words))
        # truncate / stream_error strike after about half of the content chunks.
        stop_after = max(1, len(pieces) // 2) if fault in ("truncate", "stream_error") else None
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
                            err = error_body(
                                "auditkit mock: injected error mid-stream", "server_error", 500
                            )
                            yield _sse(err) + _SSE_DONE
                        return  # truncate: the HTTP body ends cleanly, but without [DONE]
        finally:
            state.in_flight -= 1
        self._remember_output(job, words)
        state.completed += 1
        yield maker.usage(cached_tokens) + _SSE_DONE


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods get OpenAI-style JSON errors, not starlette's text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return _error(
        status, f"{detail}: {request.method} {request.url.path}", "invalid_request_error", status
    )


def create_app(cfg: MockConfig | None = None) -> Starlette:
    """The mock SUT as a starlette app; its MockState is `app.state.mock`.

    Serve it with `MockServer` (or `serve_forever`): fault kinds that drop connections need the
    transport that only our uvicorn protocol exposes.
    """
    state = MockState(cfg if cfg is not None else MockConfig())
    handlers = _MockApp(state)
    routes = [
        Route("/health", handlers.health, methods=["GET"]),
        Route("/v1/models", handlers.models, methods=["GET"]),
        Route("/v1/completions", handlers.completions, methods=["POST"]),
        Route("/v1/chat/completions", handlers.chat, methods=["POST"]),
        Route("/generate", handlers.generate, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.mock = state
    return app
