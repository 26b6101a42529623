"""Cache-type fingerprints against the mock's three cache modes (streamed, T > 0), on a virtual
clock (the mock's latency model through the in-memory transport)."""

import pandas as pd
import pytest

from auditkit.audits.kit.designs import pool
from auditkit.audits.test04.fingerprint import fingerprint
from auditkit.results import PhaseResult
from tests.audits.conftest import SimulatedAudit

#: one reference and one audit phase: the fingerprint reads pooled records, whichever design
#: made them (the default's 16 blocks and an extra round cost ~3× the CPU)
DESIGN = "sequential"


def pooled(phases: list[PhaseResult]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and audit records, counterbalanced blocks laid end to end (as the verdict's
    evidence pools them)."""
    return pool("reference", phases).records, pool("audit", phases).records


@pytest.mark.parametrize(
    ("cache", "kind"), [("none", "none"), ("output", "response cache"), ("prefix", "prefix cache")]
)
def test_fingerprint_names_the_cache(
    simulated_audit: SimulatedAudit, cache: str, kind: str
) -> None:
    run = simulated_audit(
        "test04",
        mock={"cache": cache, "prefill_us_per_token": 60.0},
        endpoint={"api": "openai-chat", "stream": True, "temperature": 1.0},
        load={"scenario": "single-stream"},
        samples=128,
        design=DESIGN,
    )
    ref, aud = pooled(run.phases)
    fp = fingerprint(ref, aud, temperature=1.0)
    assert fp.kind == kind, fp.evidence
    if kind == "prefix cache":
        assert fp.ttft_ratio is not None and fp.ttft_ratio < 0.75
        assert fp.decode_per_token_ratio is not None and fp.decode_per_token_ratio > 0.75
    if kind == "response cache":
        assert fp.identical_outputs is True


def _offline(
    simulated_audit: SimulatedAudit, mock: dict[str, object], temperature: float
) -> object:
    run = simulated_audit(
        "test04",
        mock=mock,
        endpoint={"api": "openai-chat", "stream": True, "temperature": temperature},
        load={"scenario": "offline"},
        samples=128,
        design=DESIGN,
    )
    ref, aud = pooled(run.phases)
    # as the verdict's evidence has it: a FAIL is never fingerprinted "none"
    seen = run.result.verdict == "FAIL"
    return fingerprint(ref, aud, temperature=temperature, cache_seen=seen)


@pytest.mark.parametrize(
    ("mock", "temperature", "kind"),
    [
        # offline: queueing is in the first-token time; decode unchanged + speed-up says prefix
        ({"cache": "prefix"}, 0.0, "prefix cache"),
        ({"cache": "last-prompt"}, 0.0, "prefix cache"),
        ({"behaviour": {"coalesce": True}}, 0.0, "request coalescing"),
        ({"behaviour": {"coalesce": True}}, 1.0, "request coalescing"),
        ({"cache": "output"}, 0.0, "response cache"),
        ({"cache": "output", "behaviour": {"cache_miss_every": 2}}, 0.0, "response cache"),
        # the same text for every prompt at T>0, no speed-up: not a cache
        ({"behaviour": {"same_output": True}}, 1.0, "none"),
    ],
)
def test_offline_fingerprint_names_the_cache(
    simulated_audit: SimulatedAudit, mock: dict[str, object], temperature: float, kind: str
) -> None:
    fp = _offline(simulated_audit, mock, temperature)
    assert fp.kind == kind, fp.evidence  # type: ignore[attr-defined]
    if kind == "prefix cache":
        assert fp.ttft_judged is False  # type: ignore[attr-defined]
        assert not any("without a streaming split" in e for e in fp.evidence)  # type: ignore[attr-defined]


def _frame(service_ms: float, n: int = 40, sample: int | None = None) -> pd.DataFrame:
    """Non-streamed records (no first token, no cached tokens): `n` queries one after another."""
    sent = [i * 1_000_000_000 for i in range(n)]
    return pd.DataFrame(
        {
            "status": "ok",
            "variant": "main",
            "sample_index": [sample if sample is not None else i for i in range(n)],
            "sent_ns": sent,
            "first_token_ns": pd.Series([None] * n, dtype="Int64"),
            "completed_ns": [s + int(service_ms * 1e6) + i * 1000 for i, s in enumerate(sent)],
            "prompt_tokens": 20,
            "output_tokens": 32,
            "cached_tokens": pd.Series([None] * n, dtype="Int64"),
            "output_sha256": [f"h{i}" for i in range(n)],
        }
    )


@pytest.mark.parametrize("audit_ms", [50.0, 100.0])
def test_a_fail_without_a_split_names_what_would_tell_never_none(audit_ms: float) -> None:
    """Not streamed, T=0, no metadata: beside a FAIL the kind is "unknown" (never "none"),
    faster or not by the median, and the evidence says which settings would tell."""
    fp = fingerprint(_frame(100.0), _frame(audit_ms, sample=3), cache_seen=True)
    assert fp.kind == "unknown", fp.evidence
    told = fp.evidence[-1]
    assert told.startswith("the verdict saw a cache; which kind this run cannot tell")
    assert "streaming (--stream" in told and "T>0" in told and "cached_tokens" in told
    # without a FAIL, no speed-up is no cache
    assert fingerprint(_frame(100.0), _frame(100.0, sample=3)).kind == "none"
