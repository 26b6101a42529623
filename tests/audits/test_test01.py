"""TEST01 (accuracy in performance mode) on a virtual clock: the same answers under load pass;
answers that change under load fail, with the pairs shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auditkit.audits import load_config
from auditkit.audits.test01 import Test01Config, compare, logged_rows, similarity
from auditkit.errors import InputError
from auditkit.runner import AuditRun, run_audit


def evidence(run: AuditRun) -> Any:
    """The run's evidence (present on PASS and FAIL)."""
    assert run.result.evidence is not None
    return run.result.evidence


def simulated(tmp_path: Path, misbehaviour: dict[str, Any] | None = None) -> AuditRun:
    over: dict[str, Any] = {
        "mock": {"simulated": True, "misbehaviour": misbehaviour or {}},
        "output_dir": str(tmp_path),
        "test01": {"samples": 24, "log_samples": 12, "warmup": 4},
    }
    return run_audit(load_config(None, over), "test01")


def test_same_answers_under_load_pass(tmp_path: Path) -> None:
    run = simulated(tmp_path)
    assert run.result.verdict == "PASS", run.result.reason
    assert evidence(run).pairs == 12 and evidence(run).identical == 12
    text = (tmp_path / "TEST01" / "verify_accuracy.txt").read_text()
    assert text.startswith("Accuracy check pass: True\nPerformance check pass: True\n")
    record = json.loads(
        (tmp_path / "audit" / "audit_accuracy_in_performance_test.json").read_text()
    )
    assert record["passed"] is True


def test_answers_that_change_under_load_fail_with_the_pairs(tmp_path: Path) -> None:
    run = simulated(tmp_path, {"change_under_load": True})
    ev = evidence(run)
    assert run.result.verdict == "FAIL" and not ev.accuracy_pass
    assert (
        ev.mismatch_count > 0 and ev.mismatches[0].accuracy_output != ev.mismatches[0].load_output
    )
    assert (tmp_path / "TEST01" / "mismatches.jsonl").read_text().count("\n") == len(ev.mismatches)


def test_similarity_is_token_level() -> None:
    assert similarity("a b c d", "a b c d") == 1.0
    assert similarity("a b c d", "a b x d") == pytest.approx(0.75)
    pairs, identical, sim, mismatches = compare({1: "a b", 2: "c d"}, {1: "a b", 2: "c e"}, 0.01)
    assert (pairs, identical, len(mismatches)) == (2, 1, 1) and sim == pytest.approx(0.75)


def test_logged_rows_are_a_seeded_subset_of_the_phase() -> None:
    t1 = Test01Config(samples=40, log_samples=10, seed=3)
    assert logged_rows(t1, 100) == logged_rows(t1, 100) and len(logged_rows(t1, 100)) == 10


def test_temperature_above_zero_is_refused() -> None:
    cfg = load_config(None, {"endpoint": {"temperature": 0.7}})
    with pytest.raises(InputError, match="temperature 0"):
        run_audit(cfg, "test01")
