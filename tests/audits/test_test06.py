"""TEST06 (output consistency) on a virtual clock: honest passes with upstream's three lines;
each misbehaviour fails its own check. The checks themselves, purely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditkit.audits.test06 import check, eos_fails, trailing_markers
from auditkit.results import LoggedOutput
from auditkit.runner import AuditRun
from tests.audits.conftest import SimulatedAudit


def evidence(run: AuditRun) -> Any:
    """The run's evidence (present on PASS and FAIL)."""
    assert run.result.evidence is not None
    return run.result.evidence


def test_honest_endpoint_passes_with_upstreams_lines(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    run = simulated_audit("test06")
    assert run.result.verdict == "PASS", run.result.reason
    assert evidence(run).count_source == "logprobs"
    text = (tmp_path / "TEST06" / "verify_accuracy.txt").read_text()
    assert text.startswith(
        "First token check pass: True\nEOS check pass: True\nSample length check pass: True\n"
        "TEST06 verification complete\n"
    )
    assert (tmp_path / "audit" / "audit_consistency_output_test.json").is_file()


@pytest.mark.parametrize(
    ("misbehaviour", "failed"),
    [
        ({"inflate_tokens": 2}, "sample_length_pass"),
        ({"fake_first_token": True}, "first_token_pass"),
        ({"repeat_stop": 2}, "eos_pass"),
    ],
)
def test_each_misbehaviour_fails_its_check(
    simulated_audit: SimulatedAudit, tmp_path: Path, misbehaviour: dict[str, Any], failed: str
) -> None:
    run = simulated_audit("test06", misbehaviour)
    assert run.result.verdict == "FAIL" and run.result.upstream_verdict == "FAIL"
    ev = evidence(run).model_dump()
    assert ev[failed] is False
    others = {"sample_length_pass", "first_token_pass", "eos_pass"} - {failed}
    assert all(ev[k] for k in others), ev


def test_a_single_stop_marker_is_fine_two_are_not() -> None:
    markers = ["</s>", "<|eot_id|>"]
    assert trailing_markers("an answer</s>", markers) == 1
    assert trailing_markers("an answer </s> <|eot_id|>\n", markers) == 2
    assert trailing_markers("no marker", markers) == 0


@pytest.mark.parametrize(
    ("text", "fails"),
    [
        ("an answer</s>", False),
        ("an answer</s></s>", True),
        ("</s></s>", False),  # upstream's scan skips token 0: one EOS counted
        (" </s> <|eot_id|>\n", False),
        ("</s></s></s>", True),
        ("</s>", False),
        ("x</s></s>", True),
    ],
)
def test_eos_check_matches_upstream(text: str, fails: bool) -> None:
    assert eos_fails(text, ["</s>", "<|eot_id|>"]) is fails


def test_an_output_of_exactly_two_eos_passes_the_check() -> None:
    markers = ["</s>"]
    two = out(0, "</s></s>", output_tokens=2, logprob_tokens=2)
    three = out(1, "</s></s></s>", output_tokens=3, logprob_tokens=3)
    assert check({0: two}, {0: two}, markers, 32).eos_pass
    assert not check({1: three}, {1: three}, markers, 32).eos_pass


def out(row: int, text: str, **kw: Any) -> LoggedOutput:
    kw.setdefault("output_tokens", len(text.split()))
    kw.setdefault("logprob_tokens", len(text.split()))
    return LoggedOutput(row, row, "main", text, first_chunk=text.split()[0], **kw)


def test_tokens_fall_back_to_chunks_and_finish_reason_needs_max_tokens() -> None:
    s = LoggedOutput(0, 0, "main", "a b c", 3, "a", "length", chunks=3)
    ev = check({0: s}, {0: out(0, "a b c")}, ["</s>"], max_tokens=3)
    assert ev.count_source == "chunks" and ev.sample_length_pass and ev.finish_reason_pass
    short = check({0: s}, {0: out(0, "a b c")}, ["</s>"], max_tokens=8)
    assert not short.finish_reason_pass  # "length" after 3 of 8 tokens
