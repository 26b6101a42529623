"""TEST05 (alternate seeds) on a virtual clock: an endpoint as fast off the official order
passes; one tuned to the official order fails. Upstream's rule, purely."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

from auditkit.audits.test05 import limit_for, threshold_for
from auditkit.cli import main
from auditkit.config import MockConfig
from auditkit.mock import MockProcess
from auditkit.runner import AuditRun
from tests.audits.conftest import SimulatedAudit


def evidence(run: AuditRun) -> Any:
    """The run's evidence (present on PASS and FAIL)."""
    assert run.result.evidence is not None
    return run.result.evidence


def test_same_speed_on_alternate_seeds_passes(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit("test05")
    assert run.result.verdict == "PASS" and run.result.upstream_verdict == "PASS"
    assert "TEST PASS" in (tmp_path / "TEST05" / "verify_performance.txt").read_text()


def test_faster_on_the_official_order_fails(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit("test05", {"fast_order_seed": 0})
    assert run.result.verdict == "FAIL" and run.result.upstream_verdict == "FAIL"
    assert evidence(run).interval.ci_low > evidence(run).limit


def test_extra_rounds_while_inconclusive(simulated_audit: SimulatedAudit, tmp_path: Path) -> None:
    # 8 queries a phase cannot settle it on the virtual clock; two extra rounds do
    alone = simulated_audit("test05", samples=8, rounds=0, out=tmp_path / "none")
    assert alone.result.verdict == "INCONCLUSIVE"
    run = simulated_audit("test05", samples=8, rounds=2, out=tmp_path / "two")
    names = [p.name for p in run.phases]
    assert names[-4:] == ["alternate_x1", "reference_x1", "reference_x2", "alternate_x2"]
    assert run.result.verdict == "PASS", run.result.reason
    # each seed's order continues where its planned blocks stopped
    specs = {p.name: p.spec for p in run.phases}
    assert specs["reference_x1"].order.offset == 8 and specs["alternate_x2"].order.offset == 12
    assert specs["reference_x1"].samples == 4
    # the budget (measured queries) stops them: 16 planned + 8 a round > 20
    capped = simulated_audit("test05", samples=8, rounds=2, max_queries=20, out=tmp_path / "capped")
    assert capped.result.verdict == "INCONCLUSIVE" and len(capped.phases) == 5


def test_threshold_and_limit() -> None:
    assert threshold_for("single-stream", 1e9 / 150_000, None) == 0.20
    assert threshold_for("offline", 10.0, None) == 0.05
    assert abs(limit_for("offline", 0.05) - 1 / 0.95) < 1e-12


@pytest.mark.slow
@pytest.mark.timing
@pytest.mark.parametrize("fast_order", [False, True])
def test_end_to_end_against_the_mock_process(
    fast_order: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a fast mock (short answers) so 512 queries a phase take about half a second; not
    # streamed: streamed, this mock's own event-stream writing bounds both orders at about
    # 800 queries/s (its compute is then not the bound) and hides the speed-up it is told to give
    mock = MockConfig.model_validate(
        {
            "decode_us_per_token": 50.0,
            "misbehaviour": {"fast_order_seed": 0 if fast_order else None},
        }
    )
    with MockProcess(mock) as server:
        code = main(
            ["run", "test05", "--url", server.url, "--samples", "512", "--warmup", "32",
             "--output-dir", str(tmp_path), "--quiet", "--no-stream"]
        )  # fmt: skip
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "TEST05" / "audit_result.json").read_text())
    if fast_order:
        assert (code, result["verdict"], result["upstream_verdict"]) == (1, "FAIL", "FAIL"), out
    else:
        # honest: never FAIL. Half-second phases on a shared machine vary by several percent,
        # so upstream's point rule can false-FAIL here; the interval then says INCONCLUSIVE
        assert result["verdict"] in ("PASS", "INCONCLUSIVE") and code in (0, 5), out


summary = runpy.run_path(str(Path(__file__).parents[1] / "loadgen_samples.py"))["summary"]


def _verify(tmp_path: Path, ref: str, test: str, *extra: str) -> tuple[int, str, str]:
    (tmp_path / "r.txt").write_text(ref)
    (tmp_path / "t.txt").write_text(test)
    args = ["verify", "test05", "--reference", str(tmp_path / "r.txt"), "--test",
            str(tmp_path / "t.txt"), "--output-dir", str(tmp_path / "out"), "--overwrite",
            *extra]  # fmt: skip
    code = main(args)
    text = (tmp_path / "out" / "TEST05" / "verify_performance.txt").read_text()
    return code, text, text.split("\n\n")[0]


@pytest.mark.parametrize(
    ("scenario", "ref", "test", "passed"),
    [
        # today's LoadGen spells the SingleStream estimate "90.0th": the retired script missed it
        ("SingleStream", "1000000", "1049999", True),  # latency < ref × 1.05
        ("SingleStream", "1000000", "1050000", False),  # strict
        ("SingleStream", "200000", "239999", True),  # <= 200 µs: relaxed to 0.20
        ("Offline", "100.0", "95.1", True),  # throughput > ref × 0.95
        ("Offline", "100.0", "95.0", False),
    ],
)
def test_verify_reads_todays_loadgen_and_applies_the_retired_rule(
    tmp_path: Path, scenario: str, ref: str, test: str, passed: bool
) -> None:
    code, text, upstream_part = _verify(tmp_path, summary(scenario, ref), summary(scenario, test))
    assert code == (0 if passed else 1)
    assert upstream_part == (
        f"Verifying performance.\nreference score = {ref}\ntest score = {test}\n"
        + ("TEST PASS" if passed else "TEST FAIL: Test score invalid")
    )
    assert "not an MLPerf requirement since November 2024" in text


def test_verify_an_invalid_run_prints_upstreams_failure(tmp_path: Path) -> None:
    ok = summary("Offline", "100.0")
    code, _text, head = _verify(tmp_path, summary("Offline", "100.0", valid=False), ok)
    assert code == 4 and head == "Verifying performance.\nTEST FAIL: Reference results are invalid"
    code, _text, head = _verify(tmp_path, ok, summary("Offline", "100.0", valid=False))
    assert code == 4 and head.endswith("TEST FAIL: Test results are invalid")
