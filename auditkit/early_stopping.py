"""LoadGen's early-stopping percentile estimate (loadgen/early_stopping.cc), reproduced exactly.

Confidence 0.99, tolerance 0. h(t) is the smallest h with I_p(h, t+1) < 0.01 (regularized
incomplete beta, strict). Both h(t) and h(t)+t rise with t, so each is found by bisection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CONFIDENCE = 0.99


@lru_cache(maxsize=65536)
def min_passing_count(t: int, percentile: float) -> int:
    """h(t): the fewest latencies at or under the percentile that tolerate t overlatencies."""
    # lazy: scipy.special costs most of a second to import, in every process that merely
    # imports the package (the result is cached, so this runs once per (t, percentile))
    from scipy.special import betainc

    alpha = 1.0 - CONFIDENCE
    lo, hi = 1, 64
    while betainc(hi, t + 1, percentile) >= alpha:
        lo, hi = hi, hi * 2
    while lo < hi:  # smallest h in [lo, hi] with I_p(h, t+1) < alpha
        mid = (lo + hi) // 2
        if betainc(mid, t + 1, percentile) < alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


def min_queries(percentile: float) -> int:
    """The fewest queries for which an early-stopping estimate exists: h(1) + 1."""
    return min_passing_count(1, percentile) + 1


def overlatency_count(n: int, percentile: float) -> int | None:
    """t*: the largest t >= 1 with n >= h(t) + t, or None when n < h(1) + 1."""
    if n < min_passing_count(1, percentile) + 1:
        return None
    lo, hi = 1, 1
    while min_passing_count(hi * 2, percentile) + hi * 2 <= n:
        hi *= 2
    hi *= 2
    while lo < hi:  # largest t in [lo, hi) with h(t) + t <= n
        mid = (lo + hi + 1) // 2
        if min_passing_count(mid, percentile) + mid <= n:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class EarlyStoppingEstimate:
    """The estimate and the numbers behind it; `latency_ns` is None when too few queries."""

    percentile: float
    queries: int
    overlatency_count: int | None
    latency_ns: int | None

    @property
    def valid(self) -> bool:
        return self.latency_ns is not None


def _sorted(latencies_ns: Sequence[int] | np.ndarray) -> np.ndarray:
    # an int64 array, not a list of Python ints: 8 bytes a query at millions of queries
    return np.sort(np.asarray(latencies_ns, dtype=np.int64))


def estimate(latencies_ns: Sequence[int] | np.ndarray, percentile: float) -> EarlyStoppingEstimate:
    """LoadGen's early-stopping estimate: sorted[N - t*] (0-based)."""
    ordered = _sorted(latencies_ns)
    n = len(ordered)
    t = overlatency_count(n, percentile)
    value = int(ordered[n - t]) if t is not None else None
    return EarlyStoppingEstimate(percentile, n, t, value)


def server_latency_valid(
    latencies_ns: Sequence[int] | np.ndarray, target_ns: int, percentile: float = 0.99
) -> tuple[bool, int]:
    """Server validity: t = latencies strictly above target; valid iff N >= h(t) + t and the
    plain percentile is within target. Returns (valid, t)."""
    ordered = _sorted(latencies_ns)
    n = len(ordered)
    if n == 0:
        return False, 0
    t = int(np.count_nonzero(ordered > target_ns))
    enough = n >= min_passing_count(t, percentile) + t
    within = bool(ordered[min(int(n * percentile), n - 1)] <= target_ns)
    return enough and within, t
