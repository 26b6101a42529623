"""The mock's real-server behaviours: the pure pieces (service shape, connections, output-cache
options), then the served mock over loopback HTTP, checked by its counters rather than by
timing (the exact timings are checked on the simulated SUT, tests/loadgen/test_behaviours.py)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from auditkit.config import BehaviourConfig, MockConfig
from auditkit.errors import EXIT_INPUT, InputError
from auditkit.mock import MockProcess, MockServer
from auditkit.mock.__main__ import main
from auditkit.mock.behaviours import Connections, ServiceShape
from auditkit.mock.caches import (
    NoCache,
    OutputCache,
    PrefixCache,
    cache_policy,
    normalize_key,
    prepopulated_jobs,
)
from auditkit.mock.engine import MockState, empty_stats
from auditkit.mock.latency import Timing, generate_words
from auditkit.mock.protocol import Job, parse_job

PROMPT = "the quick brown fox jumps over the lazy dog"


def job(prompt: str = PROMPT, max_tokens: int = 8) -> Job:
    return parse_job("completions", {"prompt": prompt, "max_tokens": max_tokens}, "m")


def words(n: int = 8) -> list[str]:
    return ["w"] * n


# --------------------------------------------------------------------------------------------
# service shape and connections (pure)


def test_cold_start_covers_the_first_requests_only() -> None:
    shape = ServiceShape(BehaviourConfig(cold_start_requests=2, cold_start_ms=250.0))
    assert [shape.cold_s(n) for n in (1, 2, 3)] == [0.25, 0.25, 0.0]


def test_drift_is_geometric_in_the_request_count() -> None:
    falls = ServiceShape(BehaviourConfig(drift_per_1000=0.5))
    rises = ServiceShape(BehaviourConfig(drift_per_1000=-1.0))
    assert falls.drift(1) == rises.drift(1) == 1.0
    assert falls.drift(1001) == 0.5 and falls.drift(2001) == 0.25
    assert rises.drift(1001) == 2.0


def test_shape_scales_every_part_of_the_service_time() -> None:
    shape = ServiceShape(BehaviourConfig(drift_per_1000=0.5, tail_multiplier=10.0))
    timing = Timing(base_s=0.001, prefill_s=0.002, decode_per_token_s=0.003, output_tokens=4)
    shaped = shape.shape(timing, 1001, tail=True)

    def total(t: Timing) -> float:
        return t.base_s + t.prefill_s + t.decode_s

    assert total(shaped) == pytest.approx(total(timing) * 5.0)
    assert shape.shape(timing, 1, tail=False) is timing


def test_no_tail_draws_nothing_from_the_servers_random_sequence() -> None:
    rng, reference = random.Random(1), random.Random(1)
    assert not ServiceShape(BehaviourConfig()).is_tail(rng)
    assert rng.random() == reference.random()
    always = ServiceShape(BehaviourConfig(tail_rate=1.0))
    assert always.is_tail(rng)


def test_connections_pay_the_setup_once_each() -> None:
    connections = Connections(setup_ms=40.0)
    got = [connections.first_use_s(c) for c in ("a", "a", "b", None, "a")]
    assert got == [0.04, 0.0, 0.04, 0.0, 0.0] and connections.opened == 2


# --------------------------------------------------------------------------------------------
# output-cache options (pure)


def test_admission_stores_once_the_key_was_asked_n_times() -> None:
    cache = OutputCache(admit_after=3)
    found = []
    for _ in range(5):
        found.append(cache.output(job(), 0.0) is not None)
        cache.completed(job(), words(), 0.0)
    assert found == [False, False, False, True, True]


def test_ttl_expires_an_entry_and_a_new_answer_is_stored_again() -> None:
    cache = OutputCache(ttl_s=2.0)
    cache.completed(job(), words(), 10.0)
    assert cache.output(job(), 11.999) == words()
    assert cache.output(job(), 12.0) is None
    cache.completed(job(), words(), 12.5)
    assert cache.output(job(), 13.0) == words()


def test_partial_cache_misses_every_nth_find() -> None:
    cache = OutputCache(miss_every=3)
    cache.completed(job(), words(), 0.0)
    assert [cache.output(job(), 0.0) is not None for _ in range(6)] == [True, True, False] * 2


def test_normalized_key_folds_case_and_whitespace_runs_only() -> None:
    assert normalize_key(job("Hello \t World\n").cache_key) == normalize_key(
        job("hello world").cache_key
    )
    assert normalize_key(job("hello world").cache_key) != normalize_key(
        job("hello, world").cache_key
    )
    cache = OutputCache(normalize=True)
    cache.completed(job("hello world"), words(), 0.0)
    assert cache.output(job("HELLO   world"), 0.0) == words()


def test_prepopulated_entries_answer_as_computed_for_any_length() -> None:
    held = prepopulated_jobs([("completions", {"prompt": PROMPT})], "m")
    cache = OutputCache(prepopulated=held, stores=False)
    assert cache.output(job(max_tokens=5), 0.0) == generate_words(PROMPT, 5)
    assert cache.output(job(max_tokens=50), 0.0) == generate_words(PROMPT, 50)
    assert cache.output(job("x " + PROMPT), 0.0) is None
    cache.completed(job("x " + PROMPT), words(), 0.0)  # a fixed table stores nothing new
    assert cache.output(job("x " + PROMPT), 0.0) is None


def test_prepopulated_jobs_leave_out_what_the_mock_refuses() -> None:
    jobs = prepopulated_jobs([("completions", {"prompt": 3}), ("chat", {"messages": []})], "m")
    assert jobs == []


def test_cache_policy_per_mode() -> None:
    held = prepopulated_jobs([("completions", {"prompt": PROMPT})], "m")
    assert isinstance(cache_policy("none"), NoCache)
    assert not isinstance(cache_policy("none"), OutputCache)
    table = cache_policy("none", prepopulated=held)
    assert isinstance(table, OutputCache) and not table.stores
    output = cache_policy("output", BehaviourConfig(cache_admit_after=2, cache_ttl_s=5.0))
    assert isinstance(output, OutputCache)
    assert (output.admit_after, output.ttl_s, output.stores) == (2, 5.0, True)
    prefix = cache_policy("prefix", prepopulated=held)
    assert isinstance(prefix, PrefixCache) and prefix.prefix(job())
    with pytest.raises(ValueError, match="unknown cache mode"):
        cache_policy("lru")


def test_stats_keys_are_the_same_before_and_after_start() -> None:
    assert set(empty_stats()) == set(MockState(MockConfig()).stats())


# --------------------------------------------------------------------------------------------
# the served mock (loopback HTTP; counters, not timing)


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "held.jsonl"
    path.write_text(json.dumps({"prompt": PROMPT}) + "\n")
    return path


def served(cache: str = "output", **behaviour: Any) -> MockServer:
    cfg = MockConfig(
        jitter_cv=0.0,
        base_latency_ms=0.0,
        cache=cache,
        behaviour=BehaviourConfig(**behaviour),
    )
    return MockServer(cfg)


def complete(client: httpx.Client, prompt: str = PROMPT, **body: Any) -> str:
    body = {"prompt": prompt, "max_tokens": 6, "temperature": 0, **body}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200
    text: str = response.json()["choices"][0]["text"]
    return text


def test_served_admission_normalize_and_partial_cache_counts() -> None:
    with (
        served(cache_admit_after=2, cache_normalize=True, cache_miss_every=2) as mock,
        httpx.Client(base_url=mock.url, timeout=10.0) as client,
    ):
        texts = [complete(client, p) for p in ("a b", "A  B", "a b", "a b", "a B")]
        stats = mock.stats()
    # asked 1, asked 2 (stored), found 1 (hit), found 2 (partial: computed, stored), found 3
    assert stats["cache_hits"] == 2 and stats["computations"] == 3
    # a hit answers with the stored text, computed from the other spelling
    assert texts[2] == texts[1] != texts[0] == texts[3] == texts[4]


def test_served_prepopulated_prompt_hits_on_its_first_request(prompts_file: Path) -> None:
    with (
        served("none", prepopulate=str(prompts_file)) as mock,
        httpx.Client(base_url=mock.url, timeout=10.0) as client,
    ):
        held = complete(client)
        complete(client, "[salt] " + PROMPT)
        complete(client, "[salt] " + PROMPT)
        stats = mock.stats()
    assert stats["cache_hits"] == 1 and stats["computations"] == 2
    assert held == " ".join(generate_words(PROMPT, 6))


def test_served_prepopulate_with_a_missing_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        served(prepopulate=str(tmp_path / "missing.jsonl")).start()
    cfg = MockConfig(behaviour=BehaviourConfig(prepopulate=str(tmp_path / "missing.jsonl")))
    assert main(["--config-json", cfg.model_dump_json()]) == EXIT_INPUT


def test_served_connections_are_told_apart_by_peer() -> None:
    with served(connection_setup_ms=1.0) as mock:
        for _ in range(2):
            with httpx.Client(base_url=mock.url, timeout=10.0) as client:  # keep-alive
                complete(client)
                complete(client)
                assert client.get("/health").status_code == 200
        stats = mock.stats()
    assert stats["connections"] == 2 and stats["requests"] == 4


def test_served_cold_start_delays_the_first_requests() -> None:
    with served("none", cold_start_requests=1, cold_start_ms=150.0) as mock:
        with httpx.Client(base_url=mock.url, timeout=10.0) as client:
            t0 = time.perf_counter()
            complete(client)
            first = time.perf_counter() - t0
        assert mock.stats()["completed"] == 1
    assert first >= 0.150  # a sleep's lower bound, not a race


def test_served_coalescing_computes_identical_requests_in_flight_once() -> None:
    # 10 tokens at 100 ms: the 8 requests have about a second to arrive while the first computes
    cfg = MockConfig(
        jitter_cv=0.0,
        base_latency_ms=0.0,
        decode_us_per_token=100_000.0,
        slots=8,
        behaviour=BehaviourConfig(coalesce=True),
    )

    async def burst(url: str) -> list[str]:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
            body = {"prompt": PROMPT, "max_tokens": 10, "temperature": 0}
            answers = await asyncio.gather(
                *(client.post("/v1/completions", json=body) for _ in range(8))
            )
        return [a.json()["choices"][0]["text"] for a in answers]

    with MockServer(cfg) as mock:
        texts = asyncio.run(burst(mock.url))
        stats = mock.stats()
    assert len(set(texts)) == 1
    assert stats["computations"] == 1 and stats["coalesced"] == 7 and stats["completed"] == 8


@pytest.mark.slow
def test_mock_process_reads_the_prepopulated_dataset(prompts_file: Path) -> None:
    cfg = MockConfig(jitter_cv=0.0, behaviour=BehaviourConfig(prepopulate=str(prompts_file)))
    with MockProcess(cfg) as mock, httpx.Client(base_url=mock.url, timeout=10.0) as client:
        complete(client)
        assert mock.stats()["cache_hits"] == 1
