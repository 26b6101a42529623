"""TEST09 (output length under load) on a virtual clock, and against the mock in its own
process: the honest mock passes, one that truncates under load fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditkit.audits import load_config
from auditkit.errors import InputError
from auditkit.runner import AuditRun, run_audit


def evidence(run: AuditRun) -> Any:
    """The run's evidence (present on PASS and FAIL)."""
    assert run.result.evidence is not None
    return run.result.evidence


def simulated(tmp_path: Path, misbehaviour: dict[str, Any] | None = None, **t9: Any) -> AuditRun:
    over: dict[str, Any] = {
        "mock": {"simulated": True, "misbehaviour": misbehaviour or {}},
        "output_dir": str(tmp_path),
        "test09": {"samples": 24, "warmup": 4, **t9},
    }
    return run_audit(load_config(None, over), "test09")


def test_honest_endpoint_passes_and_writes_upstream_file(tmp_path: Path) -> None:
    run = simulated(tmp_path)
    assert run.result.verdict == "PASS", run.result.reason
    text = (tmp_path / "TEST09" / "verify_output_len.txt").read_text()
    assert "Mean output tokens: 32.00" in text and "\nTEST PASS\n" in text


def test_answers_truncated_under_load_fail(tmp_path: Path) -> None:
    run = simulated(tmp_path, {"truncate_under_load": 0.5})
    assert run.result.verdict == "FAIL"
    assert "shortened under load" in run.result.reason
    assert evidence(run).shortened_samples > 0
    assert "\nTEST FAIL\n" in (tmp_path / "TEST09" / "verify_output_len.txt").read_text()


def test_explicit_bounds_are_upstreams_and_skip_the_accuracy_phase(tmp_path: Path) -> None:
    run = simulated(tmp_path, min_output_tokens=40.0, max_output_tokens=50.0)
    assert run.result.verdict == "FAIL"
    assert "accuracy" not in run.result.phases
    ok = simulated(tmp_path / "b", min_output_tokens=32.0, max_output_tokens=32.0)
    assert ok.result.verdict == "PASS"  # inclusive bounds


def test_one_bound_alone_is_refused() -> None:
    cfg = load_config(None, {"test09": {"min_output_tokens": 10.0}})
    with pytest.raises(InputError, match="both"):
        run_audit(cfg, "test09")
