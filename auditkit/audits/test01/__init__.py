"""TEST01: does the endpoint give the same answers under load as one at a time?
(`accuracy_in_performance_test`; compliance/TEST01 in mlcommons/inference)

Upstream (TEST01/README.md): in performance mode LoadGen writes a random subset of the outputs
(`accuracy_log_sampling_target`) to the accuracy log; two criteria must hold: "the inference
results in the accuracy JSON file must match the inference results in the accuracy JSON
generated in accuracy mode", and "the performance while running this test must match the
performance of the submission within 10%". When outputs differ (allowed non-determinism), the
fallback recomputes accuracy on both logs: the delta must be within 1 % (0.1 % for 99.9 %
models).

auditkit's phases: an *accuracy* phase (one query at a time, the logged samples), a
*performance* phase (the scenario's full load, nothing logged: the submission run's role) and
an *audit* phase (the same load and order, logging the outputs of a seeded random subset of
rows, `log_samples` of them: upstream's sampling target). For each logged row, its answer under
load is compared with its answer one at a time:

    match_rate  = identical pairs / pairs
    similarity  = mean over pairs of difflib.SequenceMatcher(None, a.split(), b.split()).ratio()
                  (token level: whitespace-separated words; 1.0 for identical answers)
    accuracy:     PASS iff match_rate == 1  or  1 − similarity <= accuracy_delta
                  (accuracy_delta 0.01; 0.001 with high_accuracy, as for 99.9 % models)

When the dataset has reference answers (`dataset.answer_column`), upstream's fallback replaces
the similarity: each phase's accuracy is scored on the logged rows that have an answer, and

    correct(output, answer) = normalise(answer) occurs in normalise(output) as whole words
                              ("contains", the default), or the two are equal ("exact")
    normalise(text) = casefold, punctuation → space, whitespace collapsed (NFKC first)
    acc_one, acc_load = correct answers / answered rows, one at a time and under load
    relative_delta = |acc_load − acc_one| / acc_one   (0 when both are 0; none when only
                     acc_one is 0: the check fails)
    accuracy:     PASS iff match_rate == 1  or  relative_delta <= accuracy_delta

"contains" is the default because chat models wrap a short answer in a sentence ("The capital
is Paris."): exact match would score both phases near 0 and hide a change under load. Its
weakness, an output that lists many candidates scores as correct, is the same in both phases,
which is all a relative delta needs; "exact" suits datasets of one-word or numeric answers the
prompt asks for alone. Symmetric: an accuracy that rises under load is a change too.
    performance:  upstream's verify_performance.py: PASS iff ref·(1 − t) <= test <= ref·(1 + t)
                  on the early-stopping latency (ns) in single-/multi-stream, on the score
                  (samples/s) in offline/server; t = 0.20 when the reference's single-stream
                  latency <= 200 µs or multi-stream latency <= 1.6 ms, else 0.10
                  (`performance_threshold` overrides t)
    upstream_verdict: PASS iff both pass (the point rule, what the MLPerf files carry)

auditkit's `verdict` judges the performance part with its certainty, as TEST04 and TEST05 do
(the kit's block bootstrap, `auditkit.audits.kit.ratio`): a 95 % interval [lo, hi] of
test/reference in upstream's quantity (audit/performance latency, or score), PASS iff
1 − t <= lo and hi <= 1 + t, FAIL iff hi < 1 − t or lo > 1 + t, else INCONCLUSIVE; answers
that fail the accuracy rule FAIL whatever the timing.

The similarity stands in for upstream's recomputed accuracy when the dataset carries no
reference answers (auditkit's shipped prompts carry none). The mismatching pairs are kept in
the evidence and written to `mismatches.jsonl`. `verify_accuracy.txt` and
`verify_performance.txt` are written as upstream's verify_accuracy.py and verify_performance.py
write them (upstream's run_verification.py and submission checker grep them for `TEST PASS`):
`TEST PASS` in verify_accuracy.txt iff every logged answer is identical (upstream compares the
logged bytes; its accuracy-delta fallback is a separate step, reported here on an `auditkit:`
line), `TEST PASS` / `TEST FAIL: Test score invalid` in verify_performance.txt by the point rule.
auditkit's own verdict follows on lines that start with `auditkit:`.
"""

from __future__ import annotations

import difflib
import json
import random
import unicodedata
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from auditkit.audits.base import AuditSettings, AuditTest
from auditkit.audits.kit import upstream
from auditkit.audits.kit.phases import (
    check_samples,
    one_at_a_time,
    phase_problem,
    require_temperature_zero,
    warmup_phase,
)
from auditkit.audits.kit.ratio import interval_text, statistical_view
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.plan import LoadPattern, Role, RunSpec
from auditkit.results import AuditResult, Evidence, LoggedOutput, PhaseResult, PhaseSummary

ACCURACY: Role = "accuracy"
PERFORMANCE: Role = "performance"
AUDIT: Role = "audit"
VERIFY_FILE = "verify_accuracy.txt"
MISMATCH_FILE = "mismatches.jsonl"
#: mismatching pairs kept in the evidence (all are counted)
SHOWN = 20


class Test01Config(AuditSettings):
    """TEST01 (accuracy in performance mode) knobs."""

    samples: int = Field(
        128, ge=1, le=10_000_000, description="queries of the performance and audit phases"
    )
    log_samples: int = Field(
        32, ge=1, description="rows whose answers are logged and compared (sampling target)"
    )
    accuracy_delta: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="when answers differ: allowed relative accuracy delta (with reference "
        "answers), else allowed 1 − similarity (upstream: 1 percent)",
    )
    high_accuracy: bool = Field(
        False, description="a 99.9 percent model: allowed delta 0.001 (upstream: 0.1 percent)"
    )
    answer_match: Literal["contains", "exact"] = Field(
        "contains",
        description="with reference answers: an output is correct when it contains the "
        "answer (whole words) or equals it, both normalised",
    )
    performance_threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="audit vs performance within ±this (None: upstream's 0.10; 0.20 when the "
        "single-stream latency <= 200 µs or multi-stream latency <= 1.6 ms)",
    )
    warmup: int = Field(16, ge=0, description="salted warm-up queries first (0: none)")
    seed: int = Field(0, ge=0, description="seed of the sample order and the logged subset")

    @property
    def delta(self) -> float:
        return 0.001 if self.high_accuracy else self.accuracy_delta


class Pair(Evidence):
    """One logged row whose answers differ."""

    sample_index: int
    similarity: float
    accuracy_output: str
    load_output: str


class Test01Evidence(Evidence):
    pairs: int
    identical: int
    match_rate: float
    similarity: float
    accuracy_delta: float
    accuracy_pass: bool
    performance_score: float | None
    audit_score: float | None
    #: test/reference in upstream's quantity (`performance_quantity`)
    performance_ratio: float | None
    performance_pass: bool
    performance_quantity: str = "score"
    performance_threshold: float = 0.10
    #: upstream's quantity of each phase: early-stopping latency (ns) or score (samples/s)
    performance_reference: float | None = None
    performance_test: float | None = None
    #: logged answers of each phase (upstream's num_acc_log_entries / num_perf_log_entries)
    accuracy_entries: int = 0
    audit_entries: int = 0
    performance_interval: tuple[float, float] | None = None
    performance_decision: str = ""
    mismatches: tuple[Pair, ...] = ()
    mismatch_count: int = 0
    #: with reference answers (dataset.answer_column); None/0 without
    answer_match: str | None = None
    answered: int = 0
    accuracy_one_at_a_time: float | None = None
    accuracy_under_load: float | None = None
    accuracy_relative_delta: float | None = None


@dataclass(frozen=True)
class AnsweredSpec(RunSpec):
    """The accuracy phase, carrying the logged rows' reference answers: `verify` stays a pure
    function of the phase results (it never reads the dataset)."""

    answers: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class Accuracy:
    """Both phases scored against the reference answers (see the module docstring)."""

    answered: int
    one_at_a_time: float
    under_load: float
    relative_delta: float | None


def normalise(text: str) -> str:
    """Casefolded, punctuation as spaces, whitespace collapsed (NFKC first)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join(text.split())


def correct(output: str, answer: str, match: str = "contains") -> bool:
    """Whether `output` answers `answer`: contains it as whole words, or equals it (normalised)."""
    out, ref = normalise(output), normalise(answer)
    if match == "exact":
        return out == ref
    return bool(ref) and f" {ref} " in f" {out} "


def accuracy(
    answers: dict[int, str], one: dict[int, str], load: dict[int, str], match: str
) -> Accuracy | None:
    """Both phases' accuracy on the rows answered in both that have a reference (None: none)."""
    rows = sorted(set(answers) & set(one) & set(load))
    if not rows:
        return None
    acc_one = sum(correct(one[r], answers[r], match) for r in rows) / len(rows)
    acc_load = sum(correct(load[r], answers[r], match) for r in rows) / len(rows)
    if acc_one > 0:
        delta: float | None = abs(acc_load - acc_one) / acc_one
    else:
        delta = 0.0 if acc_load == 0 else None
    return Accuracy(len(rows), acc_one, acc_load, delta)


def similarity(a: str, b: str) -> float:
    """Token-level similarity of two answers (whitespace words; 1.0 when identical)."""
    if a == b:
        return 1.0
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def upstream_quantity(scenario: str, summary: PhaseSummary) -> float | None:
    """What upstream's verify_performance.py compares: the early-stopping latency (ns) in
    single-/multi-stream, the score (samples/s) in offline and server."""
    if scenario in upstream.LATENCY_SCENARIOS:
        latency = summary.early_stopping_latency_ns
        return float(latency) if latency is not None else None
    return summary.score


def performance_threshold(t1: Test01Config, scenario: str, reference: float | None) -> float:
    """Upstream's threshold: 0.20 for a short reference latency (single-stream <= 200 µs,
    multi-stream <= 1.6 ms, compared in ns as verify_performance.py does), else 0.10."""
    if t1.performance_threshold is not None:
        return t1.performance_threshold
    return upstream.threshold(scenario, reference, upstream.TEST04_THRESHOLD)


def interval_decision(interval: tuple[float, float] | None, t: float) -> str:
    """PASS when the interval of test/reference lies within [1 − t, 1 + t], FAIL when wholly
    outside it, else INCONCLUSIVE (no interval: INCONCLUSIVE)."""
    if interval is None:
        return "INCONCLUSIVE"
    low, high = interval
    if high < 1 - t or low > 1 + t:
        return "FAIL"
    if 1 - t <= low and high <= 1 + t:
        return "PASS"
    return "INCONCLUSIVE"


def logged_rows(t1: Test01Config, dataset_size: int) -> frozenset[int]:
    """The seeded random subset of the phase's rows whose answers are logged."""
    rows = sorted(set(SampleOrder.without_replacement(t1.seed).indices(t1.samples, dataset_size)))
    k = min(t1.log_samples, len(rows))
    return frozenset(random.Random(t1.seed).sample(rows, k))


def _by_row(outputs: tuple[LoggedOutput, ...]) -> dict[int, str]:
    return {o.sample_index: o.text for o in outputs if o.variant == "main"}


def compare(accuracy: dict[int, str], load: dict[int, str]) -> tuple[int, int, float, list[Pair]]:
    """(pairs, identical, mean similarity, mismatching pairs) of the rows both logged."""
    rows = sorted(set(accuracy) & set(load))
    sims, mismatches = [], []
    for r in rows:
        s = similarity(accuracy[r], load[r])
        sims.append(s)
        if accuracy[r] != load[r]:
            mismatches.append(Pair(sample_index=r, similarity=s, accuracy_output=accuracy[r],
                                   load_output=load[r]))  # fmt: skip
    identical = len(rows) - len(mismatches)
    return len(rows), identical, (sum(sims) / len(sims)) if sims else 0.0, mismatches


class Test01(AuditTest[Test01Config, Test01Evidence]):
    """TEST01 as an audit plug-in."""

    id: ClassVar[str] = "TEST01"
    key: ClassVar[str] = "test01"
    title: ClassVar[str] = "Accuracy in performance mode (MLPerf TEST01)"
    summary: ClassVar[str] = "same answers under load as one at a time?"
    settings_model = Test01Config
    evidence_model = Test01Evidence
    panel_label: ClassVar[str | None] = "answers"
    submission_name: ClassVar[str | None] = "accuracy_in_performance_test"

    def applies(self, cfg: AuditConfig) -> str | None:
        if cfg.endpoint.temperature != 0:
            return "compares answers: needs endpoint.temperature 0"
        return None

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        t1 = self.settings(cfg)
        require_temperature_zero(cfg, self.id)
        check_samples("test01.samples", t1.samples, len(dataset))
        if cfg.load.scenario == "multi-stream" and t1.samples % cfg.load.samples_per_query:
            raise InputError("test01.samples must be a multiple of load.samples_per_query")

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """Warm-up; the logged rows one at a time; performance; audit (logging those rows)."""
        t1 = self.settings(cfg)
        rows = logged_rows(t1, len(dataset))
        order = SampleOrder.without_replacement(t1.seed)
        load = LoadPattern.from_config(cfg.load, t1.seed)
        duration = cfg.load.min_duration_s
        # one at a time through the same rows (a phase sends an order's prefix, not a subset),
        # keeping the logged rows' answers
        answers = tuple((r, a) for r in sorted(rows) if (a := dataset[r].answer) is not None)
        accuracy = AnsweredSpec(
            ACCURACY, order, t1.samples, one_at_a_time(t1.seed), log_outputs=rows,
            answers=answers, role=ACCURACY,
        )  # fmt: skip
        return [
            *warmup_phase(cfg, t1.warmup, t1.seed),
            accuracy,
            RunSpec(PERFORMANCE, order, t1.samples, load, duration, role=PERFORMANCE),
            RunSpec(AUDIT, order, t1.samples, load, duration, log_outputs=rows, role=AUDIT),
        ]

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[Test01Evidence]:
        t1 = self.settings(cfg)
        base = base_fields(self.id, cfg, phases)
        problem = phase_problem(phases, untimed=(ACCURACY,))
        if problem is not None:
            return invalid(self.result_model, base, problem)
        named = {p.spec.role: p for p in phases}
        one, load = _by_row(named[ACCURACY].outputs), _by_row(named[AUDIT].outputs)
        pairs, identical, sim, mismatches = compare(one, load)
        spec = named[ACCURACY].spec
        answers = dict(spec.answers) if isinstance(spec, AnsweredSpec) else {}
        scored = accuracy(answers, one, load, t1.answer_match)
        if pairs == 0:
            return invalid(self.result_model, base, "no logged row was answered in both")
        match_rate = identical / pairs
        if scored is not None:
            # upstream's fallback: the recomputed accuracy replaces the similarity stand-in
            within = scored.relative_delta is not None and scored.relative_delta <= t1.delta
        else:
            within = 1.0 - sim <= t1.delta
        accuracy_pass = match_rate == 1.0 or within
        scenario = cfg.load.scenario
        perf, aud = named[PERFORMANCE].summary.score, named[AUDIT].summary.score
        ref_q = upstream_quantity(scenario, named[PERFORMANCE].summary)
        test_q = upstream_quantity(scenario, named[AUDIT].summary)
        ratio = test_q / ref_q if ref_q and test_q is not None else None
        t = performance_threshold(t1, scenario, ref_q)
        performance_pass = upstream.within(ref_q, test_q, t)
        point = "PASS" if accuracy_pass and performance_pass else "FAIL"
        view = statistical_view(
            named[PERFORMANCE].records, named[AUDIT].records, scenario, t, seed=t1.seed
        )
        interval = (view.ci_low, view.ci_high) if view is not None else None
        if interval is not None and scenario in upstream.LATENCY_SCENARIOS:
            # the bootstrap's ratio is of scores (1e9 / latency): as a latency ratio it inverts
            interval = (1 / interval[1], 1 / interval[0])
        decision = interval_decision(interval, t)
        quantity = "latency" if scenario in upstream.LATENCY_SCENARIOS else "score"
        verdict = "FAIL" if not accuracy_pass else decision
        allowed = f", allowed 1 − similarity <= {t1.delta:g}" if scored is None else ""
        parts = [
            f"{identical} of {pairs} logged answers identical under load "
            f"(similarity {sim:.3f}{allowed})"
        ]
        if scored is not None:
            parts.append(_accuracy_text(scored, t1))
        if not accuracy_pass:
            parts[0 if scored is None else 1] += ": answers change under load"
        ratio_text = f"{ratio:.3f}" if ratio is not None else "n/a"
        where = f"interval {interval_text(*interval, 1 - t, 1 + t)}" if interval else "no interval"
        parts.append(
            f"audit/performance {quantity} {ratio_text}, {where}: performance {decision} "
            f"(±{t:g}; upstream's point rule {'passes' if performance_pass else 'fails'})"
        )
        evidence = Test01Evidence(
            pairs=pairs,
            identical=identical,
            match_rate=match_rate,
            similarity=sim,
            accuracy_delta=t1.delta,
            accuracy_pass=accuracy_pass,
            performance_score=perf,
            audit_score=aud,
            performance_ratio=ratio,
            performance_pass=performance_pass,
            performance_quantity=quantity,
            performance_threshold=t,
            performance_reference=ref_q,
            performance_test=test_q,
            accuracy_entries=len(one),
            audit_entries=len(load),
            performance_interval=interval,
            performance_decision=decision,
            mismatches=tuple(mismatches[:SHOWN]),
            mismatch_count=len(mismatches),
            answer_match=t1.answer_match if scored is not None else None,
            answered=scored.answered if scored is not None else 0,
            accuracy_one_at_a_time=scored.one_at_a_time if scored is not None else None,
            accuracy_under_load=scored.under_load if scored is not None else None,
            accuracy_relative_delta=scored.relative_delta if scored is not None else None,
        )
        return self.result_model(
            verdict=verdict,
            upstream_verdict=point,
            reason="; ".join(parts),
            score_name=named[AUDIT].summary.score_name,
            reference_score=perf,
            audit_score=aud,
            ratio=aud / perf if perf and aud is not None else None,
            threshold=t,
            threshold_source="user"
            if t1.performance_threshold is not None
            else ("upstream (0.20 for a short single/multi-stream latency, else 0.10)"),
            rule="answers match (or, with reference answers, |Δaccuracy|/accuracy <= delta, "
            "else 1 − similarity <= delta) and ref·(1 − t) <= audit <= ref·(1 + t) on the "
            "early-stopping latency (single/multi-stream) or the score (offline/server)",
            evidence=evidence,
            **base,
        )

    def files(self, result: AuditResult[Test01Evidence]) -> dict[str, str]:
        ev = result.evidence
        mine = f"auditkit: verdict {result.verdict}; {result.reason}\n"
        if ev is None:
            # what upstream's scripts print when they have nothing valid to compare
            return {
                VERIFY_FILE: f"{ACCURACY_HEAD}TEST FAIL\n\n{mine}",
                upstream.VERIFY_PERFORMANCE: upstream.verify_performance(
                    None, False, [mine.rstrip("\n")], failure="Invalid results in the audit run"
                ),
                MISMATCH_FILE: "",
            }
        lines = [json.dumps(p.model_dump(), ensure_ascii=False) for p in ev.mismatches]
        return {
            VERIFY_FILE: verify_accuracy_text(ev, mine),
            upstream.VERIFY_PERFORMANCE: verify_performance_text(ev, mine),
            MISMATCH_FILE: "".join(f"{line}\n" for line in lines),
        }

    def advice(self, result: AuditResult[Test01Evidence]) -> str:
        ev = result.evidence
        if result.verdict != "FAIL" or ev is None:
            return super().advice(result)
        if not ev.accuracy_pass:
            return (
                f"answers change under load ({ev.mismatch_count} of {ev.pairs} differ): compare "
                f"the pairs in {MISMATCH_FILE} (batching, or a kernel or precision that changes "
                "with load, are the usual causes), fix it and rerun"
            )
        return (
            f"the audit run's {ev.performance_quantity} is off the performance run's by more than "
            f"±{ev.performance_threshold:g}: keep other load off the endpoint and the client "
            "during the run, then rerun"
        )

    def summary_lines(self, result: AuditResult[Test01Evidence]) -> list[str]:
        ev = result.evidence
        if ev is None:
            return []
        ratio = "n/a" if ev.performance_ratio is None else f"{ev.performance_ratio:.3f}"
        lines = [
            f"{ev.identical}/{ev.pairs} identical, similarity {ev.similarity:.3f}; "
            f"performance ratio {ratio} ({ev.performance_quantity})"
        ]
        if ev.accuracy_one_at_a_time is not None:
            lines[0] += f"; {_evidence_accuracy(ev)}"
        for p in ev.mismatches[:3]:
            lines.append(
                f"row {p.sample_index}: {p.accuracy_output[:40]!r} vs {p.load_output[:40]!r}"
            )
        return lines


ACCURACY_HEAD = "Verifying accuracy. This might take a while...\n"


def verify_accuracy_text(ev: Test01Evidence, mine: str) -> str:
    """verify_accuracy.txt as upstream's verify_accuracy.py prints it (`TEST PASS` iff every
    logged answer is identical and there is at least one), then auditkit's lines."""
    upstream_pass = ev.pairs > 0 and ev.identical == ev.pairs
    text = (
        ACCURACY_HEAD
        + "Reading accuracy mode results...\n"
        + "Reading performance mode results...\n"
        + f"num_acc_log_entries = {ev.accuracy_entries}\n"
        + "num_acc_log_duplicate_keys = 0\n"
        + "num_acc_log_data_mismatch = 0\n"
        + f"num_perf_log_entries = {ev.audit_entries}\n"
        + f"num_perf_log_qsl_idx_match = {ev.pairs}\n"
        + f"num_perf_log_data_mismatch = {ev.pairs - ev.identical}\n"
        + f"num_missing_qsl_idxs = {ev.audit_entries - ev.pairs}\n"
        + ("TEST PASS\n\n" if upstream_pass else "TEST FAIL\n\n")
        + mine
        + f"auditkit: {ev.identical} of {ev.pairs} identical, similarity {ev.similarity:.4f}\n"
    )
    if ev.accuracy_one_at_a_time is not None:
        text += f"auditkit: {_evidence_accuracy(ev)}\n"
    if not upstream_pass:
        # upstream's fallback (accuracy recomputed on both logs) is a separate step
        text += (
            f"auditkit: answers differ; the accuracy fallback (delta <= {ev.accuracy_delta:g}) "
            f"{'passes' if ev.accuracy_pass else 'fails'}\n"
        )
    return text


def verify_performance_text(ev: Test01Evidence, mine: str) -> str:
    """verify_performance.txt as upstream's verify_performance.py prints it, then auditkit's
    interval decision."""
    ref = "n/a" if ev.performance_reference is None else f"{ev.performance_reference}"
    test = "n/a" if ev.performance_test is None else f"{ev.performance_test}"
    where = (
        f"interval [{ev.performance_interval[0]:.4g}, {ev.performance_interval[1]:.4g}]"
        if ev.performance_interval is not None
        else "no interval"
    )
    return upstream.verify_performance(
        (ref, test),
        ev.performance_pass,
        [
            mine.rstrip("\n"),
            f"auditkit: performance {ev.performance_decision}: {where} of audit/performance "
            f"{ev.performance_quantity} within ±{ev.performance_threshold:g}",
        ],
        labels=("Reference score", "Test score"),
    )


def _delta_text(delta: float | None) -> str:
    return "n/a (no correct answer one at a time)" if delta is None else f"{delta:.4f}"


def _accuracy_text(scored: Accuracy, t1: Test01Config) -> str:
    return (
        f"accuracy {scored.one_at_a_time:.3f} one at a time vs {scored.under_load:.3f} under "
        f"load on {scored.answered} answered rows ({t1.answer_match}), relative delta "
        f"{_delta_text(scored.relative_delta)} (allowed <= {t1.delta:g})"
    )


def _evidence_accuracy(ev: Test01Evidence) -> str:
    return (
        f"accuracy {ev.accuracy_one_at_a_time or 0:.3f} one at a time vs "
        f"{ev.accuracy_under_load or 0:.3f} under load ({ev.answered} answered, "
        f"{ev.answer_match}), relative delta {_delta_text(ev.accuracy_relative_delta)}"
    )
