"""Verify two LoadGen summaries (reference, test) with auditkit's TEST04 rules. Pure.

`auditkit verify test04 --reference A --test B` reads summaries written by LoadGen itself or by
auditkit and returns the AuditResult that `auditkit run` would compute from the same numbers:
the same upstream score, threshold (mode), strict comparison, INVALID rules and latency
evidence (audits.test04.decide).
"""

from __future__ import annotations

from auditkit.audits.test04 import AUDIT, REFERENCE, decide
from auditkit.config import Test04Config
from auditkit.errors import InputError
from auditkit.loadgen_logs import LoadGenSummary
from auditkit.metrics import ES_PERCENTILE, SCORE_NAMES
from auditkit.results import AuditResult, LatencyStats, PhaseSummary


def phase_from_summary(name: str, summary: LoadGenSummary) -> PhaseSummary:
    """A PhaseSummary carrying what the LoadGen summary states (counts it does not state are 0)."""
    scenario = summary.auditkit_scenario
    latency = LatencyStats(count=0, **summary.latency)
    reasons: list[str] = []
    if not summary.valid:
        why = "; ".join(summary.recommendations)
        detail = f": {why}" if why else ""
        reasons.append(f"LoadGen result is INVALID ({summary.source}){detail}")
    return PhaseSummary(
        name=name,
        scenario=scenario,
        order="loadgen",
        requested=0,
        issued=0,
        completed=0,
        failed=0,
        cancelled=0,
        duration_ns=0,
        samples_per_second=(summary.score or 0.0) if scenario == "offline" else 0.0,
        queries=0,
        latency=latency,
        # MultiStream summaries hold per-query latencies only
        query_latency=latency if scenario == "multi-stream" else None,
        score=summary.score,
        score_name=SCORE_NAMES[scenario],
        early_stopping_percentile=ES_PERCENTILE.get(scenario),
        early_stopping_latency_ns=summary.early_stopping_latency_ns,
        target_latency_ns=summary.target_latency_ns,
        complete=summary.valid,
        loadgen_valid=summary.valid,
        invalid_reasons=reasons,
    )


def verify_summaries(
    reference: LoadGenSummary, test: LoadGenSummary, t4: Test04Config | None = None
) -> AuditResult:
    """The TEST04 verdict for two parsed summaries; InputError when their scenarios differ."""
    if reference.scenario != test.scenario:
        raise InputError(
            f"Test and reference scenarios do not match: {reference.source} is "
            f"{reference.scenario}, {test.source} is {test.scenario}"
        )
    t4 = t4 or Test04Config()
    notes = [
        f"WARNING: {s.errors} ERROR reported in {label} results"
        for label, s in (("reference", reference), ("test", test))
        if s.errors
    ]
    notes.append(
        "Verified from LoadGen summaries: counts, TTFT and outputs are not in the summary, "
        "so only the score rule and latency percentiles are checked."
    )
    notes.append(
        "Not a submission-grade auditkit run: the summaries' own run settings decide that."
    )
    return decide(
        phase_from_summary(REFERENCE, reference),
        phase_from_summary(AUDIT, test),
        t4,
        scenario=reference.auditkit_scenario,
        submission_grade=False,
        notes=notes,
        config={
            "reference_summary": reference.source,
            "test_summary": test.source,
            "test04": t4.model_dump(mode="json"),
        },
    )
