"""What kind of caching was seen? A fingerprint from per-query records (pure).

- Response (output) cache: the whole request collapses — decode time per token falls with TTFT —
  and repeated prompts return byte-identical outputs even at temperature > 0.
- Prefix / KV cache: TTFT (prefill) drops for the repeated prompt; decode time per token does
  not; outputs follow the sampling temperature. Servers may also report
  `usage.prompt_tokens_details.cached_tokens`.
The fingerprint is evidence beside the official verdict; it never changes it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from auditkit.results import Evidence

CacheKind = Literal["none", "response cache", "prefix cache", "unknown"]
#: audit/reference ratios beyond these count as a real drop (medians, so robust to outliers)
TTFT_DROP = 0.75
DECODE_DROP = 0.75
TOTAL_DROP = 0.80


class Fingerprint(Evidence):
    """The kind of caching seen, and the numbers that say so."""

    kind: CacheKind
    evidence: tuple[str, ...] = ()
    ttft_ratio: float | None = None
    decode_per_token_ratio: float | None = None
    service_ratio: float | None = None
    identical_outputs: bool | None = None
    cached_tokens_fraction: float | None = None


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def _median(values: pd.Series) -> float | None:
    clean = values.dropna().to_numpy(dtype=float)
    return float(np.median(clean)) if len(clean) else None


def decode_per_token_ns(frame: pd.DataFrame) -> pd.Series:
    """(completion − first token) / (output tokens − 1): time per decoded token."""
    tokens = frame["output_tokens"].astype("Float64") - 1
    decode = (frame["completed_ns"] - frame["first_token_ns"]).astype("Float64")
    return (decode / tokens.where(tokens > 0)).astype("Float64")


def fingerprint(
    reference: pd.DataFrame, audit: pd.DataFrame, *, temperature: float = 0.0
) -> Fingerprint:
    """Classify the caching seen in the audit phase relative to the reference phase."""
    ref, aud = _ok(reference), _ok(audit)
    if ref.empty or aud.empty:
        return Fingerprint(kind="unknown", evidence=("no completed queries to compare",))
    notes: list[str] = []

    def ratio(a: float | None, r: float | None) -> float | None:
        return a / r if a is not None and r else None

    service = ratio(
        _median(aud["completed_ns"] - aud["sent_ns"]), _median(ref["completed_ns"] - ref["sent_ns"])
    )
    streamed = ref["first_token_ns"].notna().any() and aud["first_token_ns"].notna().any()
    ttft = decode = None
    if streamed:
        ttft = ratio(
            _median(aud["first_token_ns"] - aud["sent_ns"]),
            _median(ref["first_token_ns"] - ref["sent_ns"]),
        )
        decode = ratio(_median(decode_per_token_ns(aud)), _median(decode_per_token_ns(ref)))
    repeated = aud[aud["sample_index"] == aud["sample_index"].iloc[0]]
    # share of repeats that returned an output already seen: concurrent first requests all
    # miss a response cache (and sample freely), later ones replay a stored answer
    duplicate_share = (
        1 - repeated["output_sha256"].nunique() / len(repeated) if len(repeated) > 1 else None
    )
    identical = duplicate_share > 0.5 if duplicate_share is not None else None
    cached = aud["cached_tokens"].dropna()
    cached_fraction = float((cached > 0).mean()) if len(cached) else None

    response_signs = 0
    prefix_signs = 0
    if service is not None and service < TOTAL_DROP:
        notes.append(f"audit service time is {service:.2f}× the reference's")
    if streamed and ttft is not None and ttft < TTFT_DROP:
        notes.append(f"TTFT fell to {ttft:.2f}× the reference's")
        prefix_signs += 1
    if streamed and decode is not None:
        if decode < DECODE_DROP:
            notes.append(f"decode time per token fell to {decode:.2f}× (whole response cached)")
            response_signs += 1
        else:
            notes.append(f"decode time per token unchanged ({decode:.2f}×)")
    if identical and temperature > 0:
        notes.append(f"repeated prompt gave byte-identical outputs at temperature {temperature:g}")
        response_signs += 1
    elif identical is False and temperature > 0:
        notes.append("repeated prompt gave differing outputs (sampling is live)")
    if cached_fraction:
        notes.append(f"server reported cached prompt tokens on {cached_fraction:.0%} of queries")
        prefix_signs += 1

    faster = service is not None and service < TOTAL_DROP
    if response_signs:
        kind: CacheKind = "response cache"
    elif prefix_signs and (not streamed or (decode is not None and decode >= DECODE_DROP)):
        kind = "prefix cache"
    elif faster:
        kind = "unknown"
        notes.append("faster, but without a streaming split or sampling to say which cache")
    else:
        kind = "none"
        if not notes:
            notes.append("no speed-up and no cache signature in the audit phase")
    return Fingerprint(
        kind=kind,
        evidence=tuple(notes),
        ttft_ratio=ttft,
        decode_per_token_ratio=decode,
        service_ratio=service,
        identical_outputs=identical,
        cached_tokens_fraction=cached_fraction,
    )
