"""MLPerf TEST04: does the SUT cache results? (compliance/TEST04 in mlcommons/inference)

Reference phase: distinct samples. Audit phase: one sample (`sample_index`) again and again.
PASS iff audit_score < reference_score × (1 + threshold), strictly, as upstream's
verify_performance.py computes it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from auditkit import run_rules
from auditkit.config import AuditConfig, Test04Config
from auditkit.data import Dataset, SampleOrder, median_cost_index
from auditkit.errors import InputError
from auditkit.evidence import extra_evidence
from auditkit.metrics import summarize
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import AuditResult, PhaseResult, PhaseSummary

REFERENCE = "reference"
WARMUP = "warmup"
AUDIT = "audit"
# upstream compares the (already inverted) score against these; see threshold_for()
UPSTREAM_RELAX_LIMIT = {"single-stream": 200_000.0, "multi-stream": 1_600_000.0}
SUBMISSION_TEST_NAME = "output_caching_test"
# audit p50 latency this many times faster than the reference's is flagged as cache evidence
SPEEDUP_FLAG = 1.5


def resolve_sample_index(cfg: AuditConfig, dataset: Dataset) -> int:
    """The dataset row the audit phase repeats (`median` → the most typical prompt)."""
    index = cfg.test04.sample_index
    return median_cost_index(dataset) if index == "median" else int(index)


def threshold_for(t4: Test04Config, scenario: str, reference: PhaseSummary) -> tuple[float, str]:
    """The threshold and where it came from (user, upstream rule or intended rule)."""
    if t4.threshold is not None:
        return t4.threshold, "user"
    limit = UPSTREAM_RELAX_LIMIT.get(scenario)
    if limit is None:
        return 0.10, f"{t4.threshold_mode} (0.1 for {scenario})"
    if t4.threshold_mode == "upstream":
        # upstream tests the inverted score (1e9 / latency) against a latency-like limit, so
        # the relaxed 0.20 applies to any latency >= 5 µs; reproduced here on purpose.
        score = reference.score or 0.0
        relaxed = score <= limit
        return (0.20 if relaxed else 0.10), (
            f"upstream (reference score {score:.6g} <= {limit:g}: {relaxed})"
        )
    latency = reference.early_stopping_latency_ns
    relaxed = latency is not None and latency <= limit
    return (0.20 if relaxed else 0.10), (
        f"intended (reference latency {latency} ns <= {limit:g} ns: {relaxed})"
    )


def decide(
    ref: PhaseSummary,
    aud: PhaseSummary,
    t4: Test04Config,
    *,
    scenario: str,
    submission_grade: bool = False,
    notes: list[str] | None = None,
    config: dict[str, Any] | None = None,
    test_id: str = "TEST04",
) -> AuditResult:
    """The verdict from two phase summaries alone (pure): upstream's rule, INVALID when either
    phase is not a valid LoadGen-equivalent result. Shared by runs and `auditkit verify`."""
    threshold, source = threshold_for(t4, scenario, ref)
    rule = f"PASS iff audit_score < reference_score × (1 + {threshold:g})"
    evidence = latency_evidence(ref, aud, threshold)
    base: dict[str, Any] = {
        "test": test_id,
        "scenario": scenario,
        "score_name": ref.score_name,
        "threshold": threshold,
        "threshold_source": source,
        "rule": rule,
        "submission_grade": submission_grade,
        "notes": list(notes or []),
        "evidence": evidence,
        "phases": {REFERENCE: ref, AUDIT: aud},
        "config": config or {},
    }
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
    audit_client_bound = aud.client_bound is not None
    if (
        audit_client_bound
        and ref.score is not None
        and aud.score is not None
        and aud.score < ref.score * (1 + threshold)
    ):
        problems.append(f"audit: {aud.client_bound}")
    if ref.score is not None and ref.score <= 0:
        problems.append("reference: score is 0 (no measurable throughput); nothing to compare")
    if problems or ref.score is None or aud.score is None:
        reason = "; ".join(problems) or "a phase produced no score"
        return AuditResult(
            verdict="INVALID",
            reason=f"INVALID: {reason}",
            reference_score=ref.score,
            audit_score=aud.score,
            ratio=None,
            **base,
        )
    ratio = aud.score / ref.score if ref.score else None
    limit = ref.score * (1 + threshold)
    passed = aud.score < limit
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
    if evidence.get("latency_speedup_flag"):
        speedup = evidence.get("p50_speedup")
        reason += (
            f"; latency evidence: the audit phase's p50 latency is {speedup:.3g}× faster than "
            "the reference's"
        )
        if scenario == "server":
            reason += (
                " (Server is arrival-bound: its official score cannot rise above the arrival "
                "rate, so a cache shows in latency only; see evidence)"
            )
    return AuditResult(
        verdict="PASS" if passed else "FAIL",
        reason=reason,
        reference_score=ref.score,
        audit_score=aud.score,
        ratio=ratio,
        **base,
    )


class Test04:
    """TEST04 as an AuditTest plug-in."""

    id = "TEST04"
    title = "Output caching (MLPerf TEST04)"

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """Reference (distinct samples, seeded) then audit (the same sample repeated)."""
        t4 = cfg.test04
        load = LoadPattern.from_config(cfg.load, t4.seed)
        index = resolve_sample_index(cfg, dataset)
        if cfg.load.scenario == "multi-stream":
            audit_order = SampleOrder.repeated_block(index, cfg.load.samples_per_query)
        else:
            audit_order = SampleOrder.single(index)
        duration = cfg.load.min_duration_s
        reference_order = SampleOrder.without_replacement(t4.seed)
        warmup = (
            [RunSpec(WARMUP, SampleOrder.salted(t4.seed + 1), t4.warmup_queries, load)]
            if t4.warmup_queries
            else []
        )
        if t4.design == "sequential":
            return [
                *warmup,
                RunSpec(REFERENCE, reference_order, t4.samples, load, duration),
                RunSpec(AUDIT, audit_order, t4.effective_audit_samples, load, duration),
            ]
        # R A A R: warm-up bias (reference first → false FAIL) and drift cancel; the audit
        # sample's repeats stay back to back inside each audit block, since real prompt caches
        # (llama.cpp's, for one) only reuse the immediately preceding prompt
        r1, a1 = _first_half(t4.samples, load), _first_half(t4.effective_audit_samples, load)
        half_duration = duration / 2
        return [
            *warmup,
            RunSpec(f"{REFERENCE}_1", reference_order, r1, load, half_duration),
            RunSpec(f"{AUDIT}_1", audit_order, a1, load, half_duration),
            RunSpec(
                f"{AUDIT}_2", audit_order, t4.effective_audit_samples - a1, load, half_duration
            ),
            RunSpec(
                f"{REFERENCE}_2",
                reference_order.skip(r1),
                t4.samples - r1,
                load,
                half_duration,
            ),
        ]

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        """Reject configs whose audit would be meaningless, before any request is sent."""
        t4 = cfg.test04
        size = len(dataset)
        if t4.design == "counterbalanced" and cfg.load.min_duration_s > 0:
            raise InputError(
                "test04.design counterbalanced cannot be combined with load.min_duration_s: a "
                "duration-extended first reference block would reuse the second block's samples; "
                "use the sequential design for timed runs"
            )
        if t4.design == "counterbalanced":
            per_query = cfg.load.samples_per_query if cfg.load.scenario == "multi-stream" else 1
            smallest = min(t4.samples, t4.effective_audit_samples)
            if smallest < 2 * per_query:
                raise InputError(
                    f"test04.design counterbalanced splits each phase in two blocks: it needs "
                    f"samples and audit_samples of at least {2 * per_query} (got {smallest})"
                )
        if t4.samples > size:
            why = (
                f" ({run_rules.describe(cfg.load)})"
                if cfg.load.run_rules
                else "; lower test04.samples or use a larger dataset"
            )
            raise InputError(
                f"test04.samples ({t4.samples}) exceeds the dataset's {size} rows: the reference "
                f"phase would repeat samples and become cacheable{why}"
            )
        if cfg.load.run_rules and cfg.load.scenario == "server" and not cfg.load.target_latency_ms:
            raise InputError(
                "MLPerf run rules need load.target_latency_ms in the server scenario "
                "(LoadGen's early stopping and validity depend on it)"
            )
        index = resolve_sample_index(cfg, dataset)
        if index >= size:
            raise InputError(
                f"test04.sample_index ({index}) is out of range: the dataset has {size} rows "
                f"(valid: 0..{size - 1})"
            )
        if cfg.load.scenario == "multi-stream":
            per_query = cfg.load.samples_per_query
            if per_query > size:
                raise InputError(
                    f"load.samples_per_query ({per_query}) exceeds the dataset's {size} rows"
                )
            for name, count in (
                ("samples", t4.samples),
                ("audit_samples", t4.effective_audit_samples),
            ):
                if count % per_query:
                    raise InputError(
                        f"test04.{name} ({count}) must be a multiple of load.samples_per_query "
                        f"({per_query}) in multi-stream"
                    )

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult:
        """PASS / FAIL by upstream's rule; INVALID when either phase is not a full valid run."""
        by_name = {p.name: p for p in phases if p.name != WARMUP}
        if cfg.test04.design == "counterbalanced":
            ref = pool_blocks(REFERENCE, [by_name[f"{REFERENCE}_1"], by_name[f"{REFERENCE}_2"]])
            aud = pool_blocks(AUDIT, [by_name[f"{AUDIT}_1"], by_name[f"{AUDIT}_2"]])
        else:
            ref, aud = by_name[REFERENCE], by_name[AUDIT]
        notes = [
            "sample_index addresses dataset rows (LoadGen's addresses the shuffled loaded set)."
        ]
        shortfalls = run_rules.shortfalls(cfg.load, ref.spec.samples, ref.spec.min_duration_s)
        shortfalls += run_rules.shortfalls(cfg.load, aud.spec.samples, aud.spec.min_duration_s)
        if shortfalls:
            notes.append(
                "Quick run: not a submission-grade run (use --mlperf-run-rules for that): "
                + "; ".join(dict.fromkeys(shortfalls))
            )
        else:
            notes.append(run_rules.describe(cfg.load) + ": submission-grade run.")
        result = decide(
            ref.summary,
            aud.summary,
            cfg.test04,
            scenario=cfg.load.scenario,
            submission_grade=not shortfalls,
            notes=notes,
            config=cfg.redacted(),
            test_id=self.id,
        )
        if cfg.load.client_guard and cfg.endpoint.stream:
            result.notes.append(
                "Client guard: its ceiling is calibrated with non-streamed responses; a streaming "
                "client does more work per query, so only the event-loop lag check is reliable."
            )
        # beside the official verdict, never instead of it (issue 6)
        extra = extra_evidence(
            ref, aud, result.threshold, cfg.endpoint.temperature, cfg.test04.seed
        )
        result.evidence.update(extra)
        result.notes.extend(extra["representative"]["warnings"])
        return result


def _first_half(samples: int, load: LoadPattern) -> int:
    """Half the samples, rounded down to whole multi-stream queries."""
    per_query = max(1, load.samples_per_query)
    return (samples // per_query // 2) * per_query


def pool_blocks(name: str, blocks: list[PhaseResult]) -> PhaseResult:
    """One phase from counterbalanced blocks: records laid end to end on one clock (each block
    shifted by the ones before it), then summarized as a single LoadGen phase."""
    frames: list[pd.DataFrame] = []
    shift = 0
    for block in blocks:
        frame = block.records.copy()
        for column in ("scheduled_ns", "sent_ns", "first_byte_ns", "first_token_ns"):
            frame[column] = frame[column] + shift
        frame["completed_ns"] = frame["completed_ns"] + shift
        frame["query_id"] = frame["query_id"] + (frames[-1]["query_id"].max() + 1 if frames else 0)
        frame["phase"] = name
        frames.append(frame)
        shift += block.summary.duration_ns
    records = pd.concat(frames, ignore_index=True)
    first = blocks[0].spec
    spec = dataclasses.replace(
        first,
        name=name,
        samples=sum(b.spec.samples for b in blocks),
        min_duration_s=sum(b.spec.min_duration_s for b in blocks),
    )
    summary = summarize(records, spec)
    lags = [b.summary.loop_lag_p99_ns for b in blocks if b.summary.loop_lag_p99_ns is not None]
    bound = [b.summary.client_bound for b in blocks if b.summary.client_bound]
    summary = summary.model_copy(
        update={
            "order": f"{first.order.describe()} in {len(blocks)} blocks",
            "loop_lag_p99_ns": max(lags) if lags else None,
            "client_bound": bound[0] if bound else None,
            "client_ceiling_qps": blocks[0].summary.client_ceiling_qps,
            "request_headers": blocks[0].summary.request_headers,
        }
    )
    return PhaseResult(spec, records, summary)


def latency_evidence(ref: PhaseSummary, aud: PhaseSummary, threshold: float) -> dict[str, object]:
    """Reference vs audit latency percentiles; flags a large audit speed-up (never a verdict)."""
    out: dict[str, object] = {}
    # multi-stream is scored on query latency (and LoadGen's summary holds only that)
    multi = ref.scenario == "multi-stream"
    ref_lat = (ref.query_latency if multi else None) or ref.latency
    aud_lat = (aud.query_latency if multi else None) or aud.latency
    for p in ("p50", "p90", "p99"):
        r = getattr(ref_lat, f"{p}_ns")
        a = getattr(aud_lat, f"{p}_ns")
        out[f"reference_{p}_ns"] = r
        out[f"audit_{p}_ns"] = a
        out[f"{p}_speedup"] = (r / a) if r and a else None
    speedup = out.get("p50_speedup")
    # a flag, not a verdict: well clear of run-to-run noise and never below the score's limit
    limit = max(SPEEDUP_FLAG, 1 + threshold)
    out["speedup_flag_limit"] = limit
    out["latency_speedup_flag"] = bool(isinstance(speedup, float) and speedup > limit)
    if ref.ttft and aud.ttft and ref.ttft.p50_ns and aud.ttft.p50_ns:
        out["ttft_p50_speedup"] = ref.ttft.p50_ns / aud.ttft.p50_ns
    out["audit_distinct_outputs"] = aud.distinct_outputs
    return out
