"""LoadGen-style log text (mlperf_log_summary.txt, mlperf_log_detail.txt).

Pure formatting, in LoadGen's own spelling (loadgen/results.cc, logging.cc,
test_settings_internal.cc) so upstream's verify_performance.py and the submission checker read
auditkit's files as they read LoadGen's. `auditkit.loadgen_logs` parses the same text back.
"""

from __future__ import annotations

import json
import re
from typing import Any

from auditkit import early_stopping
from auditkit.results import LatencyStats, PhaseSummary

LOADGEN_SCENARIO = {
    "offline": "Offline",
    "single-stream": "SingleStream",
    "multi-stream": "MultiStream",
    "server": "Server",
}
RULE = "=" * 48
SUMMARY_FILE = "mlperf_log_summary.txt"
DETAIL_FILE = "mlperf_log_detail.txt"
# LoadGen's defaults for settings auditkit has no equivalent of (printed for completeness)
OFFLINE_EXPECTED_QPS = 1
PERCENTILES = (0.50, 0.90, 0.95, 0.97, 0.99, 0.999)


def _yes(flag: bool) -> str:
    # LoadGen prints "Yes" / "NO" (sic)
    return "Yes" if flag else "NO"


def pct_label(p: float, digits: int) -> str:
    """LoadGen's DoubleToString(p × 100, digits): 90.0, 99.0, 50.00 …"""
    return f"{p * 100:.{digits}f}"


def score_text(scenario: str, score: float) -> str:
    """A score as upstream verify_performance.py prints it (`reference score = …`): the string
    it parsed for Offline/Server, the float 1e9 / latency for SingleStream/MultiStream."""
    if scenario == "offline":
        return f"{score:.6g}"
    if scenario == "server":
        return f"{score:.2f}"
    return str(score)


def _stats_lines(lat: LatencyStats) -> list[str]:
    values = (lat.p50_ns, lat.p90_ns, lat.p95_ns, lat.p97_ns, lat.p99_ns, lat.p999_ns)
    lines = [
        f"Min latency (ns)                : {lat.min_ns or 0}",
        f"Max latency (ns)                : {lat.max_ns or 0}",
        f"Mean latency (ns)               : {lat.mean_ns or 0}",
    ]
    for p, v in zip(PERCENTILES, values, strict=True):
        lines.append(f"{pct_label(p, 2)} percentile latency (ns)   : {v or 0}")
    return lines


def _early_stopping_lines(s: PhaseSummary) -> list[str]:
    """The `Early Stopping Result:` block, worded as results.cc words it."""
    if s.scenario == "server":
        if s.target_latency_ns is None:
            return [" * Not evaluated: no target latency given (load.target_latency_ms)."]
        t = s.early_stopping_overlatency or 0
        need = early_stopping.min_passing_count(t, 0.99) + t
        if s.completed >= need:
            return [" * Run successful."]
        return [
            " * Run unsuccessful.",
            f" * Processed {s.completed} queries.",
            f" * Would need to run at least {need - s.completed} more queries,",
            " with the run being successful if every additional",
            " query were under latency.",
        ]
    p = s.early_stopping_percentile or 0.0
    h_min = early_stopping.min_queries(p)
    n = s.queries if s.scenario == "multi-stream" else s.completed
    if s.early_stopping_latency_ns is None or s.early_stopping_overlatency is None:
        return [
            f" * Only processed {n} queries.",
            f" * Need to process at least {h_min} queries for early stopping.",
        ]
    return [
        f" * Processed at least {h_min} queries ({n}).",
        f" * Would discard {s.early_stopping_overlatency - 1} highest latency queries.",
        f" * Early stopping {pct_label(p, 1)}th percentile estimate: {s.early_stopping_latency_ns}",
    ]


def _audit_settings(s: PhaseSummary) -> tuple[int, int]:
    """(performance_issue_same, performance_issue_same_index) as a LoadGen audit.config sets
    them for a phase that repeats one sample (or block)."""
    match = re.match(r"(single|block)\(index=(\d+)", s.order)
    return (1, int(match.group(2))) if match else (0, 0)


def errors_of(s: PhaseSummary) -> list[str]:
    """What LoadGen would have logged as errors: each reason the result is INVALID."""
    return list(s.invalid_reasons)


def format_summary(s: PhaseSummary) -> str:
    """mlperf_log_summary.txt for one phase."""
    scenario = LOADGEN_SCENARIO[s.scenario]
    lines = [RULE, "MLPerf Results Summary", RULE, "SUT name : auditkit-http"]
    lines += [f"Scenario : {scenario}", "Mode     : PerformanceOnly"]
    if s.scenario == "offline":
        lines.append(f"Samples per second: {s.samples_per_second:.6g}")
    elif s.scenario == "server":
        lines.append(f"Completed samples per second    : {(s.score or 0.0):.2f}")
    elif s.scenario == "single-stream":
        lines.append(f"{pct_label(0.90, 1)}th percentile latency (ns) : {s.latency.p90_ns or 0}")
    else:
        q = s.query_latency or s.latency
        lines.append(f"{pct_label(0.99, 1)}th percentile latency (ns) : {q.p99_ns or 0}")
    es_met = not any(r.startswith("early stopping") for r in s.invalid_reasons)
    perf_met = not any(r.startswith("server latency bound") for r in s.invalid_reasons)
    lines.append(f"Result is : {'VALID' if s.loadgen_valid else 'INVALID'}")
    if s.scenario == "server":
        lines.append(f"  Performance constraints satisfied : {_yes(perf_met)}")
    lines.append(f"  Min duration satisfied : {_yes(s.min_duration_met)}")
    lines.append(f"  Min queries satisfied : {_yes(s.min_queries_met and s.complete)}")
    lines.append(f"  Early stopping satisfied: {_yes(es_met)}")
    if not s.loadgen_valid:
        lines.append("Recommendations:")
        lines += [f" * {r}" for r in s.invalid_reasons]
    if s.scenario != "offline":
        lines.append("Early Stopping Result:")
        lines += _early_stopping_lines(s)
    lines += ["", RULE, "Additional Stats", RULE]
    if s.scenario == "single-stream":
        issued_s = s.duration_ns / 1e9
        qps_w = (s.completed - 1) / issued_s if issued_s > 0 and s.completed > 1 else 0.0
        qps_wo = 1e9 / s.latency.mean_ns if s.latency.mean_ns else 0.0
        lines.append(f"QPS w/ loadgen overhead         : {qps_w:.2f}")
        lines.append(f"QPS w/o loadgen overhead        : {qps_wo:.2f}")
        lines.append("")
    elif s.scenario == "server":
        lines.append(f"Scheduled samples per second : {(s.scheduled_samples_per_second or 0):.2f}")
    elif s.scenario == "multi-stream":
        lines.append("Per-query latency:  ")
        lines += _stats_lines(s.query_latency or LatencyStats(count=0))
    if s.scenario != "multi-stream":
        lines += _stats_lines(s.latency)
    same, same_index = _audit_settings(s)
    queries_planned = max(1, s.requested // max(1, s.samples_per_query))
    lines += [
        "",
        RULE,
        "Test Parameters Used",
        RULE,
        f"samples_per_query : {s.samples_per_query}",
        f"target_qps : {s.target_qps if s.target_qps is not None else OFFLINE_EXPECTED_QPS:g}",
        f"target_latency (ns): {s.target_latency_ns or 0}",
        f"max_async_queries : {1 if s.scenario in ('single-stream', 'multi-stream') else 0}",
        f"min_duration (ms): {s.min_duration_ns // 1_000_000}",
        "max_duration (ms): 0",
        f"min_query_count : {queries_planned}",
        "max_query_count : 0",
        "qsl_rng_seed : 0",
        "sample_index_rng_seed : 0",
        "schedule_rng_seed : 0",
        "accuracy_log_rng_seed : 0",
        "accuracy_log_probability : 0",
        "accuracy_log_sampling_target : 0",
        "print_timestamps : 0",
        "performance_issue_unique : 0",
        f"performance_issue_same : {same}",
        f"performance_issue_same_index : {same_index}",
        f"performance_sample_count : {s.distinct_samples}",
        "",
        "No warnings encountered during test.",
        "",
    ]
    n_errors = len(errors_of(s))
    if n_errors == 0:
        lines.append("No errors encountered during test.")
    elif n_errors == 1:
        lines.append("1 ERROR encountered. See detailed log.")
    else:
        lines.append(f"{n_errors} ERRORS encountered. See detailed log.")
    return "\n".join(lines) + "\n"


def _mllog(key: str, value: Any, *, error: bool = False) -> str:
    record = {
        "key": key,
        "value": value,
        "time_ms": 0.0,
        "namespace": "mlperf::logging",
        "event_type": "POINT_IN_TIME",
        "metadata": {"is_error": error, "is_warning": False, "file": "auditkit", "line_no": 0},
    }
    return ":::MLLOG " + json.dumps(record)


def format_detail(s: PhaseSummary) -> str:
    """mlperf_log_detail.txt: `:::MLLOG {json}` lines for the keys the checkers read."""
    same, same_index = _audit_settings(s)
    es_met = not any(r.startswith("early stopping") for r in s.invalid_reasons)
    entries: list[tuple[str, Any]] = [
        ("effective_scenario", LOADGEN_SCENARIO[s.scenario]),
        ("effective_test_mode", "PerformanceOnly"),
        ("effective_samples_per_query", s.samples_per_query),
        ("effective_target_qps", s.target_qps if s.target_qps is not None else 1),
        ("effective_target_latency_ns", s.target_latency_ns or 0),
        ("effective_min_duration_ms", s.min_duration_ns // 1_000_000),
        ("effective_min_query_count", max(1, s.requested // max(1, s.samples_per_query))),
        ("effective_performance_issue_same", same),
        ("effective_performance_issue_same_index", same_index),
        ("effective_performance_sample_count", s.distinct_samples),
        ("result_validity", "VALID" if s.loadgen_valid else "INVALID"),
        ("result_min_duration_met", s.min_duration_met),
        ("result_min_queries_met", s.min_queries_met and s.complete),
        ("early_stopping_met", es_met),
        ("result_query_count", s.queries),
    ]
    if not s.loadgen_valid:
        entries.append(("result_invalid_reason", "; ".join(s.invalid_reasons)))
    if s.scenario != "offline":
        entries.append(("early_stopping_result", " ".join(_early_stopping_lines(s))))
    if s.scenario == "offline":
        entries.append(("result_samples_per_second", s.samples_per_second))
    elif s.scenario == "single-stream":
        entries.append(("early_stopping_latency_ss", s.early_stopping_latency_ns or 0))
    elif s.scenario == "multi-stream":
        entries.append(("early_stopping_latency_ms", s.early_stopping_latency_ns or 0))
    else:
        entries.append(("result_scheduled_samples_per_sec", s.scheduled_samples_per_second or 0))
        entries.append(("result_completed_samples_per_sec", s.score or 0.0))
    lat = s.latency
    entries += [
        ("result_min_latency_ns", lat.min_ns or 0),
        ("result_max_latency_ns", lat.max_ns or 0),
        ("result_mean_latency_ns", lat.mean_ns or 0),
    ]
    values = (lat.p50_ns, lat.p90_ns, lat.p95_ns, lat.p97_ns, lat.p99_ns, lat.p999_ns)
    for p, v in zip(PERCENTILES, values, strict=True):
        entries.append((f"result_{pct_label(p, 2)}_percentile_latency_ns", v or 0))
    if s.scenario == "single-stream" and lat.mean_ns:
        # LoadGen's SingleStream figure: one query at a time, so 1 / mean latency
        entries.append(("result_qps_without_loadgen_overhead", 1e9 / lat.mean_ns))
    if s.ttft is not None:
        entries.append(("result_first_token_mean_latency_ns", s.ttft.mean_ns or 0))
        entries.append(("result_first_token_99.00_percentile_latency_ns", s.ttft.p99_ns or 0))
    if s.output_tokens_total and s.completed:
        entries.append(("mean_output_tokens", s.output_tokens_total / s.completed))
    entries += [
        # what auditkit did, in LoadGen's keys: the load generator, the queries it generated,
        # no sample concatenation, no token-latency constraints
        ("loadgen_version", "auditkit (HTTP load generator, not LoadGen)"),
        ("generated_query_count", s.issued),
        ("effective_sample_concatenate_permutation", False),
        ("requested_use_token_latencies", False),
    ]
    errors = errors_of(s)
    entries.append(("num_errors", len(errors)))
    out = [_mllog(key, value) for key, value in entries]
    out += [_mllog("error_runtime", reason, error=True) for reason in errors]
    return "\n".join(out) + "\n"
