"""The embedded mock SUT, exercised over real HTTP on loopback (httpx, plus aiohttp where the
load generator's view of a fault matters)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from auditkit.config import FaultConfig, MockConfig
from auditkit.errors import SetupError
from auditkit.mock import MockServer
from auditkit.mock.latency import (
    MAX_STREAM_CHUNKS,
    LatencyModel,
    clamp_output_tokens,
    generate_words,
    stream_plan,
)

PROMPT = "the quick brown fox jumps over the lazy dog"  # 9 words


def mock_cfg(**kw: Any) -> MockConfig:
    """A deterministic, fast mock: no jitter, no base latency unless asked for."""
    kw.setdefault("jitter_cv", 0.0)
    kw.setdefault("base_latency_ms", 0.0)
    return MockConfig(**kw)


def faulty(**rates: Any) -> MockConfig:
    return mock_cfg(faults=FaultConfig(**rates))


def sse_data(text: str) -> list[str]:
    """The payloads of an SSE body's `data:` lines, in order."""
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


def completion(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/completions", json={"model": "mock-llm", "prompt": PROMPT, **body})


def timed(fn: Any, *args: Any, **kw: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Faults must look deliberate: uvicorn must not log errors (tracebacks, stray 500s)."""
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    errors = [r for r in records if r.name.startswith("uvicorn") and r.levelno >= 40]
    assert not errors, [r.getMessage() for r in errors]


@pytest.fixture(scope="module")
def plain() -> Iterator[MockServer]:
    with MockServer(mock_cfg()) as server:
        yield server


@pytest.fixture
def client(plain: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=plain.url, timeout=5.0) as c:
        yield c


# --------------------------------------------------------------------------------------------
# the pure model


def test_stream_plan_groups_tokens_into_few_chunks() -> None:
    assert stream_plan(1) == [1]
    assert stream_plan(3) == [1, 1, 1]
    plan = stream_plan(1000)
    assert plan[0] == 1 and sum(plan) == 1000 and len(plan) == MAX_STREAM_CHUNKS
    assert clamp_output_tokens(10**6) == 4096


def test_latency_model_is_seeded_with_mean_one_jitter() -> None:
    a, b = (
        LatencyModel(mock_cfg(jitter_cv=0.5, seed=7)),
        LatencyModel(mock_cfg(jitter_cv=0.5, seed=7)),
    )
    draws = [a.jitter() for _ in range(20_000)]
    assert draws[:50] == [b.jitter() for _ in range(50)]
    assert sum(draws) / len(draws) == pytest.approx(1.0, abs=0.03)
    fixed = LatencyModel(mock_cfg(prefill_us_per_token=10, decode_us_per_token=100))
    t = fixed.timing(100, 50)
    assert (t.prefill_s, t.decode_s) == pytest.approx((1e-3, 5e-3))
    assert fixed.timing(100, 50, prefix_hit=True).prefill_s == 0.0


def test_stream_only_faults_never_hit_plain_requests() -> None:
    model = LatencyModel(faulty(truncate_rate=1.0, stream_error_rate=1.0))
    assert model.draw_fault(model.cfg.faults, stream=False) is None
    assert model.draw_fault(model.cfg.faults, stream=True) == "truncate"
    assert generate_words("p", 5) == generate_words("p", 8)[:5]  # greedy: prefix-consistent


# --------------------------------------------------------------------------------------------
# protocol


def test_models_and_health(client: httpx.Client) -> None:
    assert client.get("/health").status_code == 200
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["mock-llm"]


def test_completion_has_openai_shape_and_usage(client: httpx.Client) -> None:
    r = completion(client, max_tokens=7, temperature=0.0)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "text_completion" and body["model"] == "mock-llm"
    assert body["id"] and isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "length" and len(choice["text"].split()) == 7
    assert body["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 7,
        "total_tokens": 16,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_chat_counts_all_message_words(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello there mock"}]},
    ]
    r = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 4})
    body = r.json()
    assert r.status_code == 200 and body["object"] == "chat.completion"
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    assert len(choice["message"]["content"].split()) == 4
    assert body["usage"]["prompt_tokens"] == 5 and body["usage"]["completion_tokens"] == 4


def test_generic_json_api(client: httpx.Client) -> None:
    body = client.post("/generate", json={"prompt": PROMPT, "max_tokens": 3}).json()
    assert len(body["text"].split()) == 3
    assert body["usage"]["prompt_tokens"] == 9 and body["usage"]["total_tokens"] == 12


def test_chat_stream_role_chunk_content_usage_done(client: httpx.Client) -> None:
    req = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 50, "temperature": 0}
    r = client.post("/v1/chat/completions", json={**req, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    data = sse_data(r.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c for c in chunks[1:] if c["choices"]]
    assert 1 < len(content) <= MAX_STREAM_CHUNKS
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 50
    text = "".join(c["choices"][0]["delta"]["content"] for c in content)
    plain = client.post("/v1/chat/completions", json=req).json()
    assert text == plain["choices"][0]["message"]["content"]  # same seed, same words


def test_completion_stream(client: httpx.Client) -> None:
    r = completion(client, max_tokens=5, stream=True)
    data = sse_data(r.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]).count(" ") == 4
    assert chunks[-1]["usage"]["prompt_tokens"] == 9


def test_bad_requests_get_openai_errors(client: httpx.Client) -> None:
    r = completion(client, model="gpt-unknown")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found" and "message" in r.json()["error"]
    r = client.post("/v1/completions", content=b"{not json", headers={"content-type": "x"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert completion(client, max_tokens=0).status_code == 400
    assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 400
    assert client.get("/v2/nothing").json()["error"]["code"] == 404


def test_stats_endpoint_is_neither_counted_nor_faulted() -> None:
    with MockServer(faulty(error_rate=1.0, die_after=0)) as server:
        for _ in range(2):
            r = httpx.get(f"{server.url}/mock/stats")
            assert r.status_code == 200 and r.json() == server.stats()
        assert server.stats()["requests"] == 0


def test_temperature_without_cache(client: httpx.Client) -> None:
    def text(temperature: float) -> str:
        return str(completion(client, max_tokens=8, temperature=temperature).json()["choices"])

    assert text(1.0) != text(1.0)
    assert text(0.0) == text(0.0)


# --------------------------------------------------------------------------------------------
# latency, slots, caches


@pytest.mark.timing
def test_latency_scales_with_max_tokens() -> None:
    with (
        MockServer(mock_cfg(decode_us_per_token=1000)) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        completion(c, max_tokens=1)  # warm the connection
        short, _ = timed(completion, c, max_tokens=5)
        long, _ = timed(completion, c, max_tokens=100)
    assert long >= 0.095
    assert long - short >= 0.08


async def _burst(url: str, n: int, max_tokens: int) -> float:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as c:
        body = {"prompt": PROMPT, "max_tokens": max_tokens}
        await c.post("/v1/completions", json=body)  # warm up
        t0 = time.perf_counter()
        rs = await asyncio.gather(*(c.post("/v1/completions", json=body) for _ in range(n)))
        assert all(r.status_code == 200 for r in rs)
        return time.perf_counter() - t0


@pytest.mark.timing
def test_slots_bound_throughput() -> None:
    elapsed = {}
    for slots in (2, 8):
        with MockServer(mock_cfg(slots=slots, decode_us_per_token=1000)) as server:
            elapsed[slots] = asyncio.run(_burst(server.url, 8, 20))  # 8 requests of 20 ms
    assert elapsed[2] >= 0.075  # 4 waves of 20 ms
    assert elapsed[8] < elapsed[2]


@pytest.mark.timing
def test_output_cache_hit_is_fast_and_identical() -> None:
    with (
        MockServer(mock_cfg(cache="output", decode_us_per_token=1000)) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        completion(c, max_tokens=1, prompt="warm up")
        miss, first = timed(completion, c, max_tokens=60, temperature=1.0)
        hit, second = timed(completion, c, max_tokens=60, temperature=1.0)
        assert first.json()["choices"][0]["text"] == second.json()["choices"][0]["text"]
        assert miss >= 0.055 and hit < miss / 4
        # A different max_tokens is a different cache entry (and a fresh sample).
        other = completion(c, max_tokens=61, temperature=1.0).json()["choices"][0]["text"]
        assert not other.startswith(first.json()["choices"][0]["text"])
        # Streaming hits come back all at once with the same text.
        req = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 40, "stream": True}
        texts = []
        for _ in range(2):
            data = sse_data(c.post("/v1/chat/completions", json=req).text)
            assert data[-1] == "[DONE]"
            chunks = [json.loads(d) for d in data[:-1]]
            texts.append("".join(ch["choices"][0]["delta"]["content"] for ch in chunks[:-1]))
        assert texts[0] == texts[1]
        stats = server.stats()
    assert stats["cache_hits"] == 2 and stats["requests"] == 6


@pytest.mark.timing
def test_prefix_cache_skips_only_prefill() -> None:
    cfg = mock_cfg(cache="prefix", prefill_us_per_token=2000, decode_us_per_token=1000)
    prompt = " ".join(["word"] * 40)  # 80 ms of prefill; 20 tokens = 20 ms of decode
    with MockServer(cfg) as server, httpx.Client(base_url=server.url) as c:
        completion(c, max_tokens=1, prompt="warm up")
        cold, first = timed(completion, c, prompt=prompt, max_tokens=20)
        warm, second = timed(completion, c, prompt=prompt, max_tokens=20)
        assert server.stats()["prefix_hits"] == 1
    assert first.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert second.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 40
    assert cold >= 0.095
    assert 0.018 <= warm < cold - 0.05  # decode still paid, prefill gone


@pytest.mark.parametrize("stream", [False, True])
def test_burn_cpu_spins_for_the_work_streamed_or_not(
    stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A served mock with `behaviour.burn_cpu` spends its computation on the CPU, streamed
    (the default) as well as not: the spins add up to prefill + decode, and nothing sleeps."""
    from auditkit.config import BehaviourConfig
    from auditkit.mock import engine

    spun: list[float] = []
    monkeypatch.setattr(engine, "_burn", spun.append)  # record instead of spinning
    cfg = mock_cfg(
        prefill_us_per_token=1000,
        decode_us_per_token=2000,
        behaviour=BehaviourConfig(burn_cpu=True),
    )
    with MockServer(cfg) as server, httpx.Client(base_url=server.url) as c:
        resp = completion(c, max_tokens=10, stream=stream)
    assert resp.status_code == 200
    assert ("data: [DONE]" in resp.text) is stream
    # 9 prompt words × 1 ms + 10 tokens × 2 ms
    assert sum(spun) == pytest.approx(0.009 + 0.020)
    assert len(spun) > 2 if stream else len(spun) == 1  # streamed: prefill, then each chunk


def test_client_leaving_a_stream_frees_its_slot() -> None:
    cfg = mock_cfg(slots=1, decode_us_per_token=1000)
    with MockServer(cfg) as server, httpx.Client(base_url=server.url) as c:
        body = {"prompt": PROMPT, "max_tokens": 2000, "stream": True}  # 2 s if run to the end
        with c.stream("POST", "/v1/completions", json=body) as r:
            next(r.iter_raw())
        waited, second = timed(completion, c, max_tokens=1)
        assert second.status_code == 200 and waited < 1.0
        assert server.stats()["in_flight"] == 0


# --------------------------------------------------------------------------------------------
# faults, as a client sees them


def test_fault_error_is_500_with_error_body() -> None:
    with MockServer(faulty(error_rate=1.0)) as server:
        r = httpx.post(f"{server.url}/v1/completions", json={"prompt": PROMPT})
        assert server.stats()["faults"]["error"] == 1
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"


def test_fault_hang_times_out_and_stop_cancels_it() -> None:
    with MockServer(faulty(hang_rate=1.0)) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/v1/completions", json={"prompt": PROMPT}, timeout=0.3)
        # A hanging request still connected at shutdown is dropped, not waited for.
        raw = socket.create_connection(("127.0.0.1", server.port))
        body = b'{"prompt": "x"}'
        raw.sendall(
            b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        time.sleep(0.05)
        stop_s, _ = timed(server.stop)
    assert stop_s < 1.5
    raw.settimeout(2.0)
    try:
        assert raw.recv(100) == b""
    except ConnectionResetError:
        pass
    finally:
        raw.close()


def test_fault_reset_is_a_connection_error_not_a_500() -> None:
    with MockServer(faulty(reset_rate=1.0)) as server:
        with pytest.raises(httpx.TransportError):
            httpx.post(f"{server.url}/v1/completions", json={"prompt": PROMPT})

        async def with_aiohttp() -> None:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ClientConnectionError):
                    await session.post(f"{server.url}/v1/completions", json={"prompt": PROMPT})

        asyncio.run(with_aiohttp())
        assert server.stats()["faults"]["reset"] == 2


def test_fault_malformed_is_invalid_json() -> None:
    with MockServer(faulty(malformed_rate=1.0)) as server:
        r = httpx.post(f"{server.url}/v1/completions", json={"prompt": PROMPT})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_fault_truncate_ends_stream_without_done() -> None:
    with MockServer(faulty(truncate_rate=1.0)) as server, httpx.Client(base_url=server.url) as c:
        data = sse_data(completion(c, max_tokens=30, stream=True).text)
        assert data and "[DONE]" not in data
        assert all("usage" not in json.loads(d) for d in data)
        normal = completion(c, max_tokens=30)  # non-streaming: unaffected
    assert normal.status_code == 200 and normal.json()["usage"]["completion_tokens"] == 30


def test_fault_stream_error_event_then_done() -> None:
    with (
        MockServer(faulty(stream_error_rate=1.0)) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        req = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 30, "stream": True}
        data = sse_data(c.post("/v1/chat/completions", json=req).text)
    assert data[-1] == "[DONE]"
    assert "message" in json.loads(data[-2])["error"]


def test_fault_slow_loris_trickles_bytes() -> None:
    with (
        MockServer(faulty(slow_loris_rate=1.0)) as server,
        httpx.Client(base_url=server.url, timeout=5.0) as c,
    ):
        pieces: list[bytes] = []
        t0 = time.perf_counter()
        with c.stream("POST", "/v1/completions", json={"prompt": PROMPT, "max_tokens": 8}) as r:
            assert r.status_code == 200
            for piece in r.iter_raw():
                pieces.append(piece)
                if time.perf_counter() - t0 > 0.4:
                    break
    received = b"".join(pieces)
    assert len(pieces) >= 3 and max(len(p) for p in pieces) <= 4
    assert len(received) < int(r.headers["content-length"])  # still incomplete after 0.4 s


def test_die_after_drops_everything_after_n_requests() -> None:
    with MockServer(faulty(die_after=2)) as server, httpx.Client(base_url=server.url) as c:
        assert completion(c).status_code == 200
        assert completion(c).status_code == 200
        with pytest.raises(httpx.TransportError):
            completion(c)
        with pytest.raises(httpx.TransportError):
            c.get("/v1/models")
        assert server.stats()["faults"]["die"] == 1
        assert server.stats()["requests"] == 2


# --------------------------------------------------------------------------------------------
# lifecycle


def test_two_servers_in_one_process_and_clean_stop() -> None:
    a, b = MockServer(mock_cfg(model="a")), MockServer(mock_cfg(model="b"))
    with a, b:
        assert a.port != b.port
        assert httpx.get(f"{a.url}/v1/models").json()["data"][0]["id"] == "a"
        assert httpx.get(f"{b.url}/v1/models").json()["data"][0]["id"] == "b"
    assert not a.running and not b.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{a.url}/health")
    a.stop()  # idempotent
    assert a.stats()["requests"] == 0


def test_busy_port_is_a_setup_error() -> None:
    with MockServer(mock_cfg()) as server, pytest.raises(SetupError, match="cannot listen"):
        MockServer(mock_cfg(), port=server.port).start()


def test_usable_inside_a_running_event_loop() -> None:
    async def main() -> None:
        server = MockServer(mock_cfg()).start()  # blocking start from a running loop (Jupyter)
        try:
            async with httpx.AsyncClient(base_url=server.url) as c:
                assert (await c.get("/health")).status_code == 200
        finally:
            server.stop()
        async with MockServer(mock_cfg()) as other, httpx.AsyncClient(base_url=other.url) as c:
            r = await c.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 2})
            assert r.status_code == 200

    asyncio.run(main())
