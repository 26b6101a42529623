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

from auditkit import early_stopping, mlperf_logs, run_rules
from auditkit.audits.base import AuditTest
from auditkit.audits.test04.decision import (
    ControlCheck,
    Decision,
    decide_with_certainty,
    headline,
)
from auditkit.audits.test04.evidence import (
    SaltInfo,
    Test04Evidence,
    WarmupInfo,
    record_evidence,
    warmup_info,
)
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
from auditkit.metrics import ES_PERCENTILE, summarize
from auditkit.plan import LoadPattern, RunSpec, WarmupRule, new_salt
from auditkit.results import AuditResult, PhaseResult, PhaseSummary

WARMUP = "warmup"
#: the warm-up stops at this many seconds even if latency is not stable yet
WARMUP_CAP_S = 60.0
#: the early-stopping estimate must be at least the MIN_RANK-th slowest query (docs/validity.md)
MIN_RANK = 5
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


class Test04(AuditTest[Test04Config, Test04Evidence]):
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

    def resolve(self, cfg: AuditConfig, dataset: Dataset) -> AuditConfig:
        """The run nonce is drawn and `design: auto` made concrete here, so config.yaml and the
        verdict record both."""
        t4 = self.settings(cfg)
        update: dict[str, Any] = {"design": effective_design(t4, cfg, len(dataset))}
        if t4.salt and t4.run_salt is None:
            update["run_salt"] = new_salt()
        return cfg.model_copy(update={self.key: t4.model_copy(update=update)})

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """Warm-up, then reference (distinct samples, seeded, with salted control twins) and
        audit (the same sample repeated), every measured prompt carrying the run's salt."""
        t4 = self.settings(cfg)
        load = LoadPattern.from_config(cfg.load, t4.seed)
        audit_order = _audit_order(t4, cfg, dataset)
        duration = cfg.load.min_duration_s
        reference_order = SampleOrder.without_replacement(t4.seed)
        salt = run_prefix(t4)
        twins, twin_salt = t4.twins(), control_prefix(t4)
        warmup = _warmup(t4, cfg, load)
        design = effective_design(t4, cfg)
        if design == "alternating":
            return [*warmup, *_alternating(t4, cfg, dataset, load, used=0, round_=0)]
        if design == "sequential":
            return [
                *warmup,
                RunSpec(
                    REFERENCE,
                    reference_order,
                    t4.samples,
                    load,
                    duration,
                    salt=salt,
                    twins=twins,
                    twin_salt=twin_salt,
                ),
                RunSpec(AUDIT, audit_order, t4.effective_audit_samples, load, duration, salt=salt),
            ]
        # R A A R: warm-up bias (reference first → false FAIL) and drift cancel; the audit
        # sample's repeats stay back to back inside each audit block, since real prompt caches
        # (llama.cpp's, for one) only reuse the immediately preceding prompt
        r1, a1 = _first_half(t4.samples, load), _first_half(t4.effective_audit_samples, load)
        half = duration / 2
        audits = t4.effective_audit_samples
        return [
            *warmup,
            RunSpec(
                f"{REFERENCE}_1",
                reference_order,
                r1,
                load,
                half,
                salt=salt,
                twins=twins,
                twin_salt=twin_salt,
            ),
            RunSpec(f"{AUDIT}_1", audit_order, a1, load, half, salt=salt),
            RunSpec(f"{AUDIT}_2", audit_order, audits - a1, load, half, salt=salt),
            RunSpec(
                f"{REFERENCE}_2",
                reference_order.skip(r1).excluding(_audit_rows(audit_order, load, dataset)),
                t4.samples - r1,
                load,
                half,
                salt=salt,
            ),
        ]

    def extend(
        self, cfg: AuditConfig, dataset: Dataset, phases: list[PhaseResult]
    ) -> list[RunSpec]:
        """One more counterbalanced round (audit then reference, or reference then audit) while
        the decision is not settled and the budget allows; [] when it is spent."""
        t4 = self.settings(cfg)
        done = _rounds_done(phases)
        if done >= t4.rounds:
            return []
        load = LoadPattern.from_config(cfg.load, t4.seed)
        r_n = max(_first_half(t4.samples, load), load.samples_per_query)
        a_n = max(_first_half(t4.effective_audit_samples, load), load.samples_per_query)
        measured = [p for p in phases if p.name != WARMUP]
        queries = sum(p.summary.issued for p in measured)
        budget = t4.max_queries or 4 * (t4.samples + t4.effective_audit_samples)
        if queries + r_n + a_n > budget:
            return []
        # the time budget is the extra rounds' own (planned phases may run 600 s each)
        extra = [p for p in measured if "_x" in p.name]
        seconds = sum(p.summary.duration_ns for p in extra) / 1e9
        per_query = sum(p.summary.duration_ns for p in measured) / 1e9 / max(queries, 1)
        if seconds + per_query * (r_n + a_n) > t4.max_duration_s:
            return []
        r = done + 1
        # further rows of the same seeded order: the pooled reference stays distinct samples
        # (counting what was issued: min_duration can carry a phase past its samples)
        used = sum(
            int((p.records["variant"] == "main").sum())
            for p in measured
            if _is_block(p.name, REFERENCE)
        )
        if effective_design(t4, cfg) == "alternating":
            audit_rows = _audit_rows(_audit_order(t4, cfg, dataset), load, dataset)
            if used + r_n > len(dataset) - len(audit_rows):
                return []
            return _alternating(t4, cfg, dataset, load, used=used, round_=r)
        audit_order = _audit_order(t4, cfg, dataset)
        audit_rows = _audit_rows(audit_order, load, dataset)
        if used + r_n > len(dataset) - len(audit_rows):
            return []
        order = SampleOrder.without_replacement(t4.seed).skip(used).excluding(audit_rows)
        salt = run_prefix(t4)
        reference = RunSpec(f"{REFERENCE}_x{r}", order, r_n, load, salt=salt)
        audit = RunSpec(f"{AUDIT}_x{r}", audit_order, a_n, load, salt=salt)
        # the blocks alternate so drift over the extension cancels too
        return [audit, reference] if r % 2 else [reference, audit]

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        """Reject configs whose audit would be meaningless, before any request is sent."""
        t4 = self.settings(cfg)
        size = len(dataset)
        per_query = cfg.load.samples_per_query if cfg.load.scenario == "multi-stream" else 1
        if t4.design == "alternating":
            if cfg.load.min_duration_s > 0:
                raise InputError(
                    "test04.design alternating cannot be combined with load.min_duration_s "
                    "(or --mlperf-run-rules): use the sequential design for timed runs"
                )
            smallest = min(t4.samples, t4.effective_audit_samples)
            if smallest < ALTERNATING_PAIRS * per_query:
                raise InputError(
                    f"test04.design alternating splits each phase in {ALTERNATING_PAIRS} blocks: "
                    f"it needs samples and audit_samples of at least "
                    f"{ALTERNATING_PAIRS * per_query} (got {smallest})"
                )
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
        design = effective_design(t4, cfg, size)
        if design in ("alternating", "counterbalanced"):
            audit_rows = _audit_rows(
                _audit_order(t4, cfg, dataset), LoadPattern.from_config(cfg.load, t4.seed), dataset
            )
            if t4.samples > size - len(audit_rows):
                raise InputError(
                    f"test04.samples ({t4.samples}) exceeds the {size - len(audit_rows)} dataset "
                    f"rows the {design} design can use (its reference blocks never issue the "
                    "audit sample): lower test04.samples, use a larger dataset or "
                    "--design sequential"
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
        _check_enough_queries(t4, cfg.load.scenario, per_query)

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
        """Upstream's rule on the (pooled) phases, and auditkit's decision beside it: the
        verdict with its certainty (decision.py), the upstream verdict as upstream computes it."""
        t4 = self.settings(cfg)
        # upstream's rule sees the planned phases, as a LoadGen run has them (and as their
        # files say); auditkit's decision also sees the extra rounds
        planned = [p for p in phases if "_x" not in p.name]
        ref = _pooled(REFERENCE, planned)
        aud = _pooled(AUDIT, planned)
        all_ref, all_aud = _pooled(REFERENCE, phases), _pooled(AUDIT, phases)
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
        upstream = decide(
            ref.summary,
            aud.summary,
            t4,
            scenario=cfg.load.scenario,
            test_id=self.id,
            submission_grade=not shortfalls,
            notes=tuple(notes),
            config=cfg.redacted(),
        )
        assert upstream.evidence is not None and upstream.threshold is not None
        evidence = record_evidence(
            ref,
            aud,
            upstream.evidence.latency,
            upstream.threshold,
            cfg.endpoint.temperature,
            t4.seed,
        )
        decision = decide_with_certainty(
            all_ref.records,
            all_aud.records,
            scenario=cfg.load.scenario,
            threshold=upstream.threshold,
            upstream_verdict=upstream.verdict,
            upstream_reason=upstream.reason,
            look=1 + _rounds_done(phases),
            looks=1 + t4.rounds,
            salted=t4.salt,
            reliable=_enough_queries(t4, cfg.load.scenario, _per_query(cfg)),
            seed=t4.seed,
        )
        evidence = evidence.model_copy(
            update={
                "decision": decision,
                "salt": SaltInfo(enabled=t4.salt, run_salt=t4.run_salt, prefix=run_prefix(t4)),
                "warmup": warmup_info(phases),
            }
        )
        problems = _extension_problems(phases)
        if problems and decision.verdict != "INVALID":
            decision = decision.model_copy(
                update={"verdict": "INVALID", "reason": "INVALID: " + "; ".join(problems)}
            )
            evidence = evidence.model_copy(update={"decision": decision})
        extra = evidence.representative.warnings if evidence.representative else ()
        extra += decision.drift.notes if decision.drift else ()
        return upstream.model_copy(
            update={
                "verdict": decision.verdict,
                "upstream_verdict": upstream.verdict,
                "reason": headline(decision, upstream.verdict, upstream.reason),
                "evidence": evidence,
                "notes": (*upstream.notes, *extra),
            }
        )

    def verify_logs(
        self, inputs: dict[str, LogFile], settings: Test04Config
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

    def files(self, result: Test04Result) -> dict[str, str]:
        """verify_performance.txt (upstream's wording) and, as LoadGen's compliance run writes
        them, the audit phase's logs in performance/run_1/."""
        out = {VERIFY_FILE: format_verify_performance(result)}
        audit = result.phases.get(AUDIT)
        if audit is not None:
            out[str(RUN_DIR / mlperf_logs.SUMMARY_FILE)] = mlperf_logs.format_summary(audit)
            out[str(RUN_DIR / mlperf_logs.DETAIL_FILE)] = mlperf_logs.format_detail(audit)
        return out

    def advice(self, result: Test04Result) -> str:
        if result.verdict == "PASS" and not result.submission_grade:
            return (
                "no caching seen in this run; for a submission-grade result rerun with "
                "--mlperf-run-rules (600 s phases), and keep audit/ with the submission"
            )
        if result.verdict == "FAIL":
            return (
                "find the cache that answered (the evidence's cache kind; "
                "notebooks/investigate_caching.ipynb tells a response cache from a prefix cache), "
                "turn it off for the audit and rerun with --overwrite"
            )
        if result.verdict == "INCONCLUSIVE":
            decision = result.evidence.decision if result.evidence else None
            needed = decision.queries_needed if decision else None
            more = f"about {needed} more queries" if needed else "more queries"
            return (
                f"rerun with a larger budget ({more}: raise --max-queries or --samples) or a "
                "quieter endpoint; add --overwrite to replace this run"
            )
        return super().advice(result)

    def describe(self, cfg: AuditConfig) -> str:
        t4 = self.settings(cfg)
        return (
            f"{super().describe(cfg)}, {t4.samples} reference + {t4.effective_audit_samples} "
            f"audit samples (sample_index {t4.sample_index}), stream={cfg.endpoint.stream}"
        )

    def report_text(self, result: Test04Result) -> str:
        """verify_performance.txt's text, as upstream prints it."""
        return format_verify_performance(result)

    def summary_lines(self, result: Test04Result) -> list[str]:
        return [f"{label}: {text}" for label, text in self.panel_rows(result)]

    def panel_rows(self, result: Test04Result) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        if result.upstream_verdict is not None:
            rows.append(("upstream rule", _upstream_line(result)))
        evidence = result.evidence
        if evidence is None:
            return rows
        decision = evidence.decision
        if decision is not None:
            rows.append(("decision", _decision_line(decision)))
            control = decision.control
            if control is not None and control.twins:
                rows.append(("primed-cache control", _control_line(control)))
        if evidence.salt is not None:
            salt = evidence.salt
            rows.append(
                (
                    "salt",
                    f"every measured prompt starts with {salt.prefix!r}"
                    if salt.enabled
                    else "off (--no-salt): the dataset's prompts byte for byte",
                )
            )
        if evidence.warmup is not None:
            rows.append(("warm-up", _warmup_line(evidence.warmup)))
        fp = evidence.fingerprint
        if fp is not None:
            rows.append(("cache kind seen", f"{fp.kind} ({'; '.join(fp.evidence)})"))
        return rows


def _upstream_line(result: AuditResult[Any]) -> str:
    if result.reference_score is None or result.audit_score is None:
        return f"{result.upstream_verdict}"
    return (
        f"{result.upstream_verdict}: audit score {result.audit_score:.6g} vs reference "
        f"{result.reference_score:.6g} × (1 + {result.threshold:g}) ({result.score_name}; "
        f"{result.threshold_source})"
    )


def _decision_line(decision: Decision) -> str:
    view = decision.interval
    text = f"{decision.verdict} at look {decision.look} of {decision.looks}"
    if view is not None:
        text += (
            f": ratio {view.ratio:.3f}, {view.confidence:.1%} interval "
            f"[{view.ci_low:.3f}, {view.ci_high:.3f}] vs limit {view.limit:g}"
        )
    partial = decision.partial_cache
    if partial is not None and partial.median_speedup is not None:
        text += f"; repeated-sample median {partial.median_speedup:.3g}× the fresh ones'"
    if decision.queries_needed:
        text += f"; about {decision.queries_needed} more queries would settle it"
    if not decision.reliable:
        text += "; below the minimum queries (--allow-small): not reliable"
    return text


def _control_line(control: ControlCheck) -> str:
    kind = "self-check: the run's prompts were salted too" if control.salted_run else "guard"
    ratio = f"{control.median_ratio:.3g}×" if control.median_ratio is not None else "—"
    verdict = (
        "a cache held the dataset's prompts" if control.primed else "no sign of a primed cache"
    )
    return f"{control.twins} salted twins vs the originals: {ratio}; {verdict} ({kind})"


def _warmup_line(warmup: WarmupInfo) -> str:
    if not warmup.queries:
        return "none"
    settled = {True: "latency settled", False: "stopped by its cap before latency settled"}
    state = settled.get(warmup.stable, "") if warmup.stable is not None else ""
    return f"{warmup.queries} salted queries in {warmup.seconds:.2f} s" + (
        f", {state}" if state else ""
    )


def _first_half(samples: int, load: LoadPattern) -> int:
    """Half the samples, rounded down to whole multi-stream queries."""
    per_query = max(1, load.samples_per_query)
    return (samples // per_query // 2) * per_query


def pool_blocks(name: str, blocks: list[PhaseResult]) -> PhaseResult:
    """One phase from counterbalanced blocks: records laid end to end on one clock (each block
    shifted by the ones before it), then summarized as a single LoadGen phase."""
    frames: list[pd.DataFrame] = []
    shift = next_id = 0
    for block in blocks:
        frame = block.records.copy()
        for column in ("scheduled_ns", "sent_ns", "first_byte_ns", "first_token_ns"):
            frame[column] = frame[column] + shift
        frame["completed_ns"] = frame["completed_ns"] + shift
        frame["query_id"] = frame["query_id"] + next_id
        frame["phase"] = name
        # which block: the decision pairs the i-th reference block with the i-th audit block
        frame["block"] = len(frames) + 1
        frames.append(frame)
        if len(frame):  # an empty block (every query failed) shifts nothing
            next_id = int(frame["query_id"].max()) + 1
        shift += block.summary.duration_ns
    records = pd.concat(frames, ignore_index=True)
    first = blocks[0].spec
    spec = dataclasses.replace(
        first,
        name=name,
        samples=sum(b.spec.samples for b in blocks),
        twins=sum(b.spec.twins for b in blocks),
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


def run_prefix(t4: Test04Config) -> str | None:
    """The text every measured prompt starts with (None with --no-salt)."""
    if not t4.salt or t4.run_salt is None:
        return None
    return f"[run {t4.run_salt}]"


def control_prefix(t4: Test04Config) -> str:
    """The control twins' salt: never used by any measured prompt."""
    return f"[control {t4.run_salt or new_salt()}]"


def _audit_order(t4: Test04Config, cfg: AuditConfig, dataset: Dataset) -> SampleOrder:
    index = resolve_sample_index(t4, dataset)
    if cfg.load.scenario == "multi-stream":
        return SampleOrder.repeated_block(index, cfg.load.samples_per_query)
    return SampleOrder.single(index)


def _audit_rows(order: SampleOrder, load: LoadPattern, dataset: Dataset) -> set[int]:
    """The rows the audit phase repeats: a reference block after it must not reuse them."""
    return set(order.indices(load.samples_per_query, len(dataset)))


def _warmup(t4: Test04Config, cfg: AuditConfig, load: LoadPattern) -> list[RunSpec]:
    """The warm-up phase: salted queries (never a measured prompt) until latency is stable."""
    order = SampleOrder.salted(t4.seed + 1)
    if t4.warmup == "auto":
        least = max(2 * cfg.load.max_concurrency, 32)
        rule = WarmupRule(
            min_queries=least, max_queries=max(8 * least, 256), max_duration_s=WARMUP_CAP_S
        )
        return [RunSpec(WARMUP, order, least, load, warmup=rule)]
    if t4.warmup:
        return [RunSpec(WARMUP, order, int(t4.warmup), load)]
    return []


#: block pairs of the alternating design (an extra round adds half as many)
ALTERNATING_PAIRS = 8


def effective_design(t4: Test04Config, cfg: AuditConfig, dataset_rows: int | None = None) -> str:
    """`design: auto` made concrete: alternating blocks whenever each phase has enough queries
    for them (a busy spell of client or server that falls on one phase of a reference-then-
    audit run reads as a cache, in every scenario), sequential for timed runs and MLPerf's run
    rules (MLPerf's own layout), and for a reference as large as the dataset (the alternating
    reference blocks never issue the audit rows)."""
    if t4.design != "auto":
        return t4.design
    per_query = cfg.load.samples_per_query if cfg.load.scenario == "multi-stream" else 1
    smallest = min(t4.samples, t4.effective_audit_samples)
    rows_left = None if dataset_rows is None else dataset_rows - per_query
    if (
        (rows_left is None or t4.samples <= rows_left)
        and cfg.load.min_duration_s == 0
        and not cfg.load.run_rules
        and smallest >= 4 * ALTERNATING_PAIRS * per_query
    ):
        return "alternating"
    return "sequential"


def _split(total: int, parts: int, unit: int) -> list[int]:
    """`total` samples in `parts` blocks of whole queries of `unit` samples (remainder first)."""
    queries, rest = divmod(total // unit, parts)
    return [(queries + (1 if i < rest else 0)) * unit for i in range(parts)]


def _alternating(
    t4: Test04Config,
    cfg: AuditConfig,
    dataset: Dataset,
    load: LoadPattern,
    *,
    used: int,
    round_: int,
) -> list[RunSpec]:
    """Reference/audit block pairs in the order R A, A R, R A, …: a busy spell of the client or
    the server lands on both phases alike, and linear drift cancels within every two pairs.
    round_ 0 is the planned phases (ALTERNATING_PAIRS pairs, the control twins spread over the
    reference blocks); an extra round r is half as many pairs of the same size, named
    `reference_x{r}_{j}` / `audit_x{r}_{j}`."""
    per_query = load.samples_per_query
    audit_order = _audit_order(t4, cfg, dataset)
    # the audit rows never appear in a reference block: most blocks follow an audit block
    base = SampleOrder.without_replacement(t4.seed).excluding(
        _audit_rows(audit_order, load, dataset)
    )
    salt, twin_salt = run_prefix(t4), control_prefix(t4)
    if round_ == 0:
        pairs = ALTERNATING_PAIRS
        refs = _split(t4.samples, pairs, per_query)
        auds = _split(t4.effective_audit_samples, pairs, per_query)
        twins = _split(t4.twins(), pairs, 1)
        if cfg.load.scenario in ("offline", "server"):
            # a throughput block's score moves with its size (the last wave drains alone), so
            # each audit block matches its reference block, control twins included
            auds = [a + t for a, t in zip(auds, twins, strict=True)]
        names = [str(i + 1) for i in range(pairs)]
    else:
        pairs = ALTERNATING_PAIRS // 2
        refs = [_split(t4.samples, ALTERNATING_PAIRS, per_query)[-1]] * pairs
        auds = [_split(t4.effective_audit_samples, ALTERNATING_PAIRS, per_query)[-1]] * pairs
        twins = [0] * pairs
        names = [f"x{round_}_{j + 1}" for j in range(pairs)]
    specs: list[RunSpec] = []
    offset = used
    for i in range(pairs):
        reference = RunSpec(
            f"{REFERENCE}_{names[i]}",
            base.skip(offset),
            refs[i],
            load,
            salt=salt,
            twins=min(twins[i], refs[i]),
            twin_salt=twin_salt,
        )
        audit = RunSpec(f"{AUDIT}_{names[i]}", audit_order, auds[i], load, salt=salt)
        offset += refs[i]
        # pair i of the whole run (planned pairs, then each round's): even pairs R A, odd A R
        even = (i + (ALTERNATING_PAIRS if round_ else 0)) % 2 == 0
        specs += [reference, audit] if even else [audit, reference]
    return specs


def _is_block(name: str, kind: str) -> bool:
    return name == kind or name.startswith(f"{kind}_")


def _rounds_done(phases: list[PhaseResult]) -> int:
    """Extra rounds run so far (each adds reference and audit blocks named `…_x{r}…`)."""
    rounds = {
        p.name.split("_x", 1)[1].split("_", 1)[0]
        for p in phases
        if _is_block(p.name, AUDIT) and "_x" in p.name
    }
    return len(rounds)


def _pooled(kind: str, phases: list[PhaseResult]) -> PhaseResult:
    """The reference (or audit) phase: its one block, or all its blocks laid end to end."""
    blocks = [p for p in phases if _is_block(p.name, kind)]
    return blocks[0] if len(blocks) == 1 else pool_blocks(kind, blocks)


def _per_query(cfg: AuditConfig) -> int:
    return cfg.load.samples_per_query if cfg.load.scenario == "multi-stream" else 1


def min_queries(scenario: str) -> int | None:
    """Queries per phase for an early-stopping estimate that is not decided by a handful of
    queries: the estimate is then at least the MIN_RANK-th slowest (None: no such estimate)."""
    percentile = ES_PERCENTILE.get(scenario)
    if percentile is None or scenario == "server":
        return None
    return early_stopping.min_passing_count(MIN_RANK, percentile)


def _enough_queries(t4: Test04Config, scenario: str, per_query: int) -> bool:
    least = min_queries(scenario)
    smallest = min(t4.samples, t4.effective_audit_samples) // per_query
    return least is None or smallest >= least


def _check_enough_queries(t4: Test04Config, scenario: str, per_query: int) -> None:
    least = min_queries(scenario)
    if least is None or t4.allow_small or _enough_queries(t4, scenario, per_query):
        return
    smallest = min(t4.samples, t4.effective_audit_samples) // per_query
    rank = early_stopping.overlatency_count(smallest, ES_PERCENTILE[scenario])
    which = "not even defined" if not rank else _nth_slowest(rank)
    unit = f" ({least * per_query} samples)" if per_query > 1 else ""
    raise InputError(
        f"test04: at {smallest} queries per phase the {scenario} early-stopping estimate is "
        f"{which}, so a cold miss or an outlier decides the verdict; use at least {least} "
        f"queries{unit} (--samples, --audit-samples), or --allow-small (the verdict then says "
        "it is not reliable)"
    )


def _nth_slowest(rank: int) -> str:
    if rank == 1:
        return "the slowest query"
    suffix = {2: "nd", 3: "rd"}.get(rank if rank < 20 else rank % 10, "th")
    return f"the {rank}{suffix} slowest query"


def _extension_problems(phases: list[PhaseResult]) -> list[str]:
    """Why the extra rounds cannot back a PASS or FAIL: a block that failed or was incomplete,
    or was bound by the client (the same rules as the planned phases)."""
    out: list[str] = []
    for phase in phases:
        if "_x" not in phase.name:
            continue
        s = phase.summary
        # completeness only: a half-size block cannot meet LoadGen's per-phase minimums, and
        # need not (it is pooled with the planned phase)
        if not s.complete:
            out.append(f"{phase.name}: {s.completed} of {s.requested} completed, {s.failed} failed")
        if s.client_bound:
            out.append(f"{phase.name}: {s.client_bound}")
    return out
