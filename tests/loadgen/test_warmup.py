"""The warm-up rule: issue until latency is stable (after min_queries), within its caps, in every
scenario, every query a fresh salted prompt (virtual time: exact, no sleeping)."""

import dataclasses
import json
import statistics

import pytest

from auditkit.config import MockConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.fake import Behaviour, ColdStart, FakeTransport, RequestInfo, SimulatedSUT
from auditkit.mock.latency import Timing
from auditkit.plan import LoadPattern, RunSpec, WarmupRule
from auditkit.results import PhaseResult

TARGET = HttpTarget("http://sut.invalid")
MS = 1_000_000
SCENARIOS = ["offline", "single-stream", "multi-stream", "server"]


@dataclasses.dataclass(frozen=True)
class Drift:
    """Every request `step_s` slower than the one before: latency never settles."""

    step_s: float

    def adjust(self, timing: Timing, request: RequestInfo) -> Timing:
        return dataclasses.replace(timing, base_s=timing.base_s + self.step_s * request.number)


def sut(*behaviours: Behaviour, slots: int = 1) -> SimulatedSUT:
    """No jitter, no prefill: a request takes 10 ms (10 tokens at 1 ms) plus its behaviours."""
    cfg = MockConfig(
        jitter_cv=0.0,
        base_latency_ms=0.0,
        prefill_us_per_token=0.0,
        decode_us_per_token=1000.0,
        slots=slots,
    )
    return SimulatedSUT(cfg, behaviours=behaviours)


def warm(
    server: SimulatedSUT,
    dataset: Dataset,
    rule: WarmupRule,
    scenario: str = "single-stream",
    concurrency: int = 1,
) -> tuple[PhaseResult, FakeTransport]:
    load = LoadPattern(
        scenario,  # type: ignore[arg-type]
        max_concurrency=concurrency,
        samples_per_query=2,
        target_qps=50.0,
    )
    spec = RunSpec("warmup", SampleOrder.salted(1), rule.min_queries, load, warmup=rule)
    transport = FakeTransport(server)
    adapter = CompletionsAdapter("mock-llm", 10, 0.0, False)
    return run_phase(spec, dataset, adapter, TARGET, transport=transport), transport


def service_ms(result: PhaseResult) -> list[float]:
    ok = result.records.sort_values("completed_ns")
    return ((ok["completed_ns"] - ok["sent_ns"]) / MS).astype(float).tolist()


def test_cold_start_runs_past_min_queries_until_latency_settles(dataset: Dataset) -> None:
    rule = WarmupRule(min_queries=8, max_queries=100, max_duration_s=60.0, window=4)
    result, _ = warm(sut(ColdStart(first=6, extra_s=0.050)), dataset, rule)
    # 6 slow (60 ms) then fast (10 ms): the last 4 fast and the 4 before mostly fast at 13
    assert service_ms(result) == [60.0] * 6 + [10.0] * 7
    assert len(result.records) == 13 > rule.min_queries
    assert (result.records["variant"] == "warmup").all()
    assert result.summary.complete and result.summary.requested == 13


def test_steady_sut_stops_at_min_queries(dataset: Dataset) -> None:
    rule = WarmupRule(min_queries=10, max_queries=100, max_duration_s=60.0, window=4)
    result, _ = warm(sut(), dataset, rule)
    assert len(result.records) == 10


def test_stability_needs_two_full_windows(dataset: Dataset) -> None:
    rule = WarmupRule(min_queries=3, max_queries=100, max_duration_s=60.0, window=4)
    result, _ = warm(sut(), dataset, rule)
    assert len(result.records) == 8


def test_max_queries_caps_a_sut_that_never_settles(dataset: Dataset) -> None:
    rule = WarmupRule(min_queries=8, max_queries=20, max_duration_s=600.0, window=4)
    result, _ = warm(sut(Drift(0.020)), dataset, rule)
    assert len(result.records) == 20
    assert result.summary.complete


def test_max_duration_caps_on_the_phase_clock(dataset: Dataset) -> None:
    rule = WarmupRule(min_queries=8, max_queries=10_000, max_duration_s=0.5, window=4)
    result, _ = warm(sut(Drift(0.005)), dataset, rule)
    records = result.records
    # the last query was sent before the cap, and completed after it (nothing more was sent)
    assert records["sent_ns"].max() < 0.5e9 <= records["completed_ns"].max()
    assert 8 < len(records) < 100


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_warms_until_stable(dataset: Dataset, scenario: str) -> None:
    rule = WarmupRule(min_queries=8, max_queries=400, max_duration_s=60.0, window=4)
    server = sut(ColdStart(first=6, extra_s=0.050), slots=4)
    result, transport = warm(server, dataset, rule, scenario, concurrency=4)
    records = result.records
    assert (records["variant"] == "warmup").all() and result.summary.complete
    assert rule.min_queries < len(records) < rule.max_queries
    # it stopped because the last two windows of service times agree
    times = service_ms(result)
    assert statistics.median(times[-4:]) == pytest.approx(10.0)
    bodies = [r.body for r in transport.requests if r.method == "POST"]
    prompts = [json.loads(b)["prompt"] for b in bodies]
    assert all(p.startswith("[warm-up ") for p in prompts)
    assert len(set(prompts)) == len(prompts) == len(records)


def test_offline_warms_at_full_concurrency_even_below_it(dataset: Dataset) -> None:
    # min_queries below max_concurrency: the warm-up still runs as wide as the measured phase
    rule = WarmupRule(min_queries=2, max_queries=400, max_duration_s=60.0, window=4)
    _, transport = warm(sut(slots=8), dataset, rule, "offline", concurrency=8)
    assert transport.peak_in_flight == 8


@pytest.mark.parametrize(
    "kw",
    [
        {"min_queries": 0, "max_queries": 4, "max_duration_s": 1.0},
        {"min_queries": 8, "max_queries": 4, "max_duration_s": 1.0},
        {"min_queries": 4, "max_queries": 8, "max_duration_s": 0.0},
        {"min_queries": 4, "max_queries": 8, "max_duration_s": 1.0, "window": 0},
    ],
)
def test_bad_rules_are_rejected(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="WarmupRule"):
        WarmupRule(**kw)  # type: ignore[arg-type]


def test_rule_is_a_pure_function_of_latencies() -> None:
    rule = WarmupRule(min_queries=4, max_queries=10, max_duration_s=1.0, window=2)
    assert not rule.settled([10, 10, 10])  # two windows needed
    assert rule.settled([10, 10, 10, 10])
    assert rule.settled([100, 100, 10, 11, 10, 10.5])  # type: ignore[list-item]
    assert not rule.settled([100, 100, 100, 10])  # medians 100 vs 55
    assert not WarmupRule(8, 10, 1.0, window=2).settled([10] * 6)  # min_queries first
