"""The lag rule end to end: an honest simulated run whose blocks are then marked as run by a
client whose event loop ran late (the client guard's verdict), verified again. The virtual clock
has no loop lag of its own, so the guard's marks are set on the finished phases."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from auditkit.audits import get_test, load_config
from auditkit.results import PhaseResult
from auditkit.runner import run_audit

LATE_NS = 256_000_000
REASON = "client event loop ran 256 ms late (p99): the client was saturated; rerun with more"


def _late(phase: PhaseResult) -> PhaseResult:
    summary = phase.summary.model_copy(update={"loop_lag_p99_ns": LATE_NS, "client_bound": REASON})
    return dataclasses.replace(phase, summary=summary)


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[PhaseResult], Any]:
    out = tmp_path_factory.mktemp("lag")
    over = {
        "mock": {"simulated": True},
        "output_dir": str(out),
        "test04": {"run_salt": "l4g", "samples": 128, "rounds": 0},
        "load": {"scenario": "single-stream"},
    }
    cfg = load_config(None, over)
    run = run_audit(cfg, "test04")
    assert run.result.verdict == "PASS", run.result.reason
    return run.phases, cfg


def test_a_late_loop_on_every_block_of_both_arms_keeps_an_honest_pass(
    honest: tuple[list[PhaseResult], Any],
) -> None:
    """A local server taking the client's cores (issue 22): INVALID before; the lag fell on
    both arms alike, so the verdict stands and the lag is reported."""
    phases, cfg = honest
    late = [_late(p) if p.spec.role in ("reference", "audit", "control") else p for p in phases]
    result = get_test("test04").verify(late, cfg)
    assert result.upstream_verdict == "INVALID"  # upstream's rule and files are unchanged
    assert result.verdict == "PASS", result.reason
    lag = result.evidence.decision.client_lag
    assert lag is not None and not lag.decided and lag.worst_ms == pytest.approx(256)
    assert "ran late" in result.reason


def test_a_late_loop_on_the_reference_only_is_invalid(
    honest: tuple[list[PhaseResult], Any],
) -> None:
    phases, cfg = honest
    late = [_late(p) if p.spec.role == "reference" else p for p in phases]
    result = get_test("test04").verify(late, cfg)
    assert result.verdict == "INVALID"
    assert "one arm more than the other" in result.reason


def test_a_client_at_its_ceiling_stays_invalid(honest: tuple[list[PhaseResult], Any]) -> None:
    """Only the event-loop lag goes to the lag rule: a phase bound for another reason (here no
    lag at all, only the guard's mark) stays INVALID."""
    phases, cfg = honest
    marked = [
        dataclasses.replace(
            p, summary=p.summary.model_copy(update={"client_bound": "phase rate above ceiling"})
        )
        if p.spec.role in ("reference", "audit")
        else p
        for p in phases
    ]
    result = get_test("test04").verify(marked, cfg)
    assert result.verdict == "INVALID"
    assert result.evidence is None or result.evidence.decision.client_lag is None
