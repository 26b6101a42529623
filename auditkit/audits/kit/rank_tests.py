"""The few significance tests the decisions read, computed as scipy.stats computes them but
without importing it: `import scipy.stats` costs about a CPU-second, paid by every `auditkit`
process and notebook kernel that decides a verdict. Pure (numpy, math; scipy.special for the
t distribution; scipy.stats itself only for the rare exact small-sample case).

mann_whitney_less(x, y)   one-sided Mann-Whitney U (x stochastically smaller), scipy's
                          method="auto": exact when min(n1, n2) <= 8 and no ties, else the
                          normal approximation with tie and continuity correction:
                            U2 = n1·n2 − (R1 − n1(n1+1)/2),  μ = n1·n2/2,
                            σ = √(n1·n2/12 · ((n+1) − Σ(t³−t)/(n(n−1)))),
                            p = Φ(−(U2 − μ − 1/2)/σ)
sign_test(k, n)           exact binomial test at p = 1/2: "greater" P(X >= k);
                          "two-sided" min(1, 2·P(X <= min(k, n−k))) (the distribution is
                          symmetric, so this is scipy's binomtest)
spearman(x, y)            (ρ, p): Pearson's r of the average ranks; p two-sided from Student's t
                          with n − 2 degrees of freedom, t = ρ·√((n−2)/((1+ρ)(1−ρ)))
normal_sf(z), normal_isf(p)  the standard normal's upper tail and its inverse
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

import numpy as np

_NORMAL = NormalDist()


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z (accurate far into the tail: erfc, not 1 − cdf)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_isf(p: float) -> float:
    """The z with P(Z > z) = p."""
    return -_NORMAL.inv_cdf(p)


def average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties given their average rank, and the size of each tie group."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts) - 1
    counts = np.bincount(group)
    ends = np.cumsum(counts)
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = (ends - (counts - 1) / 2.0)[group]
    return ranks, counts


def mann_whitney_less(x: np.ndarray, y: np.ndarray) -> float:
    """p-value of the one-sided Mann-Whitney U test that `x` is stochastically smaller."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n1, n2 = len(x), len(y)
    ranks, ties = average_ranks(np.concatenate((x, y)))
    if min(n1, n2) <= 8 and not (ties > 1).any():
        from scipy.stats import mannwhitneyu  # the exact distribution: rare, small samples

        return float(mannwhitneyu(x, y, alternative="less").pvalue)
    u2 = n1 * n2 - (float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2)
    n = n1 + n2
    tie_term = float((ties.astype(float) ** 3 - ties).sum())
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (u2 - n1 * n2 / 2 - 0.5) / sigma
    return min(max(normal_sf(z), 0.0), 1.0)


def _binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly (integer sums)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def sign_test(k: int, n: int, alternative: Literal["greater", "two-sided"]) -> float:
    """Exact binomial test of `k` successes in `n` trials against p = 1/2."""
    if alternative == "greater":
        return _binomial_tail(k, n)
    low = min(k, n - k)
    if 2 * low == n:
        return 1.0
    return min(1.0, 2.0 * _binomial_tail(n - low, n))


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's ρ and its two-sided p-value (n >= 3, neither input constant)."""
    rx, _ = average_ranks(np.asarray(x, dtype=float))
    ry, _ = average_ranks(np.asarray(y, dtype=float))
    rho = float(np.corrcoef(rx, ry)[0, 1])
    dof = len(rx) - 2
    if abs(rho) >= 1.0:
        return rho, 0.0
    t = rho * math.sqrt(dof / ((rho + 1.0) * (1.0 - rho)))
    from scipy.special import stdtr  # light beside scipy.stats (see the module docstring)

    return rho, float(2.0 * stdtr(dof, -abs(t)))
