"""Each scenario's issue semantics, measured exactly in virtual time through the fake transport.

The handler answers every POST after a fixed service delay, so every timestamp is known in
advance: these tests compare nanoseconds with ==, not with tolerances.
"""

import asyncio
import random
import signal

import pytest

from auditkit.data import Dataset, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, PhaseInterrupted, run_phase, run_phase_async
from auditkit.loadgen.fake import FakeRequest, FakeResponse, FakeTransport, run_virtual
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import PhaseResult

MS = 1_000_000
TARGET = HttpTarget("http://sut.invalid")
ADAPTER = CompletionsAdapter("m", 8, 0.0, False)
COMPLETION = {
    "choices": [{"index": 0, "text": " ok"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}


def fixed(delay_s: float) -> FakeTransport:
    """A transport whose server answers every POST after `delay_s`."""

    def handler(request: FakeRequest) -> FakeResponse:
        if request.method == "GET":
            return FakeResponse.json({"data": []})
        return FakeResponse.json(COMPLETION, delay_s=delay_s)

    return FakeTransport(handler)


def spec(scenario: str, n: int, min_duration_s: float = 0.0, **load: object) -> RunSpec:
    pattern = LoadPattern(scenario, **load)  # type: ignore[arg-type]
    return RunSpec("p", SampleOrder.without_replacement(1), n, pattern, min_duration_s)


def run(s: RunSpec, dataset: Dataset, transport: FakeTransport) -> PhaseResult:
    return run_phase(s, dataset, ADAPTER, TARGET, transport=transport)


def test_offline_queues_everything_at_zero_and_never_exceeds_max_concurrency(
    dataset: Dataset,
) -> None:
    transport = fixed(0.010)
    result = run(spec("offline", 50, max_concurrency=4), dataset, transport)
    r = result.records
    assert transport.peak_in_flight == 4
    assert (r["scheduled_ns"] == 0).all() and (r["status"] == "ok").all()
    # 50 requests, 4 at a time, 10 ms each: 13 rounds
    assert result.summary.duration_ns == 13 * 10 * MS
    assert sorted(r["completed_ns"].tolist())[:4] == [10 * MS] * 4
    assert (r["latency_ns"] == r["completed_ns"]).all()
    assert r["sample_index"].nunique() == 50


def test_single_stream_has_one_query_in_flight_scheduled_at_the_previous_completion(
    dataset: Dataset,
) -> None:
    transport = fixed(0.005)
    result = run(spec("single-stream", 20), dataset, transport)
    r = result.records.sort_values("query_id")
    assert transport.peak_in_flight == 1
    assert r["scheduled_ns"].tolist() == [i * 5 * MS for i in range(20)]
    assert (r["sent_ns"] == r["scheduled_ns"]).all()
    assert (r["latency_ns"] == 5 * MS).all()
    assert result.summary.duration_ns == 100 * MS


def test_multi_stream_issues_blocks_and_waits_for_the_whole_block(dataset: Dataset) -> None:
    transport = fixed(0.004)
    result = run(spec("multi-stream", 20, samples_per_query=4), dataset, transport)
    r = result.records
    assert transport.peak_in_flight == 4
    assert r["query_id"].nunique() == 5 and r.groupby("query_id").size().eq(4).all()
    by_query = r.groupby("query_id")["scheduled_ns"]
    assert by_query.nunique().eq(1).all()  # a query's samples share its scheduled time
    assert by_query.first().tolist() == [q * 4 * MS for q in range(5)]
    assert result.summary.query_latency is not None
    assert result.summary.query_latency.max_ns == 4 * MS


def test_server_sends_each_query_at_its_seeded_poisson_arrival(dataset: Dataset) -> None:
    transport = fixed(0.001)
    result = run(
        spec("server", 200, target_qps=100.0, max_concurrency=64, seed=7), dataset, transport
    )
    r = result.records.sort_values("query_id")
    rng, arrival, expected = random.Random(7), 0.0, []
    for _ in range(200):
        arrival += rng.expovariate(100.0)
        expected.append(int(arrival * 1e9))
    assert r["scheduled_ns"].tolist() == expected
    assert (r["sent_ns"] == r["scheduled_ns"]).all()  # never early, and not late either
    assert (r["latency_ns"] == 1 * MS).all()


def test_server_queueing_in_the_client_counts_in_latency(dataset: Dataset) -> None:
    transport = fixed(0.050)  # 20/s served against 100/s offered, one at a time
    result = run(
        spec("server", 40, target_qps=100.0, max_concurrency=1, seed=3), dataset, transport
    )
    r = result.records
    assert transport.peak_in_flight == 1
    assert (r["sent_ns"] >= r["scheduled_ns"]).all()
    assert (r["latency_ns"] == r["completed_ns"] - r["scheduled_ns"]).all()
    assert r["latency_ns"].max() > 1000 * MS  # the backlog grows


def test_single_stream_min_duration_issues_until_the_last_issue_reaches_it(
    dataset: Dataset,
) -> None:
    result = run(spec("single-stream", 10, min_duration_s=5.0), dataset, fixed(0.1))
    # issues at 0, 0.1, ..., 5.0 s: the issue at 5.0 s is the first at min_duration
    assert len(result.records) == 51
    assert result.records["scheduled_ns"].max() == 5_000 * MS
    assert result.summary.min_duration_met and result.summary.duration_ns == 5_100 * MS


def test_offline_min_duration_keeps_workers_busy_until_it_has_passed(dataset: Dataset) -> None:
    result = run(spec("offline", 8, min_duration_s=10.0, max_concurrency=2), dataset, fixed(1.0))
    assert len(result.records) == 20  # two per second for ten seconds
    assert result.summary.duration_ns == 10_000 * MS and result.summary.min_duration_met


def test_server_min_duration_counts_scheduled_arrivals(dataset: Dataset) -> None:
    s = spec("server", 5, min_duration_s=2.0, target_qps=50.0, max_concurrency=8, seed=1)
    result = run(s, dataset, fixed(0.001))
    scheduled = result.records["scheduled_ns"].sort_values().tolist()
    assert scheduled[-1] >= 2_000 * MS > scheduled[-2]
    assert result.summary.min_duration_met


def test_a_ten_minute_phase_is_exactly_ten_minutes_of_virtual_time(dataset: Dataset) -> None:
    result = run(spec("single-stream", 1, min_duration_s=600.0), dataset, fixed(1.0))
    assert len(result.records) == 601
    assert result.summary.duration_ns == 601_000_000_000


def test_stop_event_interrupts_with_cancelled_rows_for_in_flight_requests(
    dataset: Dataset,
) -> None:
    async def main() -> PhaseResult:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.55, stop.set)
        s = spec("offline", 100, max_concurrency=4)
        return await run_phase_async(s, dataset, ADAPTER, TARGET, stop=stop, transport=fixed(0.2))

    result = run_virtual(main())
    r = result.records
    assert result.summary.interrupted and not result.summary.complete
    assert (r["status"] == "ok").sum() == 8  # two rounds of four completed by 0.4 s
    cancelled = r[r["status"] == "cancelled"]
    assert len(cancelled) == 4 and (cancelled["sent_ns"] == 400 * MS).all()
    assert cancelled["error"].eq("cancelled before completion").all()
    assert cancelled["completed_ns"].isna().all() and cancelled["http_status"].isna().all()


def test_ctrl_c_raises_phase_interrupted_with_the_partial_result(dataset: Dataset) -> None:
    calls = 0

    def handler(request: FakeRequest) -> FakeResponse:
        nonlocal calls
        if request.method == "POST":
            calls += 1
            if calls == 5:
                signal.raise_signal(signal.SIGINT)  # as if Ctrl-C arrived now
        return FakeResponse.json(COMPLETION, delay_s=0.01)

    with pytest.raises(PhaseInterrupted) as info:
        run(spec("single-stream", 50), dataset, FakeTransport(handler))
    r = info.value.partial.records
    assert (r["status"] == "ok").sum() == 4
    assert r["status"].tolist()[-1] == "cancelled"
    assert info.value.partial.summary.interrupted


def test_progress_reaches_the_total(dataset: Dataset) -> None:
    seen: list[tuple[int, int]] = []
    s = spec("offline", 30, max_concurrency=3)
    run_phase(
        s, dataset, ADAPTER, TARGET, progress=lambda d, t: seen.append((d, t)), transport=fixed(0.5)
    )
    assert seen[0] == (0, 30) and seen[-1] == (30, 30)


def test_connections_are_warmed_before_the_clock_starts(dataset: Dataset) -> None:
    transport = fixed(0.01)
    result = run(spec("offline", 16, max_concurrency=4), dataset, transport)
    gets = [q for q in transport.requests if q.method == "GET"]
    assert len(gets) == transport.warmups == 4 and all(q.path == "/v1/models" for q in gets)
    assert result.records["sent_ns"].min() == 0


def test_a_fake_phase_runs_inside_a_running_event_loop(dataset: Dataset) -> None:
    """Jupyter runs a loop in the main thread; the virtual loop then gets a thread of its own."""

    async def inside() -> int:
        return run(spec("offline", 8, max_concurrency=2), dataset, fixed(1.0)).summary.duration_ns

    assert asyncio.run(inside()) == 4_000 * MS
