"""TEST06: are the endpoint's streamed outputs and token counts consistent?
(`consistency_output_test`; compliance/TEST06 in mlcommons/inference: run_verification.py)

Upstream logs 100 samples and runs three checks on the token ids, writing three lines the
submission checker reads (`First token check pass: True|Skipped`, `EOS check pass: True`,
`Sample length check pass: True`, then `TEST06 verification complete`):
- EOS check: FAIL when an output ends with >= 2 EOS tokens;
- first-token check: the first token reported (FirstTokenComplete) is a prefix of the output
  (skipped in Offline, where LoadGen gets no first token);
- sample-length check: the output's decoded length equals the reported token count.

Over HTTP, per logged sample (all `samples` of them; text, not token ids):

    first token:   streamed_first_chunk(s) is a prefix of whole_output(s)
                   whole_output = the same sample's non-streamed answer (temperature 0);
                   a filler first chunk sent to look fast is not
    EOS:           FAIL iff output(s) ends with >= 2 stop markers (any of `stop_markers`,
                   whitespace between them ignored), in either phase; as upstream's
                   eos_check, an output of exactly two markers and nothing else passes
    sample length: delivered(s) == usage.completion_tokens(s), where delivered(s) is the
                   number of tokens listed in `logprobs` (auditkit asks for them) or, when the
                   server sends none, the number of streamed content chunks (one token each)
    finish reason: finish_reason(s) == "length"  ⇒  delivered(s) == max_tokens   (auditkit's)
    PASS iff every check holds for every sample

auditkit streams (and asks for logprobs) whatever the endpoint config says, so the first-token
check runs in every scenario; the three upstream lines go to `verify_accuracy.txt`.
"""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import Field

from auditkit.audits.base import AuditSettings, AuditTest
from auditkit.audits.kit.phases import (
    check_samples,
    one_at_a_time,
    phase_problem,
    require_openai,
    require_temperature_zero,
    warmup_phase,
)
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import AuditResult, Evidence, LoggedOutput, PhaseResult

STREAMED = "streamed"
WHOLE = "whole"
VERIFY_FILE = "verify_accuracy.txt"
SAMPLES_FILE = "samples.jsonl"
STOP_MARKERS = ("</s>", "<|endoftext|>", "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>")
SHOWN = 10


class Test06Config(AuditSettings):
    """TEST06 (output consistency) knobs."""

    samples: int = Field(100, ge=1, le=100_000, description="samples, all logged (upstream 100)")
    stop_markers: str = Field(
        ",".join(STOP_MARKERS),
        description="end-of-sequence texts (comma-separated) the EOS check looks for at the "
        "end of an output",
    )
    warmup: int = Field(16, ge=0, description="salted warm-up queries first (0: none)")
    seed: int = Field(0, ge=0, description="seed of the sample order")


class SampleIssue(Evidence):
    sample_index: int
    check: str
    detail: str


class Test06Evidence(Evidence):
    samples: int
    first_token_pass: bool
    eos_pass: bool
    sample_length_pass: bool
    finish_reason_pass: bool
    count_source: str  # "logprobs" or "chunks"
    first_token_failures: int
    eos_failures: int
    length_failures: int
    finish_reason_failures: int
    issues: tuple[SampleIssue, ...] = ()


def _strip_markers(text: str, markers: list[str]) -> tuple[int, str]:
    n = 0
    rest = text.rstrip()
    while True:
        hit = next((m for m in markers if m and rest.endswith(m)), None)
        if hit is None:
            return n, rest
        n += 1
        rest = rest[: -len(hit)].rstrip()


def trailing_markers(text: str, markers: list[str]) -> int:
    """How many stop markers `text` ends with (whitespace between them ignored)."""
    return _strip_markers(text, markers)[0]


def eos_fails(text: str, markers: list[str]) -> bool:
    """Upstream's eos_check on one output: >= 2 trailing EOS fail, but its backward scan stops
    before the first token (`while i > 0`), and an output of exactly two EOS passes
    (`return len(data) == 2`): an output of nothing but markers needs three to fail."""
    n, rest = _strip_markers(text, markers)
    counted = n - 1 if n and not rest else n
    return counted >= 2


def delivered(o: LoggedOutput) -> tuple[int, str]:
    """Tokens actually delivered, and how they were counted."""
    if o.logprob_tokens is not None:
        return o.logprob_tokens, "logprobs"
    return o.chunks, "chunks"


def _rows(outputs: tuple[LoggedOutput, ...]) -> dict[int, LoggedOutput]:
    return {o.sample_index: o for o in outputs if o.variant == "main"}


def check(
    streamed: dict[int, LoggedOutput],
    whole: dict[int, LoggedOutput],
    markers: list[str],
    max_tokens: int,
) -> Test06Evidence:
    """The four checks over every logged sample (pure)."""
    issues: list[SampleIssue] = []
    counts = {"first": 0, "eos": 0, "length": 0, "finish": 0}
    sources: set[str] = set()

    def flag(row: int, kind: str, detail: str) -> None:
        counts[kind] += 1
        issues.append(SampleIssue(sample_index=row, check=kind, detail=detail))

    for row, s in sorted(streamed.items()):
        w = whole.get(row)
        first = s.first_chunk or ""
        if w is not None and not w.text.startswith(first):
            flag(row, "first", f"first chunk {first!r} is not a prefix of {w.text[:60]!r}")
        for o in (s, w):
            if o is not None and eos_fails(o.text, markers):
                flag(row, "eos", f"ends with {trailing_markers(o.text, markers)} stop markers")
                break
        n, source = delivered(s)
        sources.add(source)
        if s.output_tokens is None or n != s.output_tokens:
            flag(row, "length", f"{n} tokens delivered ({source}), usage says {s.output_tokens}")
        if s.finish_reason == "length" and n != max_tokens:
            flag(row, "finish", f"finish_reason length after {n} of max_tokens {max_tokens}")
    return Test06Evidence(
        samples=len(streamed),
        first_token_pass=counts["first"] == 0,
        eos_pass=counts["eos"] == 0,
        sample_length_pass=counts["length"] == 0,
        finish_reason_pass=counts["finish"] == 0,
        count_source="+".join(sorted(sources)) or "none",
        first_token_failures=counts["first"],
        eos_failures=counts["eos"],
        length_failures=counts["length"],
        finish_reason_failures=counts["finish"],
        issues=tuple(issues[:SHOWN]),
    )


class Test06(AuditTest[Test06Config, Test06Evidence]):
    """TEST06 as an audit plug-in."""

    id: ClassVar[str] = "TEST06"
    key: ClassVar[str] = "test06"
    title: ClassVar[str] = "Output consistency (MLPerf TEST06)"
    summary: ClassVar[str] = "first token, stop markers and token counts consistent?"
    settings_model = Test06Config
    evidence_model = Test06Evidence
    panel_label: ClassVar[str | None] = "consistency"
    submission_name: ClassVar[str | None] = "consistency_output_test"

    def applies(self, cfg: AuditConfig) -> str | None:
        if cfg.endpoint.api == "json":
            return "reads streamed chunks and usage: needs an OpenAI-compatible api"
        if cfg.endpoint.temperature != 0:
            return "compares answers: needs endpoint.temperature 0"
        return None

    def resolve(self, cfg: AuditConfig, dataset: Dataset) -> AuditConfig:  # noqa: ARG002 (hook signature)
        """Ask for logprobs: the delivered tokens are counted from them."""
        if cfg.endpoint.logprobs:
            return cfg
        endpoint = cfg.endpoint.model_copy(update={"logprobs": True})
        return cfg.model_copy(update={"endpoint": endpoint})

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        require_openai(cfg, self.id, "it reads streamed chunks, usage and logprobs")
        require_temperature_zero(cfg, self.id)
        check_samples("test06.samples", self.settings(cfg).samples, len(dataset))

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """Warm-up; the samples streamed at the scenario's load; the same samples whole (not
        streamed), one at a time."""
        t6 = self.settings(cfg)
        rows = frozenset(range(len(dataset)))
        order = SampleOrder.without_replacement(t6.seed)
        load = LoadPattern.from_config(cfg.load, t6.seed)
        return [
            *warmup_phase(cfg, t6.warmup, t6.seed),
            RunSpec(
                STREAMED, order, t6.samples, load, stream=True, log_outputs=rows, role="performance"
            ),
            RunSpec(
                WHOLE,
                order,
                t6.samples,
                one_at_a_time(t6.seed),
                stream=False,
                log_outputs=rows,
                role="accuracy",
            ),
        ]

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[Test06Evidence]:
        t6 = self.settings(cfg)
        base = base_fields(self.id, cfg, phases)
        problem = phase_problem(phases, untimed=("accuracy",))
        if problem is not None:
            return invalid(self.result_model, base, problem)
        named = {p.spec.role: p for p in phases}
        ev = check(
            _rows(named["performance"].outputs),
            _rows(named["accuracy"].outputs),
            [m for m in t6.stop_markers.split(",") if m],
            cfg.endpoint.max_tokens,
        )
        upstream_ok = ev.first_token_pass and ev.eos_pass and ev.sample_length_pass
        passed = upstream_ok and ev.finish_reason_pass
        failed = [
            f"first token ({ev.first_token_failures} samples)" * (not ev.first_token_pass),
            f"EOS ({ev.eos_failures})" * (not ev.eos_pass),
            f"sample length ({ev.length_failures}, counted from {ev.count_source})"
            * (not ev.sample_length_pass),
            f"finish reason ({ev.finish_reason_failures})" * (not ev.finish_reason_pass),
        ]
        failed = [f for f in failed if f]
        reason = (
            f"all four checks pass on {ev.samples} samples (tokens counted from {ev.count_source})"
            if passed
            else f"checks failed: {', '.join(failed)}"
        )
        return self.result_model(
            verdict="PASS" if passed else "FAIL",
            upstream_verdict="PASS" if upstream_ok else "FAIL",
            reason=reason,
            rule="first token prefix, < 2 trailing stop markers, delivered == completion_tokens",
            evidence=ev,
            **base,
        )

    def files(self, result: AuditResult[Test06Evidence]) -> dict[str, str]:
        ev = result.evidence
        if ev is None:
            return {VERIFY_FILE: f"{result.reason}\nTEST06 verification failed\n"}
        ok = ev.first_token_pass and ev.eos_pass and ev.sample_length_pass
        text = (
            f"First token check pass: {ev.first_token_pass}\n"
            f"EOS check pass: {ev.eos_pass}\n"
            f"Sample length check pass: {ev.sample_length_pass}\n"
            f"TEST06 verification {'complete' if ok else 'failed'}\n\n"
            f"auditkit: finish reason check pass: {ev.finish_reason_pass}\n"
            f"auditkit: delivered tokens counted from {ev.count_source}\n"
        )
        issues = "".join(json.dumps(i.model_dump(), ensure_ascii=False) + "\n" for i in ev.issues)
        return {VERIFY_FILE: text, SAMPLES_FILE: issues}

    def advice(self, result: AuditResult[Test06Evidence]) -> str:
        ev = result.evidence
        if result.verdict != "FAIL" or ev is None:
            return super().advice(result)
        broken = [
            "the first streamed chunk is not the start of the answer" * (not ev.first_token_pass),
            "outputs end with repeated stop markers" * (not ev.eos_pass),
            "usage.completion_tokens differs from the tokens delivered"
            * (not ev.sample_length_pass),
            "finish_reason length before max_tokens" * (not ev.finish_reason_pass),
        ]
        return (
            f"fix the server's streaming or token accounting ({'; '.join(filter(None, broken))}; "
            f"{SAMPLES_FILE} lists the samples), then rerun"
        )

    def summary_lines(self, result: AuditResult[Test06Evidence]) -> list[str]:
        ev = result.evidence
        if ev is None:
            return []
        lines = [
            f"first token {ev.first_token_pass}, EOS {ev.eos_pass}, sample length "
            f"{ev.sample_length_pass}, finish reason {ev.finish_reason_pass} "
            f"({ev.samples} samples, counted from {ev.count_source})"
        ]
        lines += [f"row {i.sample_index} {i.check}: {i.detail}" for i in ev.issues[:3]]
        return lines
