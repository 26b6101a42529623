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

Upstream's verdict is computed on the files the run writes, by the same code that re-verifies
LoadGen's (`logs.py`, `auditkit verify test01`): the accuracy phase's and the audit phase's
`mlperf_log_accuracy.json` (each answer's UTF-8 bytes as `data`; verify_accuracy.py compares
the first byte only) and the performance and audit phases' `mlperf_log_detail.txt`
(full-precision scores; an INVALID LoadGen result is `TEST FAIL: Invalid results in <file>`).
`upstream_verdict` (and `passed` in audit_accuracy_in_performance_test.json) is PASS iff both
print `TEST PASS`; the similarity fallback and the interval are auditkit's, beside it.
"""

from __future__ import annotations

import difflib
import json
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from auditkit import mlperf_logs
from auditkit.audits.base import AuditSettings, AuditTest
from auditkit.audits.kit import upstream
from auditkit.audits.kit.accuracy_log import ACCURACY_LOG, AccuracyEntry, parse, render
from auditkit.audits.kit.phases import (
    check_samples,
    one_at_a_time,
    phase_problem,
    require_temperature_zero,
    warmup_phase,
)
from auditkit.audits.kit.ratio import interval_text, statistical_view, view_columns
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.audits.test01 import logs
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.loadgen_logs import LogFile, parse_detail, read_run_dir
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
    #: upstream's verify_accuracy.py and verify_performance.py on the run's LoadGen files
    upstream_accuracy_pass: bool = False
    upstream_performance_pass: bool = False
    upstream_accuracy_lines: tuple[str, ...] = ()
    upstream_performance_lines: tuple[str, ...] = ()
    #: LoadGen files as written (relative path → text); not in audit_result.json
    logs: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)


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


def entries(outputs: tuple[LoggedOutput, ...]) -> list[AccuracyEntry]:
    """A phase's logged answers as LoadGen's accuracy log entries (`data`: the UTF-8 bytes)."""
    main = [o for o in outputs if o.variant == "main"]
    return [AccuracyEntry(i, o.sample_index, o.text.encode("utf-8")) for i, o in enumerate(main)]


#: where auditkit's TEST01 folder keeps each LoadGen file upstream's scripts read
ACCURACY_MODE_LOG = str(Path(ACCURACY) / ACCURACY_LOG)
COMPLIANCE_LOG = str(Path(AUDIT) / ACCURACY_LOG)
REFERENCE_DETAIL = str(Path(PERFORMANCE) / mlperf_logs.DETAIL_FILE)
COMPLIANCE_DETAIL = str(Path(AUDIT) / mlperf_logs.DETAIL_FILE)
RUN_DIR = Path(PERFORMANCE) / "run_1"


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
    log_inputs: ClassVar[tuple[str, ...]] = ("reference_accuracy", "reference", "test")
    log_help: ClassVar[dict[str, str]] = {
        "reference_accuracy": "the accuracy-mode run's mlperf_log_accuracy.json (or its folder: "
        "<results>/accuracy)",
        "reference": "the submission's performance run: its mlperf_log_detail.txt (or folder: "
        "<results>/performance/run_1)",
        "test": "the TEST01 compliance run's folder (mlperf_log_accuracy.json, "
        "mlperf_log_detail.txt)",
    }

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
        ref_log, test_log = entries(named[ACCURACY].outputs), entries(named[AUDIT].outputs)
        ref_detail = mlperf_logs.format_detail(named[PERFORMANCE].summary)
        test_detail = mlperf_logs.format_detail(named[AUDIT].summary)
        up_acc = logs.verify_accuracy(ref_log, test_log)
        up_perf = logs.verify_performance(
            parse_detail(ref_detail), parse_detail(test_detail),
            (REFERENCE_DETAIL, COMPLIANCE_DETAIL),
        )  # fmt: skip
        written = {
            ACCURACY_MODE_LOG: render(ref_log),
            COMPLIANCE_LOG: render(test_log),
            str(RUN_DIR / ACCURACY_LOG): render(test_log),
        }
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
        point = "PASS" if up_acc.passed and up_perf.passed else "FAIL"
        view = statistical_view(
            view_columns(named[PERFORMANCE]), view_columns(named[AUDIT]), scenario, t, seed=t1.seed
        )
        interval = (view.ci_low, view.ci_high) if view is not None else None
        if interval is not None and scenario in upstream.LATENCY_SCENARIOS:
            # the bootstrap's ratio is of scores (1e9 / latency): as a latency ratio it inverts
            interval = (1 / interval[1], 1 / interval[0])
        decision = interval_decision(interval, t)
        quantity = "latency" if scenario in upstream.LATENCY_SCENARIOS else "score"
        verdict = "FAIL" if not accuracy_pass else decision
        if up_perf.reference is None or up_perf.test is None:
            # LoadGen calls a phase INVALID: no performance comparison stands
            verdict = "INVALID"
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
            f"(±{t:g}; upstream's verify_performance.py "
            f"{'passes' if up_perf.passed else 'fails: ' + up_perf.lines[-1]})"
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
            performance_reference=up_perf.reference if up_perf.reference is not None else ref_q,
            performance_test=up_perf.test if up_perf.test is not None else test_q,
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
            upstream_accuracy_pass=up_acc.passed,
            upstream_performance_pass=up_perf.passed,
            upstream_accuracy_lines=tuple(up_acc.lines()),
            upstream_performance_lines=up_perf.lines,
            logs=written,
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
        mine = f"auditkit: verdict {result.verdict}; {result.reason}"
        if ev is None:
            # what upstream's scripts print when they have nothing valid to compare
            return {
                VERIFY_FILE: logs.text([ACCURACY_HEAD.rstrip("\n"), "TEST FAIL", ""], [mine]),
                upstream.VERIFY_PERFORMANCE: upstream.verify_performance(
                    None, False, [mine], failure="Invalid results in the audit run"
                ),
                MISMATCH_FILE: "",
            }
        lines = [json.dumps(p.model_dump(), ensure_ascii=False) for p in ev.mismatches]
        out = {
            VERIFY_FILE: verify_accuracy_text(ev, mine),
            upstream.VERIFY_PERFORMANCE: verify_performance_text(ev, mine),
            MISMATCH_FILE: "".join(f"{line}\n" for line in lines),
            **ev.logs,
        }
        audit = result.phases.get(AUDIT)
        if audit is not None:
            out[str(RUN_DIR / mlperf_logs.SUMMARY_FILE)] = mlperf_logs.format_summary(audit)
            out[str(RUN_DIR / mlperf_logs.DETAIL_FILE)] = mlperf_logs.format_detail(audit)
        return out

    def read_log_input(self, name: str, path: str) -> LogFile:  # noqa: ARG002 (hook signature)
        return read_run_dir(path)

    def verify_logs(
        self, inputs: dict[str, LogFile], settings: Test01Config
    ) -> tuple[AuditResult[Test01Evidence], dict[str, str]]:
        """`auditkit verify test01 --reference-accuracy A --reference B --test C`: upstream's
        verify_accuracy.py and verify_performance.py on LoadGen's files."""
        acc, ref, test = inputs["reference_accuracy"], inputs["reference"], inputs["test"]
        for run, need in ((acc, "accuracy"), (test, "accuracy"), (ref, "detail"), (test, "detail")):
            if getattr(run, need) is None:
                wanted = ACCURACY_LOG if need == "accuracy" else mlperf_logs.DETAIL_FILE
                raise InputError(f"{run.source}: no {wanted} there")
        try:
            ref_log = parse(acc.accuracy or "")
            test_log = parse(test.accuracy or "")
        except ValueError as exc:
            raise InputError(f"accuracy log: {exc}") from None
        ref_path, test_path = ref.detail_path or ref.source, test.detail_path or test.source
        up_acc = logs.verify_accuracy(ref_log, test_log)
        up_perf = logs.verify_performance(
            parse_detail(ref.detail or "", ref_path), parse_detail(test.detail or "", test_path),
            (ref_path, test_path),
        )  # fmt: skip
        texts = {e.qsl_idx: e.data for e in ref_log}
        pairs = [(texts[e.qsl_idx], e.data) for e in test_log if e.qsl_idx in texts]
        identical = sum(a == b for a, b in pairs)
        passed = up_acc.passed and up_perf.passed
        ratio = (
            up_perf.test / up_perf.reference
            if up_perf.reference and up_perf.test is not None
            else None
        )
        ev = Test01Evidence(
            pairs=len(pairs), identical=identical,
            match_rate=identical / len(pairs) if pairs else 0.0, similarity=0.0,
            accuracy_delta=settings.delta, accuracy_pass=up_acc.passed,
            performance_score=None, audit_score=None, performance_ratio=ratio,
            performance_pass=up_perf.passed, performance_threshold=up_perf.threshold or 0.10,
            performance_reference=up_perf.reference, performance_test=up_perf.test,
            accuracy_entries=len(ref_log), audit_entries=len(test_log),
            performance_decision="PASS" if up_perf.passed else "FAIL",
            upstream_accuracy_pass=up_acc.passed, upstream_performance_pass=up_perf.passed,
            upstream_accuracy_lines=tuple(up_acc.lines()),
            upstream_performance_lines=up_perf.lines,
            logs={str(Path("accuracy") / ACCURACY_LOG): test.accuracy or ""},
        )  # fmt: skip
        scenario = {v: k for k, v in mlperf_logs.LOADGEN_SCENARIO.items()}.get(
            up_perf.scenario or "", "unknown"
        )
        result = self.result_model(
            test=self.id,
            verdict="PASS" if passed else "FAIL",
            upstream_verdict="PASS" if passed else "FAIL",
            reason=f"upstream: verify_accuracy.py {up_acc.lines()[-2]}, verify_performance.py "
            f"{up_perf.lines[-1]} ({identical} of {len(pairs)} logged answers identical)",
            scenario=scenario,
            threshold=up_perf.threshold,
            threshold_source="upstream (0.20 for a short single/multi-stream latency, else 0.10)",
            rule="verify_accuracy.py (first byte of each matching qsl_idx) and "
            "verify_performance.py (ref·(1 − t) <= test <= ref·(1 + t), VALID results)",
            evidence=ev,
        )
        files = {
            VERIFY_FILE: verify_accuracy_text(ev, f"auditkit: verdict {result.verdict}"),
            upstream.VERIFY_PERFORMANCE: logs.text(up_perf.lines),
            **ev.logs,
        }
        files[str(RUN_DIR / mlperf_logs.SUMMARY_FILE)] = test.summary
        files[str(RUN_DIR / mlperf_logs.DETAIL_FILE)] = test.detail or ""
        if not test.summary:
            del files[str(RUN_DIR / mlperf_logs.SUMMARY_FILE)]
        return result, files

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
    """verify_accuracy.txt: upstream's verify_accuracy.py lines (computed on the run's accuracy
    logs), then auditkit's."""
    extra = [mine, f"auditkit: {ev.identical} of {ev.pairs} identical, similarity "
             f"{ev.similarity:.4f}"]  # fmt: skip
    if ev.accuracy_one_at_a_time is not None:
        extra.append(f"auditkit: {_evidence_accuracy(ev)}")
    if ev.identical != ev.pairs or not ev.upstream_accuracy_pass:
        # upstream's fallback (accuracy recomputed on both logs) is a separate step
        extra.append(
            f"auditkit: answers differ; the accuracy fallback (delta <= {ev.accuracy_delta:g}) "
            f"{'passes' if ev.accuracy_pass else 'fails'}"
        )
    if ev.upstream_accuracy_pass and ev.identical != ev.pairs:
        extra.append(
            "auditkit: upstream compares the first byte of each answer only: "
            f"{ev.pairs - ev.identical} answers differ after it"
        )
    return logs.text(ev.upstream_accuracy_lines, extra)


def verify_performance_text(ev: Test01Evidence, mine: str) -> str:
    """verify_performance.txt: upstream's verify_performance.py lines (on the detail logs),
    then auditkit's interval decision."""
    where = (
        f"interval [{ev.performance_interval[0]:.4g}, {ev.performance_interval[1]:.4g}]"
        if ev.performance_interval is not None
        else "no interval"
    )
    return logs.text(
        ev.upstream_performance_lines,
        [
            mine,
            f"auditkit: performance {ev.performance_decision}: {where} of audit/performance "
            f"{ev.performance_quantity} within ±{ev.performance_threshold:g}",
        ],
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
