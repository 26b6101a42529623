"""What kind of caching was seen? A fingerprint from per-query records (pure).

Nothing is called a cache without a measured speed-up: the audit's median latency at most
SPEEDUP × that of reference queries with prompts as long. Then the parts of a query that
queueing cannot pollute decide which cache it is (docs/investigation.md has the reasons):

- decode time per token (completion − first token) has no queue in it. A response cache
  collapses it; a prefix/KV cache leaves it; a machine that got faster between the phases
  speeds it up alike, so a prefix cache needs a speed-up beyond decode's.
- first-token time from the send carries the server's queue in a concurrent phase: there it is
  reported, never judged; with one query in flight it must fall for a prefix cache.
- answers that came all at once: a response cache when looked up (fast, or most of them and
  not finishing with a computation in flight); request coalescing when most finished together
  with an identical computation that was in flight.
- at T>0 duplicate outputs tell a replay (the first copy had completed before the repeat was
  sent) from sharing (it was still in flight), unless different prompts get the same text.

The fingerprint is evidence beside the verdict; it never changes it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from auditkit.results import Evidence

CacheKind = Literal["none", "response cache", "prefix cache", "request coalescing", "unknown"]
#: audit median latency at most this × the reference's: a speed-up worth naming (TEST04's own
#: threshold is 10 %)
#: the record columns `fingerprint` reads (a phase hands out only these)
FINGERPRINT_COLUMNS = (
    "status",
    "variant",
    "sample_index",
    "sent_ns",
    "first_token_ns",
    "completed_ns",
    "prompt_tokens",
    "output_tokens",
    "cached_tokens",
    "output_sha256",
)
SPEEDUP = 0.9
#: audit/reference first-token time below this (single-stream only) is a prefill skipped
TTFT_DROP = 0.75
#: audit/reference decode time per token below this: the answer is not being generated
DECODE_DROP = 0.75
#: a query whose decode time is below this × the reference's median decode came all at once
COLLAPSED = 0.25
#: shares at or above this decide (duplicate outputs, replays)
MAJORITY = 0.5
#: a share of audit answers that came all at once at or above this: a stored or shared answer
#: (a generated one never does; a partial cache collapses only some)
COLLAPSED_SHARE = 0.2
#: a share of collapsed answers at or above this finishing with a computation in flight of
#: the same prompt: they rode on it (coalescing)
RIDERS = 0.7
#: "finishing with": within this (ns, at least), a loaded client reads answers late
RIDER_TOLERANCE_NS = 3e6
#: collapsed answers whose median latency is at least this × the audit's computed queries'
#: waited for a computation (coalescing); a stored answer is looked up at once (a response cache)
WAITED = 0.25


class Fingerprint(Evidence):
    """The kind of caching seen, and the numbers that say so."""

    kind: CacheKind
    evidence: tuple[str, ...] = ()
    service_ratio: float | None = None  # audit/reference median latency
    ttft_ratio: float | None = None  # audit/reference median first-token time (from the send)
    ttft_judged: bool = False  # False: queueing is in the first-token time, so it was not used
    decode_per_token_ratio: float | None = None
    collapsed_share: float | None = None  # audit answers that came all at once (excess over ref)
    #: median latency of the collapsed answers / the computed ones': ~0 looked up, ~1 waited
    #: for an identical computation in flight
    collapsed_latency_ratio: float | None = None
    rider_share: float | None = None  # collapsed answers that finished with a computation
    identical_outputs: bool | None = None
    replayed_share: float | None = None  # T>0 duplicates whose first copy had completed
    cached_tokens_fraction: float | None = None


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[frame["status"] == "ok"]
    if "variant" in ok.columns:
        # warm-up queries carry fresh prefixes and control twins are salted: the measured
        # queries are the phase's own
        ok = ok[ok["variant"].astype("string").fillna("main") == "main"]
    return ok


def like_for_like(reference: pd.DataFrame, audit: pd.DataFrame) -> pd.DataFrame:
    """The reference queries whose prompts are as long as the audit's: the nearest quarter (at
    least 8) by prompt tokens. Prefill grows with the prompt, so a short audit sample beside
    the reference's average would otherwise pass for a prefill skipped."""
    tokens = pd.to_numeric(reference["prompt_tokens"], errors="coerce")
    target = _median(audit["prompt_tokens"])
    if target is None or tokens.isna().all():
        return reference
    keep = max(8, len(reference) // 4)
    nearest = (tokens - target).abs().sort_values(kind="stable").index[:keep]
    return reference.loc[nearest]


def _median(values: pd.Series) -> float | None:
    clean = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    return float(np.median(clean)) if len(clean) else None


def _ratio(a: float | None, r: float | None) -> float | None:
    return a / r if a is not None and r else None


def decode_per_token_ns(frame: pd.DataFrame) -> pd.Series:
    """(completion − first token) / (output tokens − 1): time per decoded token."""
    tokens = frame["output_tokens"].astype("Float64") - 1
    decode = (frame["completed_ns"] - frame["first_token_ns"]).astype("Float64")
    return (decode / tokens.where(tokens > 0)).astype("Float64")


def max_in_flight(frame: pd.DataFrame) -> int:
    """The most queries of `frame` in flight at once (sent → completed)."""
    if frame.empty:
        return 0
    starts = frame["sent_ns"].to_numpy(dtype="int64")
    ends = frame["completed_ns"].to_numpy(dtype="int64")
    events = sorted([(s, 1) for s in starts] + [(e, -1) for e in ends])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def rider_share(frame: pd.DataFrame, collapsed: pd.Series, tolerance_ns: float) -> float | None:
    """Share of collapsed queries that finished within `tolerance_ns` of a computed query of the
    same sample that overlapped them in time (it was in flight while they were)."""
    done_c = frame.loc[~collapsed, ["sample_index", "sent_ns", "completed_ns"]]
    rows = frame.loc[collapsed, ["sample_index", "sent_ns", "completed_ns"]]
    if rows.empty:
        return None
    rode = 0
    by_sample = {k: g for k, g in done_c.groupby("sample_index")}
    for sample, sent, done in rows.itertuples(index=False, name=None):
        lead = by_sample.get(sample)
        if lead is None:
            continue
        s = lead["sent_ns"].to_numpy(dtype="int64")
        d = lead["completed_ns"].to_numpy(dtype="int64")
        rode += bool(((s < done) & (d > sent) & (np.abs(d - done) <= tolerance_ns)).any())
    return rode / len(rows)


def replay_shares(frame: pd.DataFrame) -> tuple[float | None, float | None]:
    """(share of queries duplicating an earlier output, share of those duplicates whose first
    copy had completed before they were sent) — at T>0 a replay rather than a shared answer."""
    rows = frame.dropna(subset=["output_sha256"]).sort_values("sent_ns")
    if len(rows) < 2:
        return None, None
    first_done: dict[str, int] = {}
    duplicates = replayed = 0
    for sha, sent, done in zip(
        rows["output_sha256"], rows["sent_ns"], rows["completed_ns"], strict=True
    ):
        if sha in first_done:
            duplicates += 1
            replayed += int(first_done[sha] <= sent)
            first_done[sha] = min(first_done[sha], int(done))
        else:
            first_done[sha] = int(done)
    share = duplicates / len(rows)
    return share, (replayed / duplicates if duplicates else None)


def fingerprint(
    reference: pd.DataFrame,
    audit: pd.DataFrame,
    *,
    temperature: float = 0.0,
    cache_seen: bool = False,
    controls: pd.DataFrame | None = None,
) -> Fingerprint:
    """Classify the caching seen in the audit phase relative to the reference phase.
    `cache_seen`: the verdict FAILed (a check saw a cache): the kind is then never "none"; it
    is named from the split, the outputs or the server's metadata, or "unknown" with what
    would tell. `controls` (the control phase's records): when the split cannot name a cache
    the verdict saw, its dataset prompts are compared with its never-seen ones the same way
    (a cache filled before the run answers the reference too, so only those show it)."""
    every_ref, aud = _ok(reference), _ok(audit)
    if every_ref.empty or aud.empty:
        return Fingerprint(kind="unknown", evidence=("no completed queries to compare",))
    notes: list[str] = []
    # timing is compared with reference queries of the audit prompt's length; outputs (below)
    # with every reference query
    ref = like_for_like(every_ref, aud)
    service = _ratio(
        _median(aud["completed_ns"] - aud["sent_ns"]), _median(ref["completed_ns"] - ref["sent_ns"])
    )
    faster = service is not None and service <= SPEEDUP
    if service is not None:
        notes.append(
            f"the repeated prompt's median latency is {service:.2f}× that of reference "
            "prompts as long"
            + (
                ", a speed-up"
                if faster
                else f", not below the {SPEEDUP:g}× that counts as a speed-up"
            )
        )

    streamed = bool(ref["first_token_ns"].notna().any() and aud["first_token_ns"].notna().any())
    queued = max(max_in_flight(ref), max_in_flight(aud)) > 1
    ttft = decode = collapsed_share = waited = riders = None
    if streamed:
        ttft = _ratio(
            _median(aud["first_token_ns"] - aud["sent_ns"]),
            _median(ref["first_token_ns"] - ref["sent_ns"]),
        )
        decode = _ratio(_median(decode_per_token_ns(aud)), _median(decode_per_token_ns(ref)))
        ref_decode = _median(ref["completed_ns"] - ref["first_token_ns"])
        aud_decode = (aud["completed_ns"] - aud["first_token_ns"]).astype("Float64")
        if ref_decode:
            collapsed = (aud_decode < COLLAPSED * ref_decode).fillna(False).astype(bool)
            ref_gaps = (ref["completed_ns"] - ref["first_token_ns"]).astype("Float64")
            # a busy client can read a whole stream in one go: what the reference shows of that
            # is the baseline, only the audit's excess counts
            baseline = float((ref_gaps < COLLAPSED * ref_decode).fillna(False).mean())
            collapsed_share = max(0.0, float(collapsed.mean()) - baseline)
            if collapsed.any():
                # beside the audit's own computed queries (same queue), else a decode's length
                latency = aud["completed_ns"] - aud["sent_ns"]
                computed = _median(latency[~collapsed]) if (~collapsed).any() else ref_decode
                waited = _ratio(_median(latency[collapsed]), computed)
                riders = rider_share(aud, collapsed, max(RIDER_TOLERANCE_NS, 0.25 * ref_decode))
        if decode is not None:
            notes.append(f"decode time per token {decode:.2f}× the reference's")
        if ttft is not None:
            notes.append(
                f"first-token time {ttft:.2f}×"
                + (", not judged: queueing is in it" if queued else ", one query in flight")
            )
    else:
        notes.append("not streamed: no first-token time to split prefill from decode")

    # outputs: only at T>0, and only when different prompts get different texts
    identical = replayed = None
    if temperature > 0:
        ref_dup, _ = replay_shares(every_ref)
        dup, replayed = replay_shares(aud)
        if ref_dup is not None and ref_dup >= MAJORITY:
            notes.append("different prompts got the same text: outputs say nothing about caching")
        elif dup is not None:
            identical = dup >= MAJORITY
            if identical:
                how = (
                    "replayed after the first copy completed"
                    if replayed is not None and replayed >= MAJORITY
                    else "shared while the first copy was in flight"
                )
                notes.append(
                    f"{dup:.0%} of repeats duplicate an earlier output at T={temperature:g}, {how}"
                )
            else:
                notes.append(f"repeated prompt gave differing outputs at T={temperature:g}")
    cached = pd.to_numeric(aud["cached_tokens"], errors="coerce").dropna()
    cached_fraction = float((cached > 0).mean()) if len(cached) else None
    if cached_fraction:
        notes.append(f"server reported cached prompt tokens on {cached_fraction:.0%} of queries")

    kind = _kind(
        faster or cache_seen,
        service,
        streamed,
        queued,
        ttft,
        decode,
        collapsed_share,
        waited,
        riders,
        identical,
        replayed,
        cached_fraction,
    )
    if cache_seen and kind == "none":
        # the verdict's checks saw a cache that this split cannot name: say so, never "none"
        kind = "unknown"
    if cache_seen and cached_fraction and kind == "unknown":
        kind = "prefix cache"  # the server itself reports reused prompt tokens
    if cache_seen and kind == "unknown" and controls is not None:
        named = _against_controls(controls, temperature)
        if named is not None:
            kind = named.kind
            notes += [
                f"against never-seen prompts of the control phase: {e}" for e in named.evidence
            ]
    notes.append(_why(kind, faster or cache_seen, streamed, queued))
    if cache_seen and kind == "unknown":
        notes.append(
            "the verdict saw a cache; which kind this run cannot tell: "
            + _what_would_tell(streamed, temperature)
        )
    return Fingerprint(
        kind=kind,
        evidence=tuple(notes),
        service_ratio=service,
        ttft_ratio=ttft,
        ttft_judged=streamed and not queued,
        decode_per_token_ratio=decode,
        collapsed_share=collapsed_share,
        collapsed_latency_ratio=waited,
        rider_share=riders,
        identical_outputs=identical,
        replayed_share=replayed,
        cached_tokens_fraction=cached_fraction,
    )


def _against_controls(controls: pd.DataFrame, temperature: float) -> Fingerprint | None:
    """The fingerprint of the control phase's dataset prompts (repeated and fresh) against its
    synthesised ones, or None when it names no kind either."""
    ok = controls[controls["status"] == "ok"]
    variant = ok["variant"].astype("string").fillna("main")
    measured, synthesised = ok[variant == "main"], ok[variant == "control"]
    if measured.empty or synthesised.empty:
        return None
    named = fingerprint(
        synthesised.assign(variant="main"), measured, temperature=temperature, cache_seen=True
    )
    return named if named.kind not in ("unknown", "none") else None


def _kind(
    faster: bool,
    service: float | None,
    streamed: bool,
    queued: bool,
    ttft: float | None,
    decode: float | None,
    collapsed: float | None,
    waited: float | None,
    riders: float | None,
    identical: bool | None,
    replayed: float | None,
    cached_fraction: float | None,
) -> CacheKind:
    if not faster:
        return "none"
    if identical and replayed is not None:
        return "response cache" if replayed >= MAJORITY else "request coalescing"
    if streamed and decode is not None:
        if collapsed is not None and collapsed >= MAJORITY:
            # most answers came at once: shared when they finished with a computation of
            # their own prompt that was in flight, else looked up
            coalesced = riders is not None and riders >= RIDERS
            return "request coalescing" if coalesced else "response cache"
        # some came at once (a partial cache, or a busy client reading a few whole streams in
        # one go): a lookup only when they came fast
        fast = waited is None or waited < WAITED
        if collapsed is not None and collapsed >= COLLAPSED_SHARE and fast:
            return "response cache"
        if decode < DECODE_DROP:
            return "unknown"  # decode slower per token but no answer came at once
        # the speed-up beyond what decode shows: a machine that got faster (or a load that
        # lifted) between the phases speeds up decode alike, a skipped prefill does not
        beyond = service / decode if service is not None else None
        if beyond is None or beyond > SPEEDUP:
            return "none"
        if queued or (ttft is not None and ttft / decode < TTFT_DROP):
            return "prefix cache"
        return "unknown"
    if cached_fraction:
        return "prefix cache"
    return "unknown"


def _what_would_tell(streamed: bool, temperature: float) -> str:
    """The settings that would let a rerun name the cache."""
    ways = []
    if not streamed:
        ways.append("streaming (--stream: first-token vs decode time splits prefill from decode)")
    if temperature <= 0:
        ways.append("T>0 (--temperature 1: identical outputs mean replayed answers)")
    ways.append("server metadata (usage cached_tokens, timings.cache_n)")
    return "; ".join(ways)


def _why(kind: CacheKind, faster: bool, streamed: bool, queued: bool) -> str:
    if kind == "none" and not faster:
        return "no speed-up, so no cache is named whatever else is seen"
    if kind == "none":
        return "decode time per token sped up alike: the machine got faster, not a cache"
    if kind == "response cache":
        return "faster, and whole answers are replayed: response cache"
    if kind == "request coalescing":
        return (
            "faster, and identical requests in flight finished together on one answer: coalescing"
        )
    if kind == "prefix cache":
        basis = "decode unchanged while latency fell" if queued else "first-token time fell"
        return f"faster, {basis}, answers still generated: prefix/KV cache"
    if not streamed:
        return "faster, but without a streaming split or sampling at T>0 to say which cache"
    return "faster, but neither a collapsed answer nor a skipped prefill explains it: unknown"
