"""TEST06: are the endpoint's streamed outputs and token counts consistent?
(`consistency_output_test`; compliance/TEST06/run_verification.py in mlcommons/inference;
`compliance/nvidia/TEST06` until October 2025)

Upstream's rule (`logs.py`, line for line) runs on the accuracy log of the streamed phase,
which auditkit writes as LoadGen does (`data`: the output's int32 token ids, `token_data`: the
first streamed token's id, `token_count`: the count the server reported,
usage.completion_tokens): first token == start of data (`Skipped` in Offline), no second
trailing EOS (index 0 never examined), len(data) == token_count. Its three lines, and
`upstream_verdict` and `passed` in audit_consistency_output_test.json, are that rule alone.

Token ids (`auditkit.audits.kit.tokens`): the model's tokenizer.json when `test06.tokenizer`
names one, else the tokens the endpoint listed in `logprobs` (auditkit asks for them), else an
approximation by words and punctuation, said so; never stream chunks (a server may send
several tokens per chunk).

auditkit's own checks stand beside, on `auditkit:` lines and in `verdict`:

    first token:   the first streamed token == the first token of the same sample's
                   non-streamed answer (temperature 0), as tokens (a filler that is a
                   character prefix of the real first word fails)
    EOS:           output(s) ends with >= 2 stop markers (any of `stop_markers`), in either phase
    sample length: as upstream's (tokens delivered == usage.completion_tokens)
    finish reason: finish_reason(s) == "length"  ⇒  tokens delivered == max_tokens
    verdict:       PASS iff upstream's rule and these hold; INCONCLUSIVE when only the length
                   check fails on approximate counts
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from auditkit.audits.base import AuditSettings, AuditTest
from auditkit.audits.kit import tokens as tok
from auditkit.audits.kit.accuracy_log import ACCURACY_LOG, AccuracyEntry, parse, render
from auditkit.audits.kit.phases import (
    check_samples,
    one_at_a_time,
    phase_problem,
    require_openai,
    require_temperature_zero,
    warmup_phase,
)
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.audits.test06 import logs
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.loadgen_logs import LogFile, parse_detail, read_run_dir
from auditkit.mlperf_logs import LOADGEN_SCENARIO
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
    tokenizer: str | None = Field(
        None,
        description="the model's tokenizer.json (or a folder holding it) for token ids; None: "
        "the endpoint's logprobs, else an approximation",
    )
    eos_token_id: int | None = Field(
        None,
        description="EOS token id upstream's EOS check looks for (None: the tokenizer's id of "
        "a stop marker, else 2, upstream's default)",
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
    count_source: str  # "tokenizer", "logprobs" or "approximate" (joined by + when mixed)
    first_token_failures: int
    eos_failures: int
    length_failures: int
    finish_reason_failures: int
    issues: tuple[SampleIssue, ...] = ()
    #: upstream's three checks on the accuracy log ("True", "False" or "Skipped")
    upstream_first_token: str = "Skipped"
    upstream_eos: bool = True
    upstream_sample_length: bool = True
    eos_token_id: int = logs.UPSTREAM_EOS
    loadgen_scenario: str = ""
    #: the accuracy log as written (relative path → text); not in audit_result.json
    logs: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)


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
    """Upstream's eos_check on one output (compliance/TEST06/run_verification.py): >= 2
    trailing EOS fail, but its backward scan stops before the first token (`while i > 0`), so
    an output of exactly two EOS and nothing else passes: an output of nothing but markers needs
    three to fail. (Its `return len(data) == 2` special case was removed in October 2024.)"""
    n, rest = _strip_markers(text, markers)
    counted = n - 1 if n and not rest else n
    return counted >= 2


def _rows(outputs: tuple[LoggedOutput, ...]) -> list[LoggedOutput]:
    return [o for o in outputs if o.variant == "main"]


def check(
    streamed: list[LoggedOutput],
    whole: list[LoggedOutput],
    markers: list[str],
    max_tokens: int,
    source: tok.TokenSource,
) -> tuple[Test06Evidence, list[AccuracyEntry]]:
    """auditkit's four checks over every logged sample (pure), and the streamed phase's
    accuracy log entries upstream's rule reads."""
    issues: list[SampleIssue] = []
    counts = {"first": 0, "eos": 0, "length": 0, "finish": 0}
    sources: set[str] = set()

    def flag(row: int, kind: str, detail: str) -> None:
        counts[kind] += 1
        issues.append(SampleIssue(sample_index=row, check=kind, detail=detail))

    ids = [source.tokens(s) for s in streamed]
    whole_ids = {w.sample_index: source.tokens(w) for w in whole}
    by_row = {w.sample_index: w for w in whole}
    entries = []
    for seq, (s, t) in enumerate(zip(streamed, ids, strict=True)):
        row = s.sample_index
        sources.add(t.source)
        w, wt = by_row.get(row), whole_ids.get(row)
        if wt is not None and t.first is not None and wt.ids[:1] != (t.first,):
            first = (s.first_chunk or "")[:40]
            flag(row, "first", f"first streamed token (of {first!r}) is not the first token of "
                 f"the non-streamed answer {w.text[:60] if w else ''!r}")  # fmt: skip
        for o in (s, w):
            if o is not None and eos_fails(o.text, markers):
                flag(row, "eos", f"ends with {trailing_markers(o.text, markers)} stop markers")
                break
        n = len(t.ids)
        if s.output_tokens is None or n != s.output_tokens:
            flag(row, "length", f"{n} tokens delivered ({t.source}), usage says {s.output_tokens}")
        if s.finish_reason == "length" and n != max_tokens:
            flag(row, "finish", f"finish_reason length after {n} of max_tokens {max_tokens}")
        entries.append(
            AccuracyEntry(
                seq, row, tok.int32_bytes(t.ids), token_count=s.output_tokens or 0,
                token_data=None if t.first is None else tok.int32_bytes([t.first]),
            )
        )  # fmt: skip
    evidence = Test06Evidence(
        samples=len(streamed),
        first_token_pass=counts["first"] == 0,
        eos_pass=counts["eos"] == 0,
        sample_length_pass=counts["length"] == 0,
        finish_reason_pass=counts["finish"] == 0,
        count_source=tok.combined_source(sources),
        first_token_failures=counts["first"],
        eos_failures=counts["eos"],
        length_failures=counts["length"],
        finish_reason_failures=counts["finish"],
        issues=tuple(sorted(issues, key=lambda i: i.sample_index)[:SHOWN]),
    )
    return evidence, entries


def with_upstream(ev: Test06Evidence, up: logs.Test06Check, eos: int, scenario: str,
                  log_text: str) -> Test06Evidence:  # fmt: skip
    """The evidence with upstream's three checks and the log they read."""
    first = "Skipped" if up.first_token is None else str(up.first_token)
    return ev.model_copy(
        update={
            "upstream_first_token": first,
            "upstream_eos": up.eos,
            "upstream_sample_length": up.sample_length,
            "eos_token_id": eos,
            "loadgen_scenario": scenario,
            "logs": {str(Path("accuracy") / ACCURACY_LOG): log_text,
                     str(Path(STREAMED) / ACCURACY_LOG): log_text},
        }
    )  # fmt: skip


def upstream_lines(ev: Test06Evidence) -> list[str]:
    """The four lines upstream's script writes, from the evidence."""
    ok = ev.upstream_first_token != "False" and ev.upstream_eos and ev.upstream_sample_length
    return [
        f"First token check pass: {ev.upstream_first_token}",
        f"EOS check pass: {ev.upstream_eos}",
        f"Sample length check pass: {ev.upstream_sample_length}",
        f"TEST06 verification {'complete' if ok else 'failed'}",
    ]


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
    log_inputs: ClassVar[tuple[str, ...]] = ("test",)
    log_help: ClassVar[dict[str, str]] = {
        "test": "the compliance run's folder (mlperf_log_accuracy.json and mlperf_log_detail.txt)"
    }
    verify_fields: ClassVar[tuple[str, ...]] = ("eos_token_id",)

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
        t6 = self.settings(cfg)
        check_samples("test06.samples", t6.samples, len(dataset))
        if t6.tokenizer:
            tok.load_tokenizer(t6.tokenizer)  # a wrong path fails before any request

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
        # the verdict reads answers, not times: a late client loop changes no answer
        problem = phase_problem(phases, untimed=("accuracy", "performance"))
        if problem is not None:
            return invalid(self.result_model, base, problem)
        named = {p.spec.role: p for p in phases}
        markers = [m for m in t6.stop_markers.split(",") if m]
        encoder = tok.load_tokenizer(t6.tokenizer) if t6.tokenizer else None
        source = tok.TokenSource(markers, encoder)
        ev, entries = check(
            _rows(named["performance"].outputs),
            _rows(named["accuracy"].outputs),
            markers,
            cfg.endpoint.max_tokens,
            source,
        )
        eos = t6.eos_token_id if t6.eos_token_id is not None else source.eos_id()
        scenario = LOADGEN_SCENARIO[cfg.load.scenario]
        up = logs.verify(entries, scenario, eos)
        ev = with_upstream(ev, up, eos, scenario, render(entries))
        return self._result(ev, up.passed, base)

    def _result(
        self, ev: Test06Evidence, upstream_ok: bool, base: dict[str, Any]
    ) -> AuditResult[Test06Evidence]:
        mine = ev.first_token_pass and ev.eos_pass and ev.sample_length_pass
        passed = upstream_ok and mine and ev.finish_reason_pass
        failed = [
            f"upstream's rule ({', '.join(upstream_lines(ev)[:3])})" * (not upstream_ok),
            f"first token ({ev.first_token_failures} samples)" * (not ev.first_token_pass),
            f"EOS ({ev.eos_failures})" * (not ev.eos_pass),
            f"sample length ({ev.length_failures}, counted from {ev.count_source})"
            * (not ev.sample_length_pass),
            f"finish reason ({ev.finish_reason_failures})" * (not ev.finish_reason_pass),
        ]
        failed = [f for f in failed if f]
        verdict = "PASS" if passed else "FAIL"
        only_length = failed and all(f.startswith(("sample length", "upstream")) for f in failed)
        if only_length and tok.APPROXIMATE in ev.count_source and ev.upstream_eos:
            verdict = "INCONCLUSIVE"
            failed.append(f"tokens {tok.HOW[tok.APPROXIMATE]}")
        reason = (
            f"upstream's three checks and auditkit's four pass on {ev.samples} samples (tokens "
            f"from {ev.count_source})"
            if passed
            else f"checks failed: {', '.join(failed)}"
        )
        return self.result_model(
            verdict=verdict,
            upstream_verdict="PASS" if upstream_ok else "FAIL",
            reason=reason,
            rule="upstream: first token == data[0] (Skipped in Offline), < 2 trailing EOS ids, "
            "len(data) == token_count; auditkit: first token as a token vs the non-streamed "
            "answer, < 2 trailing stop markers, finish reason",
            evidence=ev,
            **base,
        )

    def files(self, result: AuditResult[Test06Evidence]) -> dict[str, str]:
        ev = result.evidence
        if ev is None:
            return {VERIFY_FILE: f"auditkit: {result.reason}\nTEST06 verification failed\n"}
        mine = [
            f"auditkit: verdict {result.verdict} (upstream rule: {result.upstream_verdict})",
            f"auditkit: first token as a token vs the non-streamed answer pass: "
            f"{ev.first_token_pass}",
            f"auditkit: stop markers in either phase pass: {ev.eos_pass}",
            f"auditkit: finish reason check pass: {ev.finish_reason_pass}",
            f"auditkit: tokens from {ev.count_source}"
            + "".join(f"; {tok.HOW[s]}" for s in ev.count_source.split("+") if s in tok.HOW),
            f"auditkit: EOS token id {ev.eos_token_id}, scenario {ev.loadgen_scenario}",
        ]
        text = "\n".join(upstream_lines(ev)) + "\n\n" + "\n".join(mine) + "\n"
        issues = "".join(json.dumps(i.model_dump(), ensure_ascii=False) + "\n" for i in ev.issues)
        return {VERIFY_FILE: text, SAMPLES_FILE: issues, **ev.logs}

    def read_log_input(self, name: str, path: str) -> LogFile:  # noqa: ARG002 (hook signature)
        return read_run_dir(path)

    def verify_logs(
        self, inputs: dict[str, LogFile], settings: Test06Config
    ) -> tuple[AuditResult[Test06Evidence], dict[str, str]]:
        """`auditkit verify test06 --test DIR`: upstream's rule on the run's accuracy log (the
        scenario from the detail log beside it)."""
        run = inputs["test"]
        if run.accuracy is None or run.detail is None:
            raise InputError(
                f"{run.source}: test06 needs the run's {ACCURACY_LOG} and mlperf_log_detail.txt "
                "(the scenario decides whether the first-token check runs)"
            )
        try:
            entries = parse(run.accuracy)
        except ValueError as exc:
            raise InputError(f"{run.accuracy_path}: {exc}") from None
        scenario = str(parse_detail(run.detail, run.detail_path or run.source).get(
            "effective_scenario"))  # fmt: skip
        if scenario not in LOADGEN_SCENARIO.values():
            raise InputError(f"{run.detail_path}: effective_scenario {scenario!r} is not LoadGen's")
        eos = settings.eos_token_id if settings.eos_token_id is not None else logs.UPSTREAM_EOS
        up = logs.verify(entries, scenario, eos)
        ev = Test06Evidence(
            samples=len(entries), first_token_pass=True, eos_pass=True, sample_length_pass=True,
            finish_reason_pass=True, count_source="LoadGen's token ids", first_token_failures=0,
            eos_failures=0, length_failures=0, finish_reason_failures=0,
        )  # fmt: skip
        ev = with_upstream(ev, up, eos, scenario, run.accuracy)
        auditkit_scenario = {v: k for k, v in LOADGEN_SCENARIO.items()}[scenario]
        base = {"test": self.id, "scenario": auditkit_scenario}
        result = self._result(ev, up.passed, base)
        files = {k: v for k, v in self.files(result).items() if k != SAMPLES_FILE}
        files.pop(str(Path(STREAMED) / ACCURACY_LOG), None)
        return result, files

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
            "upstream: " + ", ".join(upstream_lines(ev)[:3]),
            f"auditkit: first token {ev.first_token_pass}, EOS {ev.eos_pass}, sample length "
            f"{ev.sample_length_pass}, finish reason {ev.finish_reason_pass} "
            f"({ev.samples} samples, tokens from {ev.count_source})",
        ]
        lines += [f"row {i.sample_index} {i.check}: {i.detail}" for i in ev.issues[:3]]
        return lines
