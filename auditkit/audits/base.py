"""The audit-test plug-in protocol (DESIGN §3)."""

from __future__ import annotations

from typing import Protocol

from auditkit.config import AuditConfig
from auditkit.data import Dataset
from auditkit.plan import RunSpec
from auditkit.results import AuditResult, PhaseResult


class AuditTest(Protocol):
    """A compliance test: plans its phases, validates input up front, verifies purely."""

    id: str
    title: str

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """The phases to run, in order."""
        ...

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        """Raise InputError before any phase runs if the config cannot give a valid audit."""
        ...

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult:
        """The verdict: a pure function of the phase results and the config."""
        ...
