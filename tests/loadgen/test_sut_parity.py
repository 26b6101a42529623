"""SimulatedSUT and the real mock answer the same requests with the same bytes.

The same sequence of requests goes to a fresh `SimulatedSUT` (in memory, virtual time) and to a
fresh `MockServer` (uvicorn on 127.0.0.1) with one MockConfig; both number their responses the
same way, so only the wall-clock `created` field may differ.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from auditkit.config import FaultConfig, MockConfig
from auditkit.loadgen.fake import FakeRequest, SimulatedSUT, run_virtual
from auditkit.loadgen.fake.transport import FakeBody
from auditkit.mock import MockServer

#: fast and exact: the test compares bytes, never timing
FAST = {"jitter_cv": 0.0, "base_latency_ms": 0.0, "prefill_us_per_token": 0.0}
PROMPT = "the quick brown fox jumps over the lazy dog"
CHAT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]

Request = tuple[str, str, bytes]


def post(path: str, body: Any) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ("POST", path, raw)


def completion(**body: Any) -> Request:
    return post("/v1/completions", {"model": "mock-llm", "prompt": PROMPT, **body})


def chat(**body: Any) -> Request:
    return post("/v1/chat/completions", {"model": "mock-llm", "messages": CHAT, **body})


def simulated(cfg: MockConfig, requests: list[Request]) -> list[tuple[int, bytes]]:
    sut = SimulatedSUT(cfg)

    async def ask(method: str, path: str, body: bytes) -> tuple[int, bytes]:
        response = await sut(FakeRequest(method, f"http://sut.invalid{path}", {}, body, 0))
        return response.status, await FakeBody(response).read()

    return [run_virtual(ask(*request)) for request in requests]


def served(cfg: MockConfig, requests: list[Request]) -> list[tuple[int, bytes]]:
    with MockServer(cfg) as mock, httpx.Client(base_url=mock.url, timeout=10.0) as client:
        answers = []
        for method, path, body in requests:
            response = client.request(method, path, content=body)
            answers.append((response.status_code, response.content))
        return answers


def without_created(answers: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return [(status, re.sub(rb'"created":\d+', b'"created":0', body)) for status, body in answers]


def assert_same_answers(cfg: MockConfig, requests: list[Request]) -> None:
    sim, real = simulated(cfg, requests), served(cfg, requests)
    assert without_created(sim) == without_created(real)


@pytest.mark.parametrize("cache", ["none", "output", "prefix"])
def test_generation_answers_match_the_mock(cache: str) -> None:
    requests = [
        completion(max_tokens=12),
        completion(max_tokens=12),  # a repeat: an output-cache hit, a prefix-cache hit
        completion(max_tokens=40, stream=True),
        completion(max_tokens=40, stream=True, stream_options={"include_usage": True}),
        chat(max_tokens=20),
        chat(max_completion_tokens=33, stream=True),
        chat(max_completion_tokens=33, stream=True),
        chat(max_tokens=8, temperature=0.7),  # sampled: the nonce is the response number
        completion(prompt=[1, 2, 3], max_tokens=5),
        post("/generate", {"prompt": PROMPT, "max_tokens": 6}),
        ("GET", "/health", b""),
        ("GET", "/v1/models", b""),
    ]
    assert_same_answers(MockConfig(**FAST, cache=cache), requests)  # type: ignore[arg-type]


def test_refusals_match_the_mock() -> None:
    requests = [
        post("/v1/completions", b"{not json"),
        post("/v1/completions", [1, 2]),
        completion(model="other"),
        completion(max_tokens=0),
        completion(temperature=-1),
        completion(stream="yes"),
        completion(prompt=None),
        chat(messages=[]),
        chat(messages=["hi"]),
        completion(max_tokens=3),  # still serving after the refusals
    ]
    assert_same_answers(MockConfig(**FAST), requests)


@pytest.mark.parametrize(
    ("rate", "stream"),
    [("error_rate", False), ("malformed_rate", False), ("truncate_rate", True),
     ("stream_error_rate", True)],
)  # fmt: skip
def test_fault_answers_match_the_mock(rate: str, stream: bool) -> None:
    cfg = MockConfig(**FAST, faults=FaultConfig(**{rate: 1.0}))
    assert_same_answers(cfg, [completion(max_tokens=30, stream=stream), chat(stream=stream)])
