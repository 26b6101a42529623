"""Results are frozen: a changed result is a new object, and evidence has named fields."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from auditkit.audits import get_test, result_from_json
from auditkit.audits.test04.evidence import LatencyComparison, Test04Evidence
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import AuditResult, LatencyStats, PhaseResult, PhaseSummary, records_frame


def _summary() -> PhaseSummary:
    return PhaseSummary(
        name="reference", scenario="offline", order="x", requested=1, issued=1, completed=1,
        failed=0, cancelled=0, duration_ns=1, samples_per_second=1.0, queries=1,
        latency=LatencyStats(count=1), score=1.0, score_name="s", complete=True,
        loadgen_valid=True,
    )  # fmt: skip


def _result() -> AuditResult[Test04Evidence]:
    evidence = Test04Evidence(
        latency=LatencyComparison(speedup_flag_limit=1.5, latency_speedup_flag=False)
    )
    model = get_test("test04").result_model
    return model(  # type: ignore[no-any-return]
        test="TEST04", verdict="PASS", reason="r", scenario="offline", evidence=evidence,
        phases={"reference": _summary()},
    )  # fmt: skip


def test_summaries_and_results_refuse_changes() -> None:
    summary = _summary()
    with pytest.raises(ValidationError, match="frozen"):
        summary.complete = False  # type: ignore[misc]
    result = _result()
    with pytest.raises(ValidationError, match="frozen"):
        result.verdict = "FAIL"  # type: ignore[misc]
    assert result.evidence is not None
    with pytest.raises(ValidationError, match="frozen"):
        result.evidence.latency = result.evidence.latency  # type: ignore[misc]
    phase = PhaseResult(RunSpec("r", None, 1, LoadPattern("offline")), records_frame([]), summary)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        phase.summary = summary  # type: ignore[misc]


def test_a_change_is_a_new_object() -> None:
    result = _result()
    noted = result.with_notes("one more")
    assert noted is not result and noted.notes == ("one more",) and result.notes == ()


def test_evidence_reads_back_typed_from_json() -> None:
    result = _result()
    again = result_from_json(result.model_dump_json())
    assert isinstance(again.evidence, Test04Evidence)
    assert again.evidence.latency.speedup_flag_limit == 1.5
    assert again == result


def test_undeclared_evidence_is_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Test04Evidence.model_validate({"latency": {"speedup_flag_limit": 1.5,
                                       "latency_speedup_flag": False}, "surprise": 1})  # fmt: skip
