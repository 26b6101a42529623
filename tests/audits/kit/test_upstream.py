"""MLPerf's threshold rules and verify_performance.txt's text, on plain values."""

import pytest

from auditkit.audits.kit import upstream


@pytest.mark.parametrize(
    ("scenario", "latency", "relaxed"),
    [
        ("single-stream", 200_000.0, True),  # at the limit: relaxed (<=)
        ("single-stream", 200_001.0, False),
        ("multi-stream", 1_600_000.0, True),
        ("multi-stream", 1_600_001.0, False),
        ("single-stream", None, False),  # unknown latency: never relaxed
        ("offline", 1.0, False),  # throughput scenarios have no relaxed threshold
        ("server", 1.0, False),
    ],
)
def test_relaxed_threshold_boundaries(scenario: str, latency: float | None, relaxed: bool) -> None:
    assert upstream.relaxed(scenario, latency) is relaxed
    for base in (upstream.TEST04_THRESHOLD, upstream.TEST05_THRESHOLD):
        assert upstream.threshold(scenario, latency, base) == (0.20 if relaxed else base)


def test_test04_rule_is_strict() -> None:
    assert upstream.below(100.0, 149.99, 0.5)
    assert not upstream.below(100.0, 150.0, 0.5)  # equal is not below


def test_test05_rule_is_one_sided() -> None:
    assert upstream.not_slower("offline", 100.0, 96.0, 0.05)
    assert not upstream.not_slower("offline", 100.0, 95.0, 0.05)
    assert upstream.not_slower("offline", 100.0, 500.0, 0.05)  # faster on other seeds: fine
    # latency scenarios on scores (1e9 / latency ns): latency 104 vs 100 passes, 106 does not
    assert upstream.not_slower("single-stream", 1e9 / 100, 1e9 / 104, 0.05)
    assert not upstream.not_slower("single-stream", 1e9 / 100, 1e9 / 106, 0.05)


def test_test01_rule_is_inclusive_both_ways() -> None:
    assert upstream.within(100.0, 110.0, 0.10)
    assert upstream.within(100.0, 90.0, 0.10)
    assert not upstream.within(100.0, 110.5, 0.10)
    assert not upstream.within(100.0, 89.5, 0.10)
    assert not upstream.within(None, 100.0, 0.10)


def test_verify_performance_text() -> None:
    lines = upstream.verdict_lines("PASS", "FAIL", "why")
    text = upstream.verify_performance(("1.5", "2"), False, lines, warnings=["WARNING: x"])
    assert text == (
        "Verifying performance.\nWARNING: x\nreference score = 1.5\ntest score = 2\n"
        "TEST FAIL: Test score invalid\n\n"
        "auditkit: verdict PASS (upstream rule: FAIL)\nauditkit: why\n"
    )
    passed = upstream.verify_performance(("1", "1"), True, labels=("Reference score", "Test score"))
    assert passed == "Verifying performance.\nReference score = 1\nTest score = 1\nTEST PASS\n"
    assert upstream.verify_performance(None, True, failure="no scores") == (
        "Verifying performance.\nTEST FAIL: no scores\n"
    )
