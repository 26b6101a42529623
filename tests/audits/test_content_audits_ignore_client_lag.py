"""Audits whose verdict reads answers (TEST06, TEST07, TEST09) are not made INVALID by a
client that ran late or bounded a phase: no answer changes with the client's timing. A timed
audit (TEST05) still is."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from auditkit.audits import load_config
from auditkit.results import PhaseResult
from auditkit.runner import prepare

from .conftest import SMALL, SimulatedAudit

LATE = "client event loop ran 54 ms late (p99): the client was saturated"


def _late(phases: list[PhaseResult]) -> list[PhaseResult]:
    return [replace(p, summary=p.summary.model_copy(update={"client_bound": LATE})) for p in phases]


@pytest.mark.parametrize(("key", "stands"), [("test06", True), ("test09", True), ("test05", False)])
def test_a_late_client_loop_decides_only_timed_verdicts(
    key: str, stands: bool, simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit(key)
    over = {"mock": {"simulated": True}, "output_dir": str(tmp_path), key: SMALL.get(key, {})}
    prepared = prepare(load_config(None, over), key)
    again = prepared.test.verify(_late(run.phases), prepared.cfg)
    assert run.result.verdict in ("PASS", "FAIL")
    if stands:
        assert again.verdict == run.result.verdict, again.reason
    else:
        assert again.verdict == "INVALID" and LATE in again.reason
