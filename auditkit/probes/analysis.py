"""Probe analysis: per-query records → effects with confidence intervals, findings, diagnosis.

Pure: DataFrames and numbers in, DataFrames, strings and numbers out. No I/O and no asyncio,
so every rule here can be checked on synthetic records and re-run on saved ones.

Every probe is replicated: it sends `k` rounds, each a cold query (a prompt nobody sent
before) beside a warm one (a repeat), so the comparison is paired round by round and slow
drift of the server cancels out. The effect of a metric is the typical ratio warm/cold
over the rounds (Hodges-Lehmann: robust to a few outlying pairs, which a busy machine makes),
with the signed-rank interval. A probe only names an effect
when the interval says so:

- "faster": the interval lies below 1 (no effect is excluded) and the speed-up is worth
  naming (the ratio is at most RELEVANT), or enough warm queries beat every cold one (a
  partial cache, which a mean of hits and misses hides);
- "not faster": the interval lies above RELEVANT (any speed-up worth naming is excluded);
- otherwise "not enough evidence", with the rounds more that would likely settle it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

#: two-sided confidence of every effect's interval (one-sided 0.5 % per decision: several
#: metrics and probes are read together, and "no cache" must almost never read as a cache)
CONFIDENCE = 0.99
#: two-sided confidence of the interval that clears a server ("not faster": one-sided 5 %).
#: Accusing needs more certainty than clearing: a missed cache shows again in the next probe
#: (its effects are large), a false accusation is the error users cannot check
CLEAR_CONFIDENCE = 0.90
#: a speed-up smaller than this (warm/cold above 0.85) is not named a cache signature
RELEVANT = 0.85
#: a warm query below HIT_MARGIN × the fastest cold one of its probe counts as a hit
HIT_MARGIN = 0.5
#: hits that call a probe faster on their own (a partial cache): at least this many and share
MIN_HITS = 3
MIN_HIT_SHARE = 0.25
#: rounds below this never decide anything (6: every pair agreeing is 97 % sure)
MIN_ROUNDS = 6
#: times below this (ms) count as this: a replayed stream's decode time is ~0, and log(0) is not
FLOOR_MS = 1e-3
#: a share of repeats at or above this duplicating an earlier answer is a replay (a live sampler
#: at T>0 never repeats a 32-token answer by chance)
IDENTICAL_SHARE = 0.25
MAX_MORE = 1000
#: decode time per token above this × the cold one's is decoding still done (not a replay)
DECODE_KEPT = 0.5

Verdict = Literal["faster", "not faster", "not enough evidence"]
Kind = Literal[
    "none",
    "response cache",
    "prefix cache",
    "request coalescing",
    "cache (kind unknown)",
    "not enough evidence",
]
KINDS: tuple[str, ...] = get_args(Kind)

PROBE_COLUMNS = (
    "probe",
    "group",
    "step",
    "round",
    "role",
    "prompt",
    "burst",
    "sent_ms",
    "latency_ms",
    "ttft_ms",
    "decode_ms",
    "tpot_ms",
    "cached_tokens",
    "output_tokens",
    "output_sha256",
    "status",
    "error",
)
RUNNING = "running…"


@dataclass(frozen=True)
class Effect:
    """Warm/cold ratio of one metric over the probe's rounds, with its interval and verdict."""

    metric: str
    ratio: float | None
    low: float | None
    high: float | None
    rounds: int
    verdict: Verdict
    more: int | None = None  # rounds more that would likely settle "not enough evidence"
    hits: int = 0  # warm queries below HIT_MARGIN × the fastest cold one

    @property
    def faster(self) -> bool:
        """The interval (or the hits) says warm is faster."""
        return self.verdict == "faster"

    @property
    def not_faster(self) -> bool:
        """The interval excludes any speed-up worth naming."""
        return self.verdict == "not faster"

    def describe(self) -> str:
        """e.g. 'TTFT 0.31× [0.27, 0.35] over 8 rounds: faster'."""
        if self.ratio is None or self.low is None or self.high is None:
            more = more_text(self.more) if self.more else ""
            return f"{self.metric}: {self.rounds} round(s), {self.verdict}{more}"
        head = f"{self.metric} {self.ratio:.2f}× [{self.low:.2f}, {self.high:.2f}]"
        tail: str = self.verdict
        if self.verdict == "not enough evidence" and self.more:
            tail += more_text(self.more)
        if self.hits and self.verdict == "faster" and self.high >= 1.0:
            tail += f" ({self.hits} warm queries beat every cold one: a partial cache)"
        return f"{head} over {self.rounds} rounds: {tail}"

    def as_row(self) -> dict[str, Any]:
        """The effect as a table row."""
        return {
            "metric": self.metric,
            "warm/cold": self.ratio,
            "low": self.low,
            "high": self.high,
            "rounds": self.rounds,
            "hits": self.hits,
            "verdict": self.verdict,
            # one mark for "none needed", in every table (not None in one and NaN in the next)
            "more rounds": self.more if self.more else "—",
        }


def signed_rank_cdf(n: int) -> np.ndarray:
    """P(T <= t) for t = 0 … n(n+1)/2 of the Wilcoxon signed-rank statistic of n pairs under
    no effect (exact: subset sums of 1..n, each subset equally likely)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for r in range(1, n + 1):
        counts[r:] = counts[r:] + counts[:-r].copy()
    return np.cumsum(counts) / 2.0**n


def hodges_lehmann(d: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """(estimate, low, high, attained confidence) of the centre of paired differences `d`: the
    median of the Walsh averages, and the distribution-free interval between order statistics
    of them (Wilcoxon signed rank). A few outlying pairs move neither much, unlike a mean.
    With too few pairs for `confidence` the interval is the whole range, at the confidence
    it attains."""
    n = len(d)
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2)
    cdf = signed_rank_cdf(n)
    alpha = (1 - confidence) / 2
    c = int(np.searchsorted(cdf, alpha, side="right"))  # P(T <= c - 1) <= alpha
    c = max(c, 1)  # at least the extremes
    attained = 1 - 2 * float(cdf[c - 1])
    return float(np.median(walsh)), float(walsh[c - 1]), float(walsh[-c]), attained


def more_text(more: int) -> str:
    """': run 12 more round(s)', or what to say when the estimate sits on a boundary."""
    if more >= MAX_MORE:
        return ": the estimate sits on the boundary, more rounds barely help (rerun later)"
    return f": run {more} more round(s)"


def paired_effect(
    cold: Iterable[float],
    warm: Iterable[float],
    metric: str,
    *,
    confidence: float = CONFIDENCE,
) -> Effect:
    """The warm/cold effect of paired samples (round i's cold beside round i's warm): the
    Hodges-Lehmann estimate of the log ratio with its signed-rank interval, as ratios."""
    pairs = [
        (max(float(c), FLOOR_MS), max(float(w), FLOOR_MS))
        for c, w in zip(cold, warm, strict=False)
        if _finite(c) and _finite(w)
    ]
    n = len(pairs)
    if n < MIN_ROUNDS:
        return Effect(metric, None, None, None, n, "not enough evidence", MIN_ROUNDS - n)
    c = np.array([p[0] for p in pairs])
    w = np.array([p[1] for p in pairs])
    d = np.log(w) - np.log(c)
    centre, lo, hi, _attained = hodges_lehmann(d, confidence)
    ratio, low, high = math.exp(centre), math.exp(lo), math.exp(hi)
    hits = int((w < HIT_MARGIN * c.min()).sum())
    partial = hits >= MIN_HITS and hits >= MIN_HIT_SHARE * n
    if (high < 1.0 and ratio <= RELEVANT) or partial:
        return Effect(metric, ratio, low, high, n, "faster", None, hits)
    _c, clear_low, _h, _a = hodges_lehmann(d, min(confidence, CLEAR_CONFIDENCE))
    if math.exp(clear_low) > RELEVANT:
        return Effect(metric, ratio, low, high, n, "not faster", None, hits)
    more = _more(n, centre, (hi - lo) / 2)
    return Effect(metric, ratio, low, high, n, "not enough evidence", more, hits)


def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _more(n: int, mean: float, half: float) -> int:
    """Rounds more until the interval's half-width (∝ 1/√n) clears the nearer boundary."""
    # below RELEVANT the interval must clear 1 (log 0); above it, it must clear RELEVANT
    room = -mean if mean <= math.log(RELEVANT) else mean - math.log(RELEVANT)
    if room <= 0 or half <= 0:
        return MAX_MORE
    needed = n * (half / room) ** 2
    return int(min(MAX_MORE, max(1, math.ceil(needed - n))))


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Findings:
    """What one probe's records say: a table (effects, or per-group numbers), a plain-words
    finding, and the numbers behind it (`signals`, which `diagnose` combines across probes)."""

    table: pd.DataFrame
    finding: str
    signals: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeResult:
    """What a probe measured: per-query records, a table and a finding."""

    name: str
    title: str
    records: pd.DataFrame
    table: pd.DataFrame
    finding: str
    signals: Mapping[str, Any] = field(default_factory=dict)
    done: bool = True

    @property
    def kind(self) -> str:
        """The cache kind this probe alone points to (see `KINDS`), or 'not enough evidence'."""
        return str(self.signals.get("kind", "not enough evidence"))


def empty_probe_records() -> pd.DataFrame:
    """A probe record table with no rows."""
    return pd.DataFrame(columns=list(PROBE_COLUMNS))


def ok_rows(records: pd.DataFrame, role: str | None = None) -> pd.DataFrame:
    """The completed rows (of one role), in round order."""
    ok = records[records["status"] == "ok"]
    if role is not None:
        ok = ok[ok["role"] == role]
    return ok.sort_values(["round", "step"], kind="stable")


def streamed(records: pd.DataFrame) -> bool:
    """True when the records carry a first-token time (the responses were streamed)."""
    return bool(pd.to_numeric(records["ttft_ms"], errors="coerce").notna().any())


def pair_rounds(records: pd.DataFrame, metric: str) -> tuple[list[float], list[float]]:
    """(cold, warm) values of `metric`, one pair per round that has both."""
    cold = ok_rows(records, "cold").groupby("round")[metric].first()
    warm = ok_rows(records, "warm").groupby("round")[metric].first()
    both = cold.index.intersection(warm.index)
    return [float(cold[r]) for r in both], [float(warm[r]) for r in both]


def timing_effects(records: pd.DataFrame) -> dict[str, Effect]:
    """Paired effects of latency, and of TTFT and decode time per token when streamed."""
    metrics = {"latency": "latency_ms"}
    if streamed(records):
        metrics |= {"TTFT": "ttft_ms", "decode per token": "tpot_ms"}
    return {name: paired_effect(*pair_rounds(records, col), name) for name, col in metrics.items()}


def timing_kind(effects: Mapping[str, Effect]) -> str:
    """The cache kind timing alone points to: a response cache collapses the whole answer
    (TTFT and decode), a prefix/KV cache skips prefill only (TTFT falls, decode does not)."""
    lat = effects["latency"]
    ttft, tpot = effects.get("TTFT"), effects.get("decode per token")
    if ttft is None or tpot is None:
        if lat.faster:
            return "cache (kind unknown)"
        return "none" if lat.not_faster else "not enough evidence"
    if tpot.faster and (ttft.faster or lat.faster):
        return "response cache"
    # decode not shown faster and not collapsed (a replayed answer's is ~0): prefill skipped
    if ttft.faster and tpot.ratio is not None and tpot.ratio > DECODE_KEPT:
        return "prefix cache"
    if ttft.not_faster and lat.not_faster:
        return "none"
    return "not enough evidence"


def effects_table(effects: Mapping[str, Effect]) -> pd.DataFrame:
    """One row per metric: ratio, interval, rounds, hits, verdict."""
    if not effects:
        return pd.DataFrame()
    return pd.DataFrame([e.as_row() for e in effects.values()]).set_index("metric").round(3)


def duplicate_share(outputs: Iterable[object]) -> float | None:
    """Share of outputs equal to an earlier one (None with fewer than two)."""
    values = [o for o in outputs if isinstance(o, str) and o]
    if len(values) < 2:
        return None
    return 1 - len(set(values)) / len(values)


# --- findings of the timing probes (back-to-back, interleaved, shared prefix) ----------------


def repeat_findings(records: pd.DataFrame, pattern: str) -> Findings:
    """Are warm repeats faster than cold fresh prompts, and in which way?"""
    effects = timing_effects(records)
    kind = timing_kind(effects)
    table = effects_table(effects)
    if len(ok_rows(records, "warm")) == 0:
        return Findings(table, RUNNING, {"kind": "not enough evidence", "pattern": pattern})
    said = {
        "response cache": "the whole answer is served faster: response (output) cache signature",
        "prefix cache": "prefill is skipped, decoding is not: prefix/KV cache signature",
        "none": "repeats are not faster: no cache signature",
        "cache (kind unknown)": "repeats are faster; stream the responses to tell which cache",
        "not enough evidence": "not enough evidence yet",
    }[kind]
    more = max((e.more or 0 for e in effects.values()), default=0)
    if kind == "not enough evidence" and more:
        said += more_text(more)
    lines = "; ".join(e.describe() for e in effects.values())
    finding = f"{pattern} repeats vs fresh prompts — {lines} — {said}"
    signals: dict[str, Any] = {
        "kind": kind,
        "pattern": pattern,
        "hit": kind in ("response cache", "prefix cache", "cache (kind unknown)"),
        "effects": effects,
        "more": more or None,
    }
    return Findings(table, finding, signals)


def shared_prefix_findings(records: pd.DataFrame) -> Findings:
    """Is TTFT (latency when not streamed) lower for prompts sharing a long prefix?"""
    metric, col = ("TTFT", "ttft_ms") if streamed(records) else ("latency", "latency_ms")
    effect = paired_effect(*pair_rounds(records, col), metric)
    table = effects_table({metric: effect})
    if len(ok_rows(records, "warm")) == 0:
        return Findings(table, RUNNING, {"kind": "not enough evidence"})
    if effect.faster:
        said, kind = "the shared prefix is reused (prefix/KV cache across prompts)", "prefix cache"
    elif effect.not_faster:
        said, kind = "no partial-prefix reuse (an exact-prompt cache would not show here)", "none"
    else:
        said, kind = "not enough evidence", "not enough evidence"
    finding = f"shared vs unique prefixes — {effect.describe()} — {said}"
    return Findings(
        table, finding, {"kind": kind, "effects": {metric: effect}, "hit": kind != "none"}
    )


# --- identical outputs at temperature > 0 ----------------------------------------------------


def output_identity_findings(records: pd.DataFrame, temperature: float) -> Findings:
    """Do repeats of one prompt sampled at `temperature` > 0 return byte-identical outputs, and
    is that a replay (faster) or an endpoint that ignores sampling or its prompt (not faster)?"""
    effects = timing_effects(records)
    table = effects_table(effects)
    ok = records[records["status"] == "ok"]
    repeats = ok[ok["role"].isin(["prime", "warm"])]["output_sha256"]
    fresh = ok[ok["role"] == "cold"]["output_sha256"]
    rep_share, fresh_share = duplicate_share(repeats), duplicate_share(fresh)
    if rep_share is None or len(ok_rows(records, "warm")) == 0:
        return Findings(table, RUNNING, {"kind": "not enough evidence"})
    identical = rep_share >= IDENTICAL_SHARE
    same_for_all = fresh_share is not None and fresh_share >= IDENTICAL_SHARE
    lat = effects["latency"]
    timing = timing_kind(effects)
    head = (
        f"at temperature {temperature:g}: {rep_share:.0%} of repeats duplicate an earlier "
        f"answer, {0.0 if fresh_share is None else fresh_share:.0%} of fresh prompts do; "
        f"{lat.describe()} — "
    )
    if same_for_all:
        kind = "none" if timing in ("none", "not enough evidence") else timing
        said = "the endpoint returns the same text whatever the prompt (it ignores its input)"
        if kind == "none":
            said += "; no speed-up, so not a cache"
    elif identical:
        if lat.faster or timing == "response cache":
            kind, said = "response cache", "identical and faster: a response cache replays them"
        elif lat.not_faster:
            kind = "none"
            said = "identical but not faster: the endpoint ignores temperature (not a cache)"
        else:
            kind, said = "not enough evidence", "identical outputs; not enough timing evidence"
            if lat.more:
                said += more_text(lat.more)
    else:
        # no replay; a prefix cache may still show in the timing (probes (a)/(b) judge that)
        kind = "prefix cache" if timing == "prefix cache" else "none"
        said = "outputs vary as sampling should: no response replay"
    signals: dict[str, Any] = {
        "kind": kind,
        "identical": identical,
        "same_for_all_prompts": same_for_all,
        "duplicate_share": rep_share,
        "effects": effects,
    }
    return Findings(table, head + said, signals)


# --- identical requests in flight at once (request coalescing) -------------------------------


def burst_times(records: pd.DataFrame) -> pd.DataFrame:
    """Per burst: its role, round and time (ms) from the first send to the last completion."""
    ok = records[records["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["role", "round", "burst_ms"])
    end = ok["sent_ms"] + ok["latency_ms"]
    frame = ok.assign(end_ms=end)
    grouped = frame.groupby("burst")
    return pd.DataFrame(
        {
            "role": grouped["role"].first(),
            "round": grouped["round"].first(),
            "burst_ms": grouped["end_ms"].max() - grouped["sent_ms"].min(),
        }
    )


def burst_findings(records: pd.DataFrame, temperature: float) -> Findings:
    """Is a burst of identical requests faster than a burst of distinct ones, and do the
    identical ones share one answer at temperature > 0 (request coalescing)?"""
    bursts = burst_times(records)
    cold = bursts[bursts["role"] == "cold"].groupby("round")["burst_ms"].first()
    warm = bursts[bursts["role"] == "warm"].groupby("round")["burst_ms"].first()
    both = cold.index.intersection(warm.index)
    effect = paired_effect(cold[both], warm[both], "burst time")
    table = effects_table({"burst time": effect})
    ok = records[records["status"] == "ok"]
    if len(both) == 0:
        return Findings(table, RUNNING, {"kind": "not enough evidence"})
    shares = [
        duplicate_share(g["output_sha256"]) for _, g in ok[ok["role"] == "warm"].groupby("burst")
    ]
    distinct = [
        duplicate_share(g["output_sha256"]) for _, g in ok[ok["role"] == "cold"].groupby("burst")
    ]
    shared = float(np.mean([s for s in shares if s is not None])) if shares else 0.0
    same_for_all = bool(distinct) and float(np.mean([s or 0 for s in distinct])) >= IDENTICAL_SHARE
    sharing = shared >= IDENTICAL_SHARE and not same_for_all and temperature > 0
    if effect.faster and sharing:
        kind, said = "request coalescing", "identical requests in flight share one computation"
    elif sharing:
        kind, said = "not enough evidence", "answers are shared but no speed-up is established"
    elif effect.faster:
        kind, said = "prefix cache", "faster with differing answers: prefill shared in flight"
    elif effect.not_faster or (temperature > 0 and not same_for_all):
        # at T>0 sharing shows in the answers whatever the timing: none shared, none coalesced
        kind, said = "none", "identical requests in flight share no answer and are not faster"
    else:
        kind, said = "not enough evidence", "not enough evidence"
        if effect.more:
            said += more_text(effect.more)
    finding = (
        f"bursts of identical vs distinct requests at T={temperature:g} — {effect.describe()}; "
        f"{shared:.0%} of identical answers shared — {said}"
    )
    signals: dict[str, Any] = {
        "kind": kind,
        "shared_share": shared,
        "same_for_all_prompts": same_for_all,
        "effects": {"burst time": effect},
    }
    return Findings(table, finding, signals)


# --- all probes together ---------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    """The probes' combined reading: a cache kind, the sentence, and which patterns hit."""

    kind: str
    text: str
    patterns: Mapping[str, bool | None]


def diagnose_kind(results: Mapping[str, ProbeResult]) -> Diagnosis:
    """Combine the probes run so far into one cache kind with the patterns that hit.

    Sequential probes (back-to-back, interleaved, identity) name a response or prefix cache;
    the burst probe names request coalescing, which sequential traffic never meets. A kind is
    named when one probe establishes it and none contradicts it; "none" needs every probe run
    to say so.
    """
    kinds = {name: r.kind for name, r in results.items() if r.done}
    patterns: dict[str, bool | None] = {}
    for r in results.values():
        if "pattern" in r.signals:
            k = r.kind
            patterns[str(r.signals["pattern"])] = (
                None if k == "not enough evidence" else k != "none"
            )
    values = set(kinds.values())
    if not kinds:
        return Diagnosis("not enough evidence", "run a probe first", patterns)
    named = values - {"none", "not enough evidence"}
    if "response cache" in named:
        kind = "response cache"
    elif "prefix cache" in named and kinds.get("burst") != "request coalescing":
        kind = "prefix cache"
    elif kinds.get("burst") == "request coalescing" and not named - {
        "request coalescing",
        "prefix cache",
    }:
        kind = "request coalescing"
    elif "cache (kind unknown)" in named:
        kind = "cache (kind unknown)"
    elif values == {"none"}:
        kind = "none"
    else:
        kind = "not enough evidence"
    text = {
        "response cache": "response (output) cache: repeated prompts replay a stored answer",
        "prefix cache": "prefix/KV cache: prefill is reused, answers are still generated",
        "request coalescing": "request coalescing: identical requests in flight share one answer",
        "cache (kind unknown)": "a cache of unknown kind: stream the responses to tell which",
        "none": "no caching detected by the probes run",
        "not enough evidence": "not enough evidence yet: run more rounds or more probes",
    }[kind]
    hit = [p for p, h in patterns.items() if h]
    missed = [p for p, h in patterns.items() if h is False]
    if hit and missed:
        text += f" (hit under {', '.join(hit)}; not under {', '.join(missed)})"
    return Diagnosis(kind, text, patterns)


def diagnose(results: Mapping[str, ProbeResult]) -> str:
    """The combined reading in one sentence (see `diagnose_kind`)."""
    return diagnose_kind(results).text


def history_row(result: ProbeResult) -> dict[str, Any]:
    """One row of the investigation's results table for a finished probe."""
    effects: Mapping[str, Effect] = result.signals.get("effects", {})
    main = next(iter(effects.values()), None)
    return {
        "probe": result.title,
        "queries": int((result.records["status"] == "ok").sum()) if len(result.records) else 0,
        "effect": main.metric if main else None,
        "warm/cold": main.ratio if main else None,
        "interval": f"[{main.low:.2f}, {main.high:.2f}]" if main and main.low is not None else None,
        "reading": result.kind,
    }
