"""The mock's answers as bytes: OpenAI JSON bodies, SSE chunks, usage and error objects.

Pure apart from the wall-clock `created` field: no I/O, no asyncio.
"""

from __future__ import annotations

import json
import time
from typing import Any

from auditkit.mock.latency import stream_plan
from auditkit.mock.protocol import Job

_JSON_SEPARATORS = (",", ":")
#: The event that ends every complete OpenAI stream.
SSE_DONE = b"data: [DONE]\n\n"
#: GET /health.
HEALTH_BODY = b'{"status":"ok"}'
#: What the `malformed` fault answers (with HTTP 200): JSON cut short.
MALFORMED_BODY = b'{"choices": ['
#: Advertised in /v1/models: no prompt is too long for the mock.
MAX_MODEL_LEN = 1 << 20


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, separators=_JSON_SEPARATORS, ensure_ascii=False).encode("utf-8")


def sse_event(obj: Any) -> bytes:
    """One SSE `data:` event carrying `obj` as JSON."""
    return b"data: " + dumps(obj) + b"\n\n"


def error_body(message: str, err_type: str, code: str | int | None) -> dict[str, Any]:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


def models_body(model: str, created: int) -> bytes:
    """GET /v1/models: the one model served (`created`: when the server started)."""
    entry = {
        "id": model,
        "object": "model",
        "created": created,
        "owned_by": "auditkit-mock",
        "max_model_len": MAX_MODEL_LEN,
    }
    return dumps({"object": "list", "data": [entry]})


def usage(job: Job, cached_tokens: int) -> dict[str, Any]:
    """The `usage` object of a finished job (prompt tokens served from a cache: `cached_tokens`)."""
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.output_tokens,
        "total_tokens": job.prompt_tokens + job.output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def logprobs(job: Job, text: str) -> dict[str, Any] | None:
    """The `logprobs` of `text` (one entry per word, the mock's token) if the job asked."""
    if not job.logprobs:
        return None
    words = text.split()
    tokens = [w if i == 0 and not text.startswith(" ") else " " + w for i, w in enumerate(words)]
    if job.kind == "chat":
        return {"content": [{"token": t, "logprob": 0.0} for t in tokens]}
    return {"tokens": tokens, "token_logprobs": [0.0] * len(tokens)}


def response_id(job: Job, seq: int) -> str:
    """`cmpl-…`/`chatcmpl-…` id from the server's sequence number."""
    return f"{'chatcmpl' if job.kind == 'chat' else 'cmpl'}-mock{seq:010d}"


def render_json(job: Job, text: str, cached_tokens: int, seq: int) -> bytes:
    """The non-streaming response body for a finished job."""
    job_usage = usage(job, cached_tokens)
    if job.kind == "generate":
        return dumps({"text": text, "usage": job_usage})
    choice: dict[str, Any] = {
        "index": 0,
        "logprobs": logprobs(job, text),
        "finish_reason": "length",
    }
    if job.kind == "chat":
        choice["message"] = {"role": "assistant", "content": text}
        obj = "chat.completion"
    else:
        choice["text"] = text
        obj = "text_completion"
    return dumps(
        {
            "id": response_id(job, seq),
            "object": obj,
            "created": int(time.time()),
            "model": job.model,
            "choices": [choice],
            "usage": job_usage,
        }
    )


class ChunkMaker:
    """Builds the SSE events of one stream (OpenAI chunk format)."""

    def __init__(self, job: Job, seq: int) -> None:
        self.job = job
        self.head = {
            "id": response_id(job, seq),
            "object": "chat.completion.chunk" if job.kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": job.model,
        }

    def role(self) -> bytes:
        """Chat's first chunk: role only, empty content (what vLLM and OpenAI send)."""
        delta = {"role": "assistant", "content": ""}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        return sse_event({**self.head, "choices": [choice]})

    def content(self, text: str, last: bool) -> bytes:
        """A content chunk; the last one carries finish_reason "length"."""
        choice: dict[str, Any] = {
            "index": 0,
            "logprobs": logprobs(self.job, text),
            "finish_reason": "length" if last else None,
        }
        if self.job.kind == "chat":
            choice["delta"] = {"content": text}
        else:
            choice["text"] = text
        return sse_event({**self.head, "choices": [choice]})

    def usage(self, cached_tokens: int) -> bytes:
        """The final chunk of stream_options.include_usage: no choices, just usage."""
        return sse_event({**self.head, "choices": [], "usage": usage(self.job, cached_tokens)})


def stream_pieces(words: list[str]) -> list[str]:
    """Split the output into stream pieces (per `stream_plan`) whose concatenation is the text."""
    out: list[str] = []
    pos = 0
    for n in stream_plan(len(words)):
        piece = " ".join(words[pos : pos + n])
        out.append(piece if pos == 0 else " " + piece)
        pos += n
    return out


def render_stream_at_once(job: Job, words: list[str], cached_tokens: int, seq: int) -> bytes:
    """A whole SSE stream as one body (output-cache hits and slow-loris trickles)."""
    maker = ChunkMaker(job, seq)
    pieces = stream_pieces(words)
    parts = [maker.role()] if job.kind == "chat" else []
    parts += [maker.content(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
    parts += [maker.usage(cached_tokens), SSE_DONE]
    return b"".join(parts)


def render_whole(job: Job, words: list[str], cached_tokens: int, seq: int) -> bytes:
    """A complete answer as one body: the whole SSE stream for a streaming job, else JSON."""
    if job.stream:
        return render_stream_at_once(job, words, cached_tokens, seq)
    return render_json(job, " ".join(words), cached_tokens, seq)


def injected_error_body() -> bytes:
    """What the `error` fault answers (with HTTP 500)."""
    return dumps(error_body("auditkit mock: injected server error", "server_error", 500))


def stream_error_events() -> bytes:
    """What the `stream_error` fault sends mid-stream: an error event, then [DONE]."""
    err = error_body("auditkit mock: injected error mid-stream", "server_error", 500)
    return sse_event(err) + SSE_DONE
