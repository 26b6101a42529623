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


def summarize(
    records: pd.DataFrame,
    spec: RunSpec,
    *,
    interrupted: bool = False,
    allowed_failure_rate: float = 0.0,
    loop_lag_p99_ns: int | None = None,
    request_headers: dict[str, str] | None = None,
    started_at: str = "",
) -> PhaseSummary:
    """Summarize one phase as LoadGen would: counts, distribution, score and validity."""
    scenario = spec.load.scenario
    requested = spec.samples
    issued = int((records["status"] != "cancelled").sum()) if len(records) else 0
    ok = records[records["status"] == "ok"]
    completed = len(ok)
    cancelled = int((records["status"] == "cancelled").sum())
    failures = records[~records["status"].isin(["ok", "cancelled"])]
    failed = len(failures)
    by_status = {str(k): int(v) for k, v in failures["status"].value_counts().items()}

    last_done = int(ok["completed_ns"].max()) if completed else 0
    duration_ns = last_done
    samples_per_second = completed / (duration_ns / 1e9) if duration_ns > 0 else 0.0
    latencies = ok["latency_ns"].to_numpy(dtype=np.int64) if completed else np.array([], np.int64)
    lat = latency_stats(latencies)
    ttft_values = ok["ttft_ns"].dropna()
    ttft = latency_stats(ttft_values.to_numpy(dtype=np.int64)) if len(ttft_values) else None
    out_tokens = int(ok["output_tokens"].fillna(0).sum()) if completed else 0
    tokens_per_second = out_tokens / (duration_ns / 1e9) if duration_ns > 0 and out_tokens else None

    reasons: list[str] = []
    if interrupted:
        reasons.append("phase was interrupted")
    if completed < requested:
        reasons.append(f"only {completed} of {requested} requested samples completed")
    if failed > allowed_failure_rate * requested:
        detail = ", ".join(f"{v} {k}" for k, v in sorted(by_status.items()))
        reasons.append(f"{failed} failed queries ({detail})")
    complete = not reasons

    score: float | None = None
    es_p = ES_PERCENTILE.get(scenario)
    es_latency: int | None = None
    es_t: int | None = None
    query_lat: LatencyStats | None = None
    queries = int(records["query_id"].nunique()) if len(records) else 0
    target = spec.load.target_latency_ns
    loadgen_valid = complete
    if scenario == "offline":
        score = samples_per_second if completed else None
    elif scenario in ("single-stream", "multi-stream"):
        values = query_latencies(records) if scenario == "multi-stream" else latencies
        if scenario == "multi-stream":
            query_lat = latency_stats(values)
        assert es_p is not None
        est = early_stopping.estimate(values.tolist(), es_p)
        es_t, es_latency = est.overlatency_count, est.latency_ns
        if est.latency_ns is None:
            loadgen_valid = False
            reasons.append(
                f"early stopping needs at least {early_stopping.min_queries(es_p)} queries "
                f"for the p{es_p * 100:g} estimate (got {len(values)})"
            )
        else:
            score = 1e9 / est.latency_ns if est.latency_ns > 0 else None
    elif scenario == "server":
        score = (completed - 1) / (last_done / 1e9) if completed > 1 and last_done > 0 else None
        if target is not None and completed:
            valid, es_t = early_stopping.server_latency_valid(latencies.tolist(), target)
            if not valid:
                loadgen_valid = False
                reasons.append(
                    f"server latency bound missed: p99 {percentile(sorted(latencies), 0.99)} ns "
                    f"vs target {target} ns (or too few queries for early stopping)"
                )
    loadgen_valid = loadgen_valid and complete

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
        complete=complete,
        loadgen_valid=loadgen_valid,
        invalid_reasons=reasons,
        interrupted=interrupted,
        loop_lag_p99_ns=loop_lag_p99_ns,
        distinct_samples=int(records["sample_index"].nunique()) if len(records) else 0,
        distinct_outputs=int(ok["output_sha256"].nunique()) if completed else 0,
        request_headers=request_headers or {},
        started_at=started_at,
    )
