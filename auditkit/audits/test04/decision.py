"""auditkit's TEST04 decision: upstream's score, judged with its certainty. Pure.

level   α/(K·3): K = 1 + the extra rounds allowed, 3 checks that can FAIL a look (Bonferroni:
        the chance of any false call over all looks and checks stays <= α = 0.05)
FAIL    primed cache (only without the salt): each salted twin is paired with its original
          (issued just before it); the originals are faster in a one-sided sign test at the
          level, with a median pair ratio > 1 + threshold;
        or the interval of the score ratio (two-sided, level 1 − 2·level; a block bootstrap
          of the very estimator upstream scores with) lies above 1 + threshold;
        or a partial cache: the interval of the repeated sample's median speed-up over fresh
          samples (block bootstrap, 16 contiguous blocks; over block pairs when the phases
          ran as alternating pairs) lies above 1 + threshold
PASS    the score interval lies below 1 + threshold and no check fires
INCONCLUSIVE  otherwise: the look did not settle it (with the queries that would)
INVALID whenever upstream's rule says INVALID (a phase that is not a valid result)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest, mannwhitneyu, spearmanr

from auditkit.audits.kit.ratio import (
    BOOTSTRAP_ROUNDS,
    StatisticalView,
    interval_text,
    level_per_look,
    pair_picks,
    paired_blocks,
    statistical_view,
)
from auditkit.results import Evidence, Verdict

ALPHA = 0.05
#: the first queries of a phase this many times slower than the rest: a cold start
COLD_START_RATIO = 1.5
#: a reference trend this large over the phase (relative) is reported as drift
DRIFT_CHANGE = 0.10
#: checks that can FAIL a look (control, score interval, partial cache): α is split over them
CHECKS = 3
#: blocks of the partial-cache bootstrap: long enough to hold a queueing episode together
PARTIAL_BLOCKS = 16


class ControlCheck(Evidence):
    """Salted twins of reference samples against the samples themselves."""

    twins: int
    originals: int
    #: median over twin/original pairs of their service-time ratio (> 1: originals faster)
    median_ratio: float | None = None
    p_value: float | None = None
    #: the originals carried the run's salt too (then this is a self-check)
    salted_run: bool
    primed: bool = False


class PartialCacheCheck(Evidence):
    """Repeated sample vs fresh samples: the ratio of their median service times, with an
    interval from a block bootstrap (queries that queue together stay together)."""

    median_speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    #: one-sided Mann-Whitney U, for reference only: it assumes independent queries, which a
    #: server's shared queue breaks, so the decision uses the interval
    p_value: float | None = None
    fired: bool = False


class DriftCheck(Evidence):
    """Trend of the reference phase's service times over the phase, and its cold start."""

    spearman_rho: float | None = None
    p_value: float | None = None
    #: fitted relative change of service time from the phase's start to its end
    change: float | None = None
    cold_start_ratio: float | None = None
    notes: tuple[str, ...] = ()


class Decision(Evidence):
    """auditkit's verdict and every check behind it."""

    verdict: Verdict
    reason: str
    look: int
    looks: int
    alpha_per_look: float
    interval: StatisticalView | None = None
    partial_cache: PartialCacheCheck | None = None
    control: ControlCheck | None = None
    drift: DriftCheck | None = None
    queries_needed: int | None = None
    reliable: bool = True


def _variant(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    if "variant" not in frame.columns:
        return frame if name == "main" else frame.iloc[0:0]
    return frame[frame["variant"] == name]


def control_check(
    reference: pd.DataFrame, level: float, limit: float, salted: bool
) -> ControlCheck:
    """Were the dataset's prompts answered faster than never-seen twins of them? Each twin is
    paired with its original (issued just before it, so both met the same server queue): a
    sign test on the pairs and their median time ratio. Only a run without the salt can FAIL
    on it: salted originals cannot have been cached before the run."""
    ok = reference[reference["status"] == "ok"]
    twins = _variant(ok, "twin")
    originals = _variant(ok, "main")
    check = ControlCheck(twins=len(twins), originals=len(originals), salted_run=salted)
    pairs = _pairs(originals, twins)
    if len(pairs) < 4:
        return check
    slower = int((pairs > 1.0).sum())
    p_value = float(binomtest(slower, len(pairs), 0.5, alternative="greater").pvalue)
    ratio = float(np.median(pairs))
    primed = not salted and p_value < level and ratio > limit
    return check.model_copy(update={"median_ratio": ratio, "p_value": p_value, "primed": primed})


def _pairs(originals: pd.DataFrame, twins: pd.DataFrame) -> np.ndarray:
    """Twin service time / its original's, for each twin whose original completed."""
    last = originals.sort_values("sent_ns").drop_duplicates("sample_index", keep="last")
    service = (last["completed_ns"] - last["sent_ns"]).astype(float)
    by_row = dict(zip(last["sample_index"], service, strict=True))
    ratios = [
        float(t_done - t_sent) / by_row[row]
        for row, t_sent, t_done in zip(
            twins["sample_index"], twins["sent_ns"], twins["completed_ns"], strict=True
        )
        if by_row.get(row, 0) > 0
    ]
    return np.array(ratios, dtype=float)


def partial_cache_check(
    reference: pd.DataFrame, audit: pd.DataFrame, level: float, limit: float, seed: int = 0
) -> PartialCacheCheck:
    """Is the repeated sample served faster than fresh ones in the middle of the distribution
    (where a cache that misses now and then still shows, and one outlier does not)? Fires when
    the whole interval of the median speed-up (two-sided, level 1 − 2·level) is above `limit`."""
    fresh_frame = _ok_sorted(_variant(reference, "main"))
    repeated_frame = _ok_sorted(audit)
    fresh, repeated = _service(fresh_frame), _service(repeated_frame)
    if len(fresh) < 2 * PARTIAL_BLOCKS or len(repeated) < 2 * PARTIAL_BLOCKS:
        return PartialCacheCheck()
    if np.median(repeated) <= 0:
        return PartialCacheCheck()
    speedup = float(np.median(fresh) / np.median(repeated))
    p_value = float(mannwhitneyu(repeated, fresh, alternative="less").pvalue)
    rng = np.random.default_rng(seed)
    pairs = paired_blocks(fresh_frame, repeated_frame)
    if pairs is not None:
        # alternating blocks: resample the pairs, so a busy spell in one phase's block widens
        # the interval instead of reading as a speed-up
        fresh_by = [_service(fresh_frame[fresh_frame["block"] == b]) for b in pairs]
        repeated_by = [_service(repeated_frame[repeated_frame["block"] == b]) for b in pairs]
        picks = pair_picks(len(pairs), rng)
        fresh_reps, repeated_reps = _medians(fresh_by, picks), _medians(repeated_by, picks)
    else:
        fresh_reps = _block_medians(fresh, rng)
        repeated_reps = _block_medians(repeated, rng)
    ratios = fresh_reps / np.maximum(repeated_reps, 1.0)
    low, high = (float(x) for x in np.quantile(ratios, [level, 1 - level]))
    return PartialCacheCheck(
        median_speedup=speedup, ci_low=low, ci_high=high, p_value=p_value, fired=low > limit
    )


def _ok_sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"].sort_values("completed_ns")


def _service(frame: pd.DataFrame) -> np.ndarray:
    return (frame["completed_ns"] - frame["sent_ns"]).to_numpy(dtype=float)


def _block_medians(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of the median, resampling PARTIAL_BLOCKS contiguous blocks."""
    blocks = np.array_split(values, PARTIAL_BLOCKS)
    return _medians(blocks, rng.integers(0, len(blocks), size=(BOOTSTRAP_ROUNDS, len(blocks))))


def _medians(parts: list[np.ndarray], picks: np.ndarray) -> np.ndarray:
    """One median per row of `picks`: of the parts that row names, pooled."""
    return np.array([np.median(np.concatenate([parts[j] for j in row])) for row in picks])


def drift_check(reference: pd.DataFrame) -> DriftCheck:
    """Service time against completion order in the reference phase: drift and cold start."""
    values = _service(_ok_sorted(_variant(reference, "main")))
    n = len(values)
    if n < 16 or np.ptp(values) == 0:
        # too few, or all alike (a simulated server without jitter): nothing to trend
        return DriftCheck()
    position = np.arange(n, dtype=float)
    rho, p_value = spearmanr(position, values)
    slope, intercept = np.polyfit(position, values, 1)
    start = intercept
    end = intercept + slope * (n - 1)
    change = float((end - start) / start) if start > 0 else None
    head = max(4, n // 20)
    cold = float(np.median(values[:head]) / np.median(values[head:]))
    notes: list[str] = []
    if p_value < 0.01 and change is not None and abs(change) > DRIFT_CHANGE:
        direction = "slower" if change > 0 else "faster"
        notes.append(
            f"the reference phase drifted: service time {abs(change):.0%} {direction} by its "
            "end (counterbalanced rounds cancel drift: --design counterbalanced)"
        )
    if cold > COLD_START_RATIO:
        notes.append(
            f"cold start: the reference phase's first {head} queries were {cold:.2g}× slower "
            "than the rest (warm-up: --warmup auto)"
        )
    return DriftCheck(
        spearman_rho=float(rho),
        p_value=float(p_value),
        change=change,
        cold_start_ratio=cold,
        notes=tuple(notes),
    )


def decide_with_certainty(
    reference: pd.DataFrame,
    audit: pd.DataFrame,
    *,
    scenario: str,
    threshold: float,
    upstream_verdict: Verdict,
    upstream_reason: str,
    look: int,
    looks: int,
    salted: bool,
    reliable: bool = True,
    seed: int = 0,
) -> Decision:
    """auditkit's verdict at one look (the rule is the module docstring)."""
    level = level_per_look(ALPHA, looks, CHECKS)
    limit = 1 + threshold
    base = {"look": look, "looks": looks, "alpha_per_look": level, "reliable": reliable}
    drift = drift_check(reference)
    if upstream_verdict == "INVALID":
        return Decision(verdict="INVALID", reason=upstream_reason, drift=drift, **base)
    control = control_check(reference, level, limit, salted)
    partial = partial_cache_check(reference, audit, level, limit, seed)
    view = statistical_view(
        reference, audit, scenario, threshold, seed=seed, confidence=1 - 2 * level
    )
    checks = {"interval": view, "partial_cache": partial, "control": control, "drift": drift}
    if control.primed:
        reason = (
            f"the dataset's prompts were answered {control.median_ratio:.3g}× faster than "
            f"never-seen salted twins of them (p = {control.p_value:.2g}): a cache held them "
            "before this run (results cached)"
        )
        return Decision(verdict="FAIL", reason=reason, **checks, **base)
    if view is None:
        return Decision(
            verdict="INCONCLUSIVE",
            reason="too few completed queries for an interval of the score",
            **checks,
            **base,
        )
    interval = interval_text(view.ci_low, view.ci_high, limit)
    if view.ci_low > limit:
        reason = (
            f"the audit/reference score ratio is {view.ratio:.3g}, interval {interval} above the "
            f"{limit:g} limit: repeated samples are served faster (results cached)"
        )
        return Decision(verdict="FAIL", reason=reason, **checks, **base)
    if partial.fired and partial.median_speedup is not None:
        reason = (
            f"the repeated sample's median service time is {partial.median_speedup:.3g}× faster "
            f"than fresh samples' "
            f"(interval {interval_text(partial.ci_low, partial.ci_high, limit)}), "
            f"beyond the {limit:g} limit, though the official score does not show it: a cache "
            "that serves most repeats (partial cache)"
        )
        return Decision(verdict="FAIL", reason=reason, **checks, **base)
    if view.ci_high < limit:
        reason = (
            f"the audit/reference score ratio is {view.ratio:.3g}, interval {interval} below the "
            f"{limit:g} limit, and the repeated sample is not served faster in the middle of "
            "its distribution: no caching detected"
        )
        if not reliable:
            reason += " (below the minimum queries: not reliable)"
        return Decision(verdict="PASS", reason=reason, **checks, **base)
    needed = view.queries_to_settle
    more = f"; about {needed} more queries would settle it" if needed else ""
    reason = (
        f"the audit/reference score ratio is {view.ratio:.3g}, but its interval {interval} "
        f"straddles the {limit:g} limit at look {look} of {looks}{more}"
    )
    return Decision(verdict="INCONCLUSIVE", reason=reason, queries_needed=needed, **checks, **base)


def headline(decision: Decision, upstream_verdict: Verdict, upstream_reason: str) -> str:
    """The one-line reason: auditkit's, and why upstream's rule differs when it does."""
    if decision.verdict == upstream_verdict or upstream_verdict == "INVALID":
        return decision.reason
    return f"{decision.reason}; upstream's rule says {upstream_verdict}: {upstream_reason}"
