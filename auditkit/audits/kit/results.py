"""The fields every audit's result starts from, and its INVALID result. Pure."""

from __future__ import annotations

from typing import Any

from auditkit.audits.kit.phases import measured
from auditkit.config import AuditConfig
from auditkit.results import AuditResult, PhaseResult


def base_fields(test_id: str, cfg: AuditConfig, phases: list[PhaseResult]) -> dict[str, Any]:
    """test, scenario, the measured phases' summaries (by name) and the redacted config."""
    return {
        "test": test_id,
        "scenario": cfg.load.scenario,
        "phases": {p.name: p.summary for p in measured(phases)},
        "config": cfg.redacted(),
    }


def invalid(model: type[AuditResult[Any]], fields: dict[str, Any], problem: str) -> Any:
    """The INVALID result for `problem` (`fields` from `base_fields`)."""
    return model(verdict="INVALID", reason=f"INVALID: {problem}", **fields)
