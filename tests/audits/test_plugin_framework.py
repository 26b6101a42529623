"""A new audit is one module plus one registry entry: an audit built from the kit here, in the
test, runs end to end through the CLI and the notebook runner without any other file knowing
about it. TEST99 asks TEST04's question with the kit's parts: alternating block pairs of distinct
samples (reference) and one repeated sample (audit), the pair bootstrap's interval of their
score ratio against 1 + threshold, and upstream's verify_performance.txt."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from auditkit.audits import (
    PLUGINS_ENV,
    REGISTRY,
    AuditTest,
    build_config,
    load_plugins,
    register,
    unregister,
)
from auditkit.audits.kit import designs, upstream
from auditkit.audits.kit.phases import check_samples, phase_problem, query_size
from auditkit.audits.kit.ratio import StatisticalView, statistical_view
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.cli import main
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.plan import LoadPattern, Role, RunSpec
from auditkit.results import AuditResult, Evidence, PhaseResult

# --- the audit: 85 lines, this line excluded, to the end of RepeatAudit (at most 120) ------
REFERENCE: Role = "reference"
AUDIT: Role = "audit"
PAIRS = 8
VERIFY = upstream.VERIFY_PERFORMANCE


class RepeatSettings(BaseModel):
    """TEST99's block (`test99:` in YAML; --queries, --threshold, ... on the CLI)."""

    model_config = ConfigDict(extra="forbid")

    queries: int = Field(64, ge=1, description="queries of each role, in PAIRS blocks each")
    threshold: float = Field(0.10, gt=0, lt=1, description="FAIL above 1 + threshold")
    sample: int = Field(0, ge=0, description="the dataset row the audit blocks repeat")
    seed: int = Field(0, ge=0, description="the distinct samples' order and the bootstrap's")


class RepeatEvidence(Evidence):
    interval: StatisticalView | None


class RepeatAudit(AuditTest[RepeatSettings, RepeatEvidence]):
    """TEST99: is one repeated sample served faster than distinct ones?"""

    id: ClassVar[str] = "TEST99"
    key: ClassVar[str] = "test99"
    title: ClassVar[str] = "Repeats are not faster"
    settings_model = RepeatSettings
    evidence_model = RepeatEvidence
    submission_name: ClassVar[str | None] = "tiny_test"

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        s = self.settings(cfg)
        check_samples("test99.queries (+ the repeated row)", s.queries + 1, len(dataset))
        check_samples("test99.sample", s.sample + 1, len(dataset))
        timed = cfg.load.min_duration_s > 0
        designs.check_blocks(self.key, "alternating", PAIRS, s.queries, query_size(cfg.load), timed)

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        s = self.settings(cfg)
        sizes = designs.split(s.queries, PAIRS, query_size(cfg.load))
        load = LoadPattern.from_config(cfg.load, s.seed)
        distinct = SampleOrder.without_replacement(s.seed).excluding([s.sample])
        specs = []
        for slot in designs.alternating(REFERENCE, AUDIT, (sizes, sizes), [0] * PAIRS):
            repeat = slot.role == AUDIT
            order = SampleOrder.single(s.sample) if repeat else distinct.skip(slot.skip)
            specs.append(designs.spec(slot, order, load))
        return specs

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[RepeatEvidence]:
        s = self.settings(cfg)
        base = base_fields(self.id, cfg, phases)
        ref, aud = (designs.pool(role, phases) for role in (REFERENCE, AUDIT))
        base["phases"] |= {REFERENCE: ref.summary, AUDIT: aud.summary}
        r, a = ref.summary.score, aud.summary.score
        problem = phase_problem(phases)
        if problem or not r or not a:
            return invalid(self.result_model, base, problem or "a phase has no score")
        view = statistical_view(
            ref.records, aud.records, cfg.load.scenario, s.threshold, seed=s.seed
        )
        verdict = view.verdict if view else "INCONCLUSIVE"
        where = {"PASS": "below", "FAIL": "above", "INCONCLUSIVE": "straddles"}[verdict]
        interval = f"[{view.ci_low:.3g}, {view.ci_high:.3g}]" if view else "(too few queries)"
        return self.result_model(
            verdict=verdict,
            upstream_verdict="PASS" if upstream.below(r, a, s.threshold) else "FAIL",
            reason=f"repeated/distinct score ratio {a / r:.3f}, interval {interval} {where} "
            f"the {1 + s.threshold:.4g} limit",
            score_name=ref.summary.score_name,
            reference_score=r,
            audit_score=a,
            ratio=a / r,
            threshold=s.threshold,
            evidence=RepeatEvidence(interval=view),
            **base,
        )

    def files(self, result: AuditResult[RepeatEvidence]) -> dict[str, str]:
        r, a, up = result.reference_score, result.audit_score, result.upstream_verdict
        if r is None or a is None or up is None:
            return {VERIFY: upstream.verify_performance(None, False, failure=result.reason)}
        lines = upstream.verdict_lines(result.verdict, up, result.reason)
        return {VERIFY: upstream.verify_performance((f"{r}", f"{a}"), up == "PASS", lines)}


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture
def test99() -> Iterator[RepeatAudit]:
    audit = RepeatAudit()
    register(audit)
    try:
        yield audit
    finally:
        unregister(audit.key)


def run(out: Path, *args: str) -> tuple[int, dict[str, Any], str, dict[str, Any]]:
    """`auditkit run test99 ARGS`: exit code, audit_result.json, the verify file, submission."""
    code = main(["run", "test99", *args, "--output-dir", str(out)])
    result = json.loads((out / "TEST99" / "audit_result.json").read_text())
    verify = (out / "TEST99" / VERIFY).read_text()
    submission = json.loads((out / "audit" / "audit_tiny_test.json").read_text())
    return code, result, verify, submission


def test_registering_adds_a_config_block_and_flags(test99: RepeatAudit) -> None:
    cfg = build_config({"test99": {"queries": 32}})
    assert test99.settings(cfg).queries == 32
    with pytest.raises(InputError, match=r"test99\.queries"):
        build_config({"test99": {"queries": 0}})
    assert "test99" in REGISTRY


def test_plugin_flags_are_its_config_fields(
    test99: RepeatAudit, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "test99", "--help"])
    help_text = capsys.readouterr().out
    assert "--queries" in help_text and "--threshold" in help_text and "--sample" in help_text
    assert "--audit-samples" not in help_text  # TEST04's flags belong to TEST04


def test_plugin_passes_on_an_honest_simulated_mock(
    test99: RepeatAudit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result, verify, submission = run(tmp_path, "--mock-simulated")
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("TEST99 PASS: repeated/distinct score ratio")
    assert result["verdict"] == result["upstream_verdict"] == "PASS"
    view = result["evidence"]["interval"]
    assert view["verdict"] == "PASS" and view["ci_high"] < 1.10
    assert f"{PAIRS} reference/audit block pairs" in view["method"]  # the pair bootstrap
    # the blocks ran R A, A R, ...: each block is a phase of its own, pooled by role
    assert (tmp_path / "TEST99" / "audit_8" / "records.parquet").is_file()
    assert {"reference_1", "audit_1", "reference", "audit"} <= set(result["phases"])
    assert verify.startswith("Verifying performance.\nreference score = ")
    assert "\nTEST PASS\n" in verify and "auditkit: verdict PASS" in verify
    assert submission["test"] == "tiny_test" and submission["passed"] is True


def test_plugin_fails_an_output_cache(
    test99: RepeatAudit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the repeated sample is answered from the mock's cache after its first query
    code, result, verify, submission = run(tmp_path, "--mock-simulated", "--mock-cache", "output")
    out = capsys.readouterr().out
    assert code == 1, out
    assert out.startswith("TEST99 FAIL: repeated/distinct score ratio")
    assert result["verdict"] == result["upstream_verdict"] == "FAIL"
    assert result["evidence"]["interval"]["ci_low"] > 1.10
    assert "TEST FAIL: Test score invalid" in verify
    assert submission["passed"] is False and submission["auditkit_verdict"] == "FAIL"


def test_plugin_runs_through_the_cli_against_a_mock_server(
    test99: RepeatAudit, mock_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # real HTTP timing on a shared machine: a wide threshold, so noise cannot decide it
    code, result, verify, submission = run(tmp_path, "--url", mock_url, "--threshold", "0.9")
    assert code == 0, capsys.readouterr().out
    assert result["verdict"] == "PASS" and result["evidence"]["interval"]["limit"] == 1.9
    assert "\nTEST PASS\n" in verify and submission["passed"] is True


def test_plugin_rejects_a_design_it_cannot_run(
    test99: RepeatAudit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["run", "test99", "--mock-simulated", "--queries", "4", "--output-dir", str(tmp_path)]
    )
    assert code == 2
    assert f"needs at least {PAIRS} samples" in capsys.readouterr().err


@pytest.mark.slow
def test_plugin_runs_through_the_notebook_runner(
    test99: RepeatAudit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the kernel is another process: it registers the plug-in from this very file
    monkeypatch.setenv("AUDITKIT_PLUGINS", f"{Path(__file__)}:RepeatAudit")
    code = main(
        [
            "notebook", "test99", "-p", "mock_simulated", "true", "-p", "mock_cache", "output",
            "-p", "queries", "32", "--output-dir", str(tmp_path),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "TEST99 FAIL" in captured.out
    assert (tmp_path / "test99.ipynb").is_file()
    result = json.loads((tmp_path / "TEST99" / "audit_result.json").read_text())
    assert result["verdict"] == "FAIL" and result["evidence"]["interval"]["verdict"] == "FAIL"
    assert "TEST FAIL: Test score invalid" in (tmp_path / "TEST99" / VERIFY).read_text()


def test_notebook_runner_rejects_an_unknown_parameter_of_the_plugin(
    test99: RepeatAudit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["notebook", "test99", "-p", "querys", "4", "--output-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "unknown parameter 'querys'" in err and "did you mean queries" in err
    assert len(err.splitlines()) == 1


def test_a_plugin_file_loads_with_its_postponed_annotations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # this file says `from __future__ import annotations`: pydantic resolves RepeatEvidence's
    # `StatisticalView` through sys.modules, so the loader must put the module there
    monkeypatch.setenv(PLUGINS_ENV, f"{Path(__file__)}:RepeatAudit")
    monkeypatch.setattr(sys, "modules", dict(sys.modules))  # the loaded copy goes with it
    try:
        load_plugins()
        loaded = REGISTRY["test99"]
        assert type(loaded) is not RepeatAudit  # a copy from the file, not this module's
        assert loaded.evidence_model(interval=None).interval is None
    finally:
        unregister("test99")
