"""TEST04's rule, exactly as upstream's compliance/TEST04/verify_performance.py computes it. Pure.

threshold = user's, else 0.20 for SingleStream when reference_score <= 200000 and
            for MultiStream when <= 1600000 (upstream compares the already-inverted
            score), else 0.10
PASS  iff  audit_score < reference_score × (1 + threshold)        (strict)
INVALID when a phase is not a valid LoadGen result, the Server target latencies differ, the
        reference is client-bound, or a client-bound audit phase would PASS.
"""

from __future__ import annotations

from typing import Any

from auditkit.audits.kit import upstream
from auditkit.audits.test04.evidence import Test04Evidence, latency_comparison
from auditkit.audits.test04.settings import Test04Config
from auditkit.plan import Role
from auditkit.results import AuditResult, PhaseSummary

REFERENCE: Role = "reference"
AUDIT: Role = "audit"
Test04Result = AuditResult[Test04Evidence]


def threshold_for(t4: Test04Config, scenario: str, reference: PhaseSummary) -> tuple[float, str]:
    """The threshold and where it came from (user, upstream rule or intended rule)."""
    if t4.threshold is not None:
        return t4.threshold, "user"
    limit = upstream.RELAX_LIMIT.get(scenario)
    base = upstream.TEST04_THRESHOLD
    if limit is None:
        return base, f"{t4.threshold_mode} rule: 0.1 for {scenario}"
    if t4.threshold_mode == "upstream":
        # upstream tests the inverted score (1e9 / latency) against a latency-like limit, so
        # the relaxed 0.20 applies to any latency >= 5 µs; reproduced here on purpose.
        score = reference.score or 0.0
        t = upstream.threshold(scenario, score, base)
        side = "at most" if upstream.relaxed(scenario, score) else "above"
        return t, (
            f"upstream rule: {t:g} because the reference score {score:.6g} is {side} "
            f"{limit:g} (upstream compares the score, not the latency, with this limit)"
        )
    latency = reference.early_stopping_latency_ns
    t = upstream.threshold(scenario, latency, base)
    if latency is None:
        return t, f"intended rule: {t:g} because the reference latency is unknown"
    side = "at most" if upstream.relaxed(scenario, latency) else "above"
    return (
        t,
        f"intended rule: {t:g} because the reference latency {latency} ns is {side} {limit:g} ns",
    )


def decide(
    ref: PhaseSummary,
    aud: PhaseSummary,
    t4: Test04Config,
    *,
    scenario: str,
    test_id: str,
    submission_grade: bool = False,
    notes: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
) -> Test04Result:
    """The verdict from two phase summaries alone (pure): upstream's rule, INVALID when either
    phase is not a valid LoadGen-equivalent result. Shared by runs and `auditkit verify`."""
    threshold, source = threshold_for(t4, scenario, ref)
    rule = f"PASS iff audit_score < reference_score × (1 + {threshold:g})"
    latency = latency_comparison(ref, aud, threshold)
    base: dict[str, Any] = {
        "test": test_id,
        "scenario": scenario,
        "score_name": ref.score_name,
        "threshold": threshold,
        "threshold_source": source,
        "rule": rule,
        "submission_grade": submission_grade,
        "notes": notes,
        "evidence": Test04Evidence(latency=latency),
        "phases": {REFERENCE: ref, AUDIT: aud},
        "config": config or {},
        "reference_score": ref.score,
        "audit_score": aud.score,
    }
    problems = _invalid_reasons(ref, aud, scenario, threshold)
    if problems or ref.score is None or aud.score is None:
        reason = "; ".join(problems) or "a phase produced no score"
        return Test04Result(
            verdict="INVALID", upstream_verdict="INVALID", reason=f"INVALID: {reason}", **base
        )
    ratio = aud.score / ref.score if ref.score else None
    limit = ref.score * (1 + threshold)
    passed = upstream.below(ref.score, aud.score, threshold)
    if passed:
        reason = (
            f"audit score {aud.score:.4g} is below reference {ref.score:.4g} × "
            f"(1 + {threshold:g}) = {limit:.4g}: no caching detected by the official score"
        )
    else:
        reason = (
            f"audit score {aud.score:.4g} is {ratio:.3g}× the reference {ref.score:.4g}, "
            f"at or above the {1 + threshold:g}× limit: repeated samples are served faster "
            "(results cached)"
        )
    if latency.latency_speedup_flag and latency.p50_speedup is not None:
        reason += (
            f"; latency evidence: the audit phase's p50 latency is {latency.p50_speedup:.3g}× "
            "faster than the reference's"
        )
        if scenario == "server":
            reason += (
                " (Server is arrival-bound: its official score cannot rise above the arrival "
                "rate, so a cache shows in latency only; see evidence)"
            )
    return Test04Result(verdict="PASS" if passed else "FAIL", reason=reason, ratio=ratio, **base)


def _invalid_reasons(
    ref: PhaseSummary, aud: PhaseSummary, scenario: str, threshold: float
) -> list[str]:
    problems = [f"{s.name}: {r}" for s in (ref, aud) for r in s.invalid_reasons]
    if (
        scenario == "server"
        and ref.target_latency_ns is not None
        and ref.target_latency_ns != aud.target_latency_ns
    ):
        problems.append(
            f"Server target latency mismatch: reference {ref.target_latency_ns} ns, "
            f"audit {aud.target_latency_ns} ns"
        )
    if ref.client_bound:
        problems.append(f"reference: {ref.client_bound}")
    # a client-bound audit phase can only hide a cache: a FAIL stands, a PASS cannot
    if (
        aud.client_bound is not None
        and ref.score is not None
        and aud.score is not None
        and aud.score < ref.score * (1 + threshold)
    ):
        problems.append(f"audit: {aud.client_bound}")
    if ref.score is not None and ref.score <= 0:
        problems.append("reference: score is 0 (no measurable throughput); nothing to compare")
    return problems
