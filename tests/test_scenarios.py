"""Every scenario end to end on a virtual clock (the in-memory transport and the mock's latency
model: exact and instant), plus the round trip through LoadGen files: what a run writes,
`auditkit verify` reads back to the same verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auditkit import artifacts
from auditkit.audits import build_config
from auditkit.audits.test04.logs import verify_summaries
from auditkit.config import MockConfig
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.loadgen_logs import read_summary
from auditkit.runner import AuditRun, run_audit

# base + 8 tokens × decode per query: an output-cache hit is clearly faster
FAST_MOCK = {
    "base_latency_ms": 0.5,
    "decode_us_per_token": 400.0,
    "prefill_us_per_token": 1.0,
    "jitter_cv": 0.0,
    "slots": 16,
}
# 1000 queries: the p99 early-stopping estimate is then the 2nd-largest latency (t* = 2)
MS_QUERIES = 1000
MS_PER_QUERY = 2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("data") / "prompts.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(MS_QUERIES * MS_PER_QUERY + 8):
            fh.write(json.dumps({"prompt": f"prompt {i}: " + "word " * (4 + i % 7)}) + "\n")
    return str(path)


def _run(
    tmp_path: Path,
    dataset: str,
    cache: str,
    load: dict[str, Any],
    samples: int,
    mock: dict[str, Any] | None = None,
) -> AuditRun:
    cfg = build_config(
        {
            "output_dir": str(tmp_path),
            "dataset": {"path": dataset},
            "endpoint": {"max_tokens": 8},
            "load": load,
            # the upstream rule's round trip at LoadGen's own minimum counts, in MLPerf's own
            # layout (one reference and one audit phase, each with its LoadGen logs)
            "test04": {
                "samples": samples,
                "allow_small": True,
                "control_twins": 0,
                "design": "sequential",
            },
        }
    )
    sut = SimulatedSUT(MockConfig.model_validate({**FAST_MOCK, "cache": cache, **(mock or {})}))
    return run_audit(cfg, transport=FakeTransport(sut))


def _round_trip(run: AuditRun) -> None:
    """The files the run wrote give the same verdict and scores through `auditkit verify`."""
    ref = read_summary(run.folder / "reference" / "mlperf_log_summary.txt")
    aud = read_summary(run.folder / "audit" / "mlperf_log_summary.txt")
    again = verify_summaries(ref, aud)
    assert again.verdict == run.result.upstream_verdict
    assert again.reference_score == run.result.reference_score
    assert again.audit_score == run.result.audit_score
    assert again.threshold == run.result.threshold
    flag = run.result.evidence.latency.latency_speedup_flag
    assert again.evidence.latency.latency_speedup_flag == flag
    # submission layout
    run_1 = run.folder / "performance" / "run_1"
    assert (run_1 / "mlperf_log_summary.txt").read_text() == (
        run.folder / "audit" / "mlperf_log_summary.txt"
    ).read_text()
    lines = (run_1 / "mlperf_log_detail.txt").read_text().splitlines()
    detail = {r["key"]: r["value"] for r in (json.loads(x[8:]) for x in lines)}
    assert detail["result_validity"] == ("VALID" if run.result.verdict != "INVALID" else "INVALID")
    audit_json = json.loads(
        (run.folder.parent / "audit" / "audit_output_caching_test.json").read_text()
    )
    assert audit_json["test"] == "output_caching_test"
    assert audit_json["passed"] is (run.result.upstream_verdict == "PASS")
    verify_text = (run.folder / "verify_performance.txt").read_text()
    assert ("TEST PASS" in verify_text) is (run.result.upstream_verdict == "PASS")


MULTI = {"scenario": "multi-stream", "samples_per_query": MS_PER_QUERY}


def test_multi_stream_no_cache_passes(tmp_path: Path, dataset: str) -> None:
    run = _run(tmp_path, dataset, "none", MULTI, MS_QUERIES * MS_PER_QUERY)
    phases = {p.name: p.summary for p in run.phases}
    ref, aud = phases["reference"], phases["audit"]
    assert ref.queries == aud.queries == MS_QUERIES
    assert ref.early_stopping_overlatency == 2
    audit = next(p for p in run.phases if p.name == "audit")
    assert set(audit.records["sample_index"]) == {3, 4}  # the block at sample_index
    assert run.result.verdict == "PASS", run.result.reason
    assert run.result.threshold == pytest.approx(0.20)
    _round_trip(run)


def test_multi_stream_output_cache_fails(tmp_path: Path, dataset: str) -> None:
    run = _run(tmp_path, dataset, "output", MULTI, MS_QUERIES * MS_PER_QUERY)
    assert run.result.verdict == "FAIL", run.result.reason
    _round_trip(run)


SERVER = {"scenario": "server", "target_qps": 300.0, "target_latency_ms": 100.0}


def test_server_no_cache_passes_without_flag(tmp_path: Path, dataset: str) -> None:
    run = _run(tmp_path, dataset, "none", SERVER, 500)
    assert run.result.upstream_verdict == "PASS", run.result.reason
    # the arrival-bound score is noisy (Poisson arrivals): never a FAIL, maybe not settled
    assert run.result.verdict in ("PASS", "INCONCLUSIVE"), run.result.reason
    assert run.result.evidence.latency.latency_speedup_flag is False
    ref = run.result.phases["reference"]
    assert ref.loadgen_valid and ref.target_latency_ns == 100_000_000
    # arrival-bound: the completed rate sits at the arrival rate, not the SUT's capacity
    assert ref.score == pytest.approx(300.0, rel=0.2)
    _round_trip(run)


def test_server_output_cache_is_flagged_by_latency_evidence(tmp_path: Path, dataset: str) -> None:
    run = _run(tmp_path, dataset, "output", SERVER, 500)
    # the official (arrival-bound) score cannot see the cache; the evidence does, and
    # auditkit's decision (service times of the repeated sample) FAILs it
    assert run.result.upstream_verdict == "PASS"
    assert run.result.verdict == "FAIL", run.result.reason
    assert run.result.evidence.latency.latency_speedup_flag is True
    assert "arrival-bound" in run.result.reason
    _round_trip(run)


def test_server_too_few_queries_is_invalid(tmp_path: Path, dataset: str) -> None:
    run = _run(tmp_path, dataset, "none", SERVER, 100)
    assert run.result.verdict == "INVALID"
    assert "at least 459 queries" in run.result.reason
    _round_trip(run)


@pytest.mark.parametrize("scenario", ["offline", "single-stream"])
def test_round_trip_offline_and_single_stream(tmp_path: Path, dataset: str, scenario: str) -> None:
    # only the first few audit queries miss the cache (all in-flight firsts miss it)
    run = _run(
        tmp_path, dataset, "output", {"scenario": scenario, "max_concurrency": 4}, 128, {"slots": 2}
    )
    assert run.result.verdict == "FAIL", run.result.reason
    _round_trip(run)


def test_min_duration_extends_a_phase(tmp_path: Path, dataset: str) -> None:
    cfg = build_config(
        {
            "output_dir": str(tmp_path),
            "dataset": {"path": dataset},
            "endpoint": {"max_tokens": 8},
            "load": {"scenario": "single-stream", "min_duration_s": 0.5},
            "test04": {
                "samples": 64,
                "allow_small": True,
                "warmup": 0,
                "control_twins": 0,
                "controls": 0,
            },
        }
    )
    run = run_audit(cfg, transport=FakeTransport(SimulatedSUT(MockConfig(**FAST_MOCK))))
    for phase in run.phases:
        s = phase.summary
        assert s.requested == 64 and s.issued > 64 and s.completed == s.issued
        assert s.min_duration_met and s.min_duration_ns == 500_000_000
        assert phase.records["scheduled_ns"].max() >= 500_000_000
    assert run.phases[0].summary.distinct_samples == run.phases[0].summary.issued
    assert "min_duration (ms): 500" in (run.folder / "audit" / "mlperf_log_summary.txt").read_text()
    assert not run.result.submission_grade
    assert any("not a submission-grade run" in n for n in run.result.notes)


def test_min_duration_past_the_dataset_makes_the_reference_invalid(tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps({"prompt": f"p {i}"}) + "\n" for i in range(16)))
    cfg = build_config(
        {
            "output_dir": str(tmp_path / "out"),
            "dataset": {"path": str(small)},
            "endpoint": {"max_tokens": 8},
            "load": {"scenario": "single-stream", "min_duration_s": 0.3},
            "test04": {"samples": 16, "allow_small": True, "control_twins": 0},
        }
    )
    run = run_audit(cfg, transport=FakeTransport(SimulatedSUT(MockConfig(**FAST_MOCK))))
    ref = run.result.phases["reference"]
    assert ref.issued > 16 and ref.distinct_samples == 16
    assert run.result.verdict == "INVALID"
    assert "repeated samples" in run.result.reason
    assert artifacts.load_result(run.folder).verdict == "INVALID"
