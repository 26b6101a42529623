"""Cache-type fingerprints against the real mock's three cache modes (streamed, T > 0)."""

import pytest

from auditkit.audits import build_config
from auditkit.audits.test04.fingerprint import fingerprint
from auditkit.runner import run_audit


@pytest.mark.parametrize(
    ("cache", "kind"), [("none", "none"), ("output", "response cache"), ("prefix", "prefix cache")]
)
def test_fingerprint_names_the_cache(tmp_path: object, cache: str, kind: str) -> None:
    cfg = build_config(
        {
            "output_dir": str(tmp_path),
            "endpoint": {"api": "openai-chat", "stream": True, "temperature": 1.0},
            "load": {"scenario": "single-stream"},
            "test04": {"samples": 64},
            "mock": {"cache": cache, "prefill_us_per_token": 60.0},
        }
    )
    run = run_audit(cfg)
    fp = fingerprint(run.phases[0].records, run.phases[1].records, temperature=1.0)
    assert fp.kind == kind, fp.evidence
    if kind == "prefix cache":
        assert fp.ttft_ratio is not None and fp.ttft_ratio < 0.75
        assert fp.decode_per_token_ratio is not None and fp.decode_per_token_ratio > 0.75
    if kind == "response cache":
        assert fp.identical_outputs is True
