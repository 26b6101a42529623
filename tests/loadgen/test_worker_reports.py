"""Workers that finish together queue their reports together: the parent reads every queued
report before it calls an exited worker dead (offline: all workers finish within ms)."""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any

import pytest

from auditkit.config import MockConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.workers import _dead_workers
from auditkit.mock import MockProcess
from auditkit.plan import LoadPattern, RunSpec


@dataclass
class Exited:
    exitcode: int

    def is_alive(self) -> bool:
        return False


def _queued(*workers: int) -> queue.Queue[tuple[Any, ...]]:
    q: queue.Queue[tuple[Any, ...]] = queue.Queue()
    for w in workers:
        q.put((w, None, False, [], 0))
    return q


def test_clean_exits_whose_reports_are_queued_are_not_dead() -> None:
    reports: dict[int, tuple[Any, ...]] = {}
    procs = [Exited(0), Exited(0), Exited(0)]
    assert _dead_workers(procs, _queued(0, 1, 2), reports) == []
    assert sorted(reports) == [0, 1, 2]


def test_a_failed_exit_without_a_report_is_dead_at_once() -> None:
    reports: dict[int, tuple[Any, ...]] = {}
    assert _dead_workers([Exited(0), Exited(-9), Exited(0)], _queued(0, 2), reports) == [1]


def test_a_clean_exit_whose_report_never_comes_is_dead() -> None:
    reports: dict[int, tuple[Any, ...]] = {}
    assert _dead_workers([Exited(0), Exited(0)], _queued(0), reports) == [1]


@pytest.mark.slow
def test_three_workers_finish_an_offline_phase(dataset: Dataset) -> None:
    """...and a phase that logs outputs (TEST01/06/07/09's) gets every worker's, in
    completion order, as from one process."""
    logged = frozenset(range(0, len(dataset), 2))
    load = LoadPattern("offline", 24)
    spec = RunSpec("p", SampleOrder.with_replacement(0), 300, load, log_outputs=logged)
    adapter = CompletionsAdapter("mock-llm", 2, 0.0, False)
    with MockProcess(MockConfig(slots=64, decode_us_per_token=0.0, base_latency_ms=0.0)) as mock:
        result = run_phase(spec, dataset, adapter, HttpTarget(mock.url), workers=3)
    records = result.records
    assert result.summary.complete and len(records) == 300
    assert sorted(records["worker"].unique()) == [0, 1, 2]
    expected = records[records["sample_index"].isin(logged)].sort_values("completed_ns")
    assert len(expected) > 0
    assert sorted(o.query_id for o in result.outputs) == sorted(expected["query_id"])
    done = dict(zip(records["query_id"], records["completed_ns"], strict=True))
    times = [done[o.query_id] for o in result.outputs]
    assert times == sorted(times)  # completion order across the workers
    assert all(o.text for o in result.outputs)
