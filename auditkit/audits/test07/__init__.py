"""TEST07: is the endpoint accurate under load, over the whole compliance set?
(`accuracy_in_performance_full_test`; compliance/TEST07 in mlcommons/inference b66003e1:
README.md, run_verification.py, gpt-oss-120b/audit.config)

Upstream runs performance mode with every sample of the compliance set issued exactly once and
logged (`performance_issue_unique = 1`, `accuracy_log_sampling_target = min_query_count = 990`,
`min_duration = 0`), runs the benchmark's accuracy script on that accuracy log, reads the score
from its output (`'exact_match':\\s*([\\d.]+)`) and

    PASS iff score >= test07_accuracy_threshold        (gpt-oss-120b: 60.698, inclusive)

auditkit's phases: a salted warm-up, then *performance*: every row of the dataset (or the
first `samples` of its seeded order) issued once at the scenario's load, every answer logged.
The metric is pluggable (`metric`, `metrics.py`; `exact_match` is gpt-oss-120b's), the score is
compared as upstream compares it: printed with three decimals and read back. The threshold is
`threshold`, else upstream's for `mlperf_model`. `verdict` is upstream's rule (no certainty of
auditkit's own beside it: the set is the whole compliance set, so the score has no sampling
error); auditkit adds the count of outputs with no answer found and the wrong rows.

Files, as run_verification.py leaves them: `verify_accuracy.txt` (the accuracy printout, then
upstream's `TEST07 Verification Summary`), `accuracy/mlperf_log_accuracy.json` (every logged
answer; `data` is its UTF-8 text, auditkit has no token ids), `performance/run_1/` (the
phase's LoadGen summary and detail logs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from auditkit import mlperf_logs
from auditkit.audits.base import AuditSettings, AuditTest
from auditkit.audits.kit import accuracy_log
from auditkit.audits.kit.phases import check_samples, phase_problem, warmup_phase
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.audits.test07.metrics import get_metric, printed_score, score_line
from auditkit.config import AuditConfig, DatasetConfig
from auditkit.data import Dataset, SampleOrder, load_dataset
from auditkit.errors import InputError
from auditkit.loadgen_logs import LogFile, read_run_dir
from auditkit.plan import LoadPattern, Role, RunSpec
from auditkit.resources import choices_dataset
from auditkit.results import AuditResult, Evidence, PhaseResult

PERFORMANCE: Role = "performance"
VERIFY_FILE = "verify_accuracy.txt"
ACCURACY_LOG = str(Path("accuracy") / accuracy_log.ACCURACY_LOG)
RUN_DIR = Path("performance") / "run_1"
#: upstream's per-model threshold (compliance/TEST07/<model>/audit.config,
#: `*.*.test07_accuracy_threshold`) and the size of its compliance set
UPSTREAM_THRESHOLDS: dict[str, float] = {"gpt-oss-120b": 60.698}
UPSTREAM_SAMPLES: dict[str, int] = {"gpt-oss-120b": 990}
RULE = "=" * 80
SHOWN = 20


class Test07Config(AuditSettings):
    """TEST07 (accuracy in performance mode, whole set) knobs."""

    samples: int | None = Field(
        None, ge=1, le=10_000_000, description="rows issued and logged; None: every row"
    )
    metric: str = Field("exact_match", description="accuracy metric (exact_match, exact_text)")
    mlperf_model: str = Field(
        "gpt-oss-120b", description="the MLPerf benchmark whose audit.config gives the threshold"
    )
    threshold: float | None = Field(
        None, ge=0, le=100, description="minimum score in percent; None: upstream's for the model"
    )
    warmup: int = Field(16, ge=0, description="salted warm-up queries first (0: none)")
    seed: int = Field(0, ge=0, description="seed of the issue order")


class WrongRow(Evidence):
    """One logged row scored wrong."""

    sample_index: int
    expected: str
    extracted: str | None


class LoggedAnswer(Evidence):
    """One accuracy-log entry: issue number, dataset row, output text, reported tokens."""

    seq_id: int
    qsl_idx: int
    text: str
    token_count: int | None


class Test07Evidence(Evidence):
    metric: str
    entries: int
    correct: int
    no_answer: int
    duplicates: int
    missing: int
    score: float
    printed_score: float
    threshold: float
    threshold_source: str
    wrong: tuple[WrongRow, ...] = ()
    #: every logged answer: written to accuracy/mlperf_log_accuracy.json, not audit_result.json
    logged: tuple[LoggedAnswer, ...] = Field((), exclude=True)


def threshold_of(t7: Test07Config) -> tuple[float, str]:
    """The threshold and where it comes from (InputError when there is none)."""
    if t7.threshold is not None:
        return t7.threshold, "given"
    if t7.mlperf_model not in UPSTREAM_THRESHOLDS:
        known = ", ".join(UPSTREAM_THRESHOLDS)
        raise InputError(
            f"test07: upstream has no TEST07 threshold for {t7.mlperf_model!r} (it has one for "
            f"{known}); give --threshold PERCENT"
        )
    where = f"compliance/TEST07/{t7.mlperf_model}/audit.config"
    return UPSTREAM_THRESHOLDS[t7.mlperf_model], f"upstream ({where})"


def score(
    answers: dict[int, str],
    logged: list[LoggedAnswer],
    metric_name: str,
    threshold: float,
    source: str,
    issued: list[int],
) -> Test07Evidence:
    """The metric over every logged answer (pure): entries without a reference answer count
    as wrong, as upstream's scripts count them."""
    metric = get_metric(metric_name)
    correct = no_answer = 0
    wrong: list[WrongRow] = []
    for entry in logged:
        got = metric.extract(entry.text)
        reference = answers.get(entry.qsl_idx)
        no_answer += got is None
        if reference is not None and metric.correct(got, reference):
            correct += 1
        elif len(wrong) < SHOWN:
            wrong.append(
                WrongRow(sample_index=entry.qsl_idx, expected=reference or "", extracted=got)
            )
    seen = [e.qsl_idx for e in logged]
    pct = 100.0 * correct / len(logged) if logged else 0.0
    return Test07Evidence(
        metric=metric.name,
        entries=len(logged),
        correct=correct,
        no_answer=no_answer,
        duplicates=len(seen) - len(set(seen)),
        missing=len(set(issued) - set(seen)),
        score=pct,
        printed_score=printed_score(pct),
        threshold=threshold,
        threshold_source=source,
        wrong=tuple(wrong),
        logged=tuple(logged),
    )


@dataclass(frozen=True)
class AnswersFile(LogFile):
    """`auditkit verify test07 --answers`: the compliance set's reference answers by row."""

    answers: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AnsweredSpec(RunSpec):
    """The performance phase, carrying its rows' reference answers: `verify` stays a pure
    function of the phase results (it never reads the dataset)."""

    answers: tuple[tuple[int, str], ...] = ()


class Test07(AuditTest[Test07Config, Test07Evidence]):
    """TEST07 as an audit plug-in."""

    id: ClassVar[str] = "TEST07"
    key: ClassVar[str] = "test07"
    title: ClassVar[str] = "Accuracy in performance mode, whole set (MLPerf TEST07)"
    summary: ClassVar[str] = "accurate enough under load over the whole compliance set?"
    settings_model = Test07Config
    evidence_model = Test07Evidence
    panel_label: ClassVar[str | None] = "accuracy"
    log_inputs: ClassVar[tuple[str, ...]] = ("test", "answers")
    log_help: ClassVar[dict[str, str]] = {
        "test": "the compliance run's mlperf_log_accuracy.json (or its folder)",
        "answers": "the compliance set with its reference answers: JSONL, CSV or Parquet with "
        "an `answer` column, rows in qsl_idx order",
    }
    verify_fields: ClassVar[tuple[str, ...]] = ("metric", "mlperf_model", "threshold")
    submission_name: ClassVar[str | None] = "accuracy_in_performance_full_test"

    def applies(self, cfg: AuditConfig) -> str | None:
        if cfg.endpoint.temperature != 0:
            return "scores greedy answers: needs endpoint.temperature 0"
        return None

    def dataset_defaults(self, cfg: AuditConfig) -> AuditConfig:
        """No dataset named: the shipped multiple-choice set and its `answer` column."""
        if cfg.dataset.path is not None:
            return cfg
        dataset = cfg.dataset.model_copy(
            update={"path": str(choices_dataset()), "answer_column": "answer"}
        )
        return cfg.model_copy(update={"dataset": dataset})

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        t7 = self.settings(cfg)
        get_metric(t7.metric)
        threshold_of(t7)
        if cfg.dataset.answer_column is None:
            raise InputError(
                "test07 scores answers: give the compliance set's reference answers with "
                "--answer-column NAME"
            )
        n = t7.samples or len(dataset)
        check_samples("test07.samples", n, len(dataset))
        if cfg.load.scenario == "multi-stream" and n % cfg.load.samples_per_query:
            raise InputError(
                f"test07: {n} rows is not a multiple of load.samples_per_query; set "
                "--samples to one"
            )

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """Warm-up; every row once at the scenario's load, every answer logged (min_duration
        0, as upstream's audit.config sets it: a longer phase would repeat rows)."""
        t7 = self.settings(cfg)
        n = t7.samples or len(dataset)
        order = SampleOrder.without_replacement(t7.seed)
        rows = frozenset(order.indices(n, len(dataset)))
        answers = tuple((r, a) for r in sorted(rows) if (a := dataset[r].answer) is not None)
        load = LoadPattern.from_config(cfg.load, t7.seed)
        spec = AnsweredSpec(
            PERFORMANCE, order, n, load, log_outputs=rows, role=PERFORMANCE, answers=answers
        )
        return [*warmup_phase(cfg, t7.warmup, t7.seed), spec]

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[Test07Evidence]:
        t7 = self.settings(cfg)
        base = base_fields(self.id, cfg, phases)
        # the verdict reads answers, not times: a late client loop changes no answer
        problem = phase_problem(phases, untimed=(PERFORMANCE,))
        if problem is not None:
            return invalid(self.result_model, base, problem)
        perf = next(p for p in phases if p.spec.role == PERFORMANCE)
        spec = perf.spec
        answers = dict(spec.answers) if isinstance(spec, AnsweredSpec) else {}
        logged = [
            LoggedAnswer(
                seq_id=o.query_id, qsl_idx=o.sample_index, text=o.text, token_count=o.output_tokens
            )
            for o in perf.outputs
            if o.variant == "main"
        ]
        issued = [int(r) for r in perf.columns("sample_index")["sample_index"]]
        return self._decide(t7, answers, logged, issued, base)

    def _decide(
        self,
        t7: Test07Config,
        answers: dict[int, str],
        logged: list[LoggedAnswer],
        issued: list[int],
        base: dict[str, Any],
    ) -> AuditResult[Test07Evidence]:
        """Upstream's rule on the logged answers (a run's, or an accuracy log's)."""
        threshold, source = threshold_of(t7)
        ev = score(answers, logged, t7.metric, threshold, source, issued)
        if ev.entries == 0:
            return invalid(self.result_model, base, "no answer was logged")
        passed = ev.printed_score >= threshold
        verdict = "PASS" if passed else "FAIL"
        reason = (
            f"{ev.metric} {ev.printed_score:.3f} on {ev.entries} samples under load "
            f"({ev.correct} correct) is {'at or above' if passed else 'below'} the "
            f"threshold {threshold:g}"
        )
        if ev.no_answer:
            reason += f"; {ev.no_answer} outputs gave no answer"
        return self.result_model(
            verdict=verdict,
            upstream_verdict=verdict,
            reason=reason,
            score_name=ev.metric,
            audit_score=ev.printed_score,
            threshold=threshold,
            threshold_source=source,
            rule=f"{ev.metric} (printed to 3 decimals) >= threshold",
            evidence=ev,
            **base,
        )

    def files(self, result: AuditResult[Test07Evidence]) -> dict[str, str]:
        ev = result.evidence
        out = {VERIFY_FILE: verify_accuracy_text(result)}
        if ev is not None and ev.logged:
            entries = [
                accuracy_log.AccuracyEntry(
                    seq_id=e.seq_id,
                    qsl_idx=e.qsl_idx,
                    data=e.text.encode("utf-8", "surrogatepass"),
                    token_count=e.token_count,
                )
                for e in ev.logged
            ]
            out[ACCURACY_LOG] = accuracy_log.render(entries)
        perf = result.phases.get(PERFORMANCE)
        if perf is not None:
            out[str(RUN_DIR / mlperf_logs.SUMMARY_FILE)] = mlperf_logs.format_summary(perf)
            out[str(RUN_DIR / mlperf_logs.DETAIL_FILE)] = mlperf_logs.format_detail(perf)
        return out

    def read_log_input(self, name: str, path: str) -> LogFile:
        if name == "answers":
            dataset = load_dataset(DatasetConfig(path=path, answer_column="answer"))
            answers = {i: s.answer for i, s in enumerate(dataset.samples) if s.answer is not None}
            return AnswersFile(source=path, summary="", answers=answers)
        return read_run_dir(path)

    def verify_logs(
        self, inputs: dict[str, LogFile], settings: Test07Config
    ) -> tuple[AuditResult[Test07Evidence], dict[str, str]]:
        """`auditkit verify test07 --test LOG --answers SET`: upstream's rule on an accuracy
        log whose `data` is the output text (UTF-8), scored against the set's answers."""
        run, answers = inputs["test"], inputs["answers"]
        if run.accuracy is None:
            raise InputError(f"{run.source}: no {accuracy_log.ACCURACY_LOG} there")
        try:
            entries = accuracy_log.parse(run.accuracy)
            logged = [
                LoggedAnswer(
                    seq_id=e.seq_id,
                    qsl_idx=e.qsl_idx,
                    text=e.data.decode("utf-8"),
                    token_count=e.token_count,
                )
                for e in entries
            ]
        except UnicodeDecodeError:
            raise InputError(
                f"{run.accuracy_path}: `data` is not UTF-8 text (LoadGen's token ids?); "
                "auditkit verify test07 scores text answers"
            ) from None
        except ValueError as exc:
            raise InputError(f"{run.accuracy_path}: {exc}") from None
        known = answers.answers if isinstance(answers, AnswersFile) else {}
        base = {"test": self.id, "scenario": "unknown"}
        result = self._decide(settings, known, logged, sorted(known), base)
        return result, self.files(result)

    def advice(self, result: AuditResult[Test07Evidence]) -> str:
        ev = result.evidence
        if result.verdict != "FAIL" or ev is None:
            return super().advice(result)
        return (
            f"accuracy under load is below the threshold ({VERIFY_FILE} lists the score, "
            "audit_result.json the wrong rows): serve the same model, precision and generation "
            "settings at every load (a server that degrades when busy fails here), then rerun "
            "with --overwrite"
        )

    def summary_lines(self, result: AuditResult[Test07Evidence]) -> list[str]:
        ev = result.evidence
        if ev is None:
            return []
        lines = [
            f"{ev.metric} {ev.printed_score:.3f} ({ev.correct}/{ev.entries} correct), threshold "
            f"{ev.threshold:g} ({ev.threshold_source}); {ev.no_answer} without an answer"
        ]
        lines += [
            f"row {w.sample_index}: expected {w.expected!r}, got {w.extracted!r}"
            for w in ev.wrong[:3]
        ]
        return lines


def verify_accuracy_text(result: AuditResult[Test07Evidence]) -> str:
    """verify_accuracy.txt as run_verification.py writes it: the accuracy script's printout,
    then its `TEST07 Verification Summary` (`TEST PASS` iff score >= threshold), then
    auditkit's lines (never the words the checker greps for)."""
    ev = result.evidence
    mine = [f"auditkit: verdict {result.verdict}; {result.reason}"]
    if ev is None:
        summary = ["Error: Could not parse accuracy score", "TEST FAIL"]
        printout = ""
    else:
        printout = "\n".join(
            [
                RULE,
                "MLPerf Accuracy Evaluation Results (auditkit, metric " + ev.metric + ")",
                RULE,
                f"Total samples evaluated: {ev.entries}",
                f"Overall raw accuracy: {ev.score:.2f}% ({ev.correct}/{ev.entries})",
                RULE,
                "",
                "Printing for submission_checker:",
                "",
                score_line(ev.metric, ev.score),
                "",
            ]
        )
        passed = ev.printed_score >= ev.threshold
        summary = [
            f"Accuracy score: {ev.printed_score}",
            f"Accuracy threshold: {ev.threshold}",
            f"Accuracy check pass: {passed}",
            "TEST PASS" if passed else "TEST FAIL",
        ]
        mine += [
            f"auditkit: {ev.no_answer} outputs gave no answer, {ev.duplicates} rows logged "
            f"twice, {ev.missing} issued rows not logged",
            f"auditkit: threshold from {ev.threshold_source}",
        ]
    block = ["", RULE, "TEST07 Verification Summary", RULE, *summary, "", *mine]
    return printout + "\n".join(block) + "\n"
