"""The timing decision: a one-sided two-sample Kolmogorov-Smirnov test (Gu et al.) and a
rank-based effect size with its interval, at a group-sequential look. Pure.

    FAIL          KS p <= alpha / looks         (hits come from a faster distribution)
    PASS          the ratio's interval lies above 1 - min_effect (no effect that large)
    INCONCLUSIVE  neither, at the last look: with the probes per arm it would need

Looks: a fixed number K (probes_per_arm / look_every), each at alpha / K for the KS test and
(1 - confidence) / K for the interval (Bonferroni: simple to state and check, as the kit's
ratio decision does). The effect size is the Hodges-Lehmann estimate of the shift of log
times (hit minus miss), as a ratio exp(shift), with the distribution-free interval from the
Mann-Whitney statistic (the order statistics of the n·m pairwise differences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

Call = Literal["FAIL", "PASS", "INCONCLUSIVE"]


@dataclass(frozen=True)
class Timing:
    """One comparison of a hit arm with the miss arm at one look."""

    call: Call
    ks_statistic: float
    ks_p: float
    alpha_per_look: float
    ratio: float  # hit / miss (Hodges-Lehmann, on log times)
    ratio_low: float
    ratio_high: float
    hit_median_ms: float
    miss_median_ms: float
    per_arm: int
    needed_per_arm: int | None  # INCONCLUSIVE: probes per arm it would need


def ks_greater(hit: list[float], miss: list[float]) -> tuple[float, float]:
    """scipy's one-sided two-sample KS (`alternative="greater"`: hit times stochastically
    smaller), exact when it can be: (statistic, p)."""
    from scipy import stats  # lazy (see audits/kit/ratio.py)

    res = stats.ks_2samp(hit, miss, alternative="greater", method="auto")
    return float(res.statistic), float(res.pvalue)


def shift_interval(hit: list[float], miss: list[float], confidence: float) -> tuple[float, ...]:
    """(estimate, low, high) of the log-time shift hit − miss: Hodges-Lehmann and the
    Mann-Whitney interval (normal approximation of the rank statistic's critical value)."""
    h, m = np.log(np.asarray(hit, float)), np.log(np.asarray(miss, float))
    diffs = np.sort(np.subtract.outer(h, m).ravel())
    n, k = len(h), len(m)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    c = math.floor(n * k / 2 - z * math.sqrt(n * k * (n + k + 1) / 12))
    c = min(max(c, 0), len(diffs) - 1)
    return float(np.median(diffs)), float(diffs[c]), float(diffs[len(diffs) - 1 - c])


def decide(
    hit: list[float],
    miss: list[float],
    *,
    alpha: float,
    confidence: float,
    looks: int,
    last: bool,
    min_effect: float,
    raw: tuple[list[float], list[float]] | None = None,
) -> Timing:
    """The call at one look (`last`: the budget is spent) from hit and miss times (or times
    relative to each procedure's victim; `raw`: the times in s, for the medians)."""
    stat, p = ks_greater(hit, miss)
    alpha_look = alpha / looks
    conf_look = 1 - (1 - confidence) / looks
    shift, low, high = shift_interval(hit, miss, conf_look)
    bound = math.log(1 - min_effect)
    needed = None
    if p <= alpha_look:
        call: Call = "FAIL"
    elif low > bound:
        call = "PASS"
    else:
        call = "INCONCLUSIVE"
        if last:
            needed = _needed(len(hit), shift, low, bound)
    return Timing(
        call=call,
        ks_statistic=stat,
        ks_p=p,
        alpha_per_look=alpha_look,
        ratio=math.exp(shift),
        ratio_low=math.exp(low),
        ratio_high=math.exp(high),
        hit_median_ms=float(np.median(raw[0] if raw else hit)) * 1e3,
        miss_median_ms=float(np.median(raw[1] if raw else miss)) * 1e3,
        per_arm=len(hit),
        needed_per_arm=needed,
    )


def _needed(n: int, shift: float, low: float, bound: float) -> int | None:
    """Probes per arm whose interval (half-width ∝ 1/√n) would clear the bound, if the
    estimate stays where it is (None: the estimate itself is past it, so no count will)."""
    if shift <= bound or shift - low <= 0:
        return None
    return math.ceil(n * ((shift - low) / (shift - bound)) ** 2)


def min_ks_p(per_arm: int) -> float:
    """The smallest p the exact one-sided KS test can give with `per_arm` probes per arm:
    1 / C(2n, n) (alpha below it cannot be reached)."""
    return 1 / math.comb(2 * per_arm, per_arm)
