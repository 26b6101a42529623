"""The mock's answers as bytes, and the fault answers chosen for a job, without a server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from auditkit.mock.faults import (
    AbortResponse,
    HangResponse,
    TrickleResponse,
    fault_response,
    in_stream_cutoff,
)
from auditkit.mock.latency import DRAWN_FAULTS, MAX_STREAM_CHUNKS
from auditkit.mock.protocol import Job, parse_job
from auditkit.mock.render import (
    SSE_DONE,
    ChunkMaker,
    error_body,
    render_json,
    render_stream_at_once,
    response_id,
    stream_error_events,
    stream_pieces,
)

WORDS = ["w" + str(i) for i in range(20)]


def job(kind: Any = "completions", **body: Any) -> Job:
    if kind == "chat":
        body.setdefault("messages", [{"role": "user", "content": "a b c"}])
    else:
        body.setdefault("prompt", "a b c")
    return parse_job(kind, {"max_tokens": len(WORDS), **body}, "mock-llm")


def events(raw: bytes) -> list[str]:
    text = raw.decode()
    assert text.endswith("\n\n")
    return [e.removeprefix("data: ") for e in text.split("\n\n") if e]


def test_render_json_completion_and_chat() -> None:
    body = json.loads(render_json(job(), "x y", cached_tokens=2, seq=7))
    assert body["id"] == "cmpl-mock0000000007" and body["object"] == "text_completion"
    assert body["choices"] == [
        {"index": 0, "logprobs": None, "finish_reason": "length", "text": "x y"}
    ]
    assert body["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 20,
        "total_tokens": 23,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    chat = json.loads(render_json(job("chat"), "hi", 0, 1))
    assert chat["id"].startswith("chatcmpl-") and chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    generate = json.loads(render_json(job("generate"), "hi", 0, 1))
    assert set(generate) == {"text", "usage"}


def test_render_json_is_compact_utf8() -> None:
    raw = render_json(job(), "héllo", 0, 1)
    assert b", " not in raw and "héllo".encode() in raw


def test_stream_pieces_rebuild_the_text() -> None:
    pieces = stream_pieces(WORDS)
    assert "".join(pieces) == " ".join(WORDS)
    assert pieces[0] == WORDS[0] and len(pieces) <= MAX_STREAM_CHUNKS
    assert stream_pieces([]) == []


@pytest.mark.parametrize("kind", ["completions", "chat"])
def test_stream_at_once_matches_the_json_answer(kind: Any) -> None:
    j = job(kind)
    data = events(render_stream_at_once(j, WORDS, 3, seq=5))
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["id"] for c in chunks} == {response_id(j, 5)}
    if kind == "chat":
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        chunks = chunks[1:]
    content, usage = chunks[:-1], chunks[-1]
    field = "delta" if kind == "chat" else None
    texts = [
        c["choices"][0][field]["content"] if field else c["choices"][0]["text"] for c in content
    ]
    assert "".join(texts) == " ".join(WORDS)
    assert [c["choices"][0]["finish_reason"] for c in content][-1] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in content[:-1])
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens_details"]["cached_tokens"] == 3


def test_chunk_maker_and_error_events() -> None:
    maker = ChunkMaker(job("chat"), 1)
    assert json.loads(events(maker.content("x", last=False))[0])["choices"][0]["delta"] == {
        "content": "x"
    }
    err = events(stream_error_events())
    assert err[-1] == "[DONE]" and json.loads(err[0])["error"]["type"] == "server_error"
    assert stream_error_events().endswith(SSE_DONE)
    assert error_body("m", "t", 400) == {
        "error": {"message": "m", "type": "t", "param": None, "code": 400}
    }


def test_fault_responses_by_kind() -> None:
    seq = iter(range(1, 100))
    shutdown = asyncio.Event()

    def answer(kind: Any, stream: bool = False) -> Any:
        return fault_response(kind, job(stream=stream), lambda: next(seq), shutdown)

    error = answer("error")
    assert error is not None and error.status_code == 500
    assert json.loads(bytes(error.body))["error"]["type"] == "server_error"
    assert isinstance(answer("hang"), HangResponse)
    assert isinstance(answer("reset"), AbortResponse) and isinstance(answer("die"), AbortResponse)
    malformed = answer("malformed")
    assert malformed is not None and malformed.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(bytes(malformed.body))
    trickle = answer("slow_loris")
    assert isinstance(trickle, TrickleResponse)
    assert len(json.loads(bytes(trickle.body))["choices"][0]["text"].split()) == len(WORDS)
    streamed = answer("slow_loris", stream=True)
    assert isinstance(streamed, TrickleResponse) and bytes(streamed.body).endswith(SSE_DONE)
    assert answer("truncate", stream=True) is None and answer("stream_error") is None
    assert {k for k in DRAWN_FAULTS if answer(k, stream=True) is None} == {
        "truncate",
        "stream_error",
    }


def test_in_stream_cutoff() -> None:
    assert in_stream_cutoff(None, 8) is None and in_stream_cutoff("error", 8) is None
    assert in_stream_cutoff("truncate", 8) == 4 and in_stream_cutoff("stream_error", 1) == 1
