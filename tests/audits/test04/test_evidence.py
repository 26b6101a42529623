"""Evidence beside the verdict: how representative the audit sample is, per-token scores."""

from auditkit.audits.test04.evidence import representativeness
from auditkit.results import records_frame


def _records(prompt_tokens: list[int], output_tokens: int = 32) -> object:
    rows = [
        ("p", i, i, 0, 0, 1, None, 10, 10, None, "ok", 200, None, t, output_tokens, 0, "x" * 64)
        for i, t in enumerate(prompt_tokens)
    ]
    return records_frame(rows)


def test_typical_audit_sample_gives_no_warning() -> None:
    ref = _records([90, 95, 100, 105, 110])
    aud = _records([100] * 5)
    out = representativeness(ref, aud)  # type: ignore[arg-type]
    assert out.warnings == ()
    assert out.input_tokens is not None and out.input_tokens.percentile_rank == 0.5


def test_far_from_median_audit_sample_is_flagged() -> None:
    ref = _records([90, 95, 100, 105, 110])
    aud = _records([300] * 5)
    out = representativeness(ref, aud)  # type: ignore[arg-type]
    assert len(out.warnings) == 1
    assert "sample_index: median" in out.warnings[0]
    assert out.input_tokens is not None and out.input_tokens.percentile_rank == 1.0
