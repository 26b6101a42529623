"""MLPerf's compliance rules as upstream's verify_performance.py scripts compute them, and the
text they print. Pure: plain numbers and strings in, booleans and text out.

| test   | threshold t | PASS iff (on scores: higher is better)                        |
|--------|-------------|---------------------------------------------------------------|
| TEST04 | 0.10        | test < ref × (1 + t)                                          |
| TEST05 | 0.05        | offline/server: test > ref × (1 − t); else ref < test × (1 + t) |
| TEST01 | 0.10        | ref × (1 − t) <= test <= ref × (1 + t) (on latency or score)  |

t is 0.20 for short latencies, every test: single-stream <= 200 µs, multi-stream <= 1.6 ms
(`RELAX_LIMIT`, in ns).
"""

from __future__ import annotations

from collections.abc import Sequence

#: TEST04's threshold (TEST01's too)
TEST04_THRESHOLD = 0.10
#: TEST05's threshold (compliance/nvidia/TEST05/verify_performance.py at 4763c6b5^: MLPerf
#: removed TEST05 in November 2024; auditkit keeps it as its own check)
TEST05_THRESHOLD = 0.05
#: the threshold for short latencies, every test
RELAXED_THRESHOLD = 0.20
#: latency (ns) at or below which upstream relaxes the threshold, by scenario
RELAX_LIMIT = {"single-stream": 200_000.0, "multi-stream": 1_600_000.0}
THROUGHPUT_SCENARIOS = ("offline", "server")
#: scenarios upstream scores by early-stopping latency, not samples/s
LATENCY_SCENARIOS = ("single-stream", "multi-stream")
VERIFY_PERFORMANCE = "verify_performance.txt"


def relaxed(scenario: str, latency_ns: float | None) -> bool:
    """Whether upstream relaxes the threshold to 0.20: a latency scenario whose reference
    latency (ns) is at or below `RELAX_LIMIT` (never when the latency is unknown)."""
    limit = RELAX_LIMIT.get(scenario)
    return limit is not None and latency_ns is not None and latency_ns <= limit


def threshold(scenario: str, latency_ns: float | None, base: float) -> float:
    """Upstream's threshold: `base`, or 0.20 for a short reference latency."""
    return RELAXED_THRESHOLD if relaxed(scenario, latency_ns) else base


def below(ref: float, test: float, t: float) -> bool:
    """TEST04: the repeated sample's score stays below ref × (1 + t) (strict)."""
    return test < ref * (1 + t)


def not_slower(scenario: str, ref: float, test: float, t: float) -> bool:
    """TEST05, on scores (higher is better in every scenario): throughput may not drop below
    ref × (1 − t); a latency (1e9 / score) may not rise above ref × (1 + t)."""
    if scenario in THROUGHPUT_SCENARIOS:
        return test > ref * (1 - t)
    # test_latency < ref_latency × (1 + t)  ⇔  1/test < (1 + t)/ref
    return ref < test * (1 + t)


def within(ref: float | None, test: float | None, t: float) -> bool:
    """TEST01: ref × (1 − t) <= test <= ref × (1 + t) (False when either is missing)."""
    if ref is None or test is None:
        return False
    return ref * (1 - t) <= test <= ref * (1 + t)


def verify_performance(
    scores: tuple[str, str] | None,
    passed: bool,
    auditkit: Sequence[str] = (),
    *,
    failure: str = "",
    warnings: Sequence[str] = (),
    labels: tuple[str, str] = ("reference score", "test score"),
) -> str:
    """verify_performance.txt as upstream prints it: the two scores and `TEST PASS` or
    `TEST FAIL: Test score invalid` (no scores: `TEST FAIL: <failure>`), then after a blank
    line auditkit's own lines (the submission checker only looks for `TEST PASS`)."""
    lines = ["Verifying performance.", *warnings]
    if scores is None:
        lines.append(f"TEST FAIL: {failure}")
    else:
        lines += [f"{labels[0]} = {scores[0]}", f"{labels[1]} = {scores[1]}"]
        lines.append("TEST PASS" if passed else "TEST FAIL: Test score invalid")
    if auditkit:
        lines += ["", *auditkit]
    return "\n".join(lines) + "\n"


def verdict_lines(verdict: str, upstream: str, reason: str) -> list[str]:
    """auditkit's verdict beside upstream's rule, as the verify files carry it."""
    return [f"auditkit: verdict {verdict} (upstream rule: {upstream})", f"auditkit: {reason}"]
