"""TEST01 (accuracy in performance mode) on a virtual clock: the same answers under load pass;
answers that change under load fail, with the pairs shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auditkit.audits import load_config
from auditkit.audits.test01 import (
    Test01Config,
    accuracy,
    compare,
    correct,
    logged_rows,
    normalise,
    similarity,
)
from auditkit.errors import InputError
from auditkit.mock.latency import generate_words
from auditkit.runner import AuditRun, run_audit
from tests.audits.conftest import SimulatedAudit


def evidence(run: AuditRun) -> Any:
    """The run's evidence (present on PASS and FAIL)."""
    assert run.result.evidence is not None
    return run.result.evidence


def answered_dataset(tmp_path: Path, rows: int = 24) -> dict[str, Any]:
    """A dataset whose `answer` column holds the mock's honest (greedy) answer's first two
    words, as a sentence the way a model would say it: the mock scores 100 % one at a time."""
    path = tmp_path / "answered.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            prompt = f"Question {i}: what does the oracle say about item {i}?"
            answer = " ".join(generate_words(prompt, 2)).capitalize() + "."
            fh.write(json.dumps({"prompt": prompt, "answer": answer}) + "\n")
    return {"path": str(path), "answer_column": "answer"}


def test_same_answers_under_load_pass(simulated_audit: SimulatedAudit, tmp_path: Path) -> None:
    run = simulated_audit("test01", out=tmp_path / "out")
    assert run.result.verdict == "PASS", run.result.reason
    assert evidence(run).pairs == 12 and evidence(run).identical == 12
    assert evidence(run).accuracy_one_at_a_time is None and evidence(run).answered == 0
    text = (tmp_path / "out" / "TEST01" / "verify_accuracy.txt").read_text()
    assert text.startswith("Verifying accuracy. This might take a while...\n")
    assert "num_perf_log_data_mismatch = 0\nnum_missing_qsl_idxs = 0\nTEST PASS\n" in text
    assert f"auditkit: verdict {run.result.verdict};" in text
    perf = (tmp_path / "out" / "TEST01" / "verify_performance.txt").read_text()
    assert perf.startswith("Verifying performance.\nReference score = ")
    assert ("TEST PASS\n" in perf) == (run.result.upstream_verdict == "PASS")
    record = json.loads(
        (tmp_path / "out" / "audit" / "audit_accuracy_in_performance_test.json").read_text()
    )
    assert record["passed"] is True


def test_answers_that_change_under_load_fail_with_the_pairs(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit("test01", {"change_under_load": True}, out=tmp_path / "out")
    ev = evidence(run)
    assert run.result.verdict == "FAIL" and not ev.accuracy_pass
    assert (
        ev.mismatch_count > 0 and ev.mismatches[0].accuracy_output != ev.mismatches[0].load_output
    )
    assert (tmp_path / "out" / "TEST01" / "mismatches.jsonl").read_text().count("\n") == len(
        ev.mismatches
    )


def test_reference_answers_score_both_phases(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit("test01", dataset=answered_dataset(tmp_path), out=tmp_path / "out")
    ev = evidence(run)
    assert run.result.verdict == "PASS", run.result.reason
    assert (ev.answered, ev.answer_match) == (12, "contains")
    assert ev.accuracy_one_at_a_time == ev.accuracy_under_load == 1.0
    assert ev.accuracy_relative_delta == 0.0 and "relative delta 0.0000" in run.result.reason
    text = (tmp_path / "out" / "TEST01" / "verify_accuracy.txt").read_text()
    assert "accuracy 1.000 one at a time vs 1.000 under load (12 answered" in text


def test_answers_that_change_under_load_fail_on_accuracy(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit(
        "test01",
        {"change_under_load": True},
        dataset=answered_dataset(tmp_path),
        out=tmp_path / "out",
    )
    ev = evidence(run)
    assert run.result.verdict == "FAIL" and run.result.upstream_verdict == "FAIL"
    assert ev.accuracy_one_at_a_time == 1.0 and ev.accuracy_under_load is not None
    assert ev.accuracy_under_load < 0.5 and ev.accuracy_relative_delta > 0.5
    assert not ev.accuracy_pass and "answers change under load" in run.result.reason


def test_different_answers_with_the_same_accuracy_pass_upstreams_fallback(
    simulated_audit: SimulatedAudit,
    tmp_path: Path,
) -> None:
    # cut to half under load: every answer differs, yet each still holds its reference
    run = simulated_audit(
        "test01",
        {"truncate_under_load": 0.5},
        dataset=answered_dataset(tmp_path),
        out=tmp_path / "out",
    )
    ev = evidence(run)
    assert ev.identical == 0 and ev.similarity < 0.99  # the similarity alone would FAIL
    assert ev.accuracy_relative_delta == 0.0 and ev.accuracy_pass
    # the accuracy part passes; shorter answers make the timing noisier (INCONCLUSIVE here)
    assert run.result.upstream_verdict == "PASS" and run.result.verdict != "FAIL"


def test_high_accuracy_tightens_the_allowed_delta() -> None:
    assert Test01Config().delta == 0.01 and Test01Config(high_accuracy=True).delta == 0.001


def test_correct_contains_or_equals_after_normalising() -> None:
    assert normalise("  The Capital is PARIS!\n") == "the capital is paris"
    assert correct("The capital is Paris.", "paris")
    assert not correct("The capital is Parisian.", "Paris")  # whole words only
    assert not correct("The capital is Paris.", "Paris", "exact")
    assert correct(" 42. ", "42", "exact") and not correct("anything", "...")
    scored = accuracy({1: "a", 2: "b", 3: "c"}, {1: "a", 2: "b", 3: "x"}, {1: "a", 2: "x"}, "exact")
    assert scored is not None and scored.answered == 2
    assert (scored.one_at_a_time, scored.under_load, scored.relative_delta) == (1.0, 0.5, 0.5)
    none_right = accuracy({1: "a"}, {1: "x"}, {1: "a"}, "exact")
    assert none_right is not None and none_right.relative_delta is None
    assert accuracy({}, {1: "a"}, {1: "a"}, "exact") is None


def test_answer_column_must_exist(simulated_audit: SimulatedAudit, tmp_path: Path) -> None:
    ds = answered_dataset(tmp_path) | {"answer_column": "gold"}
    with pytest.raises(InputError, match="'gold' column"):
        simulated_audit("test01", dataset=ds, out=tmp_path / "out")


def test_similarity_is_token_level() -> None:
    assert similarity("a b c d", "a b c d") == 1.0
    assert similarity("a b c d", "a b x d") == pytest.approx(0.75)
    pairs, identical, sim, mismatches = compare({1: "a b", 2: "c d"}, {1: "a b", 2: "c e"})
    assert (pairs, identical, len(mismatches)) == (2, 1, 1) and sim == pytest.approx(0.75)


def test_logged_rows_are_a_seeded_subset_of_the_phase() -> None:
    t1 = Test01Config(samples=40, log_samples=10, seed=3)
    assert logged_rows(t1, 100) == logged_rows(t1, 100) and len(logged_rows(t1, 100)) == 10


def test_temperature_above_zero_is_refused() -> None:
    cfg = load_config(None, {"endpoint": {"temperature": 0.7}})
    with pytest.raises(InputError, match="temperature 0"):
        run_audit(cfg, "test01")
