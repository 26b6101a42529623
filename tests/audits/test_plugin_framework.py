"""A new audit is one module plus one registry entry: an audit defined here, in the test, runs
end to end through the CLI and the notebook runner without any other file knowing about it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from auditkit.audits import REGISTRY, AuditTest, build_config, register, unregister
from auditkit.cli import main
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import AuditResult, Evidence, PhaseResult


class TinySettings(BaseModel):
    """The tiny audit's block (`test99:` in YAML; --queries / --max-failures on the CLI)."""

    model_config = ConfigDict(extra="forbid")

    queries: int = Field(6, ge=1, description="distinct samples to send")
    max_failures: int = Field(0, ge=0, description="failed queries allowed")


class TinyEvidence(Evidence):
    completed: int
    failed: int


class TinyAudit(AuditTest[TinySettings, TinyEvidence]):
    """TEST99: does every query of a short single-stream phase come back?"""

    id: ClassVar[str] = "TEST99"
    key: ClassVar[str] = "test99"
    title: ClassVar[str] = "Every reply arrives"
    settings_model = TinySettings
    evidence_model = TinyEvidence
    submission_name: ClassVar[str | None] = "tiny_test"

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        if self.settings(cfg).queries > len(dataset):
            raise InputError("test99.queries exceeds the dataset")

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        queries = self.settings(cfg).queries
        load = LoadPattern("single-stream")
        return [RunSpec("probe", SampleOrder.without_replacement(0), queries, load)]

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[TinyEvidence]:
        s = phases[0].summary
        allowed = self.settings(cfg).max_failures
        passed = s.failed <= allowed
        return self.result_model(
            test=self.id,
            verdict="PASS" if passed else "FAIL",
            reason=f"{s.completed} of {s.requested} replies arrived ({s.failed} failed)",
            scenario=cfg.load.scenario,
            evidence=TinyEvidence(completed=s.completed, failed=s.failed),
            phases={s.name: s},
            config=cfg.redacted(),
        )


@pytest.fixture
def tiny() -> Iterator[TinyAudit]:
    audit = TinyAudit()
    register(audit)
    try:
        yield audit
    finally:
        unregister(audit.key)


def test_registering_adds_a_config_block_and_flags(tiny: TinyAudit) -> None:
    cfg = build_config({"test99": {"queries": 3}})
    assert tiny.settings(cfg).queries == 3
    with pytest.raises(InputError, match=r"test99\.queries"):
        build_config({"test99": {"queries": 0}})
    assert "test99" in REGISTRY


def test_plugin_runs_through_the_cli(
    tiny: TinyAudit, mock_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["run", "test99", "--url", mock_url, "--queries", "5", "--output-dir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("TEST99 PASS: 5 of 5 replies arrived")
    result = json.loads((tmp_path / "TEST99" / "audit_result.json").read_text())
    assert result["evidence"] == {"completed": 5, "failed": 0}
    assert (tmp_path / "TEST99" / "probe" / "records.parquet").is_file()
    submission = json.loads((tmp_path / "audit" / "audit_tiny_test.json").read_text())
    assert submission["test"] == "tiny_test" and submission["passed"] is True


def test_plugin_flags_are_its_config_fields(
    tiny: TinyAudit, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "test99", "--help"])
    help_text = capsys.readouterr().out
    assert "--queries" in help_text and "--max-failures" in help_text
    assert "--audit-samples" not in help_text  # TEST04's flags belong to TEST04


@pytest.mark.slow
def test_plugin_runs_through_the_notebook_runner(
    tiny: TinyAudit,
    mock_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the kernel is another process: it registers the plug-in from this very file
    monkeypatch.setenv("AUDITKIT_PLUGINS", f"{Path(__file__)}:TinyAudit")
    code = main(
        [
            "notebook", "test99", "-p", "url", mock_url, "-p", "queries", "4",
            "--output-dir", str(tmp_path),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "TEST99 PASS" in captured.out
    assert (tmp_path / "test99.ipynb").is_file()
    result = json.loads((tmp_path / "TEST99" / "audit_result.json").read_text())
    assert result["verdict"] == "PASS" and result["evidence"]["completed"] == 4


def test_notebook_runner_rejects_an_unknown_parameter_of_the_plugin(
    tiny: TinyAudit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["notebook", "test99", "-p", "querys", "4", "--output-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "unknown parameter 'querys'" in err and "did you mean queries" in err
    assert len(err.splitlines()) == 1
