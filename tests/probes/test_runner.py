"""probes.runner against the real embedded mock: structure only (groups, counts, statuses),
never latencies, so nothing here races the clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auditkit import probes
from auditkit.config import DatasetConfig, EndpointConfig, MockConfig
from auditkit.data import Dataset, load_dataset
from auditkit.loadgen import HttpTarget
from auditkit.mock import MockServer


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(DatasetConfig())


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer(MockConfig(cache="output")) as server:
        yield server


def test_probe_runs_its_groups_in_order_and_streams_partial_results(
    server: MockServer, dataset: Dataset
) -> None:
    target = probes.ProbeTarget.connect(EndpointConfig(stream=True), server.url, dataset)
    updates: list[probes.ProbeResult] = []
    result = probes.repeat_vs_distinct(target, 3, on_update=updates.append)

    assert result.done and result.name == "repeat_vs_distinct"
    assert list(result.records["group"]) == ["distinct"] * 3 + ["repeated"] * 3
    assert list(result.records["step"]) == [1, 2, 3] * 2
    assert (result.records["status"] == "ok").all()
    assert list(result.table.index) == ["distinct", "repeated"]
    assert result.table.loc["distinct", "distinct outputs"] == 3
    assert result.table.loc["repeated", "distinct outputs"] == 1
    assert set(result.signals) == {"repeat_ratio", "cache_suspected"}
    # each group opens with a throwaway warm-up query, which the records leave out
    assert server.stats()["requests"] == 2 * (1 + 3)
    assert updates[-1] is result and not any(u.done for u in updates[:-1])
    assert any(set(u.records["group"]) == {"distinct"} for u in updates)


def test_stop_before_start_sends_nothing(server: MockServer, dataset: Dataset) -> None:
    target = probes.ProbeTarget.connect(EndpointConfig(), server.url, dataset)
    stop = probes.StopFlag()
    stop.set()
    result = probes.cold_vs_warm(target, 8, stop=stop)
    assert result.done and len(result.records) == 0
    assert server.stats()["requests"] == 0


def test_fresh_prompts_never_repeat(dataset: Dataset) -> None:
    target = probes.ProbeTarget("http://x", EndpointConfig(), "m", HttpTarget("http://x"), dataset)
    texts = target.fresh_texts(5) + target.fresh_texts(5, rows=3)
    assert len(set(texts)) == 10
    other = probes.ProbeTarget("http://x", EndpointConfig(), "m", HttpTarget("http://x"), dataset)
    assert not set(other.fresh_texts(10)) & set(texts)  # another session, another tag
