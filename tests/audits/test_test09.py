"""TEST09 (output length under load) on a virtual clock, and against the mock in its own
process: the honest mock passes, one that truncates under load fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditkit.audits import load_config
from auditkit.errors import InputError
from auditkit.runner import AuditRun, run_audit
from tests.audits.conftest import SimulatedAudit


def evidence(run: AuditRun) -> Any:
    """The run's evidence (present on PASS and FAIL)."""
    assert run.result.evidence is not None
    return run.result.evidence


def test_honest_endpoint_passes_and_writes_upstream_file(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit("test09")
    assert run.result.verdict == "PASS", run.result.reason
    text = (tmp_path / "TEST09" / "verify_output_len.txt").read_text()
    assert "Mean output tokens: 32.00" in text and "\nTEST PASS\n" in text


def test_answers_truncated_under_load_fail(simulated_audit: SimulatedAudit, tmp_path: Path) -> None:
    run = simulated_audit("test09", {"truncate_under_load": 0.5})
    assert run.result.verdict == "FAIL"
    assert "shortened under load" in run.result.reason
    assert evidence(run).shortened_samples > 0
    assert "\nTEST FAIL\n" in (tmp_path / "TEST09" / "verify_output_len.txt").read_text()


def test_explicit_bounds_are_upstreams_and_skip_the_accuracy_phase(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit("test09", min_output_tokens=40.0, max_output_tokens=50.0)
    assert run.result.verdict == "FAIL"
    assert "accuracy" not in run.result.phases
    ok = simulated_audit(
        "test09", min_output_tokens=32.0, max_output_tokens=32.0, out=tmp_path / "b"
    )
    assert ok.result.verdict == "PASS"  # inclusive bounds


def test_one_bound_alone_is_refused() -> None:
    cfg = load_config(None, {"test09": {"min_output_tokens": 10.0}})
    with pytest.raises(InputError, match="both"):
        run_audit(cfg, "test09")
