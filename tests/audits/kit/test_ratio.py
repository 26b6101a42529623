"""The statistical view: interval on the score ratio, and its verdict (synthetic records)."""

import numpy as np
import pandas as pd
import pytest

from auditkit.audits.kit.ratio import interval_text, statistical_view
from auditkit.results import records_frame


def _offline(n: int, service_ms: float, seed: int, slots: int = 2) -> pd.DataFrame:
    """Records of an SUT-bound offline phase: `slots` servers, lognormal service (CV 10 %)."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(np.log(1 + 0.1**2))
    service = rng.lognormal(np.log(service_ms * 1e6) - sigma**2 / 2, sigma, n)
    free = np.zeros(slots)
    rows = []
    for i, s in enumerate(service):
        k = int(np.argmin(free))
        start = free[k]
        free[k] = start + s
        rows.append(
            (
                "p",
                i,
                i,
                0,
                int(start),
                int(start),
                None,
                int(start + s),
                int(start + s),
                None,
                "ok",
                200,
                None,
                10,
                32,
                0,
                f"{i:064x}",
            )
        )
    return records_frame(rows)


def test_same_speed_passes_with_enough_queries() -> None:
    view = statistical_view(_offline(512, 5, 1), _offline(512, 5, 2), "offline", 0.10)
    assert view is not None
    assert view.verdict == "PASS" and view.ci_high < 1.10
    assert view.ci_low < view.ratio < view.ci_high


def test_double_speed_fails() -> None:
    view = statistical_view(_offline(128, 5, 1), _offline(128, 2.5, 2), "offline", 0.10)
    assert view is not None and view.verdict == "FAIL" and view.ci_low > 1.10
    assert view.mannwhitney_p is not None and view.mannwhitney_p < 1e-6


def test_borderline_is_inconclusive_and_says_how_many_more() -> None:
    view = statistical_view(_offline(32, 5, 1), _offline(32, 4.55, 2), "offline", 0.10)
    assert view is not None and view.verdict == "INCONCLUSIVE"
    assert view.queries_to_settle is not None and view.queries_to_settle > 0


def test_too_few_queries_gives_no_view() -> None:
    assert statistical_view(_offline(4, 5, 1), _offline(4, 5, 2), "offline", 0.10) is None


def test_latency_scenarios_use_percentile_scores() -> None:
    ref, aud = _offline(256, 5, 1, slots=1), _offline(256, 2, 2, slots=1)
    ref["latency_ns"] = ref["completed_ns"] - ref["sent_ns"]
    aud["latency_ns"] = aud["completed_ns"] - aud["sent_ns"]
    view = statistical_view(ref, aud, "single-stream", 0.20)
    assert view is not None and view.verdict == "FAIL" and 2.0 < view.ratio < 3.2


@pytest.mark.parametrize(
    ("low", "high", "limits", "text"),
    [
        (0.944, 1.0951, (1.1,), "[0.944, 1.095]"),  # 1.0951 to 3 digits would read 1.1
        (0.9851, 1.0149, (1.1,), "[0.985, 1.01]"),  # far from the limit: 3 digits
        (1.1004, 1.3, (1.1,), "[1.1004, 1.3]"),  # above the limit stays above it
        (0.89996, 1.10004, (0.9, 1.1), "[0.89996, 1.10004]"),  # TEST01's two limits
        (1.1, 1.2, (1.1,), "[1.1, 1.2]"),  # on the limit is shown on it
    ],
)
def test_interval_bounds_are_never_rounded_onto_a_limit(
    low: float, high: float, limits: tuple[float, ...], text: str
) -> None:
    assert interval_text(low, high, *limits) == text
