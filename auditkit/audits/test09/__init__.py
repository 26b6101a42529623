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

Output tokens are counted as upstream counts them, on the accuracy log auditkit writes for
the performance phase as LoadGen does (`data`: int32 token ids, so `len(data) // 4`): token ids
from the model's tokenizer.json (`test09.tokenizer`), else the endpoint's logprobs (auditkit
asks for them), else an approximation by words and punctuation, said so; never stream chunks.
`upstream_verdict`, `passed` and the upstream lines of `verify_output_len.txt` are that rule
(`logs.py`); `auditkit:` lines add the bounds' source, usage.completion_tokens' mean and the
samples shorter under load than one at a time.
"""

from __future__ import annotations

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
    warmup_phase,
)
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.audits.test09 import logs
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.loadgen_logs import LogFile, read_run_dir
from auditkit.plan import LoadPattern, Role, RunSpec
from auditkit.results import AuditResult, Evidence, LoggedOutput, PhaseResult

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
    tokenizer: str | None = Field(
        None,
        description="the model's tokenizer.json (or a folder holding it) for token counts; "
        "None: the endpoint's logprobs, else an approximation",
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
    #: where the token counts came from (tokenizer, logprobs, approximate)
    count_source: str = "usage"
    #: the mean of usage.completion_tokens under load (auditkit's cross-check)
    usage_mean_tokens: float | None = None
    #: the accuracy logs as written (relative path → text); not in audit_result.json
    logs: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)


def _stats(values: list[int]) -> tuple[float, int, int, float]:
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    return mean, min(values), max(values), std


def _main(outputs: tuple[LoggedOutput, ...]) -> list[LoggedOutput]:
    return [o for o in outputs if o.variant == "main"]


def entries_of(
    outputs: list[LoggedOutput], source: tok.TokenSource
) -> tuple[list[AccuracyEntry], set[str]]:
    """A phase's accuracy log entries as LoadGen writes them for an LLM (int32 token ids), and
    the token sources used."""
    entries, sources = [], set()
    for seq, o in enumerate(outputs):
        t = source.tokens(o)
        sources.add(t.source)
        entries.append(AccuracyEntry(seq, o.sample_index, tok.int32_bytes(t.ids),
                                     token_count=o.output_tokens or 0))  # fmt: skip
    return entries, sources


def _lengths(entries: list[AccuracyEntry]) -> dict[int, int]:
    """Tokens per dataset row (the last answer of a row that came twice)."""
    return {e.qsl_idx: len(e.data) // 4 for e in entries}


class Test09(AuditTest[Test09Config, Test09Evidence]):
    """TEST09 as an audit plug-in."""

    id: ClassVar[str] = "TEST09"
    key: ClassVar[str] = "test09"
    title: ClassVar[str] = "Output length under load (MLPerf TEST09)"
    summary: ClassVar[str] = "does the endpoint shorten its answers under load?"
    settings_model = Test09Config
    evidence_model = Test09Evidence
    panel_label: ClassVar[str | None] = "output length"
    log_inputs: ClassVar[tuple[str, ...]] = ("test",)
    log_help: ClassVar[dict[str, str]] = {
        "test": "the compliance run's folder (or its mlperf_log_accuracy.json)"
    }
    verify_fields: ClassVar[tuple[str, ...]] = ("min_output_tokens", "max_output_tokens")

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
        if t9.tokenizer:
            tok.load_tokenizer(t9.tokenizer)  # a wrong path fails before any request

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """Warm-up; the samples one at a time (skipped with explicit bounds); the same samples
        at the scenario's load."""
        t9 = self.settings(cfg)
        order = SampleOrder.without_replacement(t9.seed)
        rows = frozenset(range(len(dataset)))
        specs = warmup_phase(cfg, t9.warmup, t9.seed)
        if t9.min_output_tokens is None:
            specs.append(
                RunSpec(
                    ACCURACY,
                    order,
                    t9.samples,
                    one_at_a_time(t9.seed),
                    role=ACCURACY,
                    log_outputs=rows,
                )
            )
        load = LoadPattern.from_config(cfg.load, t9.seed)
        duration = cfg.load.min_duration_s
        specs.append(RunSpec(PERFORMANCE, order, t9.samples, load, duration, role=PERFORMANCE,
                             log_outputs=rows))  # fmt: skip
        return specs

    def resolve(self, cfg: AuditConfig, dataset: Dataset) -> AuditConfig:  # noqa: ARG002 (hook signature)
        """Ask for logprobs (OpenAI-style APIs): the tokens are counted from them."""
        if cfg.endpoint.logprobs or cfg.endpoint.api == "json" or self.settings(cfg).tokenizer:
            return cfg
        endpoint = cfg.endpoint.model_copy(update={"logprobs": True})
        return cfg.model_copy(update={"endpoint": endpoint})

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[Test09Evidence]:
        t9 = self.settings(cfg)
        base = base_fields(self.id, cfg, phases)
        # the verdict reads output lengths, not times: a late client loop changes no answer
        problem = phase_problem(phases, untimed=(ACCURACY, PERFORMANCE))
        if problem is not None:
            return invalid(self.result_model, base, problem)
        perf = next(p for p in phases if p.spec.role == PERFORMANCE)
        encoder = tok.load_tokenizer(t9.tokenizer) if t9.tokenizer else None
        source = tok.TokenSource((), encoder)
        entries, sources = entries_of(_main(perf.outputs), source)
        if not entries:
            return invalid(self.result_model, base, "no answer was logged in the performance phase")
        logged = {str(Path(PERFORMANCE) / ACCURACY_LOG): render(entries)}
        logged[str(Path(PERFORMANCE) / "run_1" / ACCURACY_LOG)] = logged[
            str(Path(PERFORMANCE) / ACCURACY_LOG)
        ]
        accuracy = next((p for p in phases if p.spec.role == ACCURACY), None)
        acc_mean = None
        shortened = 0
        under = _lengths(entries)
        if t9.min_output_tokens is not None and t9.max_output_tokens is not None:
            lo, hi, where = t9.min_output_tokens, t9.max_output_tokens, "given (audit.config)"
        else:
            assert accuracy is not None
            acc_entries, more = entries_of(_main(accuracy.outputs), source)
            sources |= more
            logged[str(Path(ACCURACY) / ACCURACY_LOG)] = render(acc_entries)
            acc = _lengths(acc_entries)
            acc_mean = sum(acc.values()) / len(acc)
            lo, hi = acc_mean * (1 - t9.tolerance), acc_mean * (1 + t9.tolerance)
            where = f"accuracy-phase mean × (1 ± {t9.tolerance:g})"
            shortened = sum(1 for r, n in under.items() if r in acc and n < acc[r])
        up = logs.verify(entries, lo, hi)
        usage = [o.output_tokens for o in _main(perf.outputs) if o.output_tokens is not None]
        return self._result(
            up, where, acc_mean, shortened, tok.combined_source(sources),
            sum(usage) / len(usage) if usage else None, logged, t9.tolerance, base,
        )  # fmt: skip

    def _result(
        self,
        up: logs.LengthCheck,
        where: str,
        acc_mean: float | None,
        shortened: int,
        source: str,
        usage_mean: float | None,
        logged: dict[str, str],
        tolerance: float,
        base: dict[str, Any],
    ) -> AuditResult[Test09Evidence]:
        verdict = "PASS" if up.passed else "FAIL"
        mean, lo, hi = up.mean, up.min_bound, up.max_bound
        side = (
            "" if up.passed else (" (answers shortened under load)" if mean < lo else " (longer)")
        )
        reason = (
            f"mean output tokens under load {mean:.2f} is "
            f"{'within' if up.passed else 'outside'} [{lo:.2f}, {hi:.2f}]{side}"
        )
        if tok.APPROXIMATE in source:
            reason += f"; tokens {tok.HOW[tok.APPROXIMATE]}"
        evidence = Test09Evidence(
            samples=len(up.lengths),
            mean_output_tokens=mean,
            min_tokens=min(up.lengths),
            max_tokens=max(up.lengths),
            std_tokens=up.std,
            accuracy_mean_tokens=acc_mean,
            min_bound=lo,
            max_bound=hi,
            bounds_source=where,
            shortened_samples=shortened,
            count_source=source,
            usage_mean_tokens=usage_mean,
            logs=logged,
        )
        return self.result_model(
            verdict=verdict,
            upstream_verdict=verdict,
            reason=reason,
            score_name="mean output tokens",
            reference_score=acc_mean,
            audit_score=mean,
            ratio=mean / acc_mean if acc_mean else None,
            threshold=tolerance,
            threshold_source=where,
            rule="min <= mean output tokens (len(data) // 4 per accuracy-log entry) <= max "
            "(inclusive)",
            evidence=evidence,
            **base,
        )

    def files(self, result: AuditResult[Test09Evidence]) -> dict[str, str]:
        ev = result.evidence
        if ev is None:
            return {VERIFY_FILE: f"auditkit: {result.reason}\n\nTEST FAIL\n"}
        lines = logs.report(ev.samples, ev.mean_output_tokens, ev.min_tokens, ev.max_tokens,
                            ev.std_tokens, ev.min_bound, ev.max_bound)  # fmt: skip
        usage = "n/a" if ev.usage_mean_tokens is None else f"{ev.usage_mean_tokens:.2f}"
        mine = [
            "",
            f"auditkit: bounds {ev.bounds_source}",
            f"auditkit: tokens from {ev.count_source}"
            + "".join(f"; {tok.HOW[s]}" for s in ev.count_source.split("+") if s in tok.HOW),
            f"auditkit: mean usage.completion_tokens under load {usage}",
            f"auditkit: {ev.shortened_samples} samples shorter under load than one at a time",
        ]
        return {VERIFY_FILE: "\n".join(lines + mine) + "\n", **ev.logs}

    def read_log_input(self, name: str, path: str) -> LogFile:  # noqa: ARG002 (hook signature)
        return read_run_dir(path)

    def verify_logs(
        self, inputs: dict[str, LogFile], settings: Test09Config
    ) -> tuple[AuditResult[Test09Evidence], dict[str, str]]:
        """`auditkit verify test09 --test DIR --min-output-tokens A --max-output-tokens B`:
        upstream's rule on the run's accuracy log."""
        run = inputs["test"]
        lo, hi = settings.min_output_tokens, settings.max_output_tokens
        if lo is None or hi is None:
            raise InputError(
                "test09 verify needs --min-output-tokens and --max-output-tokens (audit.config's "
                "test09_min_output_tokens / test09_max_output_tokens)"
            )
        if run.accuracy is None:
            raise InputError(f"{run.source}: no {ACCURACY_LOG} there")
        try:
            entries = parse(run.accuracy)
            up = logs.verify(entries, lo, hi)
        except ValueError as exc:
            raise InputError(f"{run.accuracy_path}: {exc}") from None
        base = {"test": self.id, "scenario": "unknown"}
        logged = {str(Path("performance") / "run_1" / ACCURACY_LOG): run.accuracy}
        result = self._result(up, "given (audit.config)", None, 0, "LoadGen's token ids", None,
                              logged, settings.tolerance, base)  # fmt: skip
        return result, self.files(result)

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
