"""TEST04 and LoadGen's files: verify two LoadGen summaries (reference, test) with TEST04's
rule, and write verify_performance.txt as upstream does. Pure (text in, text out).

`auditkit verify test04 --reference A --test B` reads summaries written by LoadGen itself or by
auditkit and returns the result that `auditkit run` would compute from the same numbers: the
same upstream score, threshold (mode), strict comparison, INVALID rules and latency evidence.
"""

from __future__ import annotations

from auditkit.audits.kit import upstream
from auditkit.audits.test04.scoring import AUDIT, REFERENCE, Test04Result, decide
from auditkit.audits.test04.settings import Test04Config
from auditkit.errors import InputError
from auditkit.loadgen_logs import LoadGenSummary
from auditkit.metrics import ES_PERCENTILE, SCORE_NAMES
from auditkit.mlperf_logs import score_text
from auditkit.results import LatencyStats, PhaseSummary

TEST_ID = "TEST04"


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
) -> Test04Result:
    """The verdict for two parsed summaries; InputError when their scenarios differ."""
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
        test_id=TEST_ID,
        submission_grade=False,
        notes=tuple(notes),
        config={
            "reference_summary": reference.source,
            "test_summary": test.source,
            "settings": t4.model_dump(mode="json"),
        },
    )


def format_verify_performance(result: Test04Result) -> str:
    """verify_performance.txt: upstream's lines first (its wording, its numbers), then
    auditkit's own lines, each prefixed `auditkit:` (the checker only looks for TEST PASS)."""
    ref = result.phases.get("reference")
    # upstream's lines carry upstream's rule; auditkit's decision follows under its own prefix
    verdict = result.upstream_verdict or result.verdict
    scores = None
    failure = "Test results are invalid"
    if verdict != "INVALID":
        assert result.reference_score is not None and result.audit_score is not None
        scores = (
            score_text(result.scenario, result.reference_score),
            score_text(result.scenario, result.audit_score),
        )
    elif ref is not None and not ref.loadgen_valid:
        failure = "Reference results are invalid"
    elif "target latency mismatch" in result.reason:
        failure = "Server target latency mismatch"
    return upstream.verify_performance(
        scores,
        verdict == "PASS",
        [
            *upstream.verdict_lines(result.verdict, verdict, result.reason),
            f"auditkit: threshold {_threshold(result)}",
            f"auditkit: submission-grade run: {'yes' if result.submission_grade else 'no'}",
        ],
        failure=failure,
        warnings=[n for n in result.notes if n.startswith("WARNING: ")],
    )


def _threshold(result: Test04Result) -> str:
    if result.threshold is None:
        return "not applied"
    return f"{result.threshold:g} ({result.threshold_source})"
