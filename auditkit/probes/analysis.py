"""Probe analysis: per-query records → per-group tables, findings and a diagnosis.

Pure: DataFrames and numbers in, DataFrames, strings and numbers out. No I/O and no asyncio,
so every rule here can be checked on synthetic records and re-run on saved ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# A warm/cold ratio below this counts as "dropped" (the mock's jitter is ~5%; real endpoints
# vary more, so a clear signature is asked for rather than a statistically fine one).
DROP_RATIO = 0.7
PROBE_COLUMNS = (
    "group",
    "step",
    "latency_ms",
    "ttft_ms",
    "decode_ms",
    "cached_tokens",
    "output_tokens",
    "output_sha256",
    "status",
    "error",
)
RUNNING = "running…"
NOT_ENOUGH = "not enough completed queries to compare"


@dataclass(frozen=True)
class Findings:
    """What one probe's records say: a per-group table, a plain-words finding, and the
    numbers behind it (`signals`, which `diagnose` combines across probes)."""

    table: pd.DataFrame
    finding: str
    signals: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeResult:
    """What a probe measured: per-query records, a per-group table and a finding."""

    name: str
    title: str
    records: pd.DataFrame
    table: pd.DataFrame
    finding: str
    signals: Mapping[str, Any] = field(default_factory=dict)
    done: bool = True


def empty_probe_records() -> pd.DataFrame:
    """A probe record table with no rows."""
    return pd.DataFrame(columns=list(PROBE_COLUMNS))


def to_probe_records(records: pd.DataFrame, group: str) -> pd.DataFrame:
    """Load-generator records → probe rows in ms. Query 0 is the connection warm-up and is
    dropped; step = 1-based position of the measured query in the group."""
    rec = records[records["query_id"] > 0].sort_values("query_id")
    if len(rec) == 0:
        return empty_probe_records()
    lat = rec["latency_ns"].astype("float64") / 1e6
    ttft = rec["ttft_ns"].astype("float64") / 1e6
    return pd.DataFrame(
        {
            "group": group,
            "step": rec["query_id"].to_numpy(),
            "latency_ms": lat.to_numpy(),
            "ttft_ms": ttft.to_numpy(),
            "decode_ms": (lat - ttft).to_numpy(),
            "cached_tokens": rec["cached_tokens"].to_numpy(),
            "output_tokens": rec["output_tokens"].to_numpy(),
            "output_sha256": rec["output_sha256"].to_numpy(),
            "status": rec["status"].to_numpy(),
            "error": rec["error"].to_numpy(),
        }
    )


def median(values: pd.Series) -> float | None:
    """Median of the numeric values, None when there are none."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    return float(np.median(v)) if len(v) else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing or b is zero."""
    return a / b if a is not None and b else None


def group_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per group: queries, failures, median latency/TTFT/decode (ms), distinct outputs."""
    rows = []
    for group in dict.fromkeys(records["group"]):
        g = records[records["group"] == group]
        ok = g[g["status"] == "ok"]
        rows.append(
            {
                "group": group,
                "queries": len(g),
                "failed": int((g["status"] != "ok").sum()),
                "median latency (ms)": median(ok["latency_ms"]),
                "median TTFT (ms)": median(ok["ttft_ms"]),
                "median decode (ms)": median(ok["decode_ms"]),
                "distinct outputs": int(ok["output_sha256"].nunique()),
            }
        )
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index("group").round(3)


# --- (a) one prompt repeated k times vs k distinct prompts ---------------------------------


def repeat_vs_distinct_findings(records: pd.DataFrame) -> Findings:
    """Is a repeated prompt (after its first query) faster than distinct prompts?"""
    table = group_table(records)
    if {"distinct", "repeated"} - set(table.index):
        return Findings(table, RUNNING)
    rep = records[(records["group"] == "repeated") & (records["step"] > 1)]
    distinct = records[records["group"] == "distinct"]
    r = ratio(median(rep["latency_ms"]), median(distinct["latency_ms"]))
    faster = r is not None and r < DROP_RATIO
    finding = (
        f"repeated prompt (after its first query) takes {r:.2f}× the latency of "
        f"distinct prompts: "
        + ("repetition is served faster — some cache is at work" if faster else "no speed-up")
        if r is not None
        else NOT_ENOUGH
    )
    return Findings(table, finding, {"repeat_ratio": r, "cache_suspected": faster})


# --- (b) latency of the 1st (cold) vs 2nd…k-th (warm) repeat ------------------------------


def cold_vs_warm_findings(records: pd.DataFrame) -> Findings:
    """Warm/cold ratios of latency, TTFT and decode time, and the cache kind they point to."""
    ok = records[records["status"] == "ok"]
    cold, warm = ok[ok["step"] == 1], ok[ok["step"] > 1]
    rows = {}
    for label, part in (("cold (1st query)", cold), ("warm (2nd…kth)", warm)):
        rows[label] = {
            "queries": len(part),
            "median latency (ms)": median(part["latency_ms"]),
            "median TTFT (ms)": median(part["ttft_ms"]),
            "median decode (ms)": median(part["decode_ms"]),
            "distinct outputs": int(part["output_sha256"].nunique()),
        }
    table = pd.DataFrame.from_dict(rows, orient="index").round(3)
    if cold.empty or warm.empty:
        return Findings(table, RUNNING)
    signals: dict[str, Any] = {
        "latency_ratio": ratio(median(warm["latency_ms"]), median(cold["latency_ms"])),
        "ttft_ratio": ratio(median(warm["ttft_ms"]), median(cold["ttft_ms"])),
        "decode_ratio": ratio(median(warm["decode_ms"]), median(cold["decode_ms"])),
    }
    signals["kind"] = classify_warm(signals)
    return Findings(table, warm_finding(signals), signals)


def classify_warm(signals: Mapping[str, Any]) -> str:
    """'output' (everything collapses), 'prefix' (TTFT drops, decode does not), 'none', or
    'unknown' (e.g. not streamed, so TTFT and decode cannot be split)."""
    lat, ttft, dec = (
        signals.get("latency_ratio"),
        signals.get("ttft_ratio"),
        signals.get("decode_ratio"),
    )
    if ttft is not None and dec is not None:
        if dec < DROP_RATIO and ttft < DROP_RATIO:
            return "output"
        if ttft < DROP_RATIO:
            return "prefix"
        return "output" if lat is not None and lat < DROP_RATIO else "none"
    if lat is None:
        return "unknown"
    return "unknown" if lat < DROP_RATIO else "none"


def warm_finding(signals: Mapping[str, Any]) -> str:
    """The cold-vs-warm finding in words, from its ratios and `kind`."""

    def f(x: Any) -> str:
        return "n/a" if x is None else f"{x:.2f}×"

    head = (
        f"warm/cold: latency {f(signals['latency_ratio'])}, TTFT {f(signals['ttft_ratio'])}, "
        f"decode {f(signals['decode_ratio'])} — "
    )
    kind = signals["kind"]
    if kind == "output":
        return head + "the whole response is served faster: response (output) cache signature"
    if kind == "prefix":
        return head + "prefill is skipped, decoding is not: prefix/KV cache signature"
    if kind == "none":
        return head + "repeats are not faster: no cache signature"
    return head + "repeats are faster; stream the responses to tell prefix from output caching"


# --- (c) unique long prefixes vs one shared long prefix -----------------------------------


def shared_prefix_findings(records: pd.DataFrame) -> Findings:
    """Is TTFT (latency when not streamed) lower for prompts sharing a prefix?"""
    table = group_table(records)
    if {"unique prefixes", "shared prefix"} - set(table.index):
        return Findings(table, RUNNING)
    shared = records[(records["group"] == "shared prefix") & (records["step"] > 1)]
    metric = "ttft_ms" if shared["ttft_ms"].notna().any() else "latency_ms"
    uniq = records[records["group"] == "unique prefixes"]
    r = ratio(median(shared[metric]), median(uniq[metric]))
    what = "TTFT" if metric == "ttft_ms" else "latency"
    reused = r is not None and r < DROP_RATIO
    finding = (
        f"shared-prefix {what} is {r:.2f}× that of unique prefixes: "
        + (
            "the shared prefix is reused (prefix/KV cache across prompts)"
            if reused
            else "no partial-prefix reuse seen (an exact-prompt cache would not show here)"
        )
        if r is not None
        else NOT_ENOUGH
    )
    return Findings(table, finding, {"prefix_ratio": r, "prefix_reused": reused})


# --- (d) identical outputs at temperature > 0 ---------------------------------------------


def output_identity_findings(records: pd.DataFrame, temperature: float) -> Findings:
    """Are the answers to one prompt, sampled at `temperature` > 0, byte-identical?"""
    table = group_table(records)
    ok = records[records["status"] == "ok"]
    if len(ok) < 2:
        return Findings(table, RUNNING)
    distinct = int(ok["output_sha256"].nunique())
    identical = distinct == 1
    head = f"{distinct} distinct output(s) in {len(ok)} answers at temperature {temperature:g}: "
    finding = head + (
        "identical outputs — a response cache replays them (or the endpoint ignores temperature)"
        if identical
        else "outputs vary as sampling should: no response replay"
    )
    return Findings(table, finding, {"distinct_outputs": distinct, "identical": identical})


# --- all probes together -------------------------------------------------------------------


def diagnose(results: Mapping[str, ProbeResult]) -> str:
    """Combine the probes run so far into one reading of what kind of caching is present."""
    warm = results.get("cold_vs_warm")
    ident = results.get("output_identity")
    kind = warm.signals.get("kind") if warm else None
    identical = ident.signals.get("identical") if ident else None
    if kind == "output" or (identical and kind != "none"):
        return "response (output) cache: repeated prompts replay a stored answer"
    if kind == "prefix":
        return "prefix/KV cache: prefill is reused, answers are still generated"
    if kind == "none" and not identical:
        return "no caching detected"
    return "run (b) cold vs warm with streaming and (d) identical outputs for a diagnosis"
