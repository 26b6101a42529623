"""TEST06 (output consistency) on a virtual clock: honest passes with upstream's three lines;
each misbehaviour fails its own check. The checks themselves, purely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from auditkit.audits.kit import tokens as tok
from auditkit.audits.test06 import check, eos_fails, logs, trailing_markers
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
        "First token check pass: Skipped\nEOS check pass: True\nSample length check pass: True\n"
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
    # a filler first token is the start of the stream's own output: upstream's rule on the
    # stream's accuracy log cannot see it; auditkit's (vs the non-streamed answer) does
    upstream = "PASS" if failed == "first_token_pass" else "FAIL"
    assert run.result.verdict == "FAIL" and run.result.upstream_verdict == upstream
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


def out(row: int, text: str, **kw: Any) -> LoggedOutput:
    kw.setdefault("output_tokens", len(text.split()))
    words = text.split()
    kw.setdefault("logprob_texts", tuple(w if i == 0 else " " + w for i, w in enumerate(words)))
    kw.setdefault("first_chunk", words[0] if words else None)
    return LoggedOutput(row, row, "main", text, **kw)


def run_check(streamed: list[LoggedOutput], whole: list[LoggedOutput], max_tokens: int = 32,
              encoder: Any = None) -> tuple[Any, Any]:  # fmt: skip
    return check(streamed, whole, ["</s>"], max_tokens, tok.TokenSource(["</s>"], encoder))


def test_an_output_of_exactly_two_eos_passes_upstreams_check() -> None:
    two = out(0, "</s></s>", output_tokens=2, logprob_texts=("</s>", "</s>"))
    three = out(1, "x</s></s>", output_tokens=3, logprob_texts=("x", "</s>", "</s>"))
    _, entries = run_check([two], [two])
    assert logs.verify(entries, "Server", tok.STAND_IN_EOS).eos  # index 0 never examined
    _, entries = run_check([three], [three])
    assert not logs.verify(entries, "Server", tok.STAND_IN_EOS).eos


def test_several_tokens_per_chunk_are_counted_as_tokens_not_chunks() -> None:
    # an honest server sending the whole answer in one chunk: 5 tokens, 1 chunk
    s = out(0, "one two three four five", chunks=1)
    ev, entries = run_check([s], [s])
    assert ev.sample_length_pass and ev.count_source == "logprobs"
    assert logs.verify(entries, "Server", 2).sample_length
    # without logprobs (no tokenizer either): approximate, still not chunks
    bare = out(0, "one two three four five", chunks=1, logprob_texts=None)
    ev, _ = run_check([bare], [bare])
    assert ev.sample_length_pass and ev.count_source == "approximate"


def test_the_first_token_is_compared_as_a_token_not_a_text_prefix() -> None:
    # "Th" is a character prefix of "The": as text it would pass, as a token it does not
    streamed = out(0, "The answer", first_chunk="Th", logprob_texts=None)
    whole = out(0, "The answer", logprob_texts=None)
    ev, _ = run_check([streamed], [whole])
    assert not ev.first_token_pass


def test_finish_reason_length_needs_max_tokens() -> None:
    s = out(0, "a b c", finish_reason="length", chunks=3)
    ev, _ = run_check([s], [out(0, "a b c")], max_tokens=3)
    assert ev.sample_length_pass and ev.finish_reason_pass
    short, _ = run_check([s], [out(0, "a b c")], max_tokens=8)
    assert not short.finish_reason_pass  # "length" after 3 of 8 tokens
