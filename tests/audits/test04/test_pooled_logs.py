"""A block design writes the pooled phases' LoadGen logs to reference/ and audit/ (issue 23,
What to build 7): upstream's verify_performance.py and `auditkit verify` read a default run
as they read a sequential one, and reach the run's own upstream verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkit import mlperf_logs
from auditkit.audits import build_config
from auditkit.audits.test04.logs import verify_summaries
from auditkit.loadgen_logs import parse_summary
from auditkit.review import load_run
from auditkit.runner import run_audit


def _run(out: Path, design: str) -> Path:
    cfg = build_config(
        {
            "output_dir": str(out),
            "mock": {"simulated": True, "cache": "output"},
            "test04": {"samples": 128, "allow_small": True, "rounds": 0, "warmup": 0,
                       "design": design},
        }
    )  # fmt: skip
    return run_audit(cfg).folder


@pytest.mark.parametrize("design", ["alternating", "counterbalanced"])
def test_block_designs_write_pooled_summaries_that_verify_like_the_run(
    tmp_path: Path, design: str
) -> None:
    folder = _run(tmp_path, design)
    result = load_run(folder).result
    parsed = {}
    for role in ("reference", "audit"):
        assert not (folder / role / "phase.json").exists()  # logs only, not a phase of its own
        parsed[role] = parse_summary((folder / role / mlperf_logs.SUMMARY_FILE).read_text())
        assert (folder / role / mlperf_logs.DETAIL_FILE).is_file()
    assert parsed["reference"].score == pytest.approx(result.reference_score, rel=1e-6)
    assert parsed["audit"].score == pytest.approx(result.audit_score, rel=1e-6)
    again = verify_summaries(parsed["reference"], parsed["audit"])
    assert (again.upstream_verdict or again.verdict) == result.upstream_verdict == "FAIL"
    # the review still lists only the phases that ran (the blocks), not the pooled folders
    assert "reference" not in load_run(folder).summaries


def test_a_sequential_run_keeps_its_own_phase_logs(tmp_path: Path) -> None:
    folder = _run(tmp_path, "sequential")
    assert (folder / "reference" / "phase.json").is_file()  # the phase itself, as before
