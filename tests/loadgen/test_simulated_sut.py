"""SimulatedSUT: the mock's latency model, slots, caches, streams and faults in virtual time."""

import json

import pandas as pd
import pytest

from auditkit.config import BehaviourConfig, FaultConfig, MockConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.endpoints.openai import ChatAdapter, CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.fake import FakeRequest, FakeTransport, SimulatedSUT, run_virtual
from auditkit.mock.latency import CACHE_HIT_S
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import PhaseResult

TARGET = HttpTarget("http://sut.invalid")
#: no jitter, no prefill, 1 ms per output token: a request with max_tokens 10 takes 10 ms
EXACT = {"jitter_cv": 0.0, "base_latency_ms": 0.0, "prefill_us_per_token": 0.0}
MS = 1_000_000


def sut(**cfg: object) -> SimulatedSUT:
    return SimulatedSUT(MockConfig(**{**EXACT, "decode_us_per_token": 1000.0, **cfg}))


def phase(
    server: SimulatedSUT,
    dataset: Dataset,
    order: SampleOrder,
    n: int,
    *,
    adapter: CompletionsAdapter | ChatAdapter | None = None,
    target: HttpTarget = TARGET,
    **load: object,
) -> PhaseResult:
    pattern = LoadPattern(**{"scenario": "single-stream", **load})  # type: ignore[arg-type]
    spec = RunSpec("p", order, n, pattern)
    adapter = adapter or CompletionsAdapter("mock-llm", 10, 0.0, False)
    return run_phase(spec, dataset, adapter, target, transport=FakeTransport(server))


def test_model_discovery() -> None:
    request = FakeRequest("GET", "http://sut.invalid/v1/models", {}, b"", 0)
    answer = run_virtual(sut(model="tiny")(request))
    assert answer.status == 200 and json.loads(answer.body)["data"][0]["id"] == "tiny"


def test_slots_queue_requests_in_virtual_time(dataset: Dataset) -> None:
    order = SampleOrder.without_replacement(0)
    two = phase(sut(slots=2), dataset, order, 16, scenario="offline", max_concurrency=8)
    eight = phase(sut(slots=8), dataset, order, 16, scenario="offline", max_concurrency=8)
    # 10 ms per request: 8 rounds of 2, or 2 rounds of 8
    assert two.summary.duration_ns == pytest.approx(80 * MS, abs=100)
    assert eight.summary.duration_ns == pytest.approx(20 * MS, abs=100)


def test_output_cache_serves_repeats_fast_across_phases(dataset: Dataset) -> None:
    server = sut(cache="output")
    reference = phase(server, dataset, SampleOrder.repeated_block(0, 8), 8)  # rows 0..7
    audit = phase(server, dataset, SampleOrder.single(5), 8)
    assert reference.records["latency_ns"].eq(10 * MS).all()
    assert audit.records["latency_ns"].eq(int(CACHE_HIT_S * 1e9)).all()
    assert server.stats()["cache_hits"] == 8
    assert audit.records["output_sha256"].nunique() == 1


def test_no_cache_computes_every_repeat(dataset: Dataset) -> None:
    server = sut(cache="none")
    audit = phase(server, dataset, SampleOrder.single(5), 8)
    assert audit.records["latency_ns"].eq(10 * MS).all() and server.stats()["cache_hits"] == 0


def test_prefix_cache_skips_prefill_and_reports_cached_tokens(dataset: Dataset) -> None:
    server = sut(cache="prefix", prefill_us_per_token=1000.0)
    r = phase(server, dataset, SampleOrder.single(7), 4).records
    prompt = int(r["prompt_tokens"].iloc[0])
    assert r["latency_ns"].iloc[0] == pytest.approx((prompt + 10) * MS, abs=100)
    assert r["latency_ns"].iloc[1:].eq(r["latency_ns"].iloc[1]).all()
    assert r["latency_ns"].iloc[1] == pytest.approx(10 * MS, abs=100)
    assert r["cached_tokens"].tolist() == [0, prompt, prompt, prompt]
    assert server.stats()["prefix_hits"] == 3


@pytest.mark.parametrize("adapter", [ChatAdapter("mock-llm", 16, 0.0, True),
                                     CompletionsAdapter("mock-llm", 16, 0.0, True)])  # fmt: skip
def test_streams_send_the_first_token_after_prefill_and_one_decode_step(
    adapter: ChatAdapter | CompletionsAdapter, dataset: Dataset
) -> None:
    server = sut(base_latency_ms=2.0)
    r = phase(server, dataset, SampleOrder.without_replacement(0), 8, adapter=adapter).records
    assert (r["status"] == "ok").all() and (r["output_tokens"] == 16).all()
    assert r["ttft_ns"].eq(3 * MS).all()  # base 2 ms + one 1 ms token
    assert r["latency_ns"].eq(18 * MS).all()


def test_seeded_jitter_is_reproducible(dataset: Dataset) -> None:
    def run() -> pd.DataFrame:
        server = SimulatedSUT(MockConfig(jitter_cv=0.3, seed=11, slots=2))
        order = SampleOrder.without_replacement(0)
        return phase(server, dataset, order, 40, scenario="offline", max_concurrency=4).records

    first, second = run(), run()
    pd.testing.assert_frame_equal(first, second)
    assert first["latency_ns"].nunique() > 10


def test_cold_start_behaviour_slows_the_first_requests(dataset: Dataset) -> None:
    server = sut(behaviour=BehaviourConfig(cold_start_requests=2, cold_start_ms=500.0))
    r = phase(server, dataset, SampleOrder.without_replacement(0), 5).records
    assert r["latency_ns"].tolist() == [510 * MS] * 2 + [10 * MS] * 3


@pytest.mark.parametrize(
    ("faults", "stream", "status", "error"),
    [
        ({"error_rate": 1.0}, False, "http_error", "HTTP 500"),
        ({"reset_rate": 1.0}, False, "protocol_error", "connection reset"),
        ({"malformed_rate": 1.0}, False, "protocol_error", "not JSON"),
        ({"hang_rate": 1.0}, False, "timeout", "within 2 s"),
        ({"slow_loris_rate": 1.0}, False, "timeout", "within 2 s"),
        ({"truncate_rate": 1.0}, True, "protocol_error", "without [DONE]"),
        ({"stream_error_rate": 1.0}, True, "protocol_error", "injected error mid-stream"),
    ],
)
def test_injected_faults(
    faults: dict[str, float], stream: bool, status: str, error: str, dataset: Dataset
) -> None:
    server = SimulatedSUT(MockConfig(faults=FaultConfig(**faults)))
    adapter = ChatAdapter("mock-llm", 16, 0.0, stream)
    target = HttpTarget("http://sut.invalid", timeout_s=2.0)
    r = phase(
        server, dataset, SampleOrder.without_replacement(0), 3, adapter=adapter, target=target
    )
    assert (r.records["status"] == status).all()
    assert r.records["error"].str.contains(error, regex=False).all()


def test_die_after_drops_every_later_request(dataset: Dataset) -> None:
    server = SimulatedSUT(MockConfig(faults=FaultConfig(die_after=3)))
    r = phase(server, dataset, SampleOrder.without_replacement(0), 6).records
    assert r["status"].tolist() == ["ok"] * 3 + ["protocol_error"] * 3


def test_unknown_model_is_a_404(dataset: Dataset) -> None:
    adapter = CompletionsAdapter("other", 4, 0.0, False)
    r = phase(sut(), dataset, SampleOrder.without_replacement(0), 2, adapter=adapter).records
    assert (r["http_status"] == 404).all() and r["error"].str.contains("does not exist").all()
