"""The audit-test plug-in contract (DESIGN §3).

An audit is one module (or package) under `auditkit/audits/` plus one registry entry. It owns
everything that is specific to it, and the generic parts (runner, CLI, suite, artifacts,
notebooks, review) only ask it. `AuditTest[S, E]` is generic over the audit's settings model `S`
and evidence model `E`, so every hook is typed with the audit's own models.

Required: the declarations `id`, `key`, `title`, `settings_model` (its fields become CLI flags
and notebook parameters), `evidence_model`, and three hooks: `validate`, `plan`, `verify` (pure).
Optional, with defaults:

| what          | hooks and declarations                                          |
|---------------|-----------------------------------------------------------------|
| config block  | `with_run_rules`, `dataset_defaults`, `resolve`                 |
| phases        | `extend` (more rounds), `applies` (the suite skips it when not) |
| verdict       | `invalid`, `advice` (the "next:" step after a verdict)          |
| files         | `files`, `submission_name`                                      |
| LoadGen logs  | `log_inputs`, `verify_logs`                                     |
| reports       | `summary`, `notebook`, `describe`, `report_text`, `summary_lines`, |
|               | `panel_label` (or `panel_rows`)                                 |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from auditkit.config import AuditConfig
from auditkit.data import Dataset
from auditkit.errors import InputError
from auditkit.loadgen_logs import LogFile, read_log_file
from auditkit.plan import RunSpec
from auditkit.results import AuditResult, EvidenceT, PhaseResult, PhaseSummary

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class AuditSettings(BaseModel):
    """Base of an audit's settings block: nothing undeclared, assignments validated."""

    __test__ = False  # "Test…Config" names are not pytest test classes
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AuditTest(ABC, Generic[SettingsT, EvidenceT]):
    """A compliance test: plans its phases, validates input up front, verifies purely."""

    __test__ = False  # "Test…" names are not pytest test classes

    #: report id and artifact folder name, e.g. "TEST04"
    id: ClassVar[str]
    #: registry key, YAML block, CLI and notebook name, e.g. "test04"
    key: ClassVar[str]
    title: ClassVar[str]
    #: the audit's own config block (its fields become CLI flags and notebook parameters)
    settings_model: type[SettingsT]
    #: the audit's evidence (audit_result.json's `evidence`)
    evidence_model: type[EvidenceT]
    #: MLPerf submission checker's name: <output_dir>/audit/audit_<name>.json (None: no file)
    submission_name: ClassVar[str | None] = None
    #: the audit's own notebook file name in the packaged notebooks (None: the generic one)
    notebook: ClassVar[str | None] = None
    #: one line for `auditkit run --help`
    summary: ClassVar[str] = ""
    #: names of the LoadGen files `auditkit verify` takes (flags --<name> PATH); () = none
    log_inputs: ClassVar[tuple[str, ...]] = ()
    #: each input's help (default: "the <name> run's mlperf_log_summary.txt")
    log_help: ClassVar[dict[str, str]] = {}
    #: the settings `auditkit verify` offers as flags (the ones that mean something for files)
    verify_fields: ClassVar[tuple[str, ...]] = ()
    #: the notebook verdict panel's label for the `summary_lines` (None: no rows by default)
    panel_label: ClassVar[str | None] = None

    # --- configuration -------------------------------------------------------------------

    def settings(self, cfg: AuditConfig) -> SettingsT:
        """This audit's block of `cfg` (the registry's run config has one field per audit; a
        plain AuditConfig has none, which means the audit's defaults)."""
        block = getattr(cfg, self.key, None)
        if block is None:
            return self.settings_model()
        if not isinstance(block, self.settings_model):
            raise TypeError(
                f"config block {self.key!r} is a {type(block).__name__}, "
                f"not {self.settings_model.__name__}"
            )
        return block

    def with_run_rules(self, cfg: AuditConfig) -> AuditConfig:
        """`cfg` with MLPerf's run-rule floors applied to this audit's block (default: as is)."""
        return cfg

    def dataset_defaults(self, cfg: AuditConfig) -> AuditConfig:
        """`cfg` with this audit's own dataset when the user named none (default: as is;
        called before the dataset is read)."""
        return cfg

    def resolve(self, cfg: AuditConfig, dataset: Dataset) -> AuditConfig:
        """`cfg` with what the run decides filled in (e.g. a random nonce), so config.yaml and
        the verdict record it (default: as is)."""
        return cfg

    def applies(self, cfg: AuditConfig) -> str | None:
        """None when this audit applies to the endpoint `cfg` describes, else the one-line
        reason the suite skips it (default: applies)."""
        return None

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
    def result_model(self) -> type[AuditResult[EvidenceT]]:
        """The typed result this audit writes and reads back (audit_result.json)."""
        return AuditResult[self.evidence_model]  # type: ignore[name-defined]

    @abstractmethod
    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[EvidenceT]:
        """The verdict: a pure function of the phase results and the config."""

    def invalid(
        self, cfg: AuditConfig, ran: dict[str, PhaseSummary], reason: str
    ) -> AuditResult[EvidenceT]:
        """INVALID because the plan did not finish (never PASS/FAIL from partial data)."""
        return self.result_model(
            test=self.id,
            verdict="INVALID",
            reason=f"INVALID: {reason}",
            scenario=cfg.load.scenario,
            phases=ran,
            config=cfg.redacted(),
        )

    def advice(self, result: AuditResult[EvidenceT]) -> str:
        """The one action that helps most after this verdict ("next:"; default: generic)."""
        if result.verdict == "PASS" and self.submission_name:
            return "keep <output_dir>/audit/ (the submission checker's record) with the submission"
        return generic_advice(result)

    # --- files and reports ----------------------------------------------------------------

    def files(self, result: AuditResult[EvidenceT]) -> dict[str, str]:
        """Audit-specific verdict files beside audit_result.json: relative path → text
        (the artifacts module writes them atomically; default: none)."""
        return {}

    def read_log_input(self, name: str, path: str) -> LogFile:
        """One `auditkit verify` input read from `path` (default: a summary and the detail
        log beside it)."""
        return read_log_file(path)

    def verify_logs(
        self, inputs: dict[str, LogFile], settings: SettingsT
    ) -> tuple[AuditResult[EvidenceT], dict[str, str]]:
        """The verdict from saved LoadGen logs, and extra files to write (relative path → text)."""
        raise InputError(f"{self.key} cannot be verified from LoadGen logs")

    def describe(self, cfg: AuditConfig) -> str:
        """One line saying what a run with `cfg` is about to do."""
        where = cfg.endpoint.url or f"embedded mock (cache={cfg.mock.cache})"
        return f"{self.id} against {where}, api {cfg.endpoint.api}, {cfg.load.scenario}"

    def report_text(self, result: AuditResult[EvidenceT]) -> str:
        """The verdict as text (`auditkit verify` prints it)."""
        lines = [f"{result.test} {result.verdict}: {result.reason}"]
        lines += self.summary_lines(result)
        return "\n".join(lines) + "\n"

    def summary_lines(self, result: AuditResult[EvidenceT]) -> list[str]:
        """Lines the CLI prints under the verdict line (scores, evidence)."""
        return []

    def panel_rows(self, result: AuditResult[EvidenceT]) -> list[tuple[str, str]]:
        """(label, plain text) rows the notebook's verdict panel shows under the reason
        (default: each of `summary_lines` labelled `panel_label`; none without a label)."""
        label = self.panel_label
        return [] if label is None else [(label, line) for line in self.summary_lines(result)]


def generic_advice(result: AuditResult[EvidenceT]) -> str:
    """The "next:" step for any audit: what a verdict of this kind asks for."""
    if result.verdict == "PASS":
        return "keep <output_dir>/<TEST>/ (and <output_dir>/audit/ when written) with the results"
    if result.verdict == "FAIL":
        return (
            "the evidence rows and the audit's verify file say which check broke; fix the "
            "endpoint and rerun (the earlier run moves to previous/)"
        )
    if result.verdict == "INCONCLUSIVE":
        return "rerun with more queries (raise --samples) or a quieter endpoint"
    if "client" in result.reason.lower():
        return (
            "the load generator, not the endpoint, set the pace: rerun with more load-generator "
            "processes (--workers) or a lower --max-concurrency, or on a machine with more "
            "free CPU"
        )
    return (
        "see why queries failed (failures_by_status in each phase.json, the error column of "
        "records.parquet; docs/results.md), fix the endpoint or the settings, then rerun"
    )
