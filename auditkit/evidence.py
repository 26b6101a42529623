"""Evidence reported beside the official verdict (never changes it): the statistical view, the
cache-type fingerprint, how representative the audit sample is, and per-token scores. Pure."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from auditkit.fingerprint import fingerprint
from auditkit.results import PhaseResult
from auditkit.stats import statistical_view

#: the audit sample is "far from typical" beyond this relative distance from the median
REPRESENTATIVE_TOLERANCE = 0.20


def representativeness(reference: pd.DataFrame, audit: pd.DataFrame) -> dict[str, Any]:
    """Where the audit sample's input/output tokens sit in the reference distribution."""
    ref = reference[reference["status"] == "ok"]
    aud = audit[audit["status"] == "ok"]
    out: dict[str, Any] = {"warnings": []}
    for column, label in (("prompt_tokens", "input"), ("output_tokens", "output")):
        ref_values = ref[column].dropna().to_numpy(dtype=float)
        aud_values = aud[column].dropna().to_numpy(dtype=float)
        if not len(ref_values) or not len(aud_values):
            continue
        sample = float(np.median(aud_values))
        median = float(np.median(ref_values))
        rank = float((ref_values < sample).mean() + 0.5 * (ref_values == sample).mean())
        out[f"{label}_tokens"] = {
            "audit_sample": sample,
            "reference_median": median,
            "percentile_rank": rank,
        }
        if median > 0 and abs(sample - median) / median > REPRESENTATIVE_TOLERANCE:
            out["warnings"].append(
                f"the audit sample has {sample:g} {label} tokens vs a reference median of "
                f"{median:g} (percentile {rank:.0%}): TEST04 assumes samples cost about the "
                "same; consider sample_index: median"
            )
    return out


def per_token_scores(phase: PhaseResult) -> dict[str, float | None]:
    """Output tokens per second and median time per output token (LLM endpoints)."""
    ok = phase.records[phase.records["status"] == "ok"]
    tokens = ok["output_tokens"].dropna()
    s = phase.summary
    if tokens.empty or not s.duration_ns:
        return {"tokens_per_second": None, "ms_per_output_token": None}
    per_token = (ok["completed_ns"] - ok["sent_ns"]) / ok["output_tokens"].where(
        ok["output_tokens"] > 0
    )
    return {
        "tokens_per_second": float(tokens.sum()) / (s.duration_ns / 1e9),
        "ms_per_output_token": float(per_token.dropna().median()) / 1e6,
    }


def extra_evidence(
    reference: PhaseResult, audit: PhaseResult, threshold: float, temperature: float, seed: int
) -> dict[str, Any]:
    """Everything beside the official verdict, as JSON-able dicts."""
    view = statistical_view(
        reference.records, audit.records, reference.summary.scenario, threshold, seed=seed
    )
    fp = fingerprint(reference.records, audit.records, temperature=temperature)
    return {
        "statistical": view.as_dict() if view else None,
        "fingerprint": fp.as_dict(),
        "representative": representativeness(reference.records, audit.records),
        "per_token": {
            "reference": per_token_scores(reference),
            "audit": per_token_scores(audit),
        },
    }
