"""probes.py against the real embedded mock: the probes tell none / output / prefix apart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auditkit import probes
from auditkit.config import DatasetConfig, EndpointConfig, MockConfig
from auditkit.data import Dataset, load_dataset
from auditkit.mock import MockServer


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(DatasetConfig())


@pytest.fixture(scope="module", params=["none", "output", "prefix"])
def target(request: pytest.FixtureRequest, dataset: Dataset) -> Iterator[probes.ProbeTarget]:
    with MockServer(MockConfig(cache=request.param)) as server:
        target = probes.ProbeTarget.connect(EndpointConfig(stream=True), server.url, dataset)
        target.label = request.param  # the cache mode, for the assertions
        yield target


def test_probes_tell_cache_kinds_apart(target: probes.ProbeTarget) -> None:
    updates: list[probes.ProbeResult] = []
    warm = probes.cold_vs_warm(target, 8, on_update=updates.append)
    same = probes.output_identity(target, 6)
    assert warm.done and len(warm.records) == 8 and (warm.records["status"] == "ok").all()
    assert updates and updates[-1].done  # partial results were pushed, then the final one
    expected_kind = target.label
    assert warm.signals["kind"] == expected_kind, warm.finding
    assert same.signals["identical"] is (expected_kind == "output"), same.finding
    diagnosis = probes.diagnose({"cold_vs_warm": warm, "output_identity": same})
    word = {"none": "no caching", "output": "response", "prefix": "prefix/KV"}[expected_kind]
    assert word in diagnosis


def test_repeat_vs_distinct_flags_a_response_cache(target: probes.ProbeTarget) -> None:
    result = probes.repeat_vs_distinct(target, 6)
    assert set(result.table.index) == {"distinct", "repeated"}
    assert result.table.loc["distinct", "distinct outputs"] == 6
    if target.label == "output":
        assert result.signals["cache_suspected"]
    if target.label == "none":
        assert not result.signals["cache_suspected"]


def test_shared_prefix_runs_both_groups(target: probes.ProbeTarget) -> None:
    if target.label != "prefix":
        pytest.skip("one cache mode is enough for the shape of the result")
    result = probes.shared_prefix(target, 4)
    assert list(result.table.index) == ["unique prefixes", "shared prefix"]
    # the mock's prefix cache matches whole prompts only: no partial reuse to see
    assert result.signals["prefix_reused"] is False


def test_fresh_prompts_never_repeat(dataset: Dataset) -> None:
    target = probes.ProbeTarget("http://x", EndpointConfig(), "m", None, dataset)  # type: ignore[arg-type]
    texts = target.fresh_texts(5) + target.fresh_texts(5)
    assert len(set(texts)) == 10


def test_stop_before_start_sends_nothing(dataset: Dataset) -> None:
    with MockServer(MockConfig()) as server:
        target = probes.ProbeTarget.connect(EndpointConfig(), server.url, dataset)
        stop = probes.StopFlag()
        stop.set()
        result = probes.cold_vs_warm(target, 8, stop=stop)
        assert len(result.records) == 0 and server.stats()["requests"] <= 0


def test_classify_warm_without_streaming() -> None:
    assert probes.classify_warm({"latency_ratio": 0.1}) == "unknown"
    assert probes.classify_warm({"latency_ratio": 1.0}) == "none"
    assert (
        probes.classify_warm({"latency_ratio": 0.8, "ttft_ratio": 0.3, "decode_ratio": 1.0})
        == "prefix"
    )
