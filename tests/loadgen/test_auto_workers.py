"""`workers: auto` decides a phase's processes before it runs, and the client guard says how
many would have freed a client-bound phase: pure rules, no I/O (the real-process check is
tests/loadgen/test_workers.py::test_auto_starts_workers_before_the_first_measured_phase)."""

from __future__ import annotations

import numpy as np
import pytest

from auditkit.calibration import client_bound_reason, workers_to_free
from auditkit.config import LoadConfig
from auditkit.data import SampleOrder
from auditkit.display import summary_table
from auditkit.loadgen.workers import (
    HEADROOM,
    attainable_rate,
    auto_workers,
    expected_rate,
    median_service_ns,
    phase_workers,
)
from auditkit.plan import LoadPattern, RunSpec, WarmupRule
from auditkit.results import LatencyStats, PhaseSummary


def _summary(
    rate: float, *, scenario: str = "offline", lag_ms: float | None = None
) -> PhaseSummary:
    return PhaseSummary(
        name="audit", scenario=scenario, order="x", requested=100, issued=100, completed=100,
        failed=0, cancelled=0, duration_ns=int(100 / rate * 1e9), samples_per_second=rate,
        queries=100, latency=LatencyStats(count=100), score_name="Samples per second",
        complete=True, loadgen_valid=True,
        loop_lag_p99_ns=None if lag_ms is None else int(lag_ms * 1e6),
    )  # fmt: skip


def _offline(concurrency: int = 32, target_qps: float | None = None) -> RunSpec:
    load = LoadPattern("offline", max_concurrency=concurrency, target_qps=target_qps)
    return RunSpec("reference_1", SampleOrder.with_replacement(0), 1000, load)


def test_expected_rate_is_the_target_or_headroom_over_the_fastest_seen() -> None:
    assert expected_rate(LoadPattern("server", target_qps=900.0), seen=5000.0) == 900.0
    assert expected_rate(LoadPattern("offline"), seen=None) is None  # nothing to go by
    assert expected_rate(LoadPattern("offline"), seen=1835.0) == HEADROOM * 1835.0
    # an offline target (LoadGen's offline expected QPS) counts when it is the larger
    assert expected_rate(LoadPattern("offline", target_qps=9000.0), seen=1000.0) == 9000.0
    assert expected_rate(LoadPattern("offline", target_qps=100.0), seen=1000.0) == 2000.0
    assert expected_rate(LoadPattern("single-stream"), seen=1e6) is None


def test_auto_decides_from_the_ceiling_before_the_phase() -> None:
    auto = LoadConfig(workers="auto", client_bound_fraction=0.8)
    spec = _offline()
    # the suite measured on this machine under load: warm-up and TEST04 at up to 1835/s, one
    # h1 process good for 0.8 × 3041/s: the next offline phase gets two processes
    assert phase_workers(auto, spec, ceiling=3041.0, seen_rate=1835.0) == min(2, _cores())
    assert phase_workers(auto, spec, ceiling=9002.0, seen_rate=1835.0) == 1  # a quiet machine
    assert phase_workers(auto, spec, ceiling=3041.0, seen_rate=None) == 1  # nothing seen yet
    assert phase_workers(auto, spec, ceiling=None, seen_rate=1835.0) == 1  # guard off
    rule = WarmupRule(min_queries=16, max_queries=64, max_duration_s=10.0)
    warm = RunSpec(
        "warmup", SampleOrder.with_replacement(0), 16, LoadPattern("offline"), warmup=rule
    )
    assert phase_workers(auto, warm, ceiling=100.0, seen_rate=1e5) == 1  # its rule reads all
    assert phase_workers(auto, _offline(1), ceiling=100.0, seen_rate=1e5) == 1  # one in flight
    # a fixed count is taken as given
    assert phase_workers(LoadConfig(workers=2), spec, ceiling=1e9, seen_rate=1.0) == 2


@pytest.mark.parametrize("rate", [100.0, 799.0, 801.0, 2500.0, 7000.0, 31_999.0])
def test_the_count_auto_starts_is_the_count_the_guard_asks_for(rate: float) -> None:
    """At its expected rate, a phase on auto's processes is never client-bound, and one fewer
    would be: auto and the guard's message apply one rule."""
    ceiling, fraction = 1000.0, 0.8
    n = auto_workers("offline", ceiling=ceiling, fraction=fraction, expected_rate=rate, cores=64)
    assert n == workers_to_free(rate, ceiling, fraction)
    assert client_bound_reason(_summary(rate), ceiling, fraction, workers=n) is None
    if n > 1:
        bound = client_bound_reason(_summary(rate), ceiling, fraction, workers=n - 1, cores=64)
        assert bound is not None and f"--workers {n}" in bound
    capped = auto_workers(
        "offline", ceiling=ceiling, fraction=fraction, expected_rate=rate, cores=2
    )
    assert capped == min(n, 2)


def test_the_guard_says_how_many_processes_would_free_the_phase() -> None:
    # the case: aiohttp on a loaded machine, 1138/s against a 1385/s ceiling
    reason = client_bound_reason(_summary(1138.0), 1385.0, 0.8, workers=1, client="aiohttp")
    assert reason is not None
    assert "82% of the client's measured ceiling" in reason
    assert "1 aiohttp process)" in reason
    assert "at least 2 load-generator processes would free it: rerun with --workers 2" in reason
    # beyond the cores: say so, not a --workers the machine cannot run
    far = client_bound_reason(_summary(5000.0), 1000.0, 0.8, workers=2, client="h1", cores=2)
    assert far is not None and "at least 7 load-generator processes" in far
    assert "more than this machine's 2 cores" in far and "--workers 7" not in far
    # the SUT set the pace: nothing to say
    assert client_bound_reason(_summary(500.0), 1385.0, 0.8) is None
    # single-stream is never judged by the offline ceiling
    assert client_bound_reason(_summary(5000.0, scenario="single-stream"), 10.0, 0.8) is None


def test_a_late_loop_on_a_busy_machine_blames_the_machine_not_the_worker_count() -> None:
    late = _summary(900.0, lag_ms=59.0)
    busy = client_bound_reason(late, 3041.0, 0.8, workers=2, client="h1", cores=2, load_average=7.1)
    assert busy is not None and "59 ms late (p99) in 2 h1 processes" in busy
    assert "load average was 7.1 on 2 cores" in busy and "--workers" not in busy
    quiet = client_bound_reason(late, 3041.0, 0.8, workers=1, client="h1", cores=2, load_average=1)
    assert quiet is not None and "the client was saturated" in quiet
    assert "rerun with --workers 2" in quiet


def test_the_phase_table_shows_which_client_ran() -> None:
    ran = _summary(900.0).model_copy(update={"http_client": "h1", "workers": 2})
    table = summary_table({"audit": ran, "reference": _summary(300.0)})
    assert table.loc["audit", "client"] == "h1 × 2"
    assert not table.loc["audit", "client-bound"]
    # in memory (the virtual clock) no client ran: no column
    assert "client" not in summary_table({"audit": _summary(900.0)}).columns


def _cores() -> int:
    from auditkit.loadgen.workers import usable_cores

    return usable_cores()


def test_the_attainable_rate_is_concurrency_over_the_median_service_time() -> None:
    # a warm-up against a cache: 32 in flight answered in ~2 ms each can reach ~16,000/s
    # whatever rate the warm-up's own few rounds showed
    service = np.array([1.9e6, 2.0e6, 2.1e6, 0.0])  # ns; 0: a query that never completed
    assert attainable_rate(32, service) == pytest.approx(16_000)
    assert attainable_rate(32, np.array([])) is None
    # and auto plans for it: two processes where one's ceiling would bound the phase
    expected = expected_rate(LoadPattern("offline", max_concurrency=32), 16_000)
    assert (
        auto_workers("offline", ceiling=5_000, fraction=0.8, expected_rate=expected, cores=2) == 2
    )


def test_a_one_at_a_time_phase_plans_the_next_offline_phase_by_its_service_time() -> None:
    """Seen in a suite: TEST01's warm-up ran one query at a time at 82/s, then its offline
    performance phase (64 in flight) reached 2,162/s in one process, above that process's
    streamed ceiling. The warm-up's rate said nothing of it; its service time does."""
    one_at_a_time = np.full(50, 12.2e6)  # ns: 82/s with one in flight
    service = median_service_ns(one_at_a_time)
    assert service == pytest.approx(12.2e6)
    offline = LoadPattern("offline", max_concurrency=64)
    expected = expected_rate(offline, seen=82.0, service_ns=service)
    assert expected == pytest.approx(64 / 0.0122)  # ~5,250/s, not 2 × 82
    assert expected_rate(offline, seen=82.0) == HEADROOM * 82.0  # without the service time
    assert (
        auto_workers("offline", ceiling=1_802, fraction=0.8, expected_rate=expected, cores=2) == 2
    )
