"""MLPerf TEST04: does the SUT cache results? (compliance/TEST04 in mlcommons/inference)

Reference phase: distinct samples. Audit phase: one sample (`sample_index`) again and again.

    PASS iff audit_score < reference_score × (1 + threshold)      (strict, as upstream computes it)

This package owns everything TEST04: its config block (`settings`), its rule (`scoring`), its
evidence (`evidence`, `statistics`, `fingerprint`), its LoadGen-file verification and
verify_performance.txt (`logs`), and the plug-in below.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from auditkit import mlperf_logs, run_rules
from auditkit.audits.base import AuditTest, settings_of
from auditkit.audits.test04.evidence import Test04Evidence, record_evidence
from auditkit.audits.test04.logs import format_verify_performance, verify_summaries
from auditkit.audits.test04.scoring import (
    AUDIT,
    REFERENCE,
    Test04Result,
    decide,
    default_threshold,
    threshold_for,
)
from auditkit.audits.test04.settings import Test04Config
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder, median_cost_index
from auditkit.errors import InputError
from auditkit.loadgen_logs import LogFile, parse_summary
from auditkit.metrics import summarize
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import AuditResult, PhaseResult, PhaseSummary

WARMUP = "warmup"
VERIFY_FILE = "verify_performance.txt"
#: MLPerf's compliance layout: the audit run's own LoadGen logs
RUN_DIR = Path("performance") / "run_1"

__all__ = [
    "AUDIT",
    "REFERENCE",
    "WARMUP",
    "Test04",
    "Test04Config",
    "Test04Evidence",
    "Test04Result",
    "decide",
    "default_threshold",
    "pool_blocks",
    "threshold_for",
]


def resolve_sample_index(t4: Test04Config, dataset: Dataset) -> int:
    """The dataset row the audit phase repeats (`median` → the most typical prompt)."""
    index = t4.sample_index
    return median_cost_index(dataset) if index == "median" else int(index)


class Test04(AuditTest):
    """TEST04 as an audit plug-in."""

    __test__ = False  # a "Test…" name, not a pytest test class

    id: ClassVar[str] = "TEST04"
    key: ClassVar[str] = "test04"
    title: ClassVar[str] = "Output caching (MLPerf TEST04)"
    summary: ClassVar[str] = "does the endpoint cache results? (reference vs one repeated sample)"
    settings_model = Test04Config
    evidence_model = Test04Evidence
    submission_name: ClassVar[str | None] = "output_caching_test"
    notebook: ClassVar[str | None] = "test04.ipynb"
    log_inputs: ClassVar[tuple[str, ...]] = ("reference", "test")

    def settings(self, cfg: AuditConfig) -> Test04Config:
        return settings_of(cfg, self.key, Test04Config)

    def with_run_rules(self, cfg: AuditConfig) -> AuditConfig:
        """Both phases raised to the scenario's minimum query count."""
        floor = run_rules.min_samples(cfg.load)
        t4 = self.settings(cfg)
        raised = t4.model_copy(
            update={
                "samples": max(t4.samples, floor),
                "audit_samples": max(t4.effective_audit_samples, floor),
            }
        )
        return cfg.model_copy(update={self.key: raised})

    # --- phases ----------------------------------------------------------------------------

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """Reference (distinct samples, seeded) then audit (the same sample repeated)."""
        t4 = self.settings(cfg)
        load = LoadPattern.from_config(cfg.load, t4.seed)
        index = resolve_sample_index(t4, dataset)
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
        half = duration / 2
        audits = t4.effective_audit_samples
        return [
            *warmup,
            RunSpec(f"{REFERENCE}_1", reference_order, r1, load, half),
            RunSpec(f"{AUDIT}_1", audit_order, a1, load, half),
            RunSpec(f"{AUDIT}_2", audit_order, audits - a1, load, half),
            RunSpec(f"{REFERENCE}_2", reference_order.skip(r1), t4.samples - r1, load, half),
        ]

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        """Reject configs whose audit would be meaningless, before any request is sent."""
        t4 = self.settings(cfg)
        size = len(dataset)
        per_query = cfg.load.samples_per_query if cfg.load.scenario == "multi-stream" else 1
        if t4.design == "counterbalanced":
            if cfg.load.min_duration_s > 0:
                raise InputError(
                    "test04.design counterbalanced cannot be combined with load.min_duration_s: "
                    "a duration-extended first reference block would reuse the second block's "
                    "samples; use the sequential design for timed runs"
                )
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
        index = resolve_sample_index(t4, dataset)
        if index >= size:
            raise InputError(
                f"test04.sample_index ({index}) is out of range: the dataset has {size} rows "
                f"(valid: 0..{size - 1})"
            )
        if cfg.load.scenario == "multi-stream":
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

    # --- verdict -------------------------------------------------------------------------

    def invalid(self, cfg: AuditConfig, ran: dict[str, PhaseSummary], reason: str) -> Test04Result:
        """INVALID, with the reference phase's score when it ran (not a warm-up's or a
        counterbalanced block's)."""
        reference = ran.get(REFERENCE)
        return Test04Result(
            test=self.id,
            verdict="INVALID",
            reason=f"INVALID: {reason}",
            scenario=cfg.load.scenario,
            score_name=reference.score_name if reference else "",
            reference_score=reference.score if reference else None,
            threshold_source="not applied",
            phases=ran,
            config=cfg.redacted(),
        )

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> Test04Result:
        """PASS / FAIL by upstream's rule; INVALID when either phase is not a full valid run."""
        t4 = self.settings(cfg)
        by_name = {p.name: p for p in phases if p.name != WARMUP}
        if t4.design == "counterbalanced":
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
        if cfg.load.client_guard and cfg.endpoint.stream:
            notes.append(
                "Client guard: its ceiling is calibrated with non-streamed responses; a streaming "
                "client does more work per query, so only the event-loop lag check is reliable."
            )
        result = decide(
            ref.summary,
            aud.summary,
            t4,
            scenario=cfg.load.scenario,
            test_id=self.id,
            submission_grade=not shortfalls,
            notes=tuple(notes),
            config=cfg.redacted(),
        )
        # beside the official verdict, never instead of it
        assert result.evidence is not None and result.threshold is not None
        evidence = record_evidence(
            ref, aud, result.evidence.latency, result.threshold, cfg.endpoint.temperature, t4.seed
        )
        warnings = evidence.representative.warnings if evidence.representative else ()
        return result.model_copy(update={"evidence": evidence, "notes": (*result.notes, *warnings)})

    def verify_logs(
        self, inputs: dict[str, LogFile], settings: Any
    ) -> tuple[Test04Result, dict[str, str]]:
        """`auditkit verify test04 --reference A --test B`: the verdict from two LoadGen summary
        files, and run_1/ holding the test run's own files (not a summary rebuilt from numbers)."""
        reference, test = inputs["reference"], inputs["test"]
        result = verify_summaries(
            parse_summary(reference.summary, reference.source),
            parse_summary(test.summary, test.source),
            settings,
        )
        files = {str(RUN_DIR / mlperf_logs.SUMMARY_FILE): test.summary}
        if test.detail is not None:
            files[str(RUN_DIR / mlperf_logs.DETAIL_FILE)] = test.detail
        return result, files

    # --- files and reports ----------------------------------------------------------------

    def files(self, result: AuditResult[Any]) -> dict[str, str]:
        """verify_performance.txt (upstream's wording) and, as LoadGen's compliance run writes
        them, the audit phase's logs in performance/run_1/."""
        out = {VERIFY_FILE: format_verify_performance(result)}
        audit = result.phases.get(AUDIT)
        if audit is not None:
            out[str(RUN_DIR / mlperf_logs.SUMMARY_FILE)] = mlperf_logs.format_summary(audit)
            out[str(RUN_DIR / mlperf_logs.DETAIL_FILE)] = mlperf_logs.format_detail(audit)
        return out

    def verdict_files(self) -> tuple[str, ...]:
        return (
            VERIFY_FILE,
            str(RUN_DIR / mlperf_logs.SUMMARY_FILE),
            str(RUN_DIR / mlperf_logs.DETAIL_FILE),
        )

    def describe(self, cfg: AuditConfig) -> str:
        t4 = self.settings(cfg)
        return (
            f"{super().describe(cfg)}, {t4.samples} reference + {t4.effective_audit_samples} "
            f"audit samples (sample_index {t4.sample_index}), stream={cfg.endpoint.stream}"
        )

    def report_text(self, result: AuditResult[Any]) -> str:
        """verify_performance.txt's text, as upstream prints it."""
        return format_verify_performance(result)

    def summary_lines(self, result: AuditResult[Any]) -> list[str]:
        lines: list[str] = []
        if result.reference_score is not None and result.audit_score is not None:
            lines.append(
                f"reference score = {result.reference_score:.6g}  audit score = "
                f"{result.audit_score:.6g}  ({result.score_name}; threshold "
                f"{result.threshold:g}, {result.threshold_source})"
            )
        evidence = result.evidence
        if isinstance(evidence, Test04Evidence):
            view = evidence.statistical
            if view is not None:
                lines.append(
                    f"statistical view: {view.verdict} (ratio {view.ratio:.3f}, "
                    f"{view.confidence:.0%} CI [{view.ci_low:.3f}, {view.ci_high:.3f}] "
                    f"vs limit {view.limit:g})"
                )
            fp = evidence.fingerprint
            if fp is not None:
                lines.append(f"cache kind seen: {fp.kind} ({'; '.join(fp.evidence)})")
        return lines

    def panel_rows(self, result: AuditResult[Any]) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        evidence = result.evidence
        if not isinstance(evidence, Test04Evidence):
            return rows
        view = evidence.statistical
        if view is not None:
            settle = view.queries_to_settle
            more = f"; about {settle} more queries would settle it" if settle else ""
            p = view.mannwhitney_p
            test = f" (Mann-Whitney p = {p:.2g})" if p is not None else ""
            rows.append(
                (
                    "Statistical view",
                    f"{view.verdict}: ratio {view.ratio:.3f}×, {view.confidence:.0%} interval "
                    f"[{view.ci_low:.3f}, {view.ci_high:.3f}] vs limit {view.limit:g}{more}{test}",
                )
            )
        fp = evidence.fingerprint
        if fp is not None:
            rows.append(("Cache kind seen", f"{fp.kind}: {'; '.join(fp.evidence)}"))
        return rows


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
