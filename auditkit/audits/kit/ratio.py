"""A ratio decision: how sure is a comparison of two phases' scores? (pure: numpy)

Upstream's rules compare two point scores. Here the score ratio (test/reference: TEST04's
audit phase, TEST05's and TEST01's other phase) gets a confidence interval by a *block*
bootstrap: each phase's queries, in completion order, are cut into contiguous time blocks,
and blocks (not single queries) are resampled, so warm-up, drift and the correlation between
neighbouring queries stay inside the resampled unit. The statistical verdict
is PASS when the whole interval lies below 1 + threshold, FAIL when it lies above, and
INCONCLUSIVE when it straddles the limit.

When the phases ran as alternating block pairs (the `block` column of pooled records; at least
MIN_PAIRS of them), the bootstrap resamples *pairs* instead: the i-th reference block and the
i-th audit block ran side by side, so a busy spell of the client or the server that slowed one
phase's block shows as variation between pairs and widens the interval, where resampling each
phase on its own would read it as a difference between the phases. Each replicate draws one
pair fewer than there are (the bootstrap's variance of a mean over k units is (k−1)/k of the
true one; k−1 draws make it unbiased).

A Mann-Whitney U test on per-query service times (sent → completed: no client queueing, which
differs by construction between phases) adds a distribution-level check that does not depend on
the scenario's score.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from auditkit.audits.kit.rank_tests import mann_whitney_less, normal_isf, normal_sf
from auditkit.audits.kit.resample import Ranks, pooled_order_statistic
from auditkit.early_stopping import overlatency_count
from auditkit.metrics import ES_PERCENTILE
from auditkit.results import Evidence, PhaseResult

StatVerdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]
CONFIDENCE = 0.95
BOOTSTRAP_ROUNDS = 2000
MIN_BLOCKS = 4
TARGET_BLOCK_SIZE = 4
#: block pairs needed before the interval resamples pairs (fewer: each phase on its own)
MIN_PAIRS = 6


def bound_text(value: float, limits: tuple[float, ...], digits: int = 3) -> str:
    """`value` with the fewest significant digits (at least `digits`) that keep it on its own
    side of every limit: 1.0951 against a 1.1 limit prints 1.095, never 1.1."""
    for d in range(digits, 12):
        text = f"{value:.{d}g}"
        shown = float(text)
        if all((shown < lim) == (value < lim) and (shown > lim) == (value > lim) for lim in limits):
            return text
    return repr(value)


def interval_text(low: float | None, high: float | None, *limits: float) -> str:
    """`[low, high]` printed so that neither bound is rounded onto (or across) a limit."""
    shown = ["n/a" if b is None else bound_text(b, limits) for b in (low, high)]
    return f"[{shown[0]}, {shown[1]}]"


class StatisticalView(Evidence):
    """Interval on audit/reference score ratio, the verdict it gives, and the test behind it."""

    verdict: StatVerdict
    ratio: float
    ci_low: float
    ci_high: float
    confidence: float
    limit: float
    blocks: tuple[int, int]
    queries_to_settle: int | None
    mannwhitney_p: float | None
    service_median_ratio: float | None
    method: str


def _blocks(frame: pd.DataFrame, n_blocks: int) -> list[pd.DataFrame]:
    ordered = frame.sort_values("completed_ns")
    edges = np.linspace(0, len(ordered), n_blocks + 1).astype(int)
    return [ordered.iloc[a:b] for a, b in itertools.pairwise(edges) if b > a]


def _throughput_parts(blocks: list[pd.DataFrame]) -> tuple[np.ndarray, np.ndarray]:
    """(count, busy time) per block: resampled sums give a samples/s score."""
    counts, spans = [], []
    previous_end = 0
    for block in blocks:
        end = int(block["completed_ns"].max())
        counts.append(len(block))
        spans.append(max(end - previous_end, 1))
        previous_end = end
    return np.array(counts, float), np.array(spans, float)


def _bootstrap_scores(
    frame: pd.DataFrame, scenario: str, n_blocks: int, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """The phase's score and its bootstrap replicates (higher = faster, like LoadGen's)."""
    blocks = _blocks(frame, n_blocks)
    k = len(blocks)
    picks = rng.integers(0, k, size=(BOOTSTRAP_ROUNDS, k))
    if scenario in ("offline", "server"):
        counts, spans = _throughput_parts(blocks)
        point = counts.sum() / spans.sum() * 1e9
        # the first block carries the phase's ramp-up once in every run: keep it fixed and
        # resample the steady-state blocks around it
        rest = rng.integers(1, k, size=(BOOTSTRAP_ROUNDS, k - 1))
        reps = (counts[0] + counts[rest].sum(axis=1)) / (spans[0] + spans[rest].sum(axis=1)) * 1e9
        return float(point), reps
    # latency scenarios: score = 1e9 / LoadGen's early-stopping estimate, the official score
    # itself (a plain percentile here would give an interval of another number)
    q = ES_PERCENTILE[scenario]
    latencies = [b["latency_ns"].to_numpy(dtype=float) for b in blocks]
    point = 1e9 / early_stopping_value(np.concatenate(latencies), q)
    reps = 1e9 / pooled_order_statistic(latencies, picks, early_stopping_ranks(q))
    return point, reps


def paired_blocks(reference: pd.DataFrame, audit: pd.DataFrame) -> list[int] | None:
    """The block numbers both pooled phases have, when they ran as >= MIN_PAIRS block pairs."""
    if "block" not in reference.columns or "block" not in audit.columns:
        return None
    # a block with no completed query pairs with nothing: the pairs both phases have
    common = set(reference["block"]) & set(audit["block"])
    if len(common) < MIN_PAIRS:
        return None
    return sorted(int(b) for b in common)


def pair_picks(pairs: int, rng: np.random.Generator) -> np.ndarray:
    """BOOTSTRAP_ROUNDS rows of pairs − 1 pair numbers drawn with replacement (see module)."""
    return rng.integers(0, pairs, size=(BOOTSTRAP_ROUNDS, pairs - 1))


def _paired_scores(
    reference: pd.DataFrame,
    audit: pd.DataFrame,
    scenario: str,
    blocks: list[int],
    rng: np.random.Generator,
) -> tuple[float, float, np.ndarray]:
    """Both phases' scores and bootstrap replicates of their ratio, resampling block pairs."""
    picks = pair_picks(len(blocks), rng)
    if scenario in ("offline", "server"):

        def parts(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            grouped = frame.groupby("block")
            counts = grouped.size().reindex(blocks).to_numpy(dtype=float)
            spans = (grouped["completed_ns"].max() - grouped["scheduled_ns"].min()).reindex(blocks)
            return counts, np.maximum(spans.to_numpy(dtype=float), 1.0)

        (rc, rs), (ac, a_s) = parts(reference), parts(audit)
        ref_point, aud_point = rc.sum() / rs.sum() * 1e9, ac.sum() / a_s.sum() * 1e9
        ratios = (ac[picks].sum(axis=1) / a_s[picks].sum(axis=1)) / (
            rc[picks].sum(axis=1) / rs[picks].sum(axis=1)
        )
        return float(ref_point), float(aud_point), ratios
    q = ES_PERCENTILE[scenario]
    ref_lat = [reference.loc[reference["block"] == b, "latency_ns"].to_numpy(float) for b in blocks]
    aud_lat = [audit.loc[audit["block"] == b, "latency_ns"].to_numpy(float) for b in blocks]
    ref_point = 1e9 / early_stopping_value(np.concatenate(ref_lat), q)
    aud_point = 1e9 / early_stopping_value(np.concatenate(aud_lat), q)
    ranks = early_stopping_ranks(q)
    ratios = pooled_order_statistic(ref_lat, picks, ranks) / pooled_order_statistic(
        aud_lat, picks, ranks
    )
    return float(ref_point), float(aud_point), ratios


def early_stopping_ranks(percentile: float) -> Ranks:
    """`pooled_order_statistic` ranks of LoadGen's early-stopping estimate: sorted[n - t*]."""

    def ranks(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sizes, where = np.unique(n, return_inverse=True)
        rank = np.array([m - (overlatency_count(int(m), percentile) or 1) for m in sizes])
        return rank[where], rank[where]

    return ranks


def early_stopping_value(latencies: np.ndarray, percentile: float) -> float:
    """LoadGen's early-stopping estimate, sorted[N - t*], for float latencies (the maximum
    when N is too small to have one: the phase is then INVALID upstream anyway)."""
    n = len(latencies)
    t = overlatency_count(n, percentile) or 1
    return float(np.partition(latencies, n - t)[n - t])


#: the record columns `statistical_view` reads (and `block` when the phase has it)
VIEW_COLUMNS = ("status", "query_id", "scheduled_ns", "sent_ns", "completed_ns", "latency_ns")


def view_columns(phase: PhaseResult) -> pd.DataFrame:
    """The columns of `phase`'s records that `statistical_view` reads, and no others."""
    block = ("block",) if "block" in phase.column_names else ()
    return phase.columns(*VIEW_COLUMNS, *block)


def per_query(records: pd.DataFrame) -> pd.DataFrame:
    """Multi-stream: one row per query (its last completion, latency from its schedule)."""
    columns = {
        "completed_ns": ("completed_ns", "max"),
        "scheduled_ns": ("scheduled_ns", "min"),
        "sent_ns": ("sent_ns", "min"),
    }
    if "block" in records.columns:
        columns["block"] = ("block", "first")
    grouped = records.groupby("query_id").agg(**columns)
    grouped["latency_ns"] = grouped["completed_ns"] - grouped["scheduled_ns"]
    return grouped.reset_index()


def statistical_view(
    reference: pd.DataFrame,
    audit: pd.DataFrame,
    scenario: str,
    threshold: float,
    *,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    tails: tuple[float, float] | None = None,
) -> StatisticalView | None:
    """CI on audit/reference score ratio by block bootstrap; None when too few queries.
    `tails` (lower, upper): the interval's two error levels when they differ (a FAIL and a PASS
    guard against different errors); otherwise `confidence`, split evenly."""
    ref = reference[reference["status"] == "ok"]
    aud = audit[audit["status"] == "ok"]
    # multi-stream is scored on query latency: resample queries, not their samples
    units_ref, units_aud = (per_query(f) if scenario == "multi-stream" else f for f in (ref, aud))
    n_ref = min(max(MIN_BLOCKS, len(units_ref) // TARGET_BLOCK_SIZE), 50)
    n_aud = min(max(MIN_BLOCKS, len(units_aud) // TARGET_BLOCK_SIZE), 50)
    if len(units_ref) < 2 * MIN_BLOCKS or len(units_aud) < 2 * MIN_BLOCKS:
        return None
    rng = np.random.default_rng(seed)
    pairs = paired_blocks(units_ref, units_aud)
    if pairs is not None:
        ref_point, aud_point, ratios = _paired_scores(units_ref, units_aud, scenario, pairs, rng)
        n_ref = n_aud = len(pairs)
        method = (
            f"bootstrap ({BOOTSTRAP_ROUNDS} rounds) of the {scenario} score ratio over "
            f"{len(pairs)} reference/audit block pairs"
        )
    else:
        ref_point, ref_reps = _bootstrap_scores(units_ref, scenario, n_ref, rng)
        aud_point, aud_reps = _bootstrap_scores(units_aud, scenario, n_aud, rng)
        ratios = aud_reps / ref_reps
        method = f"block bootstrap ({BOOTSTRAP_ROUNDS} rounds) of the {scenario} score ratio"
    lower, upper = tails if tails is not None else ((1 - confidence) / 2, (1 - confidence) / 2)
    low, high = (float(x) for x in np.quantile(ratios, [lower, 1 - upper]))
    ratio = aud_point / ref_point
    limit = 1 + threshold
    verdict: StatVerdict = "PASS" if high < limit else "FAIL" if low > limit else "INCONCLUSIVE"
    settle = None
    if verdict == "INCONCLUSIVE":
        settle = queries_to_settle(ratio, (low, high), limit, len(ref) + len(aud))
    p_value, median_ratio = _service_time_test(ref, aud)
    return StatisticalView(
        verdict=verdict,
        ratio=ratio,
        ci_low=low,
        ci_high=high,
        confidence=1 - lower - upper,
        limit=limit,
        blocks=(n_ref, n_aud),
        queries_to_settle=settle,
        mannwhitney_p=p_value,
        service_median_ratio=median_ratio,
        method=method,
    )


def queries_to_settle(
    ratio: float, interval: tuple[float, float], limit: float, queries: int
) -> int | None:
    """About how many more queries would move the interval off `limit` (None: the ratio sits
    on it). The interval narrows like 1/sqrt(n): n is scaled until the side facing the limit
    clears it (the interval need not be symmetric)."""
    if ratio == limit:
        return None
    low, high = interval
    side = high - ratio if ratio < limit else ratio - low
    factor = (side / abs(ratio - limit)) ** 2
    return max(1, math.ceil(queries * (factor - 1)))


def spent(alpha: float, fraction: float) -> float:
    """The share of `alpha` spent by information fraction `fraction` (0..1]: Lan-DeMets'
    O'Brien-Fleming-type function α(t) = 2 − 2Φ(z₁₋α/₂ / √t), one-sided form (α(1) = α). Early
    looks spend almost nothing, so the last look keeps most of `alpha`."""
    if fraction >= 1:
        return alpha
    return 2 * normal_sf(normal_isf(alpha / 2) / math.sqrt(fraction))


def level_at_look(alpha: float, fractions: Sequence[float], look: int, checks: int = 1) -> float:
    """Each of `checks` checks' share of `alpha` at look `look` (1-based) of the planned
    information `fractions` (increasing, the last 1): the spending increment α(t_k) − α(t_{k−1}),
    split evenly (Bonferroni) over the checks. The increments add up to `alpha`, so the chance of
    any call of this kind over all looks and checks stays <= alpha (a union bound: it needs no
    assumption about how looks correlate)."""
    if not 1 <= look <= len(fractions):
        raise ValueError(f"look {look} is not one of the {len(fractions)} planned")
    before = spent(alpha, fractions[look - 2]) if look > 1 else 0.0
    return (spent(alpha, fractions[look - 1]) - before) / checks


def _service_time_test(ref: pd.DataFrame, aud: pd.DataFrame) -> tuple[float | None, float | None]:
    """One-sided Mann-Whitney U: are audit service times smaller than the reference's?"""
    ref_s = (ref["completed_ns"] - ref["sent_ns"]).to_numpy(dtype=float)
    aud_s = (aud["completed_ns"] - aud["sent_ns"]).to_numpy(dtype=float)
    if len(ref_s) < 2 or len(aud_s) < 2:
        return None, None
    p_value = mann_whitney_less(aud_s, ref_s)
    median_ratio = float(np.median(ref_s) / np.median(aud_s)) if np.median(aud_s) > 0 else None
    return p_value, median_ratio
