"""Adapters: request bodies, response parsing, streaming, and error shapes."""

import json

import pytest

from auditkit.config import EndpointConfig
from auditkit.data import Sample
from auditkit.endpoints import ResponseError, make_adapter
from auditkit.endpoints.json_api import JsonAdapter
from auditkit.endpoints.openai import ChatAdapter, CompletionsAdapter


def test_completions_body_and_parse() -> None:
    a = CompletionsAdapter("m", 16, 0.0, False)
    body = json.loads(a.build_body(Sample(0, "hello")))
    assert body == {
        "model": "m",
        "max_tokens": 16,
        "temperature": 0.0,
        "stream": False,
        "prompt": "hello",
    }
    resp = {"choices": [{"text": "hi"}], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    parsed = a.parse_body(json.dumps(resp).encode())
    assert (parsed.text, parsed.prompt_tokens, parsed.output_tokens) == ("hi", 1, 2)
    assert len(parsed.sha256) == 64


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"<html>oops</html>", "not JSON"),
        (b"[1]", "not an object"),
        (b'{"choices": []}', "no choices"),
        (b'{"error": {"message": "overloaded"}}', "overloaded"),
        (b'{"choices": [{"foo": 1}]}', "no text"),
    ],
)
def test_bad_responses_raise(body: bytes, needle: str) -> None:
    with pytest.raises(ResponseError, match=needle):
        CompletionsAdapter("m", 16, 0.0, False).parse_body(body)


def test_chat_stream_first_token_skips_role_only_chunk() -> None:
    p = ChatAdapter("m", 16, 0.0, True).stream_parser()
    assert (
        p.feed(json.dumps({"choices": [{"delta": {"role": "assistant", "content": ""}}]})) is False
    )
    assert p.feed(json.dumps({"choices": [{"delta": {"content": "Hel"}}]})) is True
    assert p.feed(json.dumps({"choices": [{"delta": {"content": "lo"}}]})) is False
    p.feed(json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}))
    p.feed("[DONE]")
    parsed = p.finish()
    assert parsed.text == "Hello" and parsed.output_tokens == 2


def test_stream_error_event_is_a_failure() -> None:
    p = ChatAdapter("m", 16, 0.0, True).stream_parser()
    with pytest.raises(ResponseError, match="error event"):
        p.feed(json.dumps({"error": {"message": "boom"}}))


def test_truncated_stream_is_a_failure() -> None:
    p = CompletionsAdapter("m", 16, 0.0, True).stream_parser()
    p.feed(json.dumps({"choices": [{"text": "a"}]}))
    with pytest.raises(ResponseError, match="without \\[DONE\\]"):
        p.finish()


def test_json_api_template_and_path() -> None:
    a = JsonAdapter({"input": {"text": "{prompt}"}, "n": 1}, "/gen", "output.0.text")
    assert json.loads(a.build_body(Sample(0, "hi"))) == {"input": {"text": "hi"}, "n": 1}
    assert a.parse_body(b'{"output": [{"text": "yo"}]}').text == "yo"
    with pytest.raises(ResponseError, match="no text at"):
        a.parse_body(b'{"output": []}')


def test_make_adapter_paths() -> None:
    assert make_adapter(EndpointConfig(api="openai-chat"), "m").path == "/v1/chat/completions"
    cfg = EndpointConfig(api="json", body_template={"p": "{prompt}"})
    assert make_adapter(cfg, "m").path == "/generate"


def test_llama_cpp_cache_n_is_read_as_cached_tokens() -> None:
    """llama.cpp reports prompt reuse in `timings.cache_n` (OpenAI in usage's details, which
    wins when both are there); a stream may carry the timings in a chunk of their own."""
    a = CompletionsAdapter("m", 16, 0.0, False)
    resp = {"choices": [{"text": "hi"}], "usage": {"prompt_tokens": 9}, "timings": {"cache_n": 7}}
    assert a.parse_body(json.dumps(resp).encode()).cached_tokens == 7
    both = {**resp, "usage": {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 5}}}
    assert a.parse_body(json.dumps(both).encode()).cached_tokens == 5
    p = ChatAdapter("m", 16, 0.0, True).stream_parser()
    p.feed(json.dumps({"choices": [{"delta": {"content": "Hi"}}]}))
    p.feed(json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}))
    p.feed(json.dumps({"choices": [], "timings": {"cache_n": 2}}))
    p.feed("[DONE]")
    parsed = p.finish()
    assert (parsed.prompt_tokens, parsed.cached_tokens) == (3, 2)
