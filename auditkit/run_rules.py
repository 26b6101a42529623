"""MLPerf run rules as a preset (`--mlperf-run-rules`, `load.run_rules: true`). Pure.

Under the rules every phase runs at least 600 s (LoadGen's min_duration for submissions) and
at least the scenario's minimum query count:

- single-stream: 64 queries, the fewest that give a p90 early-stopping estimate (h(1) + 1);
- multi-stream: 662 queries (p99 estimate), i.e. 662 × samples_per_query samples;
- server: 459 queries, h(0) at p = 0.99: the fewest for which early stopping can pass at all;
- offline: max(min_query_count, 1.1 × 600 s × target_qps) samples, where min_query_count is
  LoadGen's offline default of 24576 samples (`mlperf.conf`: `*.Offline.min_query_count`);
  without a target_qps only the 24576 floor applies (min_duration still extends the phase).

The preset raises `load.min_duration_s` to its floor here, and each audit raises its own
sample counts (`AuditTest.with_run_rules`, using `min_samples`); it never lowers what the user
asked for. The audit's own validation then rejects a dataset too small for its phases.
"""

from __future__ import annotations

import math

from auditkit import early_stopping
from auditkit.config import AuditConfig, LoadConfig

MIN_DURATION_S = 600.0
OFFLINE_MIN_QUERY_COUNT = 24_576
OFFLINE_QPS_MARGIN = 1.1


def min_queries(load: LoadConfig) -> int:
    """The scenario's minimum query count under the run rules (queries, not samples)."""
    if load.scenario == "single-stream":
        return early_stopping.min_queries(0.90)
    if load.scenario == "multi-stream":
        return early_stopping.min_queries(0.99)
    if load.scenario == "server":
        return early_stopping.min_passing_count(0, 0.99)
    expected = OFFLINE_QPS_MARGIN * MIN_DURATION_S * (load.target_qps or 0.0)
    return max(OFFLINE_MIN_QUERY_COUNT, math.ceil(expected))


def min_samples(load: LoadConfig) -> int:
    """min_queries in samples (multi-stream queries carry samples_per_query samples)."""
    per_query = load.samples_per_query if load.scenario == "multi-stream" else 1
    return min_queries(load) * per_query


def apply(cfg: AuditConfig) -> AuditConfig:
    """The config with the shared floors applied (unchanged when load.run_rules is off)."""
    if not cfg.load.run_rules:
        return cfg
    load = cfg.load.model_copy(
        update={"min_duration_s": max(cfg.load.min_duration_s, MIN_DURATION_S)}
    )
    return cfg.model_copy(update={"load": load})


def describe(load: LoadConfig) -> str:
    """One line naming the floors that apply to this scenario."""
    unit = "samples" if load.scenario == "offline" else "queries"
    return (
        f"MLPerf run rules: min_duration {MIN_DURATION_S:g} s, at least "
        f"{min_queries(load)} {unit} per phase ({load.scenario})"
    )


def shortfalls(load: LoadConfig, samples: int, min_duration_s: float) -> list[str]:
    """Why a phase plan is not submission-grade (empty when it meets the rules)."""
    out: list[str] = []
    if not load.run_rules:
        out.append("run without --mlperf-run-rules")
    if min_duration_s < MIN_DURATION_S:
        out.append(f"min_duration {min_duration_s:g} s < {MIN_DURATION_S:g} s")
    floor = min_samples(load)
    if samples < floor:
        out.append(f"{samples} samples < {floor} required")
    return out
