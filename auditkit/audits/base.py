"""The audit-test plug-in contract (DESIGN §3).

An audit is one module (or package) under `auditkit/audits/` plus one registry entry. It owns
everything that is specific to it, and the generic parts (runner, CLI, artifacts, notebooks,
review) only ask it:

| what                          | attribute / method                          |
|-------------------------------|---------------------------------------------|
| its YAML block, CLI flags and notebook parameters | `key`, `settings_model` (fields → options) |
| its phases                    | `plan`, `validate`, `with_run_rules`, `resolve`, `extend` |
| its scoring                   | `verify` (pure), `invalid`                  |
| its evidence model            | `evidence_model` (→ `result_model`)         |
| its files                     | `files`, `verdict_files`, `submission_name` |
| re-verifying LoadGen logs     | `log_inputs`, `verify_logs`                 |
| how it reads in a report      | `describe`, `summary_lines`, `panel_rows`   |
| its notebook                  | `notebook` (None: the generic audit notebook) |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from auditkit.config import AuditConfig
from auditkit.data import Dataset
from auditkit.errors import InputError
from auditkit.loadgen_logs import LogFile
from auditkit.plan import RunSpec
from auditkit.results import AuditResult, Evidence, NoEvidence, PhaseResult, PhaseSummary

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class AuditTest(ABC):
    """A compliance test: plans its phases, validates input up front, verifies purely."""

    #: report id and artifact folder name, e.g. "TEST04"
    id: ClassVar[str]
    #: registry key, YAML block, CLI and notebook name, e.g. "test04"
    key: ClassVar[str]
    title: ClassVar[str]
    #: the audit's own config block (its fields become CLI flags and notebook parameters)
    settings_model: ClassVar[type[BaseModel]]
    evidence_model: ClassVar[type[Evidence]] = NoEvidence
    #: MLPerf submission checker's name: <output_dir>/audit/audit_<name>.json (None: no file)
    submission_name: ClassVar[str | None] = None
    #: the audit's own notebook file name in the packaged notebooks (None: the generic one)
    notebook: ClassVar[str | None] = None
    #: one line for `auditkit run --help`
    summary: ClassVar[str] = ""

    # --- configuration -------------------------------------------------------------------

    def settings(self, cfg: AuditConfig) -> Any:
        """This audit's block of `cfg` (typed by `settings_of` in the audit's own module)."""
        return getattr(cfg, self.key)

    def with_run_rules(self, cfg: AuditConfig) -> AuditConfig:
        """`cfg` with MLPerf's run-rule floors applied to this audit's block (default: as is)."""
        return cfg

    def resolve(self, cfg: AuditConfig, dataset: Dataset) -> AuditConfig:
        """`cfg` with what the run decides filled in (e.g. a random nonce), so config.yaml and
        the verdict record it (default: as is)."""
        return cfg

    # --- phases ----------------------------------------------------------------------------

    @abstractmethod
    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        """Raise InputError before any phase runs if the config cannot give a valid audit."""

    @abstractmethod
    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """The phases to run, in order."""

    def extend(
        self, cfg: AuditConfig, dataset: Dataset, phases: list[PhaseResult]
    ) -> list[RunSpec]:
        """More phases to run when `verify` said INCONCLUSIVE (default: none; [] ends it)."""
        return []

    # --- verdict -------------------------------------------------------------------------

    @property
    def result_model(self) -> type[AuditResult[Any]]:
        """The typed result this audit writes and reads back (audit_result.json)."""
        return AuditResult[self.evidence_model]  # type: ignore[name-defined]

    @abstractmethod
    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[Any]:
        """The verdict: a pure function of the phase results and the config."""

    def invalid(
        self, cfg: AuditConfig, ran: dict[str, PhaseSummary], reason: str
    ) -> AuditResult[Any]:
        """INVALID because the plan did not finish (never PASS/FAIL from partial data)."""
        return self.result_model(
            test=self.id,
            verdict="INVALID",
            reason=f"INVALID: {reason}",
            scenario=cfg.load.scenario,
            phases=ran,
            config=cfg.redacted(),
        )

    # --- files and reports ----------------------------------------------------------------

    def files(self, result: AuditResult[Any]) -> dict[str, str]:
        """Audit-specific verdict files beside audit_result.json: relative path → text
        (the artifacts module writes them atomically; default: none)."""
        return {}

    def verdict_files(self) -> tuple[str, ...]:
        """Relative paths of every file `files` may return, so a new run removes an old
        verdict before it starts."""
        return ()

    # --- re-verifying saved logs (optional) ----------------------------------------------

    #: names of the LoadGen summaries `auditkit verify` takes (flags --<name> FILE); () = none
    log_inputs: ClassVar[tuple[str, ...]] = ()

    def verify_logs(
        self, inputs: dict[str, LogFile], settings: Any
    ) -> tuple[AuditResult[Any], dict[str, str]]:
        """The verdict from saved LoadGen logs, and extra files to write (relative path → text)."""
        raise InputError(f"{self.key} cannot be verified from LoadGen logs")

    def describe(self, cfg: AuditConfig) -> str:
        """One line saying what a run with `cfg` is about to do."""
        where = cfg.endpoint.url or f"embedded mock (cache={cfg.mock.cache})"
        return f"{self.id} against {where}, api {cfg.endpoint.api}, {cfg.load.scenario}"

    def report_text(self, result: AuditResult[Any]) -> str:
        """The verdict as text (`auditkit verify` prints it)."""
        lines = [f"{result.test} {result.verdict}: {result.reason}"]
        lines += self.summary_lines(result)
        return "\n".join(lines) + "\n"

    def summary_lines(self, result: AuditResult[Any]) -> list[str]:
        """Lines the CLI prints under the verdict line (scores, evidence)."""
        return []

    def panel_rows(self, result: AuditResult[Any]) -> list[tuple[str, str]]:
        """(label, plain text) rows the notebook's verdict panel shows under the reason."""
        return []


def settings_of(cfg: AuditConfig, key: str, model: type[SettingsT]) -> SettingsT:
    """An audit's typed block of `cfg` (the registry's run config has one field per audit; a
    plain AuditConfig has none, which means the audit's defaults)."""
    block = getattr(cfg, key, None)
    if block is None:
        return model()
    if not isinstance(block, model):
        raise TypeError(f"config block {key!r} is a {type(block).__name__}, not {model.__name__}")
    return block
