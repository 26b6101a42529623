"""auditkit's LoadGen-format files: LoadGen's spelling, and they parse back to the same numbers."""

from __future__ import annotations

import json

import pytest

from auditkit import mlperf_logs
from auditkit.audits.test04.logs import format_verify_performance
from auditkit.loadgen_logs import parse_summary
from auditkit.results import AuditResult, LatencyStats, PhaseSummary


def _summary(scenario: str, **kw: object) -> PhaseSummary:
    base: dict[str, object] = {
        "name": "audit",
        "scenario": scenario,
        "order": "single(index=3)",
        "requested": 1000,
        "issued": 1000,
        "completed": 1000,
        "failed": 0,
        "cancelled": 0,
        "duration_ns": 10**10,
        "samples_per_second": 100.123456789,
        "queries": 1000,
        "latency": LatencyStats(
            count=1000, min_ns=1, max_ns=9, mean_ns=5, p50_ns=5, p90_ns=8, p99_ns=9
        ),
        "score_name": "s",
        "complete": True,
        "loadgen_valid": True,
        "distinct_samples": 1,
    }
    base.update(kw)
    return PhaseSummary.model_validate(base)


def test_offline_summary_spelling() -> None:
    s = _summary("offline", score=100.123)
    text = mlperf_logs.format_summary(s)
    assert "Scenario : Offline\nMode     : PerformanceOnly\nSamples per second: 100.123\n" in text
    assert "Result is : VALID\n" in text and text.endswith("\nNo errors encountered during test.\n")
    assert "50.00 percentile latency (ns)   : 5\n" in text
    assert "performance_issue_same : 1\nperformance_issue_same_index : 3\n" in text
    assert parse_summary(text).score == 100.123


def test_single_stream_early_stopping_block() -> None:
    s = _summary(
        "single-stream",
        score=1e9 / 1234,
        early_stopping_percentile=0.9,
        early_stopping_latency_ns=1234,
        early_stopping_overlatency=78,
    )
    text = mlperf_logs.format_summary(s)
    assert " * Processed at least 64 queries (1000).\n" in text
    assert " * Would discard 77 highest latency queries.\n" in text  # LoadGen prints t* - 1
    assert " * Early stopping 90.0th percentile estimate: 1234\n" in text
    assert "90.0th percentile latency (ns) : 8\n" in text
    parsed = parse_summary(text)
    assert parsed.early_stopping_latency_ns == 1234 and parsed.score == 1e9 / 1234


def test_server_summary_and_detail() -> None:
    s = _summary(
        "server",
        score=99.86,
        target_latency_ns=10**8,
        target_qps=100.0,
        early_stopping_percentile=0.99,
        early_stopping_overlatency=0,
        scheduled_samples_per_second=100.2,
    )
    text = mlperf_logs.format_summary(s)
    assert "Completed samples per second    : 99.86\n" in text
    assert "  Performance constraints satisfied : Yes\n" in text
    assert "Early Stopping Result:\n * Run successful.\n" in text
    assert "target_latency (ns): 100000000\n" in text
    detail = _detail(mlperf_logs.format_detail(s))
    assert detail["effective_scenario"] == "Server"
    assert detail["result_completed_samples_per_sec"] == 99.86
    assert detail["effective_target_latency_ns"] == 10**8
    assert detail["num_errors"] == 0 and detail["result_validity"] == "VALID"


def test_invalid_phase_logs_errors() -> None:
    s = _summary(
        "multi-stream",
        loadgen_valid=False,
        complete=True,
        early_stopping_percentile=0.99,
        queries=64,
        invalid_reasons=["early stopping needs at least 662 queries for the p99 estimate (got 64)"],
    )
    text = mlperf_logs.format_summary(s)
    assert "Result is : INVALID\n" in text and "  Early stopping satisfied: NO\n" in text
    assert " * Need to process at least 662 queries for early stopping.\n" in text
    assert text.endswith("\n1 ERROR encountered. See detailed log.\n")
    lines = mlperf_logs.format_detail(s).splitlines()
    errors = [json.loads(x[len(":::MLLOG ") :]) for x in lines if '"is_error": true' in x]
    assert len(errors) == 1 and errors[0]["metadata"]["is_error"] is True
    parsed = parse_summary(text)
    assert not parsed.valid and parsed.errors == 1


@pytest.mark.parametrize(
    ("scenario", "score", "printed"),
    [
        ("offline", 33.6903, "33.6903"),
        ("server", 99.8, "99.80"),
        ("single-stream", 1e9 / 3, str(1e9 / 3)),
    ],
)
def test_score_text_is_what_upstream_prints(scenario: str, score: float, printed: str) -> None:
    assert mlperf_logs.score_text(scenario, score) == printed


def test_verify_performance_text() -> None:
    result = AuditResult(
        test="TEST04",
        verdict="PASS",
        reason="ok",
        scenario="server",
        score_name="s",
        reference_score=99.86,
        audit_score=100.0,
        ratio=1.0,
        threshold=0.1,
        threshold_source="upstream",
        rule="r",
    )
    lines = format_verify_performance(result).splitlines()
    assert lines[:4] == [
        "Verifying performance.",
        "reference score = 99.86",
        "test score = 100.00",
        "TEST PASS",
    ]
    invalid = result.model_copy(update={"verdict": "INVALID", "reason": "INVALID: x"})
    text = format_verify_performance(invalid)
    assert "TEST PASS" not in text and "TEST FAIL: Test results are invalid" in text


def _detail(text: str) -> dict[str, object]:
    """mlperf_log_detail.txt's `:::MLLOG {json}` records → {key: value}."""
    records = (json.loads(x[8:]) for x in text.splitlines() if x.startswith(":::MLLOG"))
    return {r["key"]: r["value"] for r in records}
