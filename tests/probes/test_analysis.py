"""Probe analysis on synthetic records with known answers (pure: no server, no clock)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from auditkit.probes import analysis as a


def rows(
    cold: list[float],
    warm: list[float],
    *,
    cold_ttft: list[float] | None = None,
    warm_ttft: list[float] | None = None,
    tokens: int = 33,
    warm_sha: list[str] | None = None,
    cold_sha: list[str] | None = None,
) -> pd.DataFrame:
    """Records of k rounds (cold then warm), latency in ms; TTFT given: streamed."""
    out: list[dict[str, object]] = []
    for i, (c, w) in enumerate(zip(cold, warm, strict=True), start=1):
        for role, lat, ttft, sha in (
            (
                "cold",
                c,
                cold_ttft[i - 1] if cold_ttft else None,
                cold_sha[i - 1] if cold_sha else f"c{i}",
            ),
            (
                "warm",
                w,
                warm_ttft[i - 1] if warm_ttft else None,
                warm_sha[i - 1] if warm_sha else f"w{i}",
            ),
        ):
            decode = None if ttft is None else lat - ttft
            out.append(
                {
                    "probe": "t",
                    "group": role,
                    "step": i,
                    "round": i,
                    "role": role,
                    "prompt": f"P{i}",
                    "burst": 0,
                    "sent_ms": float(len(out)),
                    "latency_ms": lat,
                    "ttft_ms": ttft,
                    "decode_ms": decode,
                    "tpot_ms": None if decode is None else decode / (tokens - 1),
                    "cached_tokens": 0,
                    "output_tokens": tokens,
                    "output_sha256": sha,
                    "status": "ok",
                    "error": None,
                }
            )
    return pd.DataFrame(out, columns=list(a.PROBE_COLUMNS))


def jitter(base: float, k: int, cv: float = 0.05, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(base * np.exp(rng.normal(0, cv, k)))


def test_a_known_halving_is_faster_with_an_interval_around_it() -> None:
    effect = a.paired_effect(jitter(10, 8, seed=1), jitter(5, 8, seed=2), "latency")
    assert effect.verdict == "faster"
    assert effect.low is not None and effect.high is not None and effect.ratio is not None
    assert effect.low < 0.5 < effect.high < 1.0
    assert "faster" in effect.describe()


def test_equal_times_are_not_faster() -> None:
    effect = a.paired_effect(jitter(10, 10, seed=3), jitter(10, 10, seed=4), "latency")
    assert effect.verdict == "not faster"
    assert effect.low is not None and effect.low > a.RELEVANT


def test_a_noisy_small_sample_asks_for_more_rounds() -> None:
    effect = a.paired_effect(jitter(10, 8, cv=0.4, seed=5), jitter(8, 8, cv=0.4, seed=6), "latency")
    assert effect.verdict == "not enough evidence"
    assert effect.more is not None and effect.more >= 1
    assert f"run {effect.more} more" in effect.describe()


def test_too_few_rounds_decide_nothing() -> None:
    effect = a.paired_effect([10, 10], [1, 1], "latency")
    assert effect.verdict == "not enough evidence" and effect.more == a.MIN_ROUNDS - 2


def test_one_outlying_pair_moves_the_estimate_little() -> None:
    warm = jitter(5, 10, seed=2)
    warm[3] = 80.0  # a hiccup of the machine, 8× the cold query
    effect = a.paired_effect(jitter(10, 10, seed=1), warm, "latency")
    assert effect.ratio is not None and effect.ratio < 0.6  # a mean of logs would say 0.66


def test_a_partial_cache_is_faster_by_its_hits() -> None:
    # every other warm query is a hit (0.02×): the mean of logs is wide, the hits are not
    cold = jitter(10, 8, seed=7)
    warm = [0.2 if i % 2 else c for i, c in enumerate(jitter(10, 8, seed=8))]
    effect = a.paired_effect(cold, warm, "latency")
    assert effect.verdict == "faster" and effect.hits == 4


def test_no_cache_is_almost_never_faster() -> None:
    # 1000 probes of 8 rounds, 10 % jitter, no effect: the decision's false-positive rate
    wrong = sum(
        a.paired_effect(jitter(10, 8, 0.1, s), jitter(10, 8, 0.1, s + 10_000), "x").faster
        for s in range(1000)
    )
    assert wrong <= 10


@pytest.mark.parametrize(
    ("warm_lat", "warm_ttft", "kind"),
    [
        (0.3, 0.2, "response cache"),  # everything collapses
        (7.0, 1.0, "prefix cache"),  # TTFT falls, decode (6 ms) unchanged
        (10.0, 4.0, "none"),
    ],
)
def test_timing_kind_from_streamed_records(warm_lat: float, warm_ttft: float, kind: str) -> None:
    k = 10
    rec = rows(
        jitter(10, k, seed=1),
        jitter(warm_lat, k, seed=2),
        cold_ttft=jitter(4, k, seed=3),
        warm_ttft=jitter(warm_ttft, k, seed=4),
    )
    found = a.repeat_findings(rec, "back-to-back")
    assert found.signals["kind"] == kind, found.finding
    assert set(found.table.index) == {"latency", "TTFT", "decode per token"}


def test_unstreamed_speed_up_is_a_cache_of_unknown_kind() -> None:
    rec = rows(jitter(10, 8, seed=1), jitter(3, 8, seed=2))
    found = a.repeat_findings(rec, "interleaved")
    assert found.signals["kind"] == "cache (kind unknown)"


def test_identity_replay_vs_ignored_temperature_vs_same_text_for_all() -> None:
    k = 10
    same = ["x"] * k
    replay = rows(jitter(10, k, seed=1), jitter(0.3, k, seed=2), warm_sha=same)
    assert a.output_identity_findings(replay, 0.8).signals["kind"] == "response cache"
    ignored = rows(jitter(10, k, seed=1), jitter(10, k, seed=2), warm_sha=same)
    found = a.output_identity_findings(ignored, 0.8)
    assert found.signals["kind"] == "none" and "ignores temperature" in found.finding
    constant = rows(jitter(10, k, seed=1), jitter(10, k, seed=2), warm_sha=same, cold_sha=same)
    found = a.output_identity_findings(constant, 0.8)
    assert found.signals["kind"] == "none" and found.signals["same_for_all_prompts"]


def _results(**kinds: str) -> dict[str, a.ProbeResult]:
    empty = pd.DataFrame(columns=list(a.PROBE_COLUMNS))
    patterns = {"back_to_back": "back-to-back", "interleaved": "interleaved"}
    out = {}
    for name, kind in kinds.items():
        signals = {"kind": kind} | ({"pattern": patterns[name]} if name in patterns else {})
        out[name] = a.ProbeResult(name, name, empty, pd.DataFrame(), "", signals)
    return out


def test_diagnosis_combines_probes_and_names_the_patterns_that_hit() -> None:
    last = a.diagnose_kind(_results(back_to_back="prefix cache", interleaved="none"))
    assert last.kind == "prefix cache"
    assert "hit under back-to-back; not under interleaved" in last.text
    assert a.diagnose_kind(_results(back_to_back="none", burst="request coalescing")).kind == (
        "request coalescing"
    )
    assert a.diagnose_kind(_results(back_to_back="none", interleaved="none")).kind == "none"
    assert a.diagnose_kind(
        _results(back_to_back="none", interleaved="not enough evidence")
    ).kind == ("not enough evidence")
    assert a.diagnose_kind({}).kind == "not enough evidence"
