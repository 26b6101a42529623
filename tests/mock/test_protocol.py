"""The mock's request protocol, without a server: bodies in, Jobs or BadRequest out."""

from __future__ import annotations

from typing import Any

import pytest

from auditkit.mock.latency import DEFAULT_MAX_TOKENS, MAX_OUTPUT_TOKENS
from auditkit.mock.protocol import BadRequest, Job, decode_body, parse_job, parse_request

MODEL = "mock-llm"


def completions(**body: Any) -> Job:
    return parse_job("completions", {"prompt": "one two three", **body}, MODEL)


def chat(messages: list[Any], **body: Any) -> Job:
    return parse_job("chat", {"messages": messages, **body}, MODEL)


def refused(kind: Any, body: Any) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        parse_job(kind, body, MODEL)
    return info.value


def test_completion_defaults() -> None:
    job = completions()
    assert (job.kind, job.model, job.seed_text) == ("completions", MODEL, "one two three")
    assert job.prompt_tokens == 3 and job.output_tokens == DEFAULT_MAX_TOKENS
    assert job.temperature == 1.0 and job.stream is False
    assert job.cache_key == ("completions", MODEL, "one two three", DEFAULT_MAX_TOKENS)
    assert job.prompt_key == (MODEL, "one two three")


def test_completion_fields() -> None:
    job = completions(max_tokens=7, temperature=0, stream=True, model="other")
    assert (job.output_tokens, job.temperature, job.stream, job.model) == (7, 0.0, True, "other")
    assert completions(max_tokens=10**6).output_tokens == MAX_OUTPUT_TOKENS
    # a request with no model (or null) gets the served one
    assert completions(model=None).model == MODEL


@pytest.mark.parametrize(
    ("prompt", "text", "tokens"),
    [
        ("a b", "a b", 2),
        (["only one"], "only one", 2),
        ([101, 7, 3], "101 7 3", 3),  # token ids: one word each keeps the count exact
    ],
)
def test_completion_prompt_forms(prompt: Any, text: str, tokens: int) -> None:
    job = parse_job("completions", {"prompt": prompt}, MODEL)
    assert job.seed_text == text and job.prompt_tokens == tokens


def test_chat_counts_every_message_and_keys_on_roles() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image"}]},
        {"role": "assistant", "content": None},
    ]
    job = chat(messages, max_tokens=4)
    assert job.prompt_tokens == 3 and job.output_tokens == 4
    same_text_other_role = chat([{**messages[0], "role": "user"}, *messages[1:]], max_tokens=4)
    assert same_text_other_role.prompt_tokens == job.prompt_tokens
    assert same_text_other_role.cache_key != job.cache_key
    assert same_text_other_role.seed_text != job.seed_text


def test_chat_max_completion_tokens_wins() -> None:
    job = chat([{"role": "user", "content": "x"}], max_tokens=4, max_completion_tokens=9)
    assert job.output_tokens == 9


def test_generate_ignores_model_and_stream() -> None:
    job = parse_job("generate", {"prompt": "p q", "model": "x", "stream": True}, MODEL)
    assert job.model == MODEL and job.stream is False and job.kind == "generate"


def test_cache_key_separates_endpoint_and_length() -> None:
    base = completions(max_tokens=5)
    assert completions(max_tokens=6).cache_key != base.cache_key
    assert completions(max_tokens=6).prompt_key == base.prompt_key
    generate = parse_job("generate", {"prompt": "one two three", "max_tokens": 5}, MODEL)
    assert generate.cache_key != base.cache_key


@pytest.mark.parametrize(
    ("kind", "body", "code"),
    [
        ("completions", [], "invalid_json"),
        ("completions", {"prompt": 3}, "invalid_prompt"),
        ("completions", {"prompt": [True]}, "invalid_prompt"),
        ("completions", {"prompt": "x", "model": 5}, "invalid_value"),
        ("completions", {"prompt": "x", "max_tokens": 0}, "invalid_value"),
        ("completions", {"prompt": "x", "max_tokens": True}, "invalid_value"),
        ("completions", {"prompt": "x", "max_tokens": 1.5}, "invalid_value"),
        ("completions", {"prompt": "x", "temperature": -1}, "invalid_value"),
        ("completions", {"prompt": "x", "stream": "yes"}, "invalid_value"),
        ("chat", {"messages": []}, "invalid_messages"),
        ("chat", {"messages": ["hi"]}, "invalid_messages"),
        ("chat", {"messages": [{"role": "user", "content": 5}]}, "invalid_messages"),
    ],
)
def test_bad_bodies_are_400s_with_a_code(kind: Any, body: Any, code: str) -> None:
    exc = refused(kind, body)
    assert exc.status == 400 and exc.code == code and exc.message


def test_decode_body_and_unknown_model() -> None:
    assert decode_body(b'{"a": 1}') == {"a": 1}
    for raw in (b"{not json", b"\xff\xfe"):
        with pytest.raises(BadRequest, match="not valid JSON"):
            decode_body(raw)
    with pytest.raises(BadRequest) as info:
        parse_request("completions", b'{"prompt": "x", "model": "gpt-unknown"}', MODEL)
    assert info.value.status == 404 and info.value.code == "model_not_found"
    assert parse_request("completions", b'{"prompt": "x"}', MODEL).model == MODEL
