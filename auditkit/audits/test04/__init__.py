"""MLPerf TEST04: does the SUT cache results? (compliance/TEST04 in mlcommons/inference)

Reference phase: distinct samples. Audit phase: one sample (`sample_index`) again and again.

    PASS iff audit_score < reference_score × (1 + threshold)      (strict, as upstream computes it)

This package owns everything TEST04: its config block (`settings`), its rule (`scoring`), its
evidence (`evidence`, `statistics`, `fingerprint`), its LoadGen-file verification and
verify_performance.txt (`logs`), and the plug-in below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Final

from auditkit import early_stopping, mlperf_logs, run_rules
from auditkit.audits.base import AuditTest
from auditkit.audits.kit import designs
from auditkit.audits.kit.phases import WARMUP as WARMUP
from auditkit.audits.kit.phases import measured, query_size, warmup_phase
from auditkit.audits.kit.ratio import interval_text
from auditkit.audits.test04.decision import (
    ClientLag,
    ControlCheck,
    Decision,
    decide_with_certainty,
    decision_columns,
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
)
from auditkit.audits.test04.settings import Test04Config
from auditkit.calibration import MAX_LOOP_LAG_NS, client_bound_reason
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder, median_cost_index
from auditkit.errors import InputError
from auditkit.loadgen_logs import LogFile, parse_summary
from auditkit.metrics import ES_PERCENTILE
from auditkit.plan import LoadPattern, RunSpec, new_salt
from auditkit.results import AuditResult, PhaseResult, PhaseSummary

#: the early-stopping estimate must be at least the MIN_RANK-th slowest query (docs/validity.md)
MIN_RANK = 5
VERIFY_FILE = "verify_performance.txt"
#: MLPerf's compliance layout: the audit run's own LoadGen logs
RUN_DIR = Path("performance") / "run_1"


def resolve_sample_index(t4: Test04Config, dataset: Dataset) -> int:
    """The dataset row the audit phase repeats (`median` → the most typical prompt)."""
    index = t4.sample_index
    return median_cost_index(dataset) if index == "median" else int(index)


class Test04(AuditTest[Test04Config, Test04Evidence]):
    """TEST04 as an audit plug-in."""

    id: ClassVar[str] = "TEST04"
    key: ClassVar[str] = "test04"
    title: ClassVar[str] = "Output caching (MLPerf TEST04)"
    summary: ClassVar[str] = "does the endpoint cache results? (reference vs one repeated sample)"
    settings_model = Test04Config
    evidence_model = Test04Evidence
    submission_name: ClassVar[str | None] = "output_caching_test"
    notebook: ClassVar[str | None] = "test04.ipynb"
    log_inputs: ClassVar[tuple[str, ...]] = ("reference", "test")
    verify_fields: ClassVar[tuple[str, ...]] = ("threshold", "threshold_mode")

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
        warmup = warmup_phase(cfg, t4.warmup, t4.seed)
        design = effective_design(t4, cfg)
        controls = _control_phase(t4, cfg, dataset, load, round_=0, done=0)
        if design == "alternating":
            slots = _alternating(t4, cfg, load, used=0, round_=0)
            return [*warmup, *_specs(t4, cfg, dataset, load, slots, exclude=True), *controls]
        samples = (t4.samples, t4.effective_audit_samples)
        duration = cfg.load.min_duration_s
        if design == "sequential":
            slots = designs.sequential(REFERENCE, AUDIT, samples, duration, t4.twins())
        else:
            # R A A R: warm-up bias (reference first → false FAIL) and drift cancel; the audit
            # sample's repeats stay back to back inside each audit block, since real prompt
            # caches (llama.cpp's, for one) only reuse the immediately preceding prompt
            unit = load.samples_per_query
            slots = designs.counterbalanced(REFERENCE, AUDIT, samples, unit, duration, t4.twins())
        return [*warmup, *_specs(t4, cfg, dataset, load, slots, exclude=False), *controls]

    def extend(
        self, cfg: AuditConfig, dataset: Dataset, phases: list[PhaseResult]
    ) -> list[RunSpec]:
        """One more counterbalanced round (audit then reference, or reference then audit) while
        the decision is not settled and the budget allows; [] when it is spent."""
        t4 = self.settings(cfg)
        done = designs.rounds_done(phases)
        if done >= t4.rounds:
            return []
        load = LoadPattern.from_config(cfg.load, t4.seed)
        r_n = designs.half(t4.samples, load.samples_per_query)
        a_n = designs.half(t4.effective_audit_samples, load.samples_per_query)
        ran = measured(phases)
        queries = sum(p.summary.issued for p in ran)
        budget = t4.max_queries or 4 * (t4.samples + t4.effective_audit_samples)
        if queries + r_n + a_n > budget:
            return []
        # the time budget is the extra rounds' own (planned phases may run 600 s each)
        extra = [p for p in ran if p.spec.round > 0]
        seconds = sum(p.summary.duration_ns for p in extra) / 1e9
        each = sum(p.summary.duration_ns for p in ran) / 1e9 / max(queries, 1)
        if seconds + each * (r_n + a_n) > t4.max_duration_s:
            return []
        r = done + 1
        # further rows of the same seeded order: the pooled reference stays distinct samples
        used = designs.issued(REFERENCE, ran)
        audit_rows = _audit_rows(_audit_order(t4, cfg, dataset), load, dataset)
        # the control phases' fresh rows come from the far end of the same order: never reused
        done_controls = sum(p.spec.samples for p in ran if p.spec.role == CONTROL)
        controls = _control_phase(t4, cfg, dataset, load, round_=r, done=done_controls)
        tail = done_controls // 2 + sum(c.samples for c in controls) // 2
        if used + r_n > len(dataset) - len(audit_rows) - tail:
            return []
        if effective_design(t4, cfg) == "alternating":
            slots = _alternating(t4, cfg, load, used=used, round_=r)
            return [*_specs(t4, cfg, dataset, load, slots, exclude=True), *controls]
        # the blocks alternate so drift over the extension cancels too
        slots = designs.extra_round(REFERENCE, AUDIT, r, (r_n, a_n), (used, 0))
        return [*_specs(t4, cfg, dataset, load, slots, exclude=True), *controls]

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        """Reject configs whose audit would be meaningless, before any request is sent."""
        t4 = self.settings(cfg)
        size = len(dataset)
        per_query = query_size(cfg.load)
        blocks = {"alternating": ALTERNATING_PAIRS, "counterbalanced": 2}.get(t4.design)
        if blocks:
            smallest = min(t4.samples, t4.effective_audit_samples)
            timed = cfg.load.min_duration_s > 0
            designs.check_blocks(self.key, t4.design, blocks, smallest, per_query, timed)
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
        update: dict[str, Any] = {"threshold_source": "not applied"}
        if (reference := ran.get(REFERENCE)) is not None:
            update |= {"score_name": reference.score_name, "reference_score": reference.score}
        return super().invalid(cfg, ran, reason).model_copy(update=update)

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> Test04Result:
        """Upstream's rule on the (pooled) phases, and auditkit's decision beside it: the
        verdict with its certainty (decision.py), the upstream verdict as upstream computes it."""
        t4 = self.settings(cfg)
        # upstream's rule sees the planned phases, as a LoadGen run has them (and as their
        # files say); auditkit's decision also sees the extra rounds
        planned = designs.planned(phases)
        ref, aud = designs.pool(REFERENCE, planned), designs.pool(AUDIT, planned)
        all_ref, all_aud = designs.pool(REFERENCE, phases), designs.pool(AUDIT, phases)
        # the control phases laid end to end on one clock (pairs never straddle two of them)
        has_controls = bool(designs.of_role(CONTROL, phases))
        controls = decision_columns(designs.pool(CONTROL, phases)) if has_controls else None
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
        decision = decide_with_certainty(
            decision_columns(all_ref),
            decision_columns(all_aud),
            scenario=cfg.load.scenario,
            threshold=upstream.threshold,
            upstream_verdict=upstream.verdict,
            upstream_reason=upstream.reason,
            look=1 + designs.rounds_done(phases),
            looks=1 + t4.rounds,
            salted=t4.salt,
            reliable=_enough_queries(t4, cfg.load.scenario, query_size(cfg.load)),
            seed=t4.seed,
            controls=controls,
            audit_index=_repeated_row(all_aud),
            client_bound_only=_client_bound_only(phases),
            lag=_client_lag(phases, ref.summary, aud.summary, cfg.load.client_bound_fraction),
        )
        evidence = record_evidence(
            ref,
            aud,
            upstream.evidence.latency,
            cfg.endpoint.temperature,
            cache_seen=decision.verdict == "FAIL",
            controls=designs.pool(CONTROL, phases) if has_controls else None,
        )
        evidence = evidence.model_copy(
            update={
                "decision": decision,
                "salt": SaltInfo(enabled=t4.salt, run_salt=t4.run_salt, prefix=run_prefix(t4)),
                "warmup": warmup_info(phases),
            }
        )
        lagged = decision.client_lag is not None
        problems = _extension_problems(phases, cfg.load.client_bound_fraction if lagged else None)
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
        for role in (REFERENCE, AUDIT):
            pooled = result.phases.get(role)
            if pooled is not None and designs.is_pooled(pooled):
                # a block design has no reference/ or audit/ phase folder: the pooled phases'
                # LoadGen logs go there, so upstream's verify_performance.py and `auditkit
                # verify` read a default run as they read a sequential one
                out[f"{role}/{mlperf_logs.SUMMARY_FILE}"] = mlperf_logs.format_summary(pooled)
                out[f"{role}/{mlperf_logs.DETAIL_FILE}"] = mlperf_logs.format_detail(pooled)
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
                "turn it off for the audit and rerun"
            )
        if result.verdict == "INCONCLUSIVE":
            decision = result.evidence.decision if result.evidence else None
            needed = decision.queries_needed if decision else None
            more = f"about {needed} more queries" if needed else "more queries"
            return (
                f"rerun with a larger budget ({more}: raise --max-queries or --samples) or a "
                "quieter endpoint"
            )
        return super().advice(result)

    def describe(self, cfg: AuditConfig) -> str:
        t4 = self.settings(cfg)
        return (
            f"{super().describe(cfg)}, {t4.samples} reference + {t4.effective_audit_samples} "
            f"audit samples (sample_index {t4.sample_index}), stream={cfg.endpoint.streams}"
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
            rows.append(("cache kind seen", f"{fp.kind}: {'; '.join(fp.evidence)}"))
        return rows


def _client_bound_only(phases: list[PhaseResult]) -> bool:
    """Every measured phase complete and valid but for a client that was saturated."""
    ran = measured(phases)
    bound = any(p.summary.client_bound for p in ran)
    clean = all(p.summary.complete and not p.summary.failed for p in ran)
    return bound and clean and not any(p.summary.invalid_reasons for p in ran)


def _lag_only(summary: PhaseSummary, fraction: float) -> bool:
    """Client-bound by a late event loop and nothing else (not near the client's ceiling)."""
    lag = summary.loop_lag_p99_ns
    if not summary.client_bound or lag is None or lag <= MAX_LOOP_LAG_NS:
        return False
    calm = summary.model_copy(update={"loop_lag_p99_ns": None})
    return client_bound_reason(calm, summary.client_ceiling_qps, fraction) is None


def _client_lag(
    phases: list[PhaseResult], reference: PhaseSummary, audit: PhaseSummary, fraction: float
) -> ClientLag | None:
    """Where the client's event loop ran late, when that alone made the run client-bound (every
    query complete, the pooled phases otherwise valid): the decision's lag rule then applies."""
    ran = measured(phases)
    bound = [p.summary for p in ran if p.summary.client_bound]
    if not bound or not all(_lag_only(s, fraction) for s in bound):
        return None
    if not all(p.summary.complete and not p.summary.failed for p in ran):
        return None
    if reference.invalid_reasons or audit.invalid_reasons:
        return None

    def late(role: str) -> tuple[int, ...]:
        blocks = designs.of_role(role, phases)  # type: ignore[arg-type]
        return tuple(i for i, p in enumerate(blocks, 1) if p.summary.client_bound)

    return ClientLag(
        reference_blocks=late(REFERENCE),
        audit_blocks=late(AUDIT),
        control_blocks=late(CONTROL),
        worst_ms=max(s.loop_lag_p99_ns or 0 for s in bound) / 1e6,
    )


def _repeated_row(audit: PhaseResult) -> int | None:
    """The dataset row the audit phase repeated (its most frequent row)."""
    rows = audit.columns("sample_index")["sample_index"]
    return int(rows.mode().iloc[0]) if len(rows) else None


def _upstream_line(result: AuditResult[Any]) -> str:
    if result.reference_score is None or result.audit_score is None:
        return f"{result.upstream_verdict}"
    # the threshold's source names its rule ("upstream rule: 0.1 for offline"): after a
    # semicolon, not inside another pair of parentheses
    return (
        f"{result.upstream_verdict}: audit score {result.audit_score:.6g} vs reference "
        f"{result.reference_score:.6g} × (1 + {result.threshold:g}), in "
        f"{result.score_name.lower()}; threshold from the {result.threshold_source}"
    )


def _decision_line(decision: Decision) -> str:
    view = decision.interval
    text = f"{decision.verdict} at look {decision.look} of {decision.looks}"
    if view is not None:
        text += (
            f": ratio {view.ratio:.3f}, {view.confidence:.1%} interval "
            f"{interval_text(view.ci_low, view.ci_high, view.limit)} vs limit {view.limit:g}"
        )
    partial = decision.partial_cache
    if partial is not None and partial.median_speedup is not None and partial.matched:
        # the arms' PASS route reads this interval too: show it
        shown = interval_text(partial.ci_low, partial.ci_high, view.limit if view else 1.0)
        speedup = f"{partial.median_speedup:.3g}×"
        text += f"; repeated-sample median {speedup} faster, cost-matched {shown}"
    elif partial is not None and partial.median_speedup is not None:
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
    per_query = query_size(cfg.load)
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


def _alternating(
    t4: Test04Config, cfg: AuditConfig, load: LoadPattern, *, used: int, round_: int
) -> list[designs.Slot]:
    """Reference/audit block pairs (R A, A R, ...; `designs.alternating`). round_ 0 is the
    planned phases (ALTERNATING_PAIRS pairs, the control twins spread over the reference
    blocks); an extra round r is half as many pairs of the planned last pair's size."""
    unit = load.samples_per_query
    refs = designs.split(t4.samples, ALTERNATING_PAIRS, unit)
    auds = designs.split(t4.effective_audit_samples, ALTERNATING_PAIRS, unit)
    if round_:
        pairs = ALTERNATING_PAIRS // 2
        sizes = ([refs[-1]] * pairs, [auds[-1]] * pairs)
        return designs.alternating(REFERENCE, AUDIT, sizes, [0] * pairs, round_, used)
    twins = designs.split(t4.twins(), ALTERNATING_PAIRS, 1)
    if cfg.load.scenario in ("offline", "server"):
        # a throughput block's score moves with its size (the last wave drains alone), so
        # each audit block matches its reference block, control twins included
        auds = [a + t for a, t in zip(auds, twins, strict=True)]
    return designs.alternating(REFERENCE, AUDIT, (refs, auds), twins, 0, used)


def _specs(
    t4: Test04Config,
    cfg: AuditConfig,
    dataset: Dataset,
    load: LoadPattern,
    slots: list[designs.Slot],
    *,
    exclude: bool,
) -> list[RunSpec]:
    """The slots' phases: the audit blocks repeat the audit sample; the reference blocks
    continue one seeded order, never issuing the audit rows once a block may follow an audit
    block (`exclude`, or any block after the first)."""
    audit_order = _audit_order(t4, cfg, dataset)
    rows = _audit_rows(audit_order, load, dataset)
    salt, twin_salt = run_prefix(t4), control_prefix(t4)
    out: list[RunSpec] = []
    for slot in slots:
        if slot.role == AUDIT:
            out.append(designs.spec(slot, audit_order, load, salt=salt))
            continue
        order = SampleOrder.without_replacement(t4.seed)
        if exclude or slot.skip:
            order = order.skip(slot.skip).excluding(rows)
        twin = {"twin_salt": twin_salt} if slot.twins else {}
        out.append(designs.spec(slot, order, load, salt=salt, **twin))
    return out


#: the role of the never-seen, cost-matched control phases (never read by upstream's rule)
CONTROL: Final = "control"


def _control_phase(
    t4: Test04Config,
    cfg: AuditConfig,
    dataset: Dataset,
    load: LoadPattern,
    *,
    round_: int,
    done: int,
) -> list[RunSpec]:
    """The control phase of a round (none in multi-stream or with --controls 0): the repeated
    sample and fresh dataset rows by turns, each followed by a prompt synthesised at run time
    as long as it (`SampleOrder.interleaved`, synthetic twins). The repeated sample carries
    the run's salt (it is the audit phase's prompt byte for byte); so do the fresh rows. It
    runs after the planned phases, so upstream's phases are exactly those of a run without it;
    an extra round's control phase is half the planned one, continuing its fresh rows."""
    pairs = t4.control_pairs()
    if not pairs or cfg.load.scenario == "multi-stream":
        return []
    if round_:
        pairs = max(1, pairs // 2)
    index = resolve_sample_index(t4, dataset)
    salt = run_prefix(t4)
    nonce = t4.run_salt or new_salt()
    order = SampleOrder.interleaved(t4.seed, index).excluding([index]).skip(done)
    name = CONTROL if not round_ else f"{CONTROL}_x{round_}"
    return [
        RunSpec(
            name, order, 2 * pairs, load, salt=salt, twins=2 * pairs,
            twin_salt=f"control {nonce} {round_}", twin_kind="synthetic", role=CONTROL,
            round=round_,
        )
    ]  # fmt: skip


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


def _extension_problems(phases: list[PhaseResult], lag_ruled: float | None = None) -> list[str]:
    """Why the extra rounds cannot back a PASS or FAIL: a block that failed or was incomplete,
    or was bound by the client (the same rules as the planned phases; a block only late in its
    event loop is left to the lag rule when `lag_ruled`, the guard's fraction, is given)."""
    out: list[str] = []
    for phase in phases:
        if phase.spec.round == 0:
            continue
        s = phase.summary
        # completeness only: a half-size block cannot meet LoadGen's per-phase minimums, and
        # need not (it is pooled with the planned phase)
        if not s.complete:
            out.append(f"{phase.name}: {s.completed} of {s.requested} completed, {s.failed} failed")
        if s.client_bound and not (lag_ruled is not None and _lag_only(s, lag_ruled)):
            out.append(f"{phase.name}: {s.client_bound}")
    return out
