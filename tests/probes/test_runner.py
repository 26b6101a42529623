"""probes.runner over real HTTP against the mock in its own process: structure (roles, counts,
statuses, live updates, stop) and a diagnosis with a clear margin, never a latency threshold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auditkit import probes
from auditkit.config import DatasetConfig, EndpointConfig, MockConfig
from auditkit.data import Dataset, load_dataset
from auditkit.loadgen import HttpTarget
from auditkit.mock import MockProcess


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(DatasetConfig())


@pytest.fixture(scope="module")
def server() -> Iterator[MockProcess]:
    with MockProcess(MockConfig(cache="output")) as server:
        yield server


@pytest.mark.slow
def test_probe_runs_its_plan_and_streams_partial_results(
    server: MockProcess, dataset: Dataset
) -> None:
    target = probes.ProbeTarget.connect(EndpointConfig(stream=True), server.url, dataset)
    before = server.stats()["requests"]
    updates: list[probes.ProbeResult] = []
    # the default 10 rounds: enough to name a response cache on a busy machine too
    result = probes.run_probe("back_to_back", target, 10, on_update=updates.append)

    assert result.done and result.name == "back_to_back"
    assert list(result.records["role"]) == ["cold", "warm"] * 10
    assert list(result.records["round"]) == [r for r in range(1, 11) for _ in (0, 1)]
    assert (result.records["status"] == "ok").all()
    assert server.stats()["requests"] - before == 1 + 20  # the opener, then the plan
    assert updates[-1] is result and not any(u.done for u in updates[:-1])
    # a response cache replays whole answers: 50× faster, far beyond any machine's noise
    assert result.kind == "response cache", result.finding


@pytest.mark.slow
def test_stop_before_start_sends_nothing(server: MockProcess, dataset: Dataset) -> None:
    target = probes.ProbeTarget.connect(EndpointConfig(), server.url, dataset)
    before = server.stats()["requests"]
    stop = probes.StopFlag()
    stop.set()
    result = probes.run_probe("interleaved", target, 8, stop=stop)
    assert result.done and len(result.records) == 0
    assert server.stats()["requests"] == before


def test_fresh_prompts_never_repeat(dataset: Dataset) -> None:
    target = probes.ProbeTarget("http://x", EndpointConfig(), "m", HttpTarget("http://x"), dataset)
    texts = target.fresh_texts(5) + target.fresh_texts(5, rows=3)
    assert len(set(texts)) == 10
    other = probes.ProbeTarget("http://x", EndpointConfig(), "m", HttpTarget("http://x"), dataset)
    assert not set(other.fresh_texts(10)) & set(texts)  # another session, another tag


def test_user_agent_goes_out_only_when_configured() -> None:
    assert "User-Agent" not in HttpTarget.from_config(EndpointConfig(), "http://x", None).headers
    cfg = EndpointConfig(user_agent="curl/8.5.0", connection_warmup=False)
    target = HttpTarget.from_config(cfg, "http://x", None)
    assert target.headers["User-Agent"] == "curl/8.5.0" and target.warm_connections is False
