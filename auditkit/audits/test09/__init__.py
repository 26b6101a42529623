"""TEST09: does the endpoint shorten its answers under load? (compliance/TEST09 in
mlcommons/inference: run_verification.py, "Verifies output token length in performance mode")

Upstream logs every performance-mode output and checks the mean output length against bounds
from audit.config (`test09_min_output_tokens`, `test09_max_output_tokens`; gpt-oss-120b:
1150.38 to 1406.02, ±10 % of the reference mean 1278.20):

    mean_perf = Σ output_tokens / n            over the performance phase's completed queries
    PASS iff min_output_tokens <= mean_perf <= max_output_tokens             (inclusive)

auditkit's bounds, unless `min_output_tokens`/`max_output_tokens` are given (then they are
upstream's, as audit.config has them): the same samples answered one at a time first (the
accuracy phase), and

    min = mean_accuracy × (1 − tolerance),  max = mean_accuracy × (1 + tolerance)   (tolerance 0.10)

Output tokens are the endpoint's `usage.completion_tokens` (the number every tokens/s claim
rests on; TEST06 checks that it is honest). Writes `verify_output_len.txt` in upstream's
layout (`TEST PASS` / `TEST FAIL`).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from auditkit.audits.base import AuditSettings, AuditTest
from auditkit.audits.kit.phases import (
    check_samples,
    one_at_a_time,
    phase_problem,
    warmup_phase,
)
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.plan import LoadPattern, Role, RunSpec
from auditkit.results import AuditResult, Evidence, PhaseResult

ACCURACY: Role = "accuracy"
PERFORMANCE: Role = "performance"
VERIFY_FILE = "verify_output_len.txt"


class Test09Config(AuditSettings):
    """TEST09 (output length under load) knobs."""

    samples: int = Field(64, ge=1, le=10_000_000, description="distinct samples in each phase")
    min_output_tokens: float | None = Field(
        None, ge=0, description="upstream's test09_min_output_tokens; None: from the accuracy phase"
    )
    max_output_tokens: float | None = Field(
        None, ge=0, description="upstream's test09_max_output_tokens; None: from the accuracy phase"
    )
    tolerance: float = Field(
        0.10, gt=0, lt=1, description="bounds = accuracy-phase mean × (1 ± tolerance)"
    )
    warmup: int = Field(16, ge=0, description="salted warm-up queries first (0: none)")
    seed: int = Field(0, ge=0, description="seed of the sample order")


class Test09Evidence(Evidence):
    """The numbers behind the verdict."""

    samples: int
    mean_output_tokens: float
    min_tokens: int
    max_tokens: int
    std_tokens: float
    accuracy_mean_tokens: float | None
    min_bound: float
    max_bound: float
    bounds_source: str
    shortened_samples: int  # answered with fewer tokens under load than one at a time


def _stats(values: list[int]) -> tuple[float, int, int, float]:
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    return mean, min(values), max(values), std


def _tokens(phase: PhaseResult) -> dict[int, int]:
    """Output tokens per dataset row (the last answer of a row that came twice)."""
    ok = phase.records[(phase.records["status"] == "ok") & (phase.records["variant"] == "main")]
    return {int(r): int(t) for r, t in zip(ok["sample_index"], ok["output_tokens"], strict=True)}


class Test09(AuditTest[Test09Config, Test09Evidence]):
    """TEST09 as an audit plug-in."""

    id: ClassVar[str] = "TEST09"
    key: ClassVar[str] = "test09"
    title: ClassVar[str] = "Output length under load (MLPerf TEST09)"
    summary: ClassVar[str] = "does the endpoint shorten its answers under load?"
    settings_model = Test09Config
    evidence_model = Test09Evidence
    panel_label: ClassVar[str | None] = "output length"

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        t9 = self.settings(cfg)
        check_samples("test09.samples", t9.samples, len(dataset))
        explicit = (t9.min_output_tokens, t9.max_output_tokens)
        if (explicit[0] is None) != (explicit[1] is None):
            raise InputError(
                "test09: give both min_output_tokens and max_output_tokens, or neither"
            )
        if explicit[0] is not None and explicit[1] is not None and explicit[0] > explicit[1]:
            raise InputError("test09.min_output_tokens exceeds test09.max_output_tokens")
        if cfg.load.scenario == "multi-stream" and t9.samples % cfg.load.samples_per_query:
            raise InputError("test09.samples must be a multiple of load.samples_per_query")

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:  # noqa: ARG002 (hook signature)
        """Warm-up; the samples one at a time (skipped with explicit bounds); the same samples
        at the scenario's load."""
        t9 = self.settings(cfg)
        order = SampleOrder.without_replacement(t9.seed)
        specs = warmup_phase(cfg, t9.warmup, t9.seed)
        if t9.min_output_tokens is None:
            specs.append(
                RunSpec(ACCURACY, order, t9.samples, one_at_a_time(t9.seed), role=ACCURACY)
            )
        load = LoadPattern.from_config(cfg.load, t9.seed)
        duration = cfg.load.min_duration_s
        specs.append(RunSpec(PERFORMANCE, order, t9.samples, load, duration, role=PERFORMANCE))
        return specs

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[Test09Evidence]:
        t9 = self.settings(cfg)
        base = base_fields(self.id, cfg, phases)
        problem = phase_problem(phases, untimed=(ACCURACY,))
        perf = next(p for p in phases if p.spec.role == "performance")
        counts = perf.records.loc[perf.records["status"] == "ok", "output_tokens"]
        if problem is None and counts.isna().any():
            problem = "the endpoint reports no usage.completion_tokens: output length unknown"
        if problem is not None:
            return invalid(self.result_model, base, problem)
        values = [int(v) for v in counts]
        mean, low, high, std = _stats(values)
        accuracy = next((p for p in phases if p.spec.role == "accuracy"), None)
        acc_mean = None
        shortened = 0
        if t9.min_output_tokens is not None and t9.max_output_tokens is not None:
            lo, hi, source = t9.min_output_tokens, t9.max_output_tokens, "given (audit.config)"
        else:
            assert accuracy is not None
            acc = _tokens(accuracy)
            acc_mean = sum(acc.values()) / len(acc)
            lo, hi = acc_mean * (1 - t9.tolerance), acc_mean * (1 + t9.tolerance)
            source = f"accuracy-phase mean × (1 ± {t9.tolerance:g})"
            under = _tokens(perf)
            shortened = sum(1 for r, n in under.items() if r in acc and n < acc[r])
        passed = lo <= mean <= hi
        verdict = "PASS" if passed else "FAIL"
        side = "" if passed else (" (answers shortened under load)" if mean < lo else " (longer)")
        reason = (
            f"mean output tokens under load {mean:.2f} is "
            f"{'within' if passed else 'outside'} [{lo:.2f}, {hi:.2f}]{side}"
        )
        evidence = Test09Evidence(
            samples=len(values),
            mean_output_tokens=mean,
            min_tokens=low,
            max_tokens=high,
            std_tokens=std,
            accuracy_mean_tokens=acc_mean,
            min_bound=lo,
            max_bound=hi,
            bounds_source=source,
            shortened_samples=shortened,
        )
        return self.result_model(
            verdict=verdict,
            upstream_verdict=verdict,
            reason=reason,
            score_name="mean output tokens",
            reference_score=acc_mean,
            audit_score=mean,
            ratio=mean / acc_mean if acc_mean else None,
            threshold=t9.tolerance,
            threshold_source=source,
            rule="min <= mean output tokens <= max (inclusive)",
            evidence=evidence,
            **base,
        )

    def files(self, result: AuditResult[Test09Evidence]) -> dict[str, str]:
        ev = result.evidence
        if ev is None:
            return {VERIFY_FILE: f"{result.reason}\n\nTEST FAIL\n"}
        rule = "=" * 80
        min_ok, max_ok = (
            ev.mean_output_tokens >= ev.min_bound,
            ev.mean_output_tokens <= ev.max_bound,
        )
        lines = [
            rule,
            "TEST09: Verify Output Token Length in Performance Mode",
            rule,
            "",
            "Output Token Length Statistics",
            "-" * 40,
            f"Total samples: {ev.samples}",
            f"Mean output tokens: {ev.mean_output_tokens:.2f}",
            f"Min output tokens: {ev.min_tokens}",
            f"Max output tokens: {ev.max_tokens}",
            f"Std deviation: {ev.std_tokens:.2f}",
            "",
            rule,
            "Verification Results",
            rule,
            f"Mean output tokens: {ev.mean_output_tokens:.2f}",
            f"Min threshold: {ev.min_bound}",
            f"Max threshold: {ev.max_bound}",
            f"Min check pass: {min_ok}",
            f"Max check pass: {max_ok}",
            "",
            "TEST PASS" if result.verdict == "PASS" else "TEST FAIL",
            "",
            f"auditkit: bounds {ev.bounds_source}",
            f"auditkit: {ev.shortened_samples} samples shorter under load than one at a time",
        ]
        return {VERIFY_FILE: "\n".join(lines) + "\n"}

    def advice(self, result: AuditResult[Test09Evidence]) -> str:
        ev = result.evidence
        if result.verdict == "INVALID" and "usage.completion_tokens" in result.reason:
            return "serve usage.completion_tokens (OpenAI-compatible usage), then rerun"
        if result.verdict != "FAIL" or ev is None:
            return super().advice(result)
        side = "shorter" if ev.mean_output_tokens < ev.min_bound else "longer"
        return (
            f"answers are {side} under load than the bounds allow ({VERIFY_FILE} has the "
            "numbers): serve the same model, max_tokens and stop settings at every load, then "
            "rerun"
        )

    def summary_lines(self, result: AuditResult[Test09Evidence]) -> list[str]:
        ev = result.evidence
        if ev is None:
            return []
        return [
            f"mean output tokens {ev.mean_output_tokens:.2f} under load, bounds "
            f"[{ev.min_bound:.2f}, {ev.max_bound:.2f}] ({ev.bounds_source})",
            f"{ev.shortened_samples} of {ev.samples} samples shorter than one at a time",
        ]
