"""Every probe against the mock's behaviours on a virtual clock (the mock's engine through the
in-memory transport): exact, instant, and the same code a served mock runs."""

from __future__ import annotations

from typing import Any

import pytest

from auditkit import probes
from auditkit.config import DatasetConfig, EndpointConfig, MockConfig
from auditkit.data import Dataset, load_dataset
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.mock.presets import PRESETS


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(DatasetConfig())


def target(
    mock: dict[str, Any], dataset: Dataset, **endpoint: Any
) -> tuple[probes.ProbeTarget, FakeTransport]:
    transport = FakeTransport(SimulatedSUT(MockConfig.model_validate(mock)))
    cfg = EndpointConfig.model_validate({"stream": True} | endpoint)
    return probes.ProbeTarget.simulated(cfg, transport, dataset), transport


@pytest.mark.parametrize("behaviour", list(PRESETS))
def test_probes_diagnose_each_mock_behaviour(behaviour: str, dataset: Dataset) -> None:
    mock, expected = PRESETS[behaviour]
    t, _ = target(mock, dataset)
    results = {name: probes.run_probe(name, t, 6) for name in probes.CATALOGUE}
    diagnosis = probes.diagnose_kind(results)
    assert diagnosis.kind == expected, {n: r.finding for n, r in results.items()}


def test_last_prompt_cache_hits_back_to_back_only(dataset: Dataset) -> None:
    t, _ = target({"cache": "last-prompt"}, dataset)
    results = {n: probes.run_probe(n, t, 6) for n in ("back_to_back", "interleaved")}
    diagnosis = probes.diagnose_kind(results)
    assert diagnosis.patterns == {"back-to-back": True, "interleaved": False}
    assert "hit under back-to-back; not under interleaved" in diagnosis.text


def test_plans_alternate_cold_and_warm_with_fresh_prompts(dataset: Dataset) -> None:
    t, transport = target({}, dataset)
    result = probes.run_probe("interleaved", t, 4)
    rec = result.records
    assert list(rec["role"]) == ["prime"] + ["cold", "warm"] * 4
    assert list(rec["prompt"]) == ["A", "B1", "A", "B2", "A", "B3", "A", "B4", "A"]
    assert result.done and set(result.table.index) == {"latency", "TTFT", "decode per token"}
    posts = [r for r in transport.requests if r.method == "POST"]
    assert len(posts) == 1 + 9  # the opener, then the plan
    assert not [r for r in transport.requests if r.method == "GET"]  # no give-away GET burst
    assert len({r.body for r in posts}) == 1 + 1 + 4  # opener, A, B1..B4


def test_bursts_are_sent_at_once(dataset: Dataset) -> None:
    t, transport = target({}, dataset)
    result = probes.run_probe("burst", t, 3, burst=4)
    assert transport.peak_in_flight == 4
    assert len(result.records) == 3 * 2 * 4
    assert result.records.groupby("burst").size().eq(4).all()


def test_user_agent_is_configurable_and_names_nothing_by_default(dataset: Dataset) -> None:
    t, transport = target({}, dataset)
    probes.run_probe("back_to_back", t, 3)
    assert all("auditkit" not in str(r.headers.get("User-Agent", "")) for r in transport.requests)
    t, transport = target({}, dataset, user_agent="python-requests/2.32")
    probes.run_probe("back_to_back", t, 3)
    assert {r.headers.get("User-Agent") for r in transport.requests} == {"python-requests/2.32"}


def test_every_probe_has_a_button_label_and_a_doc() -> None:
    for name, probe in probes.CATALOGUE.items():
        assert probe.name == name and probe.label and probe.doc and probe.pattern
    with pytest.raises(KeyError, match="probes: back_to_back"):
        probes.run_probe("cold_vs_warm", None, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("warmup", [True, False])
def test_a_phase_opens_connections_with_a_get_only_when_asked(
    dataset: Dataset, warmup: bool
) -> None:
    from auditkit.data import SampleOrder
    from auditkit.endpoints import make_adapter
    from auditkit.loadgen import HttpTarget, run_phase
    from auditkit.plan import LoadPattern, RunSpec

    transport = FakeTransport(SimulatedSUT(MockConfig()))
    cfg = EndpointConfig(connection_warmup=warmup)
    target = HttpTarget.from_config(cfg, "http://sut.invalid", None)
    spec = RunSpec("p", SampleOrder.repeated_block(0, 4), 4, LoadPattern("offline", 2))
    result = run_phase(spec, dataset, make_adapter(cfg, "mock-llm"), target, transport=transport)
    assert (result.records["status"] == "ok").all()
    gets = [r for r in transport.requests if r.method == "GET"]
    assert len(gets) == (2 if warmup else 0)
