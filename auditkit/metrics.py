"""Phase metrics from per-query records: counts, percentiles, and the scenario's LoadGen score.

Pure: a function of the record table and the RunSpec.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from auditkit import early_stopping
from auditkit.plan import RunSpec
from auditkit.results import LatencyStats, PhaseSummary

SCORE_NAMES = {
    "offline": "Samples per second",
    "single-stream": "1e9 / early-stopping p90 latency (ns)",
    "multi-stream": "1e9 / early-stopping p99 latency (ns)",
    "server": "Completed samples per second",
}
ES_PERCENTILE = {"single-stream": 0.90, "multi-stream": 0.99, "server": 0.99}


def percentile(sorted_values: Sequence[int], p: float) -> int:
    """LoadGen's plain percentile: sorted[int(N × p)] (clamped to the last element)."""
    n = len(sorted_values)
    return int(sorted_values[min(int(n * p), n - 1)])


def latency_stats(values: Sequence[int] | np.ndarray) -> LatencyStats:
    """Min/mean/max and LoadGen-style percentiles of integer-ns latencies."""
    ordered = sorted(int(v) for v in values)
    if not ordered:
        return LatencyStats(count=0)
    return LatencyStats(
        count=len(ordered),
        min_ns=ordered[0],
        max_ns=ordered[-1],
        mean_ns=int(sum(ordered) / len(ordered)),
        p50_ns=percentile(ordered, 0.50),
        p90_ns=percentile(ordered, 0.90),
        p95_ns=percentile(ordered, 0.95),
        p97_ns=percentile(ordered, 0.97),
        p99_ns=percentile(ordered, 0.99),
        p999_ns=percentile(ordered, 0.999),
    )


def query_latencies(records: pd.DataFrame) -> np.ndarray:
    """Per-query latency: last completion of the query's samples minus its scheduled time."""
    ok = records[records["status"] == "ok"]
    if ok.empty:
        return np.array([], dtype=np.int64)
    grouped = ok.groupby("query_id").agg(
        done=("completed_ns", "max"), sched=("scheduled_ns", "min")
    )
    return (grouped["done"] - grouped["sched"]).to_numpy(dtype=np.int64)


def loadgen_score(scenario: str, value: float) -> float:
    """A throughput score as it reads back from LoadGen's summary text.

    upstream verify_performance.py compares the numbers it parses from mlperf_log_summary.txt:
    Offline prints `Samples per second` with C++ stream precision (6 significant digits), Server
    prints `Completed samples per second` with DoubleToString (2 decimals). Scoring the printed
    value keeps auditkit's verdict identical to upstream's on auditkit's own files."""
    if scenario == "offline":
        return float(f"{value:.6g}")
    if scenario == "server":
        return float(f"{value:.2f}")
    return value


def summarize(
    records: pd.DataFrame,
    spec: RunSpec,
    *,
    interrupted: bool = False,
    loop_lag_p99_ns: int | None = None,
    request_headers: dict[str, str] | None = None,
    started_at: str = "",
) -> PhaseSummary:
    """Summarize one phase as LoadGen would: counts, distribution, score and validity.

    `invalid_reasons` empty ⇔ LoadGen would print `Result is : VALID`; `complete` only says
    that every issued query completed without failure (the runner stops on an incomplete phase).
    """
    scenario = spec.load.scenario
    issued = int((records["status"] != "cancelled").sum()) if len(records) else 0
    # control twins are queries of the phase like any other (fresh prompts of the same cost);
    # a warm-up rule decides its own count, so it requested what it issued
    requested = issued if spec.warmup is not None else spec.planned_queries
    ok = records[records["status"] == "ok"]
    completed = len(ok)
    cancelled = int((records["status"] == "cancelled").sum())
    failures = records[~records["status"].isin(["ok", "cancelled"])]
    failed = len(failures)
    by_status = {str(k): int(v) for k, v in failures["status"].value_counts().items()}

    last_done = int(ok["completed_ns"].max()) if completed else 0
    last_scheduled = int(records["scheduled_ns"].max()) if len(records) else 0
    duration_ns = last_done
    samples_per_second = completed / (duration_ns / 1e9) if duration_ns > 0 else 0.0
    latencies = ok["latency_ns"].to_numpy(dtype=np.int64) if completed else np.array([], np.int64)
    lat = latency_stats(latencies)
    ttft_values = ok["ttft_ns"].dropna()
    ttft = latency_stats(ttft_values.to_numpy(dtype=np.int64)) if len(ttft_values) else None
    out_tokens = int(ok["output_tokens"].fillna(0).sum()) if completed else 0
    tokens_per_second = out_tokens / (duration_ns / 1e9) if duration_ns > 0 and out_tokens else None
    # a twin is a different prompt from its original: (row, variant) pairs are the distinct ones
    keys = [c for c in ("sample_index", "variant") if c in records.columns]
    distinct_samples = len(records[keys].drop_duplicates()) if len(records) else 0

    reasons: list[str] = []
    if interrupted:
        reasons.append("phase was interrupted")
    expected = max(requested, issued)
    if completed < expected:
        reasons.append(f"only {completed} of {expected} requested samples completed")
    if failed:
        detail = ", ".join(f"{v} {k}" for k, v in sorted(by_status.items()))
        # the first failure's own words name the problem (HTTP 401 …, not JSON, reset, …)
        first = failures.sort_values("query_id", kind="stable")["error"].dropna()
        example = f"; first: {first.iloc[0][:160]}" if len(first) else ""
        reasons.append(f"{failed} failed queries ({detail}{example})")
    complete = not reasons
    min_queries_met = issued >= requested

    if spec.order.kind == "without_replacement" and distinct_samples < issued:
        # only min_duration can push a distinct-sample order past the dataset: the repeats make
        # this phase cacheable, so it cannot serve as a reference of distinct samples
        reasons.append(
            f"order {spec.order.describe()} repeated samples: {issued} issued but only "
            f"{distinct_samples} distinct (min_duration ran past the dataset; use a larger "
            "dataset or a shorter min_duration)"
        )
    min_duration_ns = int(spec.min_duration_s * 1e9)
    # LoadGen's clock for min_duration: offline max latency, server final scheduled time,
    # single/multi-stream final issue time
    clock = last_done if scenario == "offline" else last_scheduled
    min_duration_met = clock >= min_duration_ns
    if not min_duration_met:
        reasons.append(
            f"min duration {min_duration_ns / 1e9:g} s not reached ({clock / 1e9:.3f} s)"
        )

    score: float | None = None
    es_p = ES_PERCENTILE.get(scenario)
    es_latency: int | None = None
    es_t: int | None = None
    query_lat: LatencyStats | None = None
    queries = int(records["query_id"].nunique()) if len(records) else 0
    target = spec.load.target_latency_ns
    scheduled_sps: float | None = None
    if scenario == "offline":
        score = loadgen_score(scenario, samples_per_second) if completed else None
    elif scenario in ("single-stream", "multi-stream"):
        values = query_latencies(records) if scenario == "multi-stream" else latencies
        if scenario == "multi-stream":
            query_lat = latency_stats(values)
        assert es_p is not None
        est = early_stopping.estimate(values.tolist(), es_p)
        es_t, es_latency = est.overlatency_count, est.latency_ns
        if est.latency_ns is None:
            reasons.append(
                f"early stopping needs at least {early_stopping.min_queries(es_p)} queries "
                f"for the p{es_p * 100:g} estimate (got {len(values)})"
            )
        else:
            score = 1e9 / est.latency_ns if est.latency_ns > 0 else None
    elif scenario == "server":
        if completed > 1 and last_done > 0:
            score = loadgen_score(scenario, (completed - 1) / (last_done / 1e9))
        if completed > 1 and last_scheduled > 0:
            scheduled_sps = (completed - 1) / (last_scheduled / 1e9)
        if target is not None and completed:
            valid, es_t = early_stopping.server_latency_valid(latencies.tolist(), target)
            if not valid:
                need = early_stopping.min_passing_count(es_t, 0.99) + es_t
                p99 = percentile(sorted(latencies.tolist()), 0.99)
                if p99 > target:
                    reasons.append(
                        f"server latency bound missed: p99 {p99} ns > target {target} ns"
                    )
                if completed < need:
                    reasons.append(
                        f"early stopping needs at least {need} queries with {es_t} over the "
                        f"target latency (got {completed})"
                    )
    loadgen_valid = not reasons

    return PhaseSummary(
        name=spec.name,
        scenario=scenario,
        order=spec.order.describe(),
        requested=requested,
        issued=issued,
        completed=completed,
        failed=failed,
        cancelled=cancelled,
        failures_by_status=by_status,
        duration_ns=duration_ns,
        samples_per_second=samples_per_second,
        queries=queries,
        latency=lat,
        query_latency=query_lat,
        ttft=ttft,
        output_tokens_total=out_tokens,
        tokens_per_second=tokens_per_second,
        score=score,
        score_name=SCORE_NAMES[scenario],
        early_stopping_percentile=es_p,
        early_stopping_latency_ns=es_latency,
        early_stopping_overlatency=es_t,
        target_latency_ns=target,
        samples_per_query=spec.load.samples_per_query,
        target_qps=spec.load.target_qps,
        min_duration_ns=min_duration_ns,
        min_duration_met=min_duration_met,
        min_queries_met=min_queries_met,
        scheduled_samples_per_second=scheduled_sps,
        complete=complete,
        loadgen_valid=loadgen_valid,
        invalid_reasons=reasons,
        interrupted=interrupted,
        loop_lag_p99_ns=loop_lag_p99_ns,
        distinct_samples=distinct_samples,
        distinct_outputs=int(ok["output_sha256"].nunique()) if completed else 0,
        request_headers=request_headers or {},
        started_at=started_at,
    )
