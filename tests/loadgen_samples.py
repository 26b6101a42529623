"""Hand-built LoadGen summaries in LoadGen's own layout (loadgen/results.cc, logging.cc)."""

from __future__ import annotations

RULE = "=" * 48

SCORE_LINES = {
    "Offline": "Samples per second: {score}",
    "Server": "Completed samples per second    : {score}",
    "SingleStream": "90.0th percentile latency (ns) : {score}",
    "MultiStream": "99.0th percentile latency (ns) : {score}",
}
ES_LINES = {
    "SingleStream": " * Early stopping 90.0th percentile estimate: {score}",
    "MultiStream": " * Early stopping 99.0th percentile estimate: {score}",
}


def summary(
    scenario: str,
    score: str,
    *,
    valid: bool = True,
    errors: int = 0,
    target_latency_ns: int = 0,
    p50: int = 1_000_000,
    trailer: bool = True,
) -> str:
    """A LoadGen mlperf_log_summary.txt for `scenario` with `score` in its score line."""
    lines = [RULE, "MLPerf Results Summary", RULE, "SUT name : PySUT"]
    lines += [f"Scenario : {scenario}", "Mode     : PerformanceOnly"]
    lines.append(SCORE_LINES[scenario].format(score=score))
    lines.append(f"Result is : {'VALID' if valid else 'INVALID'}")
    if scenario == "Server":
        lines.append("  Performance constraints satisfied : Yes")
    lines += [
        "  Min duration satisfied : Yes",
        "  Min queries satisfied : Yes",
        f"  Early stopping satisfied: {'Yes' if valid else 'NO'}",
    ]
    if not valid:
        lines += [
            "Recommendations:",
            " * Decrease the expected latency so the loadgen pre-generates more queries.",
        ]
    if scenario in ES_LINES:
        lines += [
            "Early Stopping Result:",
            " * Processed at least 64 queries (1000).",
            " * Would discard 77 highest latency queries.",
            ES_LINES[scenario].format(score=score),
        ]
    elif scenario == "Server":
        lines += ["Early Stopping Result:", " * Run successful."]
    lines += ["", RULE, "Additional Stats", RULE]
    if scenario == "MultiStream":
        lines.append("Per-query latency:  ")
    lines += [
        "Min latency (ns)                : 500000",
        "Max latency (ns)                : 9000000",
        "Mean latency (ns)               : 1100000",
        f"50.00 percentile latency (ns)   : {p50}",
        f"90.00 percentile latency (ns)   : {p50 * 2}",
        "95.00 percentile latency (ns)   : 3000000",
        "97.00 percentile latency (ns)   : 4000000",
        f"99.00 percentile latency (ns)   : {p50 * 5}",
        "99.90 percentile latency (ns)   : 8000000",
        "",
        RULE,
        "Test Parameters Used",
        RULE,
        "samples_per_query : 1",
        "target_qps : 100",
        f"target_latency (ns): {target_latency_ns}",
        "min_duration (ms): 600000",
        "performance_issue_same : 0",
        "performance_sample_count : 1024",
        "",
        "No warnings encountered during test.",
    ]
    if trailer:
        lines.append("")
        if errors == 0:
            lines.append("No errors encountered during test.")
        elif errors == 1:
            lines.append("1 ERROR encountered. See detailed log.")
        else:
            lines.append(f"{errors} ERRORS encountered. See detailed log.")
    return "\n".join(lines) + "\n"
