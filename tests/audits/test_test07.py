"""TEST07 (accuracy in performance mode over the whole set) on a virtual clock, its metric and
threshold rule, and once against the mock in its own process: the honest mock passes, one
whose answers degrade under load fails."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from auditkit.audits import load_config
from auditkit.audits.kit.accuracy_log import parse
from auditkit.audits.test07 import LoggedAnswer, Test07Config, score, threshold_of
from auditkit.audits.test07.metrics import choice, printed_score, score_line
from auditkit.cli import main
from auditkit.errors import InputError
from auditkit.mock import answers
from auditkit.resources import choices_dataset
from auditkit.runner import run_audit
from tests.audits.conftest import SimulatedAudit


def test_honest_mock_passes_with_upstreams_files(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit("test07", warmup=0)
    assert run.result.verdict == "PASS", run.result.reason
    ev = run.result.evidence
    assert ev is not None and (ev.entries, ev.correct, ev.duplicates, ev.missing) == (
        200,
        150,
        0,
        0,
    )
    folder = tmp_path / "TEST07"
    text = (folder / "verify_accuracy.txt").read_text()
    assert "'exact_match': 75.000\n" in text
    assert "Accuracy score: 75.0\nAccuracy threshold: 60.698\nAccuracy check pass: True\n" in text
    assert text.count("TEST PASS") == 1 and "TEST FAIL" not in text
    logged = parse((folder / "accuracy" / "mlperf_log_accuracy.json").read_text())
    assert sorted(e.qsl_idx for e in logged) == list(range(200))  # each row once, all logged
    assert all(e.token_count == 32 for e in logged)
    assert choice(logged[0].data.decode()) is not None
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        assert (folder / "performance" / "run_1" / name).is_file()
    record = json.loads(
        (tmp_path / "audit" / "audit_accuracy_in_performance_full_test.json").read_text()
    )
    assert record["test"] == "accuracy_in_performance_full_test" and record["passed"] is True
    # the logged answers stay out of audit_result.json (they are in the accuracy log)
    assert "logged" not in json.loads((folder / "audit_result.json").read_text())["evidence"]


def test_answers_that_degrade_under_load_fail(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit("test07", {"wrong_under_load": 0.4}, warmup=0)
    assert run.result.verdict == "FAIL" and run.result.upstream_verdict == "FAIL"
    assert run.result.evidence is not None and run.result.evidence.score < 60.698
    text = (tmp_path / "TEST07" / "verify_accuracy.txt").read_text()
    assert "Accuracy check pass: False\nTEST FAIL\n" in text and "TEST PASS" not in text
    record = json.loads(
        (tmp_path / "audit" / "audit_accuracy_in_performance_full_test.json").read_text()
    )
    assert record["passed"] is False


@pytest.mark.parametrize("misbehaviour", [{}, {"wrong_under_load": 0.4}])
def test_verify_reads_the_runs_accuracy_log_back_to_the_same_verdict(
    simulated_audit: SimulatedAudit,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    misbehaviour: dict[str, float],
) -> None:
    run = simulated_audit("test07", misbehaviour, warmup=0)
    capsys.readouterr()
    log = tmp_path / "TEST07" / "accuracy" / "mlperf_log_accuracy.json"
    code = main(["verify", "test07", "--test", str(log), "--answers", str(choices_dataset()),
                 "--output-dir", str(tmp_path / "again")])  # fmt: skip
    assert code == {"PASS": 0, "FAIL": 1}[run.result.verdict]
    out = capsys.readouterr().out
    assert out.startswith(f"TEST07 {run.result.verdict}: exact_match {run.result.audit_score:.3f}")
    again = (tmp_path / "again" / "TEST07" / "verify_accuracy.txt").read_text()
    original = (tmp_path / "TEST07" / "verify_accuracy.txt").read_text()
    upstream_part = original.split("\nauditkit:")[0]
    assert again.startswith(upstream_part)


def test_verify_refuses_token_ids_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text('[\n{ "seq_id" : 0, "qsl_idx" : 0, "data" : "FFFE0000" }\n]\n')
    assert main(["verify", "test07", "--test", str(log), "--answers", str(choices_dataset())]) == 2
    assert "not UTF-8 text" in capsys.readouterr().err


def test_one_at_a_time_the_degrading_mock_is_accurate(simulated_audit: SimulatedAudit) -> None:
    run = simulated_audit(
        "test07", {"wrong_under_load": 0.4}, warmup=0, load={"max_concurrency": 1}
    )
    assert run.result.verdict == "PASS"  # never under load: only load brings the errors


def entries(rows: int, right: int) -> tuple[dict[int, str], list[LoggedAnswer]]:
    refs = {i: "A" for i in range(rows)}
    logged = [
        LoggedAnswer(
            seq_id=i,
            qsl_idx=i,
            text=f"x <|channel|>final<|message|>{'A' if i < right else 'B'}",
            token_count=3,
        )
        for i in range(rows)
    ]
    return refs, logged


@pytest.mark.parametrize(
    ("rows", "right", "threshold", "passed"),
    [
        (990, 601, 60.698, True),  # 60.707 %
        (990, 600, 60.698, False),  # 60.606 %
        (200, 150, 75.0, True),  # equal passes (>=)
    ],
)
def test_threshold_is_inclusive(rows: int, right: int, threshold: float, passed: bool) -> None:
    refs, logged = entries(rows, right)
    ev = score(refs, logged, "exact_match", threshold, "given", list(range(rows)))
    assert ev.correct == right and (ev.printed_score >= threshold) is passed


def test_upstream_compares_the_printed_score() -> None:
    # 661 of 1089 is 60.69789 %, below 60.698, but printed (and read back) as 60.698: PASS
    refs, logged = entries(1089, 661)
    ev = score(refs, logged, "exact_match", 60.698, "given", list(range(1089)))
    assert ev.score < 60.698 == ev.printed_score
    assert score_line("exact_match", ev.score) == "'exact_match': 60.698"
    assert printed_score(ev.score) >= 60.698


@pytest.mark.parametrize(
    ("output", "letter"),
    [
        ("<|channel|>analysis<|message|>maybe B<|end|><|channel|>final<|message|>C<|return|>", "C"),
        ("<|channel|>final<|message|>**D**", "D"),
        ("<|channel|>final<|message|>Answer: b", "B"),
        ("<|channel|>final 明<|message|>A.", "A"),  # a corrupted marker still opens it
        ("I think the answer is (B). FINAL ANSWER: (C)", "C"),  # the last one in the text
        ("<|channel|>final<|message|>Alpha is wrong", None),  # "A" inside a word is no answer
        ("", None),
    ],
)
def test_exact_match_reads_the_letter_as_gpt_oss_eval_does(output: str, letter: str | None) -> None:
    assert choice(output) == letter


def test_threshold_defaults_to_upstreams_and_needs_one() -> None:
    assert threshold_of(Test07Config())[0] == 60.698
    assert threshold_of(Test07Config(threshold=50.0)) == (50.0, "given")
    with pytest.raises(InputError, match="--threshold"):
        threshold_of(Test07Config(mlperf_model="llama3.1-8b"))


def test_a_dataset_without_answers_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text('{"prompt": "hi"}\n')
    cfg = load_config(None, {"dataset": {"path": str(data)}, "output_dir": str(tmp_path)})
    with pytest.raises(InputError, match="--answer-column"):
        run_audit(cfg, "test07")


def test_the_shipped_set_is_true_and_the_mock_knows_three_in_four() -> None:
    rows = [json.loads(line) for line in choices_dataset().read_text().splitlines()]
    known = 0
    for row in rows:
        stem = answers.stem(row["prompt"])
        assert stem is not None
        a, b = (int(x) for x in stem.split(" of ")[1].rstrip("?\n").split(" and "))
        op = stem.split(" the ")[1].split(" of ")[0]
        value = {"sum": a + b, "difference": a - b, "product": a * b}[op]
        assert f"({row['answer']}) {value}\n" in row["prompt"]  # the key is the true option
        known += answers.belief(stem) == row["answer"]
    assert (len(rows), known) == (200, 150)
    # and it is what scripts/make_choices.py writes
    script = runpy.run_path(str(Path(__file__).parents[2] / "scripts" / "make_choices.py"))
    assert script["text"]() == choices_dataset().read_text()


@pytest.mark.slow
def test_over_http_the_honest_mock_passes(tmp_path: Path) -> None:
    cfg = load_config(None, {"output_dir": str(tmp_path), "test07": {"warmup": 0}})
    run = run_audit(cfg, "test07")
    assert run.result.verdict == "PASS", run.result.reason
    assert run.result.evidence is not None and run.result.evidence.correct == 150


def test_through_the_cli_the_exit_code_is_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "test07", "--mock-simulated", "--warmup", "0", "--quiet", "--samples", "100"]
    assert main([*args, "--output-dir", str(tmp_path / "a")]) == 0
    assert main([*args, "--mock-wrong-under-load", "0.5", "--output-dir", str(tmp_path / "b")]) == 1
    assert "TEST07 FAIL: exact_match" in capsys.readouterr().out
    assert main([*args, "--metric", "exact_matsh", "--output-dir", str(tmp_path / "c")]) == 2
    assert "did you mean" in capsys.readouterr().err.lower()
