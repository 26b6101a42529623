"""LoadGen-style log text (mlperf_log_summary.txt, mlperf_log_detail.txt, verify_performance.txt).

Pure formatting: field names follow LoadGen's spelling so upstream scripts can read them.
"""

from __future__ import annotations

import json

from auditkit.results import AuditResult, PhaseSummary

LOADGEN_SCENARIO = {
    "offline": "Offline",
    "single-stream": "SingleStream",
    "multi-stream": "MultiStream",
    "server": "Server",
}
RULE = "=" * 48


def _yes(flag: bool) -> str:
    return "Yes" if flag else "No"


def format_summary(s: PhaseSummary, sut_name: str = "auditkit-http") -> str:
    """mlperf_log_summary.txt for one phase."""
    scenario = LOADGEN_SCENARIO[s.scenario]
    lines = [RULE, "MLPerf Results Summary", RULE, f"SUT name : {sut_name}"]
    lines += [f"Scenario : {scenario}", "Mode     : PerformanceOnly"]
    if s.scenario == "offline":
        lines.append(f"Samples per second: {s.samples_per_second:.6g}")
    elif s.scenario == "server":
        lines.append(f"Completed samples per second    : {(s.score or 0.0):.2f}")
    elif s.scenario == "single-stream":
        lines.append(f"90th percentile latency (ns) : {s.latency.p90_ns or 0}")
    else:
        q = s.query_latency or s.latency
        lines.append(f"99th percentile latency (ns) : {q.p99_ns or 0}")
    lines.append(f"Result is : {'VALID' if s.loadgen_valid else 'INVALID'}")
    lines.append("  Min duration satisfied : Yes")
    lines.append(f"  Min queries satisfied : {_yes(s.complete)}")
    es_ok = s.early_stopping_percentile is None or s.early_stopping_latency_ns is not None
    lines.append(f"  Early stopping satisfied: {_yes(es_ok)}")
    if s.early_stopping_percentile is not None and s.scenario != "server":
        pct = s.early_stopping_percentile * 100
        lines += ["Early Stopping Result:"]
        if s.early_stopping_latency_ns is not None:
            lines.append(f" * Processed at least {s.queries} queries ({s.queries}).")
            lines.append(
                f" * Would discard {s.early_stopping_overlatency} highest latency queries."
            )
            lines.append(
                f" * Early stopping {pct:.1f}th percentile estimate: {s.early_stopping_latency_ns}"
            )
        else:
            lines.append(f" * Only processed {s.queries} queries: too few for early stopping.")
    lines += ["", RULE, "Additional Stats", RULE]
    if s.scenario in ("offline", "server"):
        lines.append(f"Completed samples per second    : {s.samples_per_second:.2f}")
    lat = s.latency
    lines += [
        "",
        f"Min latency (ns)                : {lat.min_ns or 0}",
        f"Max latency (ns)                : {lat.max_ns or 0}",
        f"Mean latency (ns)               : {lat.mean_ns or 0}",
        f"50.00 percentile latency (ns)   : {lat.p50_ns or 0}",
        f"90.00 percentile latency (ns)   : {lat.p90_ns or 0}",
        f"95.00 percentile latency (ns)   : {lat.p95_ns or 0}",
        f"97.00 percentile latency (ns)   : {lat.p97_ns or 0}",
        f"99.00 percentile latency (ns)   : {lat.p99_ns or 0}",
        f"99.90 percentile latency (ns)   : {lat.p999_ns or 0}",
        "",
        RULE,
        "Test Parameters Used",
        RULE,
        f"samples_per_query : {max(1, s.requested // max(1, s.queries))}",
        f"min_query_count : {s.requested}",
        "performance_sample_count : 0",
        "",
    ]
    errors = [f"{s.failed} queries failed"] if s.failed else []
    errors += s.invalid_reasons
    lines.append("No warnings encountered during test.")
    lines.append("")
    if errors:
        lines.append(f"{len(errors)} ERROR(S) encountered. See detailed log.")
    else:
        lines.append("No errors encountered during test.")
    return "\n".join(lines) + "\n"


def format_detail(s: PhaseSummary) -> str:
    """mlperf_log_detail.txt: `:::MLLOG {json}` lines for the keys the checkers read."""
    entries: list[tuple[str, object]] = [
        ("effective_scenario", LOADGEN_SCENARIO[s.scenario]),
        ("result_validity", "VALID" if s.loadgen_valid else "INVALID"),
        ("num_errors", s.failed),
    ]
    if s.scenario == "offline":
        entries.append(("result_samples_per_second", s.samples_per_second))
    if s.scenario == "single-stream" and s.early_stopping_latency_ns is not None:
        entries.append(("early_stopping_latency_ss", s.early_stopping_latency_ns))
    if s.scenario == "multi-stream" and s.early_stopping_latency_ns is not None:
        entries.append(("early_stopping_latency_ms", s.early_stopping_latency_ns))
    if s.scenario == "server":
        entries.append(("result_completed_samples_per_sec", s.score or 0.0))
        entries.append(("effective_target_latency_ns", s.target_latency_ns or 0))
    out = []
    for key, value in entries:
        record = {"key": key, "value": value, "time_ms": 0, "namespace": "mlperf::logging"}
        out.append(":::MLLOG " + json.dumps(record))
    return "\n".join(out) + "\n"


def format_verify_performance(result: AuditResult) -> str:
    """verify_performance.txt in upstream's wording."""
    lines = [
        "Verifying performance.",
        f"reference score = {result.reference_score}",
        f"test score = {result.audit_score}",
        f"threshold = {result.threshold}",
    ]
    if result.verdict == "INVALID":
        lines.append(f"TEST INVALID: {result.reason}")
    else:
        lines.append("TEST PASS" if result.passed else "TEST FAIL: Test score invalid")
    return "\n".join(lines) + "\n"
