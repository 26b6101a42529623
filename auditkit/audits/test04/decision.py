"""auditkit's TEST04 decision: upstream's score, judged with its certainty. Pure.

levels  a FAIL and a PASS are wrong in different worlds, so each has its own α = 0.05:
        a FAIL is wrong only on a server without a cache, where *any* of the C FAIL checks
          that have data in this run may fire by chance (C = 5 by default: score interval,
          partial cache (S below), twins and the two control arms; none is set aside by what
          the design assumes a cache can do): each check's lower tail at look k is
            a_k = (α(t_k) − α(t_{k−1})) / C
        a PASS is wrong only when a cache lifted some ratio above the limit; a PASS route needs
          *every* ratio it reads below the limit (an intersection-union test: the upper bound
          of a ratio truly above the limit falls below it with chance <= b_k, whatever the
          others do, so no split over them); the R routes (score interval; control arms with
          the cost-matched partial check: R = 2 when the control phase ran, else 1) are a
          union: each interval's upper tail is
            b_k = (α(t_k) − α(t_{k−1})) / R
        α(t) = 2 − 2Φ(z₁₋α/₂ / √t) (Lan-DeMets, O'Brien-Fleming type); t_k the planned
          information at look k: (1 + (k−1)/2) / (1 + (K−1)/2), each extra round adding half a
          phase, K = 1 + the rounds allowed. The increments add up to α over the K looks, so
          P(any false FAIL) <= α and P(a false PASS) <= α (union bounds), and the last look
          keeps most of α
FAIL    never-seen controls (the control phase: prompts synthesised at run time, each as long
          as the measured prompt issued just before it, the same max_tokens): the interval of
          the median pair ratio (control / measured time) lies above 1 + threshold for the
          repeated sample (a cache of repeats) or for fresh dataset rows (a cache filled
          before the run, whether or not it reads the salt);
        or primed cache: each salted twin is paired with its original (issued just before
          it); the originals are faster in a one-sided sign test at the level, with a median
          pair ratio > 1 + threshold (salted or not: a cache may ignore the salt);
        or the interval of the score ratio (tails a_k below, b_k above; a block bootstrap
          of the very estimator upstream scores with) lies above 1 + threshold;
        or a partial cache: the interval of the audit blocks' repeats' median speed-up lies
          above 1 + threshold. With a control phase it is cost-matched:
            S = [med(fresh rows) / med(repeats)] / [med(C_dataset) / med(C_repeated)]
          (C_x: the never-seen prompts paired with x, as long and with the same max_tokens;
          per output token when output lengths differ), so the repeated sample's own cost
          cancels; the first factor's bootstrap resamples block pairs (16 contiguous blocks
          when the phases did not alternate), the second 16 contiguous blocks of the control
          phase's pairs. Without one, S is the first factor alone (not cost-matched). Where
          a query's time is mostly a server queue's wait (offline, saturated) the second
          factor tends to 1 and S carries the queue's composition, as upstream's score does
PASS    no check fires, and the score interval lies below 1 + threshold, or (control phase)
          both control arms' intervals and the cost-matched S's do: every ratio that route
          reads compares prompts of equal cost. S is what covers the audit blocks: the control
          phase never repeats back to back, and in a server queue a pair's ratio dilutes a
          cheaper-but-queued repeat (a prefix cache that doubles offline throughput read
          1.02 on the repeated arm). Without a control phase only the score interval can PASS
INCONCLUSIVE  otherwise: the look did not settle it (with the queries that would)
INVALID whenever upstream's rule says INVALID (a phase that is not a valid result), except
        a late client loop alone (the client guard's event-loop lag, every query complete):
          it makes the look INVALID only when it could have decided the verdict: the lagged
          blocks fell on one arm more than the other (alternating blocks: a two-sided sign
          test over them, p < 0.05; one phase each: either but not both), or the look's
          verdict without the lagged block pairs differs from its verdict with them.
          Otherwise the verdict stands, its interval widened to span both, and the lag is
          reported (ClientLag)
"""

from __future__ import annotations

import functools
import itertools
from typing import Protocol

import numpy as np
import pandas as pd

from auditkit.audits.kit.rank_tests import mann_whitney_less, sign_test, spearman
from auditkit.audits.kit.ratio import (
    BOOTSTRAP_ROUNDS,
    StatisticalView,
    interval_text,
    level_at_look,
    pair_picks,
    paired_blocks,
    statistical_view,
)
from auditkit.audits.kit.ratio import (
    MIN_PAIRS as MIN_BLOCK_PAIRS,
)
from auditkit.audits.kit.resample import median_ranks, pooled_order_statistic
from auditkit.results import Evidence, PhaseResult, Verdict

ALPHA = 0.05
#: the first queries of a phase this many times slower than the rest: a cold start
COLD_START_RATIO = 1.5
#: a reference trend this large over the phase (relative) is reported as drift
DRIFT_CHANGE = 0.10
#: lagged blocks this unevenly spread over the arms (sign test) fell on one arm more
LAG_BALANCE_P = 0.05
#: the share of a phase each extra round adds (the information a look has gained)
ROUND_SHARE = 0.5
#: pairs in an arm below this: the arm cannot decide (no interval)
MIN_PAIRS = 16
#: output-token counts of an arm's two sides this far apart (relative): judged per output token
OUTPUT_TOLERANCE = 0.10
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


class ControlArm(Evidence):
    """Measured prompts against never-seen prompts of the same cost, synthesised at run time and
    each issued right after its partner (so both met the same server state): the median over
    pairs of (control time / measured time), with a block-bootstrap interval. > 1: the measured
    prompts were faster than equally costly prompts no cache can have held."""

    #: "repeated": the repeated audit sample; "dataset": fresh dataset rows (a cache filled
    #: before the run)
    arm: str
    pairs: int = 0
    median_ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    #: "service time" or "service time per output token" (output lengths differed)
    measure: str = "service time"
    #: median prompt tokens the server reported for each side (None: not reported)
    measured_prompt_tokens: float | None = None
    control_prompt_tokens: float | None = None
    fired: bool = False


class PartialCacheCheck(Evidence):
    """Repeated sample vs fresh samples: the ratio of their median service times, with an
    interval from a block bootstrap (queries that queue together stay together). `matched`:
    divided by the same ratio between never-seen prompts as long as each (the control phase),
    so the repeated sample's own cost cancels and an honest server centres on 1.0."""

    median_speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    #: cost-matched (the control phase ran): `median_speedup` is corrected by `cost_ratio`
    matched: bool = False
    #: never-seen prompts as long as fresh rows / as long as the repeated sample (median
    #: times): the speed-up the repeated sample's own cost alone gives (None: not matched)
    cost_ratio: float | None = None
    #: "service time" or "service time per output token" (output lengths differed)
    measure: str = "service time"
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


class ClientLag(Evidence):
    """Blocks whose client event loop ran late (the client guard's lag; nothing else made them
    client-bound): where the lag fell, and whether it could have decided the verdict."""

    #: block numbers (1-based, the pooled phases' `block`) of each role that ran late
    reference_blocks: tuple[int, ...] = ()
    audit_blocks: tuple[int, ...] = ()
    control_blocks: tuple[int, ...] = ()
    #: the worst block's event-loop lag (p99), ms
    worst_ms: float = 0.0
    #: the verdict, and the score interval, on the block pairs without any lag (None: too few)
    verdict_without: Verdict | None = None
    ci_without: tuple[float, float] | None = None
    #: the lag could have decided the verdict (the look is then INVALID)
    decided: bool = False


class Decision(Evidence):
    """auditkit's verdict and every check behind it."""

    verdict: Verdict
    reason: str
    look: int
    looks: int
    #: each FAIL check's level at this look (the lower tail of its interval)
    alpha_per_look: float
    #: each PASS route's level at this look (the upper tail of every interval it reads)
    pass_level: float | None = None
    #: FAIL checks with data in this run (the false-FAIL α is split over them)
    fail_checks: int | None = None
    interval: StatisticalView | None = None
    partial_cache: PartialCacheCheck | None = None
    control: ControlCheck | None = None
    repeated_vs_control: ControlArm | None = None
    dataset_vs_control: ControlArm | None = None
    drift: DriftCheck | None = None
    client_lag: ClientLag | None = None
    queries_needed: int | None = None
    reliable: bool = True


#: the record columns the decision reads (and `block` when the records are pooled blocks)
DECISION_COLUMNS = (
    "status",
    "variant",
    "sample_index",
    "query_id",
    "scheduled_ns",
    "sent_ns",
    "completed_ns",
    "latency_ns",
    "prompt_tokens",
    "output_tokens",
)


def decision_columns(phase: PhaseResult) -> pd.DataFrame:
    """The columns of `phase`'s records the decision reads, and no others."""
    block = ("block",) if "block" in phase.column_names else ()
    return phase.columns(*DECISION_COLUMNS, *block)


def _variant(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    if "variant" not in frame.columns:
        return frame if name == "main" else frame.iloc[0:0]
    return frame[frame["variant"] == name]


def control_check(
    reference: pd.DataFrame, level: float, limit: float, salted: bool
) -> ControlCheck:
    """Were the dataset's prompts answered faster than never-seen twins of them? Each twin is
    paired with its original (issued just before it, so both met the same server queue): a
    sign test on the pairs and their median time ratio. Salted or not, it FAILs when the
    originals are faster (a cache keyed without the salt held them)."""
    ok = reference[reference["status"] == "ok"]
    twins = _variant(ok, "twin")
    originals = _variant(ok, "main")
    check = ControlCheck(twins=len(twins), originals=len(originals), salted_run=salted)
    pairs = _pairs(originals, twins)
    if len(pairs) < 4:
        return check
    slower = int((pairs > 1.0).sum())
    p_value = sign_test(slower, len(pairs), "greater")
    ratio = float(np.median(pairs))
    # salted originals cannot have been cached byte for byte, but a cache that strips or
    # ignores the salt can hold them: the evidence decides, never an assumption
    primed = p_value < level and ratio > limit
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


#: one control-phase pair: (arm, measured (service, output, prompt tokens), control (same))
_Pair = tuple[str, tuple[float, float, float], tuple[float, float, float]]


def _control_pairs(controls: pd.DataFrame, audit_index: int | None) -> list[_Pair]:
    """The control phase's pairs in the order they were issued: each control with the measured
    query issued just before it (both completed), "repeated" when that is row `audit_index`."""
    if controls.empty or audit_index is None:
        return []
    frame = controls.sort_values("sent_ns", kind="stable")
    frame = frame[frame["variant"].isin(["main", "control"])]
    rows = list(
        zip(
            frame["variant"], frame["sample_index"], frame["status"], frame["sent_ns"],
            frame["completed_ns"], frame["output_tokens"], frame["prompt_tokens"], strict=True,
        )
    )  # fmt: skip
    out: list[_Pair] = []
    for before, after in itertools.pairwise(rows):
        if before[0] != "main" or after[0] != "control" or before[1] != after[1]:
            continue
        if before[2] != "ok" or after[2] != "ok":
            continue
        arm = "repeated" if before[1] == audit_index else "dataset"
        measured = (float(before[4] - before[3]), _num(before[5]), _num(before[6]))
        control = (float(after[4] - after[3]), _num(after[5]), _num(after[6]))
        out.append((arm, measured, control))
    return out


def _output_differs(a: np.ndarray, b: np.ndarray) -> bool:
    """Median output-token counts this far apart (OUTPUT_TOLERANCE): the forced output length
    did not hold, so compare time per output token (unknown counts: never)."""
    a_out, b_out = _nan_median(a), _nan_median(b)
    return a_out > 0 and b_out > 0 and abs(a_out - b_out) / max(a_out, b_out) > OUTPUT_TOLERANCE


def _per_token(times: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    return times / np.where(outputs > 0, outputs, np.nan)


def control_arm(
    controls: pd.DataFrame, arm: str, audit_index: int | None, tails: tuple[float, float],
    limit: float, seed: int = 0,
) -> ControlArm:  # fmt: skip
    """One arm of the never-seen controls: each control paired with the measured query issued
    just before it ("repeated": those of row `audit_index`; "dataset": the others). Fires when
    the whole interval (tails (lower, upper); a bootstrap of contiguous blocks of pairs, as
    queries that queue together stay together) lies above `limit`."""
    out = ControlArm(arm=arm)
    pairs = [(m, c) for a, m, c in _control_pairs(controls, audit_index) if a == arm]
    if len(pairs) < MIN_PAIRS:
        return out.model_copy(update={"pairs": len(pairs)})
    m, c = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    measure = "service time"
    m_time, c_time = m[:, 0], c[:, 0]
    if _output_differs(m[:, 1], c[:, 1]):
        measure = "service time per output token"
        m_time, c_time = _per_token(m_time, m[:, 1]), _per_token(c_time, c[:, 1])
    ratios = c_time / np.maximum(m_time, 1.0)
    ratios = ratios[np.isfinite(ratios)]
    if len(ratios) < MIN_PAIRS:
        return out.model_copy(update={"pairs": len(ratios)})
    reps = _equal_block_medians(ratios, np.random.default_rng(seed))
    low, high = (float(x) for x in np.quantile(reps, [tails[0], 1 - tails[1]]))
    prompt_m, prompt_c = _nan_median(m[:, 2]), _nan_median(c[:, 2])
    return out.model_copy(
        update={
            "pairs": len(ratios),
            "median_ratio": float(np.median(ratios)),
            "ci_low": low,
            "ci_high": high,
            "measure": measure,
            "measured_prompt_tokens": float(prompt_m) if np.isfinite(prompt_m) else None,
            "control_prompt_tokens": float(prompt_c) if np.isfinite(prompt_c) else None,
            "fired": low > limit,
        }
    )


def _equal_block_medians(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of the median over contiguous blocks of equal size (the few values
    beyond a whole block are left out), vectorised: PARTIAL_BLOCKS blocks, at least 2 a block."""
    count = min(PARTIAL_BLOCKS, len(values) // 2)
    size = len(values) // count
    blocks = values[: count * size].reshape(count, size)
    picks = rng.integers(0, count, size=(BOOTSTRAP_ROUNDS, count))
    return np.median(blocks[picks].reshape(BOOTSTRAP_ROUNDS, count * size), axis=1)


def _nan_median(values: np.ndarray) -> float:
    """The median of the finite values (NaN when there are none)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else float("nan")


def _num(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return out


def partial_cache_check(
    reference: pd.DataFrame,
    audit: pd.DataFrame,
    tails: tuple[float, float],
    limit: float,
    seed: int = 0,
    controls: pd.DataFrame | None = None,
    audit_index: int | None = None,
) -> PartialCacheCheck:
    """Is the repeated sample served faster than fresh ones in the middle of the distribution
    (where a cache that misses now and then still shows, and one outlier does not)? Fires when
    the whole interval of the median speed-up (tails (lower, upper)) is above `limit`.

    With a control phase (`controls`, each arm at least MIN_PAIRS pairs) the speed-up is
    cost-matched: divided by the median time of never-seen prompts as long as fresh rows over
    that of never-seen prompts as long as the repeated sample (the speed-up its own cost
    alone gives), each factor with its own bootstrap, so the interval carries both."""
    fresh_frame = _ok_sorted(_variant(reference, "main"))
    repeated_frame = _ok_sorted(audit)
    pairs = _control_pairs(controls, audit_index) if controls is not None else []
    arms = {a: np.array([c for arm, _, c in pairs if arm == a]) for a in ("repeated", "dataset")}
    matched = all(len(v) >= MIN_PAIRS for v in arms.values())
    per_token = matched and (
        _output_differs(_outputs(repeated_frame), arms["repeated"][:, 1])
        or _output_differs(_outputs(fresh_frame), arms["dataset"][:, 1])
    )
    if per_token:
        fresh_frame = fresh_frame[_outputs(fresh_frame) > 0]
        repeated_frame = repeated_frame[_outputs(repeated_frame) > 0]
    fresh, repeated = _service(fresh_frame, per_token), _service(repeated_frame, per_token)
    if len(fresh) < 2 * PARTIAL_BLOCKS or len(repeated) < 2 * PARTIAL_BLOCKS:
        return PartialCacheCheck()
    if np.median(repeated) <= 0:
        return PartialCacheCheck()
    speedup = float(np.median(fresh) / np.median(repeated))
    p_value = mann_whitney_less(repeated, fresh)
    rng = np.random.default_rng(seed)
    blocks = paired_blocks(fresh_frame, repeated_frame)
    if blocks is not None:
        # alternating blocks: resample the pairs, so a busy spell in one phase's block widens
        # the interval instead of reading as a speed-up
        fresh_by = [_service(fresh_frame[fresh_frame["block"] == b], per_token) for b in blocks]
        repeated_by = [
            _service(repeated_frame[repeated_frame["block"] == b], per_token) for b in blocks
        ]
        picks = pair_picks(len(blocks), rng)
        fresh_reps, repeated_reps = _medians(fresh_by, picks), _medians(repeated_by, picks)
    else:
        fresh_reps = _block_medians(fresh, rng)
        repeated_reps = _block_medians(repeated, rng)
    scale = 1e-6 if per_token else 1.0  # per-token times are small: floor at a µs, not a ns
    ratios = fresh_reps / np.maximum(repeated_reps, scale)
    update: dict[str, object] = {}
    if matched:
        cost, cost_reps = _cost_ratio(pairs, per_token, rng)
        speedup, ratios = speedup / cost, ratios / cost_reps
        update = {
            "matched": True,
            "cost_ratio": cost,
            "measure": "service time per output token" if per_token else "service time",
        }
    low, high = (float(x) for x in np.nanquantile(ratios, [tails[0], 1 - tails[1]]))
    return PartialCacheCheck(
        median_speedup=speedup, ci_low=low, ci_high=high, p_value=p_value, fired=low > limit,
        **update,
    )  # fmt: skip


def _cost_ratio(
    pairs: list[_Pair], per_token: bool, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """Median time of the dataset arm's controls / the repeated arm's, and its bootstrap
    replicates: PARTIAL_BLOCKS contiguous blocks of the control phase's pairs (both arms, as
    they were issued: the phase's busy spells stay inside a block), resampled together."""
    times = np.array([c[0] / c[1] if per_token else c[0] for _, _, c in pairs], dtype=float)
    is_rep = np.array([arm == "repeated" for arm, _, _ in pairs])
    keep = np.isfinite(times) & (times > 0)
    times, is_rep = times[keep], is_rep[keep]
    point = float(np.median(times[~is_rep]) / np.median(times[is_rep]))
    chunks = np.array_split(np.arange(len(times)), PARTIAL_BLOCKS)
    rep_parts = [times[c][is_rep[c]] for c in chunks]
    dat_parts = [times[c][~is_rep[c]] for c in chunks]
    picks = rng.integers(0, len(chunks), size=(BOOTSTRAP_ROUNDS, len(chunks)))
    # a replicate whose picked blocks hold no pair of one arm (only with very few pairs) has
    # an infinite median there: it counts as no evidence either way (ratio NaN, left out)
    rep_reps, dat_reps = _medians(rep_parts, picks), _medians(dat_parts, picks)
    with np.errstate(invalid="ignore"):
        reps = dat_reps / rep_reps
    return point, np.where(np.isfinite(reps), reps, np.nan)


def _outputs(frame: pd.DataFrame) -> np.ndarray:
    if "output_tokens" not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame["output_tokens"], errors="coerce").to_numpy(dtype=float)


def _ok_sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"].sort_values("completed_ns")


def _service(frame: pd.DataFrame, per_token: bool = False) -> np.ndarray:
    times = (frame["completed_ns"] - frame["sent_ns"]).to_numpy(dtype=float)
    return _per_token(times, _outputs(frame)) if per_token else times


def _block_medians(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates of the median, resampling PARTIAL_BLOCKS contiguous blocks."""
    blocks = np.array_split(values, PARTIAL_BLOCKS)
    return _medians(blocks, rng.integers(0, len(blocks), size=(BOOTSTRAP_ROUNDS, len(blocks))))


def _medians(parts: list[np.ndarray], picks: np.ndarray) -> np.ndarray:
    """One median per row of `picks`: of the parts that row names, pooled."""
    return pooled_order_statistic(parts, picks, median_ranks)


def drift_check(reference: pd.DataFrame) -> DriftCheck:
    """Service time against completion order in the reference phase: drift and cold start."""
    values = _service(_ok_sorted(_variant(reference, "main")))
    n = len(values)
    if n < 16 or np.ptp(values) == 0:
        # too few, or all alike (a simulated server without jitter): nothing to trend
        return DriftCheck()
    position = np.arange(n, dtype=float)
    rho, p_value = spearman(position, values)
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


def information_fractions(looks: int) -> tuple[float, ...]:
    """The planned information at each look: the planned phases count 1, each extra round
    ROUND_SHARE more (fixed before the run, as a spending function needs)."""
    total = 1 + ROUND_SHARE * (looks - 1)
    return tuple((1 + ROUND_SHARE * k) / total for k in range(looks))


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
    controls: pd.DataFrame | None = None,
    audit_index: int | None = None,
    client_bound_only: bool = False,
    lag: ClientLag | None = None,
) -> Decision:
    """auditkit's verdict at one look (the rule is the module docstring). `client_bound_only`:
    upstream's INVALID comes only from a saturated client; a control arm that fires then still
    FAILs (each pair met the same client, and a saturated client can only hide a speed-up).
    `lag`: that saturation was only a late event loop, in these blocks (the lag rule)."""
    has_controls = controls is not None and not controls.empty
    fail_checks = 2 + int(not _variant(reference, "twin").empty) + 2 * int(has_controls)
    fractions = information_fractions(looks)
    level = level_at_look(ALPHA, fractions, look, fail_checks)
    pass_level = level_at_look(ALPHA, fractions, look, 2 if has_controls else 1)
    tails = (level, pass_level)
    limit = 1 + threshold
    base = {
        "look": look,
        "looks": looks,
        "alpha_per_look": level,
        "pass_level": pass_level,
        "fail_checks": fail_checks,
        "reliable": reliable,
    }
    drift = drift_check(reference)
    if upstream_verdict == "INVALID":
        if client_bound_only and controls is not None:
            repeated = control_arm(controls, "repeated", audit_index, tails, limit, seed)
            fresh = control_arm(controls, "dataset", audit_index, tails, limit, seed + 1)
            arm = fresh if fresh.fired else repeated if repeated.fired else None
            if arm is not None and arm.median_ratio is not None:
                what = "dataset prompts" if arm is fresh else "the repeated sample"
                reason = (
                    f"{what} answered {arm.median_ratio:.3g}× faster than never-seen prompts of "
                    f"the same cost (interval [{arm.ci_low:.3g}, {arm.ci_high:.3g}] above the "
                    f"{limit:g} limit, {arm.pairs} pairs), although the client was saturated "
                    f"(which can only hide a speed-up: {upstream_reason}) (results cached)"
                )
                return Decision(
                    verdict="FAIL",
                    reason=reason,
                    drift=drift,
                    repeated_vs_control=repeated,
                    dataset_vs_control=fresh,
                    **base,
                )
        if lag is None:
            return Decision(verdict="INVALID", reason=upstream_reason, drift=drift, **base)
    if lag is not None:
        # the planned phases or an extra round's blocks ran with a late client loop, and
        # nothing else is wrong with them: the lag rule decides
        judge = functools.partial(
            decide_with_certainty,
            scenario=scenario,
            threshold=threshold,
            upstream_verdict="PASS",  # judged as a valid look; the lag rule decides below
            upstream_reason=upstream_reason,
            look=look,
            looks=looks,
            salted=salted,
            reliable=reliable,
            seed=seed,
            audit_index=audit_index,
        )
        why = (
            upstream_reason
            if upstream_verdict == "INVALID"
            else "INVALID: an extra round's client was saturated"
        )
        return lag_rule(reference, audit, controls, lag, judge, why)
    control = control_check(reference, level, limit, salted)
    partial = partial_cache_check(reference, audit, tails, limit, seed, controls, audit_index)
    view = statistical_view(reference, audit, scenario, threshold, seed=seed, tails=tails)
    frame = controls if controls is not None else reference.iloc[0:0]
    repeated = control_arm(frame, "repeated", audit_index, tails, limit, seed)
    fresh = control_arm(frame, "dataset", audit_index, tails, limit, seed + 1)
    checks = {
        "interval": view,
        "partial_cache": partial,
        "control": control,
        "repeated_vs_control": repeated,
        "dataset_vs_control": fresh,
        "drift": drift,
    }
    if control.primed:
        reason = (
            f"the dataset's prompts were answered {control.median_ratio:.3g}× faster than "
            f"salted twins of them (p = {control.p_value:.2g}): a cache held them "
            "before this run (results cached)"
        )
        return Decision(verdict="FAIL", reason=reason, **checks, **base)
    if fresh.fired:
        reason = (
            f"dataset prompts were answered {fresh.median_ratio:.3g}× faster than never-seen "
            f"prompts of the same cost synthesised at run time (interval [{fresh.ci_low:.3g}, "
            f"{fresh.ci_high:.3g}] above the {limit:g} limit, {fresh.pairs} pairs): a cache held "
            "the dataset before this run, whatever the salt (results cached)"
        )
        return Decision(verdict="FAIL", reason=reason, **checks, **base)
    if repeated.fired:
        reason = (
            f"the repeated sample was answered {repeated.median_ratio:.3g}× faster than "
            f"never-seen prompts of the same cost synthesised at run time (interval "
            f"[{repeated.ci_low:.3g}, {repeated.ci_high:.3g}] above the {limit:g} limit, "
            f"{repeated.pairs} pairs): repeated samples are served from a cache (results cached)"
        )
        return Decision(verdict="FAIL", reason=reason, **checks, **base)
    # the arms' route reads only cost-matched comparisons: the two arms, and the audit blocks'
    # own repeats against never-seen prompts as long (the matched partial check). The control
    # phase never repeats the sample back to back, as the audit blocks do, and in a queue a
    # pair's ratio dilutes a cheaper-but-queued repeat: the arms alone cannot vouch for the
    # audit blocks
    controls_clear = (
        partial.matched
        and partial.ci_high is not None
        and partial.ci_high < limit
        and repeated.ci_high is not None
        and fresh.ci_high is not None
        and repeated.ci_high < limit
        and fresh.ci_high < limit
    )
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
        than = (
            "fresh samples', cost-matched by never-seen prompts as long as each"
            if partial.matched
            else "fresh samples'"
        )
        reason = (
            f"the repeated sample's median service time is {partial.median_speedup:.3g}× faster "
            f"than {than} "
            f"(interval {interval_text(partial.ci_low, partial.ci_high, limit)}), "
            f"beyond the {limit:g} limit, though the official score does not show it: a cache "
            "that serves most repeats (partial cache)"
        )
        return Decision(verdict="FAIL", reason=reason, **checks, **base)
    if view.ci_high < limit or controls_clear:
        assert repeated.median_ratio is not None or view.ci_high < limit
        score = f"the audit/reference score ratio is {view.ratio:.3g}, interval {interval} " + (
            f"below the {limit:g} limit" if view.ci_high < limit else "not above the limit"
        )
        if controls_clear:
            matched = (
                f", the repeated sample and dataset prompts no faster than never-seen prompts "
                f"of the same cost (intervals up to {repeated.ci_high:.3g} and "
                f"{fresh.ci_high:.3g}), and the audit blocks' repeats no faster than that either "
                f"in the middle of their distribution (up to {partial.ci_high:.3g})"
            )
            reason = f"{score}{matched}: no caching detected"
        else:
            reason = (
                f"{score}, and the repeated sample is not served faster in the middle of its "
                "distribution: no caching detected"
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


class _Judge(Protocol):
    def __call__(
        self, reference: pd.DataFrame, audit: pd.DataFrame, *, controls: pd.DataFrame | None
    ) -> Decision: ...


def lag_rule(
    reference: pd.DataFrame,
    audit: pd.DataFrame,
    controls: pd.DataFrame | None,
    lag: ClientLag,
    judge: _Judge,
    upstream_reason: str,
) -> Decision:
    """A look whose only fault is a late client loop (module docstring): INVALID when the lag
    could have decided the verdict, else the verdict with its interval widened and the lag
    reported. `judge` decides a look on (reference, audit, controls) as if it were valid."""
    paired = "block" in reference.columns and "block" in audit.columns
    ref_n, aud_n = len(lag.reference_blocks), len(lag.audit_blocks)
    where = (
        f"the client's event loop ran late (up to {lag.worst_ms:.0f} ms, p99) in {ref_n} "
        f"reference and {aud_n} audit block{'s' if aud_n != 1 else ''}"
        + (f" and {len(lag.control_blocks)} control block(s)" if lag.control_blocks else "")
    )
    full = judge(reference, audit, controls=controls)
    if _one_sided(ref_n, aud_n, paired):
        # the lag slows the arm it falls on: more of it on one arm reads as a speed-up (or
        # hides one), which no interval accounts for
        out = lag.model_copy(update={"decided": True})
        reason = f"{upstream_reason} ({where}: it fell on one arm more than the other)"
        return full.model_copy(update={"verdict": "INVALID", "reason": reason, "client_lag": out})
    without = None
    if paired:
        drop = set(lag.reference_blocks) | set(lag.audit_blocks)
        clean_ref = reference[~reference["block"].isin(drop)]
        clean_aud = audit[~audit["block"].isin(drop)]
        clean_controls = controls
        if controls is not None and "block" in controls.columns and lag.control_blocks:
            clean_controls = controls[~controls["block"].isin(set(lag.control_blocks))]
        if len(set(clean_ref["block"]) & set(clean_aud["block"])) >= MIN_BLOCK_PAIRS:
            without = judge(clean_ref, clean_aud, controls=clean_controls)
    if without is None:
        # too few lag-free pairs to judge by: the lag fell on both arms as chance would spread
        # it (above), and the pair bootstrap carries its spread
        out = lag.model_copy(update={"decided": False})
        reason = f"{full.reason}; {where}, on both arms alike: it widens the interval"
        return full.model_copy(update={"reason": reason, "client_lag": out})
    view, clean_view = full.interval, without.interval
    ci = (clean_view.ci_low, clean_view.ci_high) if clean_view is not None else None
    out = lag.model_copy(update={"verdict_without": without.verdict, "ci_without": ci})
    if without.verdict != full.verdict:
        out = out.model_copy(update={"decided": True})
        reason = (
            f"{upstream_reason} ({where}: without those block pairs the look would be "
            f"{without.verdict}, with them {full.verdict}: the lag could have decided it)"
        )
        return full.model_copy(update={"verdict": "INVALID", "reason": reason, "client_lag": out})
    update: dict[str, object] = {"client_lag": out}
    if view is not None and clean_view is not None:
        # both readings agree: the interval spans them both
        low, high = min(view.ci_low, clean_view.ci_low), max(view.ci_high, clean_view.ci_high)
        update["interval"] = view.model_copy(update={"ci_low": low, "ci_high": high})
        both = interval_text(low, high, view.limit)
        update["reason"] = (
            f"{full.reason}; {where}: without those block pairs the verdict is the same, so "
            f"the lag widens the score interval to {both}"
        )
    else:
        update["reason"] = f"{full.reason}; {where}: without those block pairs the same verdict"
    return full.model_copy(update=update)


def _one_sided(reference: int, audit: int, paired: bool) -> bool:
    """Did the lag fall on one arm more than the other? Alternating blocks: more unevenly than
    chance would spread it (a two-sided sign test over the lagged blocks, p < LAG_BALANCE_P; a
    busy spell lands on whichever block is running). One phase each: whenever they differ."""
    if not paired:
        return reference != audit
    if reference == audit:
        return False
    return sign_test(reference, reference + audit, "two-sided") < LAG_BALANCE_P


def headline(decision: Decision, upstream_verdict: Verdict, upstream_reason: str) -> str:
    """The one-line reason: auditkit's, and why upstream's rule differs when it does."""
    if decision.verdict == upstream_verdict or upstream_verdict == "INVALID":
        return decision.reason
    return f"{decision.reason}; upstream's rule says {upstream_verdict}: {upstream_reason}"
