"""TEST04's evidence beside the official verdict (never changes it): latency percentiles of both
phases, the statistical view, the cache-type fingerprint, how representative the audit sample is,
and per-token scores. Frozen models with named fields; pure functions of the records."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from auditkit.audits.test04.decision import Decision
from auditkit.audits.test04.fingerprint import FINGERPRINT_COLUMNS, Fingerprint, fingerprint
from auditkit.metrics import median_of
from auditkit.plan import WarmupRule
from auditkit.results import Evidence, PhaseResult, PhaseSummary

#: the audit sample is "far from typical" beyond this relative distance from the median
REPRESENTATIVE_TOLERANCE = 0.20
#: audit p50 latency this many times faster than the reference's is flagged as cache evidence
SPEEDUP_FLAG = 1.5


class LatencyComparison(Evidence):
    """Reference vs audit latency percentiles (ns) and the audit's speed-up at each."""

    reference_p50_ns: int | None = None
    audit_p50_ns: int | None = None
    p50_speedup: float | None = None
    reference_p90_ns: int | None = None
    audit_p90_ns: int | None = None
    p90_speedup: float | None = None
    reference_p99_ns: int | None = None
    audit_p99_ns: int | None = None
    p99_speedup: float | None = None
    ttft_p50_speedup: float | None = None
    #: a p50 speed-up above this is flagged (a flag, never a verdict)
    speedup_flag_limit: float
    latency_speedup_flag: bool
    audit_distinct_outputs: int = 0


class TokenPosition(Evidence):
    """Where the audit sample's token count sits in the reference phase's distribution."""

    audit_sample: float
    reference_median: float
    #: share of reference queries below the audit sample (ties count half)
    percentile_rank: float


class Representativeness(Evidence):
    """Is the repeated sample typical of the reference phase?"""

    input_tokens: TokenPosition | None = None
    output_tokens: TokenPosition | None = None
    warnings: tuple[str, ...] = ()


class PerTokenScores(Evidence):
    """Output tokens per second over the phase and median time per output token."""

    tokens_per_second: float | None = None
    ms_per_output_token: float | None = None


class SaltInfo(Evidence):
    """The run nonce every measured prompt carried (none with --no-salt)."""

    enabled: bool
    run_salt: str | None = None
    prefix: str | None = None


class WarmupInfo(Evidence):
    """What the warm-up did before the first measured phase."""

    queries: int = 0
    seconds: float = 0.0
    #: the rolling median latency had settled when it stopped (else a cap stopped it)
    stable: bool | None = None
    first_to_last_median: float | None = None


class Test04Evidence(Evidence):
    """Everything TEST04 reports beside its verdict."""

    decision: Decision | None = None
    salt: SaltInfo | None = None
    warmup: WarmupInfo | None = None
    latency: LatencyComparison
    fingerprint: Fingerprint | None = None
    representative: Representativeness | None = None
    reference_per_token: PerTokenScores | None = None
    audit_per_token: PerTokenScores | None = None


def latency_comparison(ref: PhaseSummary, aud: PhaseSummary, threshold: float) -> LatencyComparison:
    """Reference vs audit latency percentiles; flags a large audit speed-up (never a verdict)."""
    # multi-stream is scored on query latency (and LoadGen's summary holds only that)
    multi = ref.scenario == "multi-stream"
    ref_lat = (ref.query_latency if multi else None) or ref.latency
    aud_lat = (aud.query_latency if multi else None) or aud.latency
    values: dict[str, int | float | None] = {}
    for p in ("p50", "p90", "p99"):
        r = getattr(ref_lat, f"{p}_ns")
        a = getattr(aud_lat, f"{p}_ns")
        values[f"reference_{p}_ns"] = r
        values[f"audit_{p}_ns"] = a
        values[f"{p}_speedup"] = (r / a) if r and a else None
    speedup = values["p50_speedup"]
    # a flag, not a verdict: well clear of run-to-run noise and never below the score's limit
    limit = max(SPEEDUP_FLAG, 1 + threshold)
    ttft = None
    if ref.ttft and aud.ttft and ref.ttft.p50_ns and aud.ttft.p50_ns:
        ttft = ref.ttft.p50_ns / aud.ttft.p50_ns
    return LatencyComparison.model_validate(
        {
            **values,
            "ttft_p50_speedup": ttft,
            "speedup_flag_limit": limit,
            "latency_speedup_flag": bool(isinstance(speedup, float) and speedup > limit),
            "audit_distinct_outputs": aud.distinct_outputs,
        }
    )


#: the record columns `representativeness` reads
TOKEN_COLUMNS = ("status", "prompt_tokens", "output_tokens")


def representativeness(reference: pd.DataFrame, audit: pd.DataFrame) -> Representativeness:
    """Where the audit sample's input/output tokens sit in the reference distribution."""
    ref = reference[reference["status"] == "ok"]
    aud = audit[audit["status"] == "ok"]
    positions: dict[str, TokenPosition] = {}
    warnings: list[str] = []
    for column, label in (("prompt_tokens", "input"), ("output_tokens", "output")):
        ref_values = ref[column].dropna().to_numpy(dtype=float)
        aud_values = aud[column].dropna().to_numpy(dtype=float)
        if not len(ref_values) or not len(aud_values):
            continue
        sample = float(np.median(aud_values))
        median = float(np.median(ref_values))
        rank = float((ref_values < sample).mean() + 0.5 * (ref_values == sample).mean())
        positions[f"{label}_tokens"] = TokenPosition(
            audit_sample=sample, reference_median=median, percentile_rank=rank
        )
        if median > 0 and abs(sample - median) / median > REPRESENTATIVE_TOLERANCE:
            warnings.append(
                f"the audit sample has {sample:g} {label} tokens vs a reference median of "
                f"{median:g} (percentile {rank:.0%}): the audit assumes samples cost about the "
                "same; consider sample_index: median"
            )
    return Representativeness(**positions, warnings=tuple(warnings))


def per_token_scores(phase: PhaseResult) -> PerTokenScores:
    """Output tokens per second and median time per output token (LLM endpoints)."""
    # a chunk of rows at a time; the median from exact order statistics read again the same way
    counted = total = 0
    for records in phase.chunks("status", "output_tokens"):
        tokens = records["output_tokens"][records["status"] == "ok"].dropna()
        counted += len(tokens)
        total += int(tokens.sum())
    s = phase.summary
    if not counted or not s.duration_ns:
        return PerTokenScores()
    median = median_of(lambda: _ns_per_token(phase))
    return PerTokenScores(
        tokens_per_second=float(total) / (s.duration_ns / 1e9),
        ms_per_output_token=(math.nan if median is None else median) / 1e6,
    )


def _ns_per_token(phase: PhaseResult) -> Iterator[np.ndarray]:
    """Each completed query's service time per output token (ns), a chunk at a time."""
    for records in phase.chunks("status", "output_tokens", "completed_ns", "sent_ns"):
        ok = records[records["status"] == "ok"]
        ratio = (ok["completed_ns"] - ok["sent_ns"]) / ok["output_tokens"].where(
            ok["output_tokens"] > 0
        )
        yield ratio.dropna().to_numpy(dtype=np.float64)


def record_evidence(
    reference: PhaseResult,
    audit: PhaseResult,
    latency: LatencyComparison,
    temperature: float,
    cache_seen: bool = False,
    controls: PhaseResult | None = None,
) -> Test04Evidence:
    """The full evidence of a run with records (a LoadGen-summary check has `latency` only);
    `cache_seen`: the verdict is FAIL (the fingerprint then never says "none"); `controls`:
    the control phase (pooled), whose never-seen prompts can name a cache that also answered
    the reference."""
    return Test04Evidence(
        latency=latency,
        fingerprint=fingerprint(
            reference.columns(*FINGERPRINT_COLUMNS),
            audit.columns(*FINGERPRINT_COLUMNS),
            temperature=temperature,
            cache_seen=cache_seen,
            controls=None if controls is None else controls.columns(*FINGERPRINT_COLUMNS),
        ),
        representative=representativeness(
            reference.columns(*TOKEN_COLUMNS), audit.columns(*TOKEN_COLUMNS)
        ),
        reference_per_token=per_token_scores(reference),
        audit_per_token=per_token_scores(audit),
    )


def warmup_info(phases: list[PhaseResult]) -> WarmupInfo:
    """The warm-up phase's size and whether its service time had settled by its end (the
    phase's own rule when it had one, else the default rule's test)."""
    warm = next((p for p in phases if p.spec.role == "warmup"), None)
    if warm is None:
        return WarmupInfo()
    rule = warm.spec.warmup or WarmupRule(min_queries=16, max_queries=256, max_duration_s=60.0)
    records = warm.columns("status", "completed_ns", "sent_ns")
    ok = records[records["status"] == "ok"].sort_values("completed_ns")
    # service time, not latency: offline schedules every query at 0, so latency only grows
    values = (ok["completed_ns"] - ok["sent_ns"]).to_numpy(dtype=np.int64)
    stable = None
    first_to_last = None
    if len(values) >= 2 * rule.window:
        stable = rule.stable([int(v) for v in values])
        last = float(np.median(values[-rule.window :]))
        first_to_last = float(np.median(values[: rule.window]) / last) if last > 0 else None
    return WarmupInfo(
        queries=warm.summary.completed,
        seconds=warm.summary.duration_ns / 1e9,
        stable=stable,
        first_to_last_median=first_to_last,
    )
