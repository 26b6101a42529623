"""auditkit's decision on synthetic records with known answers: certain PASS and FAIL, partial
caches, an unsettled look, a primed cache, drift, and upstream's INVALID passed through."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditkit.audits.kit.ratio import level_at_look
from auditkit.audits.test04.decision import (
    ClientLag,
    decide_with_certainty,
    drift_check,
    information_fractions,
)

MS = 1_000_000


def _phase(service_ms: np.ndarray, variant: str | list[str] = "main") -> pd.DataFrame:
    """Single-stream records: each query starts when the previous one completes."""
    service = (service_ms * MS).astype(np.int64)
    completed = np.cumsum(service)
    sent = completed - service
    return pd.DataFrame(
        {
            "query_id": np.arange(len(service)),
            "sample_index": np.arange(len(service)),
            "scheduled_ns": sent,
            "sent_ns": sent,
            "completed_ns": completed,
            "latency_ns": service,
            "status": "ok",
            "variant": variant,
        }
    )


def _decide(ref: pd.DataFrame, aud: pd.DataFrame, **kw: object) -> object:
    args: dict[str, object] = {
        "scenario": "single-stream",
        "threshold": 0.20,
        "upstream_verdict": "PASS",
        "upstream_reason": "upstream says so",
        "look": 1,
        "looks": 4,
        "salted": True,
    }
    args.update(kw)
    return decide_with_certainty(ref, aud, **args)  # type: ignore[arg-type]


def _noisy(n: int, median_ms: float, seed: int, cv: float = 0.1) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(median_ms), cv, n)


@pytest.mark.parametrize("seed", range(5))
def test_no_cache_passes_with_its_certainty(seed: int) -> None:
    decision = _decide(_phase(_noisy(256, 10, seed)), _phase(_noisy(256, 10, seed + 100)))
    assert decision.verdict == "PASS", decision.reason
    assert decision.interval is not None and decision.interval.ci_high < 1.2


def test_a_full_cache_fails() -> None:
    decision = _decide(_phase(_noisy(256, 10, 1)), _phase(_noisy(256, 1, 2)))
    assert decision.verdict == "FAIL" and "results cached" in decision.reason
    assert decision.interval is not None and decision.interval.ci_low > 1.2


def test_a_partial_cache_fails_although_the_p90_estimate_hides_it() -> None:
    """Misses on 15% of repeats put a miss at the early-stopping p90 estimate: the official
    score sees no speed-up, the median does."""
    rng = np.random.default_rng(3)
    audit = np.where(rng.random(256) < 0.15, _noisy(256, 10, 4), _noisy(256, 0.4, 5))
    decision = _decide(_phase(_noisy(256, 10, 6)), _phase(audit))
    assert decision.verdict == "FAIL", decision.reason
    assert "partial cache" in decision.reason
    assert decision.partial_cache is not None and decision.partial_cache.median_speedup > 5


def test_an_unsettled_look_is_inconclusive_with_the_queries_it_needs() -> None:
    # a real 1.2× speed-up sits right on the 1.2 limit: no interval can settle it quickly
    decision = _decide(_phase(_noisy(130, 12, 7, cv=0.3)), _phase(_noisy(130, 10, 8, cv=0.3)))
    assert decision.verdict == "INCONCLUSIVE", decision.reason
    assert "straddles" in decision.reason


def test_a_primed_cache_fails_by_the_control_group() -> None:
    """--no-salt: the dataset's prompts were cached before the run (fast), their salted twins
    were not; both phases are fast, so upstream's rule passes."""
    main = _noisy(240, 1, 9)
    twins = _noisy(16, 10, 10)
    service = np.concatenate([main, twins])
    variants = ["main"] * 240 + ["twin"] * 16
    ref = _phase(service, variants)
    ref.loc[240:, "sample_index"] = range(16)  # each twin is a twin of an earlier row
    decision = _decide(ref, _phase(_noisy(256, 1, 11)), salted=False)
    assert decision.verdict == "FAIL", decision.reason
    assert "before this run" in decision.reason
    assert decision.control is not None and decision.control.primed


def test_twins_like_their_originals_are_a_clean_self_check() -> None:
    service = _noisy(256, 10, 12)
    ref = _phase(service, ["main"] * 240 + ["twin"] * 16)
    ref.loc[240:, "sample_index"] = range(16)
    decision = _decide(ref, _phase(_noisy(256, 10, 13)))
    assert decision.control is not None and not decision.control.primed
    assert decision.control.median_ratio is not None
    assert decision.verdict == "PASS"


def test_a_salted_run_fails_on_its_control_when_the_originals_are_faster() -> None:
    """A cache that strips or ignores the salt can hold salted originals: the twins' evidence
    decides, never the assumption that the salt hides the prompts (issue 22)."""
    ref = _phase(
        np.concatenate([_noisy(240, 1, 9), _noisy(16, 10, 10)]), ["main"] * 240 + ["twin"] * 16
    )
    ref.loc[240:, "sample_index"] = range(16)
    decision = _decide(ref, _phase(_noisy(256, 1, 11)), salted=True)
    assert decision.control is not None and decision.control.primed
    assert decision.verdict == "FAIL"


def test_upstream_invalid_stays_invalid() -> None:
    decision = _decide(
        _phase(_noisy(256, 10, 14)),
        _phase(_noisy(256, 1, 15)),
        upstream_verdict="INVALID",
        upstream_reason="INVALID: audit: 3 failed queries",
    )
    assert decision.verdict == "INVALID" and "3 failed" in decision.reason


def test_drift_and_cold_start_are_reported() -> None:
    ramp = np.linspace(10, 7, 256) * np.random.default_rng(16).lognormal(0, 0.02, 256)
    ramp[:12] *= 3  # a cold start
    check = drift_check(_phase(ramp))
    assert check.change is not None and check.change < -0.1
    assert any("drifted" in n for n in check.notes)
    assert any("cold start" in n for n in check.notes)


def _controls(measured_ms: np.ndarray, control_ms: np.ndarray, audit_index: int) -> pd.DataFrame:
    """A control phase: the repeated row and fresh rows by turns, each followed by its control
    (measured_ms[i] then control_ms[i]); even pairs are the repeated row's."""
    times = np.ravel(np.column_stack([measured_ms, control_ms]))
    frame = _phase(times, ["main", "control"] * len(measured_ms))
    rows = [audit_index if i % 2 == 0 else 100 + i for i in range(len(measured_ms))]
    frame["sample_index"] = np.repeat(rows, 2)
    frame["output_tokens"] = 32
    frame["prompt_tokens"] = 50
    return frame


def test_never_seen_controls_fail_a_cache_the_score_ratio_cannot_see() -> None:
    """Every measured prompt served from a cache (reference, audit and twins alike): the ratio
    is 1, only prompts synthesised at run time are computed."""
    fast = _phase(_noisy(256, 1, 30))
    controls = _controls(_noisy(128, 1, 31), _noisy(128, 10, 32), audit_index=3)
    decision = _decide(fast, _phase(_noisy(256, 1, 33)), controls=controls, audit_index=3)
    assert decision.verdict == "FAIL", decision.reason  # type: ignore[attr-defined]
    assert decision.dataset_vs_control.fired  # type: ignore[attr-defined]
    assert decision.repeated_vs_control.fired  # type: ignore[attr-defined]


def test_honest_controls_centre_on_one_and_back_a_pass() -> None:
    controls = _controls(_noisy(128, 10, 34), _noisy(128, 10, 35), audit_index=3)
    ref, aud = _phase(_noisy(256, 10, 36)), _phase(_noisy(256, 10, 37))
    decision = _decide(ref, aud, controls=controls, audit_index=3)
    assert decision.verdict == "PASS", decision.reason  # type: ignore[attr-defined]
    arm = decision.repeated_vs_control  # type: ignore[attr-defined]
    assert arm.ci_low < 1.0 < arm.ci_high < 1.2


@pytest.mark.parametrize("bound_only", [True, False])
def test_a_saturated_client_keeps_a_control_fail_and_nothing_else(bound_only: bool) -> None:
    """A client-bound INVALID becomes FAIL when a control arm fires (the client can only hide
    a speed-up, and both sides of each pair met it); any other INVALID stays."""
    controls = _controls(_noisy(128, 1, 38), _noisy(128, 10, 39), audit_index=3)
    decision = _decide(
        _phase(_noisy(256, 1, 40)),
        _phase(_noisy(256, 1, 41)),
        upstream_verdict="INVALID",
        upstream_reason="INVALID: reference: client event loop ran late",
        controls=controls,
        audit_index=3,
        client_bound_only=bound_only,
    )
    assert decision.verdict == ("FAIL" if bound_only else "INVALID")  # type: ignore[attr-defined]


def _blocks(service_ms: np.ndarray, per_block: int) -> pd.DataFrame:
    """Pooled alternating blocks: block i holds queries i·per_block .. (i+1)·per_block − 1."""
    frame = _phase(service_ms)
    frame["block"] = np.arange(len(service_ms)) // per_block + 1
    return frame


def _lagged(ref: pd.DataFrame, aud: pd.DataFrame, lag: ClientLag, **kw: object) -> object:
    args: dict[str, object] = {
        "upstream_verdict": "INVALID",
        "upstream_reason": "INVALID: reference: client event loop ran 256 ms late (p99)",
    }
    return _decide(ref, aud, lag=lag, **(args | kw))


def test_a_late_client_loop_on_both_arms_alike_widens_and_is_reported() -> None:
    """A local server taking the client's cores: every block of both arms ran late. The lag
    cannot favour either arm, so the honest server PASSes and the lag is in the evidence."""
    ref, aud = _blocks(_noisy(256, 10, 50), 32), _blocks(_noisy(256, 10, 51), 32)
    every = tuple(range(1, 9))
    lag = ClientLag(reference_blocks=every, audit_blocks=every, worst_ms=256.0)
    decision = _lagged(ref, aud, lag)
    assert decision.verdict == "PASS", decision.reason  # type: ignore[attr-defined]
    assert decision.client_lag is not None and not decision.client_lag.decided  # type: ignore[attr-defined]
    assert "both arms alike" in decision.reason  # type: ignore[attr-defined]


def test_a_late_loop_in_a_few_pairs_that_decides_nothing_keeps_the_verdict() -> None:
    ref, aud = _blocks(_noisy(256, 10, 52), 32), _blocks(_noisy(256, 10, 53), 32)
    lag = ClientLag(reference_blocks=(2,), audit_blocks=(5,), worst_ms=80.0)
    decision = _lagged(ref, aud, lag)
    assert decision.verdict == "PASS", decision.reason  # type: ignore[attr-defined]
    evidence = decision.client_lag  # type: ignore[attr-defined]
    assert evidence.verdict_without == "PASS" and evidence.ci_without is not None
    view = decision.interval  # type: ignore[attr-defined]
    # the reported interval spans the readings with and without the lagged pairs
    assert view.ci_low <= evidence.ci_without[0] and view.ci_high >= evidence.ci_without[1]


def test_a_late_loop_on_one_arm_more_than_the_other_is_invalid() -> None:
    ref, aud = _blocks(_noisy(256, 10, 54), 32), _blocks(_noisy(256, 10, 55), 32)
    # 6 of 8 reference blocks and no audit block: more uneven than chance (p = 0.03)
    lag = ClientLag(reference_blocks=(1, 2, 3, 5, 6, 8), audit_blocks=(), worst_ms=120.0)
    decision = _lagged(ref, aud, lag)
    assert decision.verdict == "INVALID"  # type: ignore[attr-defined]
    assert "one arm more than the other" in decision.reason  # type: ignore[attr-defined]
    assert decision.client_lag.decided  # type: ignore[attr-defined]


def test_a_late_loop_spread_over_both_arms_by_chance_keeps_the_verdict() -> None:
    """Busy spells land on whichever block runs: 5 reference and 3 audit blocks late, too few
    lag-free pairs left to judge by; the spread is chance's, so the verdict stands."""
    ref, aud = _blocks(_noisy(256, 10, 62), 32), _blocks(_noisy(256, 10, 63), 32)
    lag = ClientLag(reference_blocks=(1, 2, 4, 6, 7), audit_blocks=(3, 5, 8), worst_ms=90.0)
    decision = _lagged(ref, aud, lag)
    assert decision.verdict == "PASS", decision.reason  # type: ignore[attr-defined]
    assert not decision.client_lag.decided  # type: ignore[attr-defined]


def test_a_late_loop_in_an_extra_round_only_goes_to_the_lag_rule_too() -> None:
    """Upstream's planned phases were valid; an extra round's blocks ran late: the same rule."""
    ref, aud = _blocks(_noisy(256, 10, 64), 32), _blocks(_noisy(256, 10, 65), 32)
    lag = ClientLag(reference_blocks=(1, 2, 3, 5, 6, 8), audit_blocks=(), worst_ms=70.0)
    decision = _lagged(ref, aud, lag, upstream_verdict="PASS")
    assert decision.verdict == "INVALID"  # type: ignore[attr-defined]
    assert "extra round" in decision.reason  # type: ignore[attr-defined]
    lag = ClientLag(reference_blocks=(7,), audit_blocks=(8,), worst_ms=70.0)
    assert _lagged(ref, aud, lag, upstream_verdict="PASS").verdict == "PASS"  # type: ignore[attr-defined]


def test_a_late_loop_that_could_decide_the_verdict_is_invalid() -> None:
    """The lagged pairs alone carry the spread that keeps the look from settling: without
    them the look would PASS, with them it does not. The lag decided it: INVALID."""
    ref_ms, aud_ms = _noisy(256, 10, 56, cv=0.02), _noisy(256, 10, 57, cv=0.02)
    ref_ms[:32] *= 3.0  # pair 1: the reference block ran late
    aud_ms[32:64] *= 3.0  # pair 2: the audit block ran late
    ref, aud = _blocks(ref_ms, 32), _blocks(aud_ms, 32)
    lag = ClientLag(reference_blocks=(1,), audit_blocks=(2,), worst_ms=300.0)
    decision = _lagged(ref, aud, lag)
    evidence = decision.client_lag  # type: ignore[attr-defined]
    assert evidence.verdict_without == "PASS"
    assert decision.verdict == "INVALID", decision.reason  # type: ignore[attr-defined]
    assert "could have decided" in decision.reason  # type: ignore[attr-defined]


def test_alpha_is_spent_over_the_looks_and_split_over_checks_for_fail_only() -> None:
    """O'Brien-Fleming-type spending: the levels add up to α over the looks, the last look
    keeps the most; a FAIL check's level is the look's share over the checks with data, a
    PASS route's over the routes (an intersection-union test needs no split over its ratios)."""
    fractions = information_fractions(4)
    assert fractions == pytest.approx((0.4, 0.6, 0.8, 1.0))
    levels = [level_at_look(0.05, fractions, k) for k in range(1, 5)]
    assert sum(levels) == pytest.approx(0.05)
    assert levels == sorted(levels) and levels[-1] > 0.05 / 4
    controls = _controls(_noisy(128, 10, 58), _noisy(128, 10, 59), audit_index=3)
    decision = _decide(
        _phase(_noisy(256, 10, 60)), _phase(_noisy(256, 10, 61)), controls=controls,
        audit_index=3, look=4,
    )  # fmt: skip
    assert decision.fail_checks == 4  # type: ignore[attr-defined]  # no twins in this run
    assert decision.alpha_per_look == pytest.approx(levels[-1] / 4)  # type: ignore[attr-defined]
    assert decision.pass_level == pytest.approx(levels[-1] / 2)  # type: ignore[attr-defined]
    view = decision.interval  # type: ignore[attr-defined]
    assert view.confidence == pytest.approx(1 - levels[-1] / 4 - levels[-1] / 2)


def _matched_controls(rep_ms: float, fresh_ms: float, seed: int) -> pd.DataFrame:
    """An honest control phase: the repeated row (rep_ms) and fresh rows (fresh_ms) by turns,
    each followed by a never-seen prompt as costly."""
    measured = np.where(np.arange(128) % 2 == 0, rep_ms, fresh_ms) * _noisy(128, 1, seed, 0.05)
    control = np.where(np.arange(128) % 2 == 0, rep_ms, fresh_ms) * _noisy(128, 1, seed + 1, 0.05)
    return _controls(measured, control, audit_index=3)


def test_the_partial_check_is_cost_matched_when_the_control_phase_ran() -> None:
    """A repeated sample 15 % cheaper than the fresh rows' median, on an honest server: the
    raw speed-up is 1.15 (its own cost), the never-seen prompts as long show the same 1.15, so
    the matched speed-up centres on 1.0 and the arms' route PASSes though the score straddles."""
    ref, aud = _phase(_noisy(256, 10, 70, 0.3)), _phase(_noisy(256, 10 / 1.15, 71, 0.3))
    plain = _decide(ref, aud)
    assert plain.partial_cache.matched is False  # type: ignore[attr-defined]
    assert plain.partial_cache.median_speedup > 1.1  # type: ignore[attr-defined]
    assert plain.verdict == "INCONCLUSIVE", plain.reason  # type: ignore[attr-defined]
    controls = _matched_controls(10 / 1.15, 10, 72)
    decision = _decide(ref, aud, controls=controls, audit_index=3)
    partial = decision.partial_cache  # type: ignore[attr-defined]
    assert partial.matched and partial.cost_ratio == pytest.approx(1.15, rel=0.05)
    assert partial.ci_low < 1.0 < partial.ci_high < 1.2
    assert decision.verdict == "PASS", decision.reason  # type: ignore[attr-defined]
    assert decision.fail_checks == 4  # type: ignore[attr-defined]  # no twins: one partial check


def test_clear_arms_do_not_pass_a_speed_up_only_the_audit_blocks_show() -> None:
    """A cache of the previous prompt only: the audit blocks' repeats are 1.2× faster (right at
    the limit), the control phase never repeats back to back, so both arms are clear. The arms'
    route also needs the matched partial check below the limit: INCONCLUSIVE, never PASS."""
    ref, aud = _phase(_noisy(256, 10, 73, 0.3)), _phase(_noisy(256, 10 / 1.2, 74, 0.3))
    decision = _decide(ref, aud, controls=_matched_controls(10, 10, 75), audit_index=3)
    assert decision.repeated_vs_control.ci_high < 1.2  # type: ignore[attr-defined]
    assert decision.dataset_vs_control.ci_high < 1.2  # type: ignore[attr-defined]
    assert decision.partial_cache.ci_high > 1.2  # type: ignore[attr-defined]
    assert decision.verdict in ("INCONCLUSIVE", "FAIL"), decision.reason  # type: ignore[attr-defined]


def test_a_partial_cache_of_back_to_back_repeats_fails_on_the_matched_check() -> None:
    """70 % of the audit blocks' repeats served from a cache of the previous prompt, none in the
    control phase: the p90 estimate lands on a miss, the arms are clear, the matched median
    speed-up fires."""
    rng = np.random.default_rng(76)
    audit = np.where(rng.random(256) < 0.3, _noisy(256, 10, 77), _noisy(256, 1, 78))
    decision = _decide(
        _phase(_noisy(256, 10, 79)), _phase(audit), controls=_matched_controls(10, 10, 80),
        audit_index=3,
    )  # fmt: skip
    assert decision.verdict == "FAIL", decision.reason  # type: ignore[attr-defined]
    assert "cost-matched" in decision.reason  # type: ignore[attr-defined]
    assert not decision.repeated_vs_control.fired  # type: ignore[attr-defined]
