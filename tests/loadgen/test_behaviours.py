"""The mock's real-server behaviours (`MockConfig.behaviour`) on the simulated SUT, in exact
virtual time: cold start, drift, heavy tail, connection set-up, and the output cache's
admission, TTL, normalised keys, partial misses, prepopulated entries and request coalescing.
Plus: the served mock answers a behaviour's requests with the same bytes."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkit.config import BehaviourConfig, MockConfig
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints.openai import ChatAdapter, CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.fake import FakeRequest, FakeTransport, SimulatedSUT, run_virtual
from auditkit.loadgen.fake.transport import FakeBody
from auditkit.mock import MockServer
from auditkit.mock.latency import CACHE_HIT_S
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import PhaseResult

TARGET = HttpTarget("http://sut.invalid")
#: no jitter, no prefill, 1 ms per output token: a request with max_tokens 10 takes 10 ms
EXACT = {"jitter_cv": 0.0, "base_latency_ms": 0.0, "prefill_us_per_token": 0.0}
MS = 1_000_000
COMPUTED = 10 * MS
HIT = round(CACHE_HIT_S * 1e9)


def sut(cache: str = "none", slots: int = 8, **behaviour: Any) -> SimulatedSUT:
    """Exact timing, enough slots that 8 requests in flight never queue."""
    cfg = MockConfig(
        **EXACT,
        decode_us_per_token=1000.0,
        slots=slots,
        cache=cache,
        behaviour=BehaviourConfig(**behaviour),
    )
    return SimulatedSUT(cfg)


def phase(
    server: SimulatedSUT | FakeTransport,
    dataset: Dataset,
    order: SampleOrder,
    n: int,
    *,
    adapter: CompletionsAdapter | ChatAdapter | None = None,
    **load: Any,
) -> PhaseResult:
    pattern = LoadPattern(**{"scenario": "single-stream", **load})
    spec = RunSpec("p", order, n, pattern)
    adapter = adapter or CompletionsAdapter("mock-llm", 10, 0.0, False)
    transport = server if isinstance(server, FakeTransport) else FakeTransport(server)
    return run_phase(spec, dataset, adapter, TARGET, transport=transport)


def latencies(result: PhaseResult) -> list[int]:
    return [int(ns) for ns in result.records["latency_ns"]]


async def ask(server: SimulatedSUT, prompt: str, **body: Any) -> tuple[int, str]:
    """One completion on the running virtual loop: (virtual ns it took, its text)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    raw = json.dumps({"model": "mock-llm", "prompt": prompt, "max_tokens": 10, **body}).encode()
    response = await server(FakeRequest("POST", "http://sut.invalid/v1/completions", {}, raw, 0))
    data = json.loads(await FakeBody(response).read())
    return round((loop.time() - start) * 1e9), data["choices"][0]["text"]


def asked(server: SimulatedSUT, prompts: list[str], **body: Any) -> list[tuple[int, str]]:
    """Completions one after another on one virtual loop."""

    async def script() -> list[tuple[int, str]]:
        return [await ask(server, p, **body) for p in prompts]

    return run_virtual(script())


# --------------------------------------------------------------------------------------------
# service time


def test_cold_start_slows_the_first_requests_by_exactly_its_time(dataset: Dataset) -> None:
    server = sut(cold_start_requests=2, cold_start_ms=500.0)
    r = phase(server, dataset, SampleOrder.without_replacement(0), 5)
    assert latencies(r) == [510 * MS] * 2 + [COMPUTED] * 3


def test_a_cold_server_is_slow_on_cache_hits_too(dataset: Dataset) -> None:
    server = sut("output", cold_start_requests=3, cold_start_ms=500.0)
    r = phase(server, dataset, SampleOrder.single(5), 4)
    assert latencies(r) == [510 * MS, 500 * MS + HIT, 500 * MS + HIT, HIT]


@pytest.mark.parametrize("share", [0.5, -1.0])
def test_drift_scales_service_time_geometrically_per_1000_requests(
    share: float, dataset: Dataset
) -> None:
    r = phase(sut(drift_per_1000=share), dataset, SampleOrder.without_replacement(0), 4)
    expected = [COMPUTED * (1 - share) ** (n / 1000) for n in range(4)]
    assert latencies(r) == pytest.approx(expected, abs=2)
    assert latencies(r)[1] != COMPUTED  # it moves from the second request on


def test_drift_after_1000_requests_is_the_configured_share(dataset: Dataset) -> None:
    server = sut(drift_per_1000=0.5)
    order = SampleOrder.without_replacement(0)
    r = latencies(phase(server, dataset, order, 1001))
    assert r[0] == max(r) == COMPUTED
    assert r[-1] == min(r) == pytest.approx(COMPUTED / 2, abs=2)


def test_heavy_tail_multiplies_a_seeded_share_of_requests(dataset: Dataset) -> None:
    server = sut(tail_rate=0.25, tail_multiplier=8.0)
    r = phase(server, dataset, SampleOrder.without_replacement(0), 200)
    assert set(latencies(r)) == {COMPUTED, 8 * COMPUTED}
    slow = latencies(r).count(8 * COMPUTED)
    assert slow == server.stats()["tail_requests"]
    assert 25 <= slow <= 75  # 200 × 0.25 = 50 expected; seeded, so always the same number
    server = sut(tail_rate=0.25, tail_multiplier=8.0)
    again = phase(server, dataset, SampleOrder.without_replacement(0), 200)
    assert latencies(again) == latencies(r)


def test_no_tail_leaves_the_jitter_sequence_as_it_was(dataset: Dataset) -> None:
    def run(behaviour: BehaviourConfig) -> list[int]:
        server = SimulatedSUT(MockConfig(jitter_cv=0.3, seed=3, behaviour=behaviour))
        return latencies(phase(server, dataset, SampleOrder.without_replacement(0), 20))

    assert run(BehaviourConfig()) == run(BehaviourConfig(tail_rate=0.0, tail_multiplier=50.0))


def test_connection_setup_is_paid_once_per_connection_by_the_warm_up(dataset: Dataset) -> None:
    def run(setup_ms: float) -> tuple[list[int], FakeTransport]:
        transport = FakeTransport(sut(connection_setup_ms=setup_ms))
        order = SampleOrder.without_replacement(0)
        r = phase(transport, dataset, order, 16, scenario="offline", max_concurrency=4)
        return latencies(r), transport

    slow, transport = run(100.0)
    # the load generator opens (and warms, with GET /v1/models) one connection per worker:
    # the warm-ups pay the set-up, the timed requests never do
    assert transport.warmups == 4 and transport.connections == 4
    assert {r.connection for r in transport.requests} == {1, 2, 3, 4}
    assert isinstance(transport.handler, SimulatedSUT)
    assert transport.handler.stats()["connections"] == 4
    assert slow == run(0.0)[0]


def test_connection_setup_on_a_new_connection_only() -> None:
    server = sut(connection_setup_ms=100.0)

    async def script() -> list[float]:
        loop = asyncio.get_running_loop()
        out = []
        for connection in (1, 1, 2, None):
            start = loop.time()
            request = FakeRequest("GET", "http://sut.invalid/health", {}, b"", 0, connection)
            await server(request)
            out.append(loop.time() - start)
        return out

    assert run_virtual(script()) == pytest.approx([0.1, 0.0, 0.1, 0.0], abs=1e-9)
    assert server.stats()["connections"] == 2


# --------------------------------------------------------------------------------------------
# output cache options


def test_admission_stores_an_answer_at_its_nth_request(dataset: Dataset) -> None:
    server = sut("output", cache_admit_after=2)
    r = phase(server, dataset, SampleOrder.single(5), 4)
    assert latencies(r) == [COMPUTED, COMPUTED, HIT, HIT]
    assert server.stats()["cache_hits"] == 2 and server.stats()["computations"] == 2


def test_ttl_hits_before_expiry_and_misses_after() -> None:
    server = sut("output", cache_ttl_s=1.0)

    async def script() -> list[int]:
        first, _ = await ask(server, "hello world")  # stored at 10 ms
        await asyncio.sleep(0.5)
        fresh, _ = await ask(server, "hello world")
        await asyncio.sleep(0.5)  # 1.0102 s after it was stored
        expired, _ = await ask(server, "hello world")  # computed and stored again
        again, _ = await ask(server, "hello world")
        return [first, fresh, expired, again]

    assert run_virtual(script()) == [COMPUTED, HIT, COMPUTED, HIT]


def test_ttl_runs_on_across_phases() -> None:
    """Each phase's virtual loop starts at 0; the server's clock does not."""
    server = sut("output", cache_ttl_s=1.0)

    async def store() -> None:
        await ask(server, "hello world")
        await asyncio.sleep(0.5)

    async def later() -> int:
        await asyncio.sleep(0.8)  # 1.3 s after the answer was stored
        return (await ask(server, "hello world"))[0]

    run_virtual(store())
    assert run_virtual(later()) == COMPUTED


def test_partial_cache_computes_every_nth_repeat_again(dataset: Dataset) -> None:
    server = sut("output", cache_miss_every=2)
    r = phase(server, dataset, SampleOrder.single(5), 7)
    assert latencies(r) == [COMPUTED, HIT, COMPUTED, HIT, COMPUTED, HIT, COMPUTED]
    assert server.stats()["cache_hits"] == 3


@pytest.mark.parametrize("normalize", [True, False])
def test_normalized_keys_ignore_case_and_repeated_whitespace(normalize: bool) -> None:
    server = sut("output", cache_normalize=normalize)
    (_, stored), (took, text) = asked(server, ["hello world", "Hello  World"])
    if normalize:
        assert (took, text) == (HIT, stored)  # the stored answer of the other spelling
    else:
        assert took == COMPUTED and text != stored


def test_normalized_keys_still_tell_different_words_apart() -> None:
    server = sut("output", cache_normalize=True)
    assert [took for took, _ in asked(server, ["hello world", "hello  world!"])] == [COMPUTED] * 2


# --------------------------------------------------------------------------------------------
# prepopulated entries


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "held.jsonl"
    rows = [{"prompt": "the benchmark prompt number one"}, {"prompt": "and number two"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_prepopulated_prompt_hits_on_its_first_request(prompts_file: Path) -> None:
    server = sut(prepopulate=str(prompts_file))
    prompt = "the benchmark prompt number one"
    salted = "[salt 1] " + prompt
    answers = asked(server, [prompt, salted, salted], temperature=0)
    assert [took for took, _ in answers] == [HIT, COMPUTED, COMPUTED]  # cache none: a fixed table
    # a held answer is what computing that (greedy) request gives
    assert answers[0][1] == asked(sut(), [prompt], temperature=0)[0][1]
    assert server.stats()["cache_hits"] == 1


def test_prepopulated_answers_any_max_tokens_and_chat(prompts_file: Path) -> None:
    server = sut("output", prepopulate=str(prompts_file))
    long = asked(server, ["and number two"], max_tokens=30)
    short = asked(server, ["and number two"], max_tokens=4)
    assert long[0][0] == short[0][0] == HIT
    assert long[0][1].startswith(short[0][1])

    dataset = Dataset("memory", (Sample(0, "the benchmark prompt number one"),))
    adapter = ChatAdapter("mock-llm", 10, 0.0, False)
    r = phase(server, dataset, SampleOrder.single(0), 2, adapter=adapter)
    assert latencies(r) == [HIT, HIT]


def test_prepopulated_output_cache_also_stores_new_answers(prompts_file: Path) -> None:
    server = sut("output", prepopulate=str(prompts_file))
    answers = asked(server, ["something new", "something new"])
    assert [took for took, _ in answers] == [COMPUTED, HIT]


def test_prepopulated_entries_expire_with_the_ttl(prompts_file: Path) -> None:
    server = sut(prepopulate=str(prompts_file), cache_ttl_s=1.0)

    async def script() -> list[int]:
        held, _ = await ask(server, "and number two")
        await asyncio.sleep(1.0)
        gone, _ = await ask(server, "and number two")
        return [held, gone]

    assert run_virtual(script()) == [HIT, COMPUTED]


def test_prepopulated_prefix_cache_skips_the_first_prefill(prompts_file: Path) -> None:
    cfg = MockConfig(
        **{**EXACT, "prefill_us_per_token": 1000.0},
        decode_us_per_token=1000.0,
        cache="prefix",
        behaviour=BehaviourConfig(prepopulate=str(prompts_file)),
    )
    server = SimulatedSUT(cfg)
    held, new = asked(server, ["and number two", "a prompt of six words here"])
    assert held[0] == COMPUTED and new[0] == COMPUTED + 6 * MS
    assert server.stats()["prefix_hits"] == 1


# --------------------------------------------------------------------------------------------
# request coalescing


@pytest.mark.parametrize("stream", [False, True])
def test_coalescing_shares_one_computation_among_identical_requests_in_flight(
    stream: bool, dataset: Dataset
) -> None:
    server = sut(coalesce=True)
    adapter = CompletionsAdapter("mock-llm", 10, 0.0, stream)
    r = phase(
        server, dataset, SampleOrder.single(5), 8, adapter=adapter, scenario="offline",
        max_concurrency=8,
    )  # fmt: skip
    stats = server.stats()
    assert stats["computations"] == 1 and stats["coalesced"] == 7 and stats["completed"] == 8
    assert latencies(r) == [COMPUTED] * 8
    assert r.records["output_sha256"].nunique() == 1 and (r.records["status"] == "ok").all()


def test_without_coalescing_each_request_computes(dataset: Dataset) -> None:
    server = sut(coalesce=False)
    phase(server, dataset, SampleOrder.single(5), 8, scenario="offline", max_concurrency=8)
    assert server.stats()["computations"] == 8 and server.stats()["coalesced"] == 0


def test_coalescing_shares_nothing_once_the_computation_is_done(dataset: Dataset) -> None:
    server = sut(coalesce=True)
    r = phase(server, dataset, SampleOrder.single(5), 3)  # one after another
    assert latencies(r) == [COMPUTED] * 3 and server.stats()["computations"] == 3


def test_distinct_requests_are_not_coalesced(dataset: Dataset) -> None:
    server = sut(coalesce=True, cache_normalize=True)
    order = SampleOrder.without_replacement(0)
    phase(server, dataset, order, 8, scenario="offline", max_concurrency=8)
    assert server.stats()["computations"] == 8


# --------------------------------------------------------------------------------------------
# the served mock answers the same bytes


def _answers_both_ways(cfg: MockConfig, prompts: list[str]) -> tuple[list[bytes], list[bytes]]:
    bodies = [
        json.dumps({"model": "mock-llm", "prompt": p, "max_tokens": 6}).encode() for p in prompts
    ]
    server = SimulatedSUT(cfg)

    async def ask_raw(body: bytes) -> bytes:
        request = FakeRequest("POST", "http://sut.invalid/v1/completions", {}, body, 0)
        return await FakeBody(await server(request)).read()

    sim = [run_virtual(ask_raw(body)) for body in bodies]
    with MockServer(cfg) as mock, httpx.Client(base_url=mock.url, timeout=10.0) as client:
        real = [client.post("/v1/completions", content=body).content for body in bodies]
        assert mock.stats() == {**server.stats(), "connections": 1}

    def strip(answers: list[bytes]) -> list[bytes]:
        return [re.sub(rb'"created":\d+', b'"created":0', a) for a in answers]

    return strip(sim), strip(real)


def test_served_mock_answers_behaviours_with_the_same_bytes(prompts_file: Path) -> None:
    behaviour = BehaviourConfig(
        cache_admit_after=2,
        cache_normalize=True,
        cache_miss_every=3,
        prepopulate=str(prompts_file),
    )
    cfg = MockConfig(**EXACT, cache="output", behaviour=behaviour)
    prompts = ["a b", "A  b", "a B", "a b", "a b", "and number two", "AND number two", "x"]
    sim, real = _answers_both_ways(cfg, prompts)
    assert sim == real
