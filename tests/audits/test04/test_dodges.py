"""Caches that know how auditkit works (issue 22, docs/validity.md "Dodges"): each must FAIL at
the defaults, offline and single-stream, on the virtual clock; an honest server still PASSes."""

from __future__ import annotations

from typing import Any

import pytest

from auditkit.resources import default_dataset
from tests.audits.conftest import SimulatedAudit


def _prefilled(key: str, cache: str = "none") -> dict[str, Any]:
    behaviour = {"prepopulate": str(default_dataset()), "cache_key": key}
    return {"cache": cache, "behaviour": behaviour}


#: name → mock settings of a cache that tries to hide from the audit
DODGES: dict[str, dict[str, Any]] = {
    # the public dataset in a response cache keyed on the prompt without a leading [...] tag:
    # the salted reference, the salted twins and the repeated sample all hit it
    "prefilled, tag stripped": _prefilled("strip_tag"),
    # the same keyed on the prompt's set of words (a semantic cache)
    "prefilled, words": _prefilled("words"),
    # tag-blind and learning at run time as well
    "prefilled + run-time, tag stripped": _prefilled("strip_tag", cache="output"),
    # a semantic cache learning at run time only (no dataset beforehand)
    "run-time, words": {"cache": "output", "behaviour": {"cache_key": "words"}},
}
#: run in the quick loop, at half the default size (the rest run at the defaults, marked slow)
QUICK = {("prefilled, tag stripped", "single-stream")}


def _cases() -> list[Any]:
    out = []
    for name in DODGES:
        for scenario in ("offline", "single-stream"):
            marks = [] if (name, scenario) in QUICK else [pytest.mark.slow]
            out.append(pytest.param(name, scenario, marks=marks, id=f"{name}-{scenario}"))
    return out


@pytest.mark.parametrize(("name", "scenario"), _cases())
def test_a_cache_that_knows_auditkit_fails(
    simulated_audit: SimulatedAudit, name: str, scenario: str
) -> None:
    size = {"samples": 128} if (name, scenario) in QUICK else {}
    run = simulated_audit("test04", mock=DODGES[name], load={"scenario": scenario}, **size)
    result = run.result
    assert result.verdict == "FAIL", result.reason
    evidence = result.evidence
    assert evidence is not None and evidence.fingerprint is not None
    # the fingerprint never says "none" beside a FAIL; streamed (the default), it names each
    # of these: a response cache (a pre-filled one by the never-seen controls, as it answered
    # the reference too)
    assert evidence.fingerprint.kind == "response cache", evidence.fingerprint.evidence


@pytest.mark.slow
def test_the_prefilled_tag_blind_cache_is_seen_by_the_never_seen_controls(
    simulated_audit: SimulatedAudit,
) -> None:
    """The salted twins hit the tag-blind cache as their originals do (no contrast); only the
    prompts synthesised at run time are computed, so the dataset arm fires."""
    run = simulated_audit("test04", mock=DODGES["prefilled, tag stripped"], samples=128, rounds=0)
    decision = run.result.evidence.decision  # type: ignore[union-attr]
    assert decision is not None and decision.dataset_vs_control is not None
    assert decision.dataset_vs_control.fired
    assert decision.control is not None and not decision.control.primed
    # upstream's rule sees every phase equally fast
    assert run.result.upstream_verdict == "PASS"


@pytest.mark.parametrize(
    "scenario", ["offline", pytest.param("single-stream", marks=pytest.mark.slow)]
)
def test_honest_server_passes_with_its_controls_centred_on_one(
    simulated_audit: SimulatedAudit, scenario: str
) -> None:
    run = simulated_audit(
        "test04", mock={"jitter_cv": 0.1}, load={"scenario": scenario}, samples=128
    )
    decision = run.result.evidence.decision  # type: ignore[union-attr]
    assert run.result.verdict == "PASS", run.result.reason
    for arm in (decision.repeated_vs_control, decision.dataset_vs_control):
        assert arm is not None and arm.median_ratio is not None
        assert 0.9 < arm.median_ratio < 1.1
        # the controls are as long as what they control for
        assert arm.measured_prompt_tokens == arm.control_prompt_tokens
